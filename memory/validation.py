"""Input checks for the store: every value is validated before a transaction starts.

Each function returns the value (normalized where needed) or raises
`InvalidInputError` naming the argument and what is expected, so a bad call
never reaches the database and never leaves a half-written row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from recursa.memory.errors import InvalidInputError

_T = TypeVar("_T")


def text(name: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, not {type(value).__name__}.")
    if "\x00" in value:
        raise InvalidInputError(
            f"{name} contains a NUL character (U+0000), which the database cannot store: "
            "remove it (other control characters are kept as they are)."
        )
    if _has_surrogate(value):
        raise InvalidInputError(
            f"{name} contains an unpaired surrogate code point, which is not valid Unicode "
            "text: decode the input with errors='replace' before passing it."
        )
    if not allow_empty and not value.strip():
        raise InvalidInputError(f"{name} is empty: give some text.")
    return value


def optional_text(name: str, value: object) -> str | None:
    return None if value is None else text(name, value, allow_empty=True)


def json_value(name: str, value: object, expected: type[_T]) -> _T:
    """`value` as plain JSON of type `expected`, refusing anything that would not round-trip."""
    if not isinstance(value, expected if expected is not dict else Mapping):
        raise InvalidInputError(
            f"{name} must be a JSON {'object (dict)' if expected is dict else 'array (list)'}, "
            f"not {type(value).__name__}."
        )
    plain: Any = dict(value) if isinstance(value, Mapping) else value
    try:
        encoded = json.dumps(plain, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(
            f"{name} is not JSON-serializable ({exc}): use dicts with string keys, lists, "
            "strings, finite numbers, booleans and None."
        ) from exc
    decoded = json.loads(encoded)
    if decoded != plain or _unstorable(decoded):
        raise InvalidInputError(
            f"{name} would not be stored exactly (tuples, non-string keys, NUL characters "
            "or unpaired surrogates change on the way through JSON): use dicts with string "
            "keys, lists, strings without NUL, finite numbers, booleans and None."
        )
    return decoded  # type: ignore[no-any-return]


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unstorable(value: Any) -> bool:
    """True if a string in this JSON value holds NUL or an unpaired surrogate."""
    if isinstance(value, str):
        return "\x00" in value or _has_surrogate(value)
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


def integer(name: str, value: object, *, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"{name} must be an integer, not {type(value).__name__}.")
    if minimum is not None and value < minimum:
        raise InvalidInputError(f"{name} must be at least {minimum}, not {value}.")
    return value


MAX_ID = 2**63 - 1  # the largest BIGINT on both databases: every id and seq fits below it


def record_id(name: str, value: object) -> int:
    """`value` as a record id: a whole number from 1 to 2**63-1 (what both databases store)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(
            f"{name} must be a whole number (an id), not {type(value).__name__}."
        )
    if not 1 <= value <= MAX_ID:
        raise InvalidInputError(
            f"{name} must be an id from 1 to {MAX_ID}, not {value}: ids are positive and "
            "fit in 64 bits. Check the number (`recursa conversations list` shows the ids)."
        )
    return value


def optional_integer(name: str, value: object, *, minimum: int | None = None) -> int | None:
    return None if value is None else integer(name, value, minimum=minimum)


def boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, not {value!r}.")
    return value


def choice(name: str, value: object, allowed: frozenset[str]) -> str:
    if value not in allowed:
        raise InvalidInputError(f"{name} must be one of {sorted(allowed)}, not {value!r}.")
    return str(value)


def timestamp(name: str, value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    raise InvalidInputError(f"{name} must be a datetime (timezone-aware, ideally UTC).")


def ids(name: str, values: object) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{name} must be a sequence of integer ids.")
    return [integer(name, value) for value in values]
