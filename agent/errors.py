"""Errors raised by the agent layer: models, runtimes and the prompt budget.

They extend the tree rooted in `recursa.memory.errors`, so callers catch one
`RecursaError` for everything recursa raises on purpose.
"""

from __future__ import annotations

from recursa.memory.errors import (
    ConfigError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    RecursaError,
    SchemaError,
    StoreError,
)

__all__ = [
    "BudgetError",
    "ConfigError",
    "ContextOverflowError",
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
]


class ModelError(RecursaError):
    """A model could not be loaded or failed while generating."""


class ModelNotFoundError(ModelError):
    """A model spec names nothing that exists on this machine."""


class MissingDependencyError(ModelError):
    """An optional dependency is missing; the message names the pip install."""


class ModelServerError(ModelError):
    """An OpenAI-compatible server refused, failed or cut off a request."""


class ContextOverflowError(ModelServerError):
    """A server refused a prompt as longer than its context window.

    `window` is the window the server stated (None when it said no number),
    `prompt_tokens` the prompt's length by the server's count when it said so.
    The message names the window and the setting that changes it.
    """

    def __init__(
        self, message: str, *, window: int | None = None, prompt_tokens: int | None = None
    ) -> None:
        super().__init__(message)
        self.window = window
        self.prompt_tokens = prompt_tokens


class BudgetError(InvalidInputError):
    """Something cannot fit the prompt budget (a message too large to send even alone)."""
