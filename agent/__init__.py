"""recursa.agent: the dialogue manager, the recursive prompt, the summarizer and the runtimes.

`Agent` is the one API that the library, the CLI and the TUI use; the models
exported here are its typed boundary.
"""

from recursa.agent.agent import (
    Agent,
    AsyncReplyStream,
    CompactionReport,
    ConversationInfo,
    MessageInfo,
    PromptTrace,
    Reply,
    ReplyStream,
    SearchResult,
    StreamChunk,
    SummaryInfo,
    TurnFailedError,
)
from recursa.agent.compose import CompositionChunk, CompositionResult, CompositionStream
from recursa.agent.documents import ConversationDocument, DocumentMessage
from recursa.agent.plan import PlanMessage, PlanSection, PromptPlan
from recursa.agent.runtime.protocol import CancelToken, ChatMessage, GenerationParams
from recursa.agent.settings import Settings

__all__ = [
    "Agent",
    "AsyncReplyStream",
    "CancelToken",
    "ChatMessage",
    "CompactionReport",
    "CompositionChunk",
    "CompositionResult",
    "CompositionStream",
    "ConversationDocument",
    "ConversationInfo",
    "DocumentMessage",
    "GenerationParams",
    "MessageInfo",
    "PlanMessage",
    "PlanSection",
    "PromptPlan",
    "PromptTrace",
    "Reply",
    "ReplyStream",
    "SearchResult",
    "Settings",
    "StreamChunk",
    "SummaryInfo",
    "TurnFailedError",
]
