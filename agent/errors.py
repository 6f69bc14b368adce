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


class BudgetError(InvalidInputError):
    """Something cannot fit the prompt budget (a message too large to send even alone)."""
