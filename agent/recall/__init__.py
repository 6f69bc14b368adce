"""recursa.agent.recall: which older turns come back into the prompt.

Every usable message older than the verbatim window is a candidate, summarized
or not. `recursa.agent.planning.prompt` calls these each turn:

- `query.py`: what to search for: the message's words, or, for a message that
  leans on the previous exchange ("where did she move?"), that exchange too.
- `fusion.py`: the rankings (full-text, semantic, the days a question names)
  fused by reciprocal rank, and each hit's partner (its question or reply).
- `dates.py`: dates in a question, as days to look at.
- `excerpts.py`: a long message cut to the sentences that matched.
- `search.py`: content words (`recall_query`) and which messages may be shown (`usable`).
- `embedders.py`: the `Embedder` protocol and its implementations (local
  all-MiniLM-L6-v2, OpenAI-compatible `/v1/embeddings`), chosen by a spec.
- `vectors.py`: `VectorIndex`, a conversation's stored message vectors held in
  memory, appended incrementally, searched by cosine similarity.

The planner fits what is found into the recall share (`recursa.agent.planning.plan`).
The names below are re-exported here; the other modules are imported where they
are used, so importing this package stays cheap.
"""

from __future__ import annotations

from recursa.agent.recall.search import STOPWORDS, recall_query, usable

__all__ = ["STOPWORDS", "recall_query", "usable"]
