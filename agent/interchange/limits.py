"""Limits every imported file is held to, checked before anything is written.

A hostile or damaged file fails early with one clear line instead of a
traceback, an overflow in the database, or unbounded memory: its size
(`DEFAULT_MAX_BYTES`, raised with `recursa conversations import --max-size`),
NUL bytes (it is not text), JSON nesting depth (`MAX_DEPTH`), and numbers
(`NaN`/`Infinity` are not JSON; integers must fit in 64 bits).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recursa.agent.errors import InvalidInputError

__all__ = ["DEFAULT_MAX_BYTES", "MAX_DEPTH", "MAX_INT", "load_json", "read_limited"]

DEFAULT_MAX_BYTES = 512 * 1024 * 1024  # generous: a years-long ChatGPT export is ~100 MB
MAX_DEPTH = 64  # conversation documents nest 6 levels; metadata gets the rest
MAX_INT = 2**63 - 1
_CHUNK = 1024 * 1024


def read_limited(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes; InvalidInputError if it is larger than `max_bytes` or holds NUL.

    Read in chunks, so an endless device (/dev/zero) or a binary file fails at
    its first chunk, and a regular file that is too large fails before reading.
    """
    name = path.name or str(path)
    too_large = (
        f"{name} is larger than the import limit of {_size(max_bytes)}: split it, or raise "
        "the limit with --max-size. Nothing was imported."
    )
    try:
        if path.is_file() and path.stat().st_size > max_bytes:
            raise InvalidInputError(too_large)
        chunks: list[bytes] = []
        total = 0
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                if b"\x00" in chunk:
                    offset = total + chunk.index(b"\x00")
                    raise InvalidInputError(
                        f"{name} is not a text file (a NUL byte at offset {offset}); give a "
                        "JSON or JSONL conversation file. Nothing was imported."
                    )
                total += len(chunk)
                if total > max_bytes:
                    raise InvalidInputError(too_large)
                chunks.append(chunk)
    except FileNotFoundError:
        raise InvalidInputError(f"No such file: {path}. Check the path.") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a folder; give a conversation file.") from None
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return b"".join(chunks)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB" if n >= 1024 * 1024 else f"{n} bytes"


def _no_constant(name: str) -> Any:
    raise InvalidInputError(f"{name} is not a JSON number; use a finite number or null")


def load_json(text: str, where: str) -> Any:
    """`json.loads` with the import limits; InvalidInputError names `where` and the path.

    json.JSONDecodeError (a syntax error) is left to the caller, which knows how
    to point at the line.
    """
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}. Nothing was imported.") from None
    except RecursionError:
        raise InvalidInputError(
            f"{where} is nested too deeply to be a conversation file (more than {MAX_DEPTH} "
            "levels). Nothing was imported."
        ) from None
    except ValueError as exc:  # an integer of thousands of digits (Python refuses to parse it)
        reason = "a number has thousands of digits" if "digits" in str(exc) else str(exc)
        raise InvalidInputError(
            f"{where}: {reason}; integers must fit in 64 bits. Nothing was imported."
        ) from None
    check_tree(data, where)
    return data


def check_tree(data: Any, where: str) -> None:
    """InvalidInputError when `data` nests deeper than MAX_DEPTH or holds a too-large integer."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidInputError(
                    f"{where}: {path or 'the document'} is nested more than {MAX_DEPTH} levels "
                    "deep; a conversation file never is. Nothing was imported."
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                if isinstance(child, dict | list | int) and not isinstance(child, bool):
                    label = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
                    stack.append((child, label.lstrip("."), depth + 1))
        elif isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
            raise InvalidInputError(
                f"{where}: the number at {path or 'the top'} is out of range (integers must "
                f"fit in 64 bits, up to {MAX_INT}). Nothing was imported."
            )
