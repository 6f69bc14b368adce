"""Terminal-safe text: stored text shown on a terminal can never drive it.

Titles, messages, summaries and error messages can hold anything a user, an
import file or a model put there, escape sequences included: printed raw, a
stored `ESC[2J` clears the screen and `ESC]0;...` retitles the window.
`terminal_safe` is the one function every human-readable output of the CLI
and the TUI passes stored text through: control characters other than newline
and tab (C0, DEL, C1) and the bidirectional overrides that reorder what a
reader sees become visible escapes such as `\\x1b`, so nothing is hidden and
nothing is interpreted. JSON output needs none of this (json escapes them).

    from recursa.tui.safe_text import terminal_safe, one_line

    click.echo(terminal_safe(title))
"""

from __future__ import annotations

import re

__all__ = ["one_line", "terminal_safe"]

# C0 controls except tab and newline, DEL, C1 controls, and the Unicode bidi
# embeddings/overrides/isolates (they reorder what the reader sees, "Trojan Source").
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_safe(text: object) -> str:
    """`text` with every control character but newline and tab shown as an escape (`\\x1b`)."""
    return _UNSAFE.sub(_escape, str(text))


def one_line(text: object) -> str:
    """`text` on one line: newlines and tabs escaped too (for error lines and table cells)."""
    return _UNSAFE_IN_LINE.sub(
        lambda m: {"\n": "\\n", "\t": "\\t"}.get(m.group()) or _escape(m), str(text)
    )
