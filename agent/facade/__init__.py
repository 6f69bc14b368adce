"""The Agent facade's parts: one mixin per group of `Agent` methods, over one shared base.

`recursa.agent.agent.Agent` is the public class; it is assembled from these
mixins and holds only construction and lifetime itself. Each mixin reads and
writes the state that `base.AgentBase` declares and calls the base's methods,
never another mixin's, so the modules depend one way: `agent.py` -> mixins ->
`base.py` (and `turns.py` -> `background.py` for the worker a turn queues on).

- `base.py`: the declared state and the collaborators made on first need (the
  model, the summarizer, the vector index for semantic recall).
- `conversations.py`: creating, listing, changing conversations; their settings.
- `messages.py`: stored messages, pins, ratings, search, the summary chain.
- `prompts.py`: prompt previews, stored traces and re-rendered prompts.
- `turns.py`: sending, answering and regenerating, sync and async.
- `background.py`: prefills and compactions between turns.
- `recall.py`: the state of semantic recall, embedding backfills.
- `composition.py`: long-form composition.
- `summaries.py`: compaction on request and document summaries.
- `interchange.py`: importing conversation documents, exporting them and datasets.
"""
