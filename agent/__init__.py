"""recursa.agent: the dialogue manager, the recursive prompt, the summarizer and the runtimes.

`Agent` is the one API that the library, the CLI and the TUI use; the models
exported here are its typed boundary. Names are imported on first use, so
importing this package is cheap.

Where things happen:
- `agent.py`: the facade, its methods grouped in `facade/` (one mixin per group over
  `facade/base.py`); `turns.py`: one chat turn, end to end.
- `planning/`: the prompt plan (`plan.py` is the pure planner, `prompt.py` feeds it
  from the store) and the budget bar's numbers (`PromptPlan.sections`).
- `recall/`: which older turns come back into the prompt.
- `compaction/`: when to compact (`decide.py`), how old turns are folded into a
  summary and stored (`fold.py`), and where it is triggered (`triggers.py`).
- `summarize.py`: the summarizers (`facts.py`: the fact-bearing sentences they keep;
  `digest.py`: recursive summaries of long documents); `runtime/`: the models
  (`runtime/local/kv_cache.py` is KV prefix reuse); `compose/`: long-form writing on
  the same machinery.
- `training/`: rating replies and exporting them as training data, fine-tuning.
- `database.py`: the database's schema and location (the `db` commands); `logs.py`:
  the log file the CLI and the TUI write; `errors.py`: the exception tree.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from recursa.agent._lazy import lazy_exports

# A library logs, it does not print: records reach a file or a console only when a
# program configures logging (the CLI and the TUI do, see `recursa.agent.logs`).
logging.getLogger("recursa").addHandler(logging.NullHandler())

_ERRORS = (
    "BudgetError",
    "ConfigError",
    "DatabaseUnavailableError",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelError",
    "ModelNotFoundError",
    "ModelServerError",
    "NotFoundError",
    "RecursaError",
    "SchemaError",
    "StoreError",
)
_EXPORTS = {
    "Agent": "recursa.agent.agent",
    "AsyncReplyStream": "recursa.agent.streams",
    "ReplyStream": "recursa.agent.streams",
    "TurnFailedError": "recursa.agent.turns",
    "CompactionReport": "recursa.agent.boundary",
    "ConversationInfo": "recursa.agent.boundary",
    "MessageInfo": "recursa.agent.boundary",
    "PromptTrace": "recursa.agent.boundary",
    "Reply": "recursa.agent.boundary",
    "SearchResult": "recursa.agent.boundary",
    "StreamChunk": "recursa.agent.boundary",
    "SummaryInfo": "recursa.agent.boundary",
    "CompositionChunk": "recursa.agent.compose",
    "CompositionResult": "recursa.agent.compose",
    "CompositionStream": "recursa.agent.compose",
    "ConversationDocument": "recursa.agent.interchange.documents",
    "DocumentMessage": "recursa.agent.interchange.documents",
    "PlanMessage": "recursa.agent.planning.plan",
    "PlanSection": "recursa.agent.planning.plan",
    "PromptPlan": "recursa.agent.planning.plan",
    "CancelToken": "recursa.agent.runtime.protocol",
    "ChatMessage": "recursa.agent.runtime.protocol",
    "GenerationParams": "recursa.agent.runtime.protocol",
    "Settings": "recursa.agent.settings",
    "SummaryNode": "recursa.agent.digest",
    "TextSummary": "recursa.agent.digest",
    **{name: "recursa.agent.errors" for name in _ERRORS},
}
__all__ = [
    "Agent",
    "AsyncReplyStream",
    "BudgetError",
    "CancelToken",
    "ChatMessage",
    "CompactionReport",
    "CompositionChunk",
    "CompositionResult",
    "CompositionStream",
    "ConfigError",
    "ConversationDocument",
    "ConversationInfo",
    "DatabaseUnavailableError",
    "DocumentMessage",
    "GenerationParams",
    "InvalidInputError",
    "MessageInfo",
    "MissingDependencyError",
    "ModelError",
    "ModelNotFoundError",
    "ModelServerError",
    "NotFoundError",
    "PlanMessage",
    "PlanSection",
    "PromptPlan",
    "PromptTrace",
    "RecursaError",
    "Reply",
    "ReplyStream",
    "SchemaError",
    "SearchResult",
    "Settings",
    "StoreError",
    "StreamChunk",
    "SummaryInfo",
    "SummaryNode",
    "TextSummary",
    "TurnFailedError",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from recursa.agent.agent import Agent
    from recursa.agent.boundary import (
        CompactionReport,
        ConversationInfo,
        MessageInfo,
        PromptTrace,
        Reply,
        SearchResult,
        StreamChunk,
        SummaryInfo,
    )
    from recursa.agent.compose import CompositionChunk, CompositionResult, CompositionStream
    from recursa.agent.digest import SummaryNode, TextSummary
    from recursa.agent.errors import (
        BudgetError,
        ConfigError,
        DatabaseUnavailableError,
        InvalidInputError,
        MissingDependencyError,
        ModelError,
        ModelNotFoundError,
        ModelServerError,
        NotFoundError,
        RecursaError,
        SchemaError,
        StoreError,
    )
    from recursa.agent.interchange.documents import ConversationDocument, DocumentMessage
    from recursa.agent.planning.plan import PlanMessage, PlanSection, PromptPlan
    from recursa.agent.runtime.protocol import CancelToken, ChatMessage, GenerationParams
    from recursa.agent.settings import Settings
    from recursa.agent.streams import AsyncReplyStream, ReplyStream
    from recursa.agent.turns import TurnFailedError
