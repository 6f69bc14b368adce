"""recursa.agent.recall: which older turns come back into the prompt.

- `search.py`: the full-text side: the query's content words (`recall_query`),
  which stored messages may be shown (`usable`) and the ranked candidates
  (`recall_candidates`).
- `embedders.py`: the `Embedder` protocol and its implementations (local
  all-MiniLM-L6-v2, OpenAI-compatible `/v1/embeddings`), chosen by a spec.
- `vectors.py`: `VectorIndex`, a conversation's stored message vectors held in
  memory, appended incrementally, searched by cosine similarity.

The full-text names are re-exported here; the embedding modules are imported
where they are used, so importing this package stays cheap.
"""

from __future__ import annotations

from recursa.agent.recall.search import STOPWORDS, recall_candidates, recall_query, usable

__all__ = ["STOPWORDS", "recall_candidates", "recall_query", "usable"]
