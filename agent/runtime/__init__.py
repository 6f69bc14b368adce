"""recursa.agent.runtime: the model runtime protocol and its implementations.

Only `local.py` imports torch and transformers, and only when a local model is loaded.
"""

from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    Completion,
    GenerationParams,
    Runtime,
    TextStream,
    Usage,
)

__all__ = [
    "CancelToken",
    "ChatMessage",
    "Completion",
    "GenerationParams",
    "Runtime",
    "TextStream",
    "Usage",
]
