"""Training data from stored conversations: export replies as chat examples, read and check JSONL.

One example is one generated reply: `{"messages": [...the prompt exactly as the
model saw it..., {"role": "assistant", "content": reply}]}`, the chat-messages
format that fine-tuning tools read. The prompt comes from the reply's stored
trace (the recursive prompt: summary, recalled excerpts, window), not from a
re-reading of the conversation, so a model trained on it sees what it will be
given at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Protocol, TypedDict

from recursa.agent.runtime.protocol import ChatMessage
from recursa.memory.errors import InvalidInputError
from recursa.memory.records import ConversationRecord, MessageRecord, TraceRecord

ROLES = ("system", "user", "assistant")


class Example(TypedDict):
    """One training example: the prompt messages, then the reply as the last message."""

    messages: list[ChatMessage]


class ExportSource(Protocol):
    """The part of `recursa.memory.Store` that export reads."""

    def list_conversations(self, *, include_archived: bool = ...) -> list[ConversationRecord]: ...
    def get_conversation(self, conversation_id: int) -> ConversationRecord: ...
    def traces(self, conversation_id: int) -> list[TraceRecord]: ...
    def messages_by_ids(self, ids: Sequence[int]) -> list[MessageRecord]: ...


@dataclass
class ExportReport:
    """What an export kept and why it dropped the rest."""

    exported: int = 0
    skipped_failed: int = 0
    skipped_unrated: int = 0
    skipped_bad: int = 0
    skipped_duplicate: int = 0
    skipped_no_prompt: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a terminal."""
        parts = [f"{self.exported} example(s) exported"]
        for label, count in (
            ("error/interrupted", self.skipped_failed),
            ("unrated", self.skipped_unrated),
            ("rated bad", self.skipped_bad),
            ("duplicate", self.skipped_duplicate),
            ("without a stored prompt", self.skipped_no_prompt),
        ):
            if count:
                parts.append(f"{count} {label} skipped")
        return ", ".join(parts)


def _as_utc(moment: datetime | date) -> datetime:
    """A date means its midnight; naive datetimes are taken as UTC (the store writes UTC)."""
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time.min)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def prompt_from_trace(trace: TraceRecord) -> list[ChatMessage] | None:
    """The rendered prompt messages a trace recorded, or None when it holds none.

    The dialogue manager stores them in `plan["messages"]` as a list of
    `{"role", "content"}` objects, in the order they were sent.
    """
    raw = trace.plan.get("messages") if isinstance(trace.plan, dict) else None
    if not isinstance(raw, list) or not raw:
        return None
    messages: list[ChatMessage] = []
    for item in raw:
        if not isinstance(item, dict) or item.get("role") not in ROLES:
            return None
        content = item.get("content")
        if not isinstance(content, str):
            return None
        messages.append({"role": item["role"], "content": content})
    return messages


def export_dataset(
    store: ExportSource,
    *,
    conversation_ids: Sequence[int] | None = None,
    since: datetime | date | None = None,
    only_rated: bool = False,
    include_failed: bool = False,
    include_bad: bool = False,
    dedupe: bool = True,
    report: ExportReport | None = None,
) -> list[Example]:
    """One example per stored reply, oldest conversation first, replies in order.

    - `conversation_ids`: only these conversations (NotFoundError for an unknown
      id); None exports every conversation, archived ones included.
    - `since`: only replies created at or after this moment (a date means its
      midnight UTC; a naive datetime is UTC).
    - `only_rated`: only replies rated good (rating +1).
    - `include_failed`: keep replies whose status is error or interrupted
      (dropped by default: a cut-off reply teaches the model to stop mid-way).
    - `include_bad`: keep replies rated bad (-1); dropped by default.
    - `dedupe`: drop an example identical (prompt and reply) to an earlier one.

    Pass an `ExportReport` to learn how many replies each rule dropped.
    """
    report = report if report is not None else ExportReport()
    if conversation_ids is None:
        conversations = store.list_conversations(include_archived=True)
        ids = sorted(c.id for c in conversations)
    else:
        ids = list(dict.fromkeys(int(i) for i in conversation_ids))
        for cid in ids:
            store.get_conversation(cid)  # NotFoundError names the bad id
    cutoff = _as_utc(since) if since is not None else None
    seen: set[str] = set()
    examples: list[Example] = []
    for cid in ids:
        traces = store.traces(cid)
        if not traces:
            continue
        replies = {m.id: m for m in store.messages_by_ids([t.message_id for t in traces])}
        for trace in sorted(
            traces, key=lambda t: replies[t.message_id].seq if t.message_id in replies else 0
        ):
            reply = replies.get(trace.message_id)
            if reply is None:
                continue
            example = _example_for(
                trace, reply, cutoff, only_rated, include_failed, include_bad, report
            )
            if example is None:
                continue
            if dedupe:
                key = example_key(example)
                if key in seen:
                    report.skipped_duplicate += 1
                    continue
                seen.add(key)
            examples.append(example)
            report.exported += 1
    return examples


def _example_for(
    trace: TraceRecord,
    reply: MessageRecord,
    cutoff: datetime | None,
    only_rated: bool,
    include_failed: bool,
    include_bad: bool,
    report: ExportReport,
) -> Example | None:
    if cutoff is not None and _as_utc(reply.created_at) < cutoff:
        return None
    if reply.status != "complete" and not include_failed:
        report.skipped_failed += 1
        return None
    if reply.rating is not None and reply.rating < 0 and not include_bad:
        report.skipped_bad += 1
        return None
    if only_rated and not (reply.rating is not None and reply.rating > 0):
        report.skipped_unrated += 1
        return None
    prompt = prompt_from_trace(trace)
    if prompt is None:
        report.skipped_no_prompt += 1
        return None
    return {"messages": [*prompt, {"role": "assistant", "content": reply.content}]}


def example_key(example: Example) -> str:
    """A digest of the example's messages: equal digests mean identical examples."""
    canonical = json.dumps(example["messages"], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write one example per line (UTF-8); returns how many were written.

    The file is written whole or not at all: into a temporary file beside it, renamed
    over `path` only when complete; on any failure the temporary file is removed.
    """
    target = Path(path)
    count = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for example in examples:
                out.write(json.dumps(example, ensure_ascii=False) + "\n")
                count += 1
        umask = os.umask(0)  # mkstemp makes the file private; give it the usual permissions
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def validate_example(obj: Any, where: str) -> Example:
    """Check one decoded example; InvalidInputError naming `where` when it is malformed."""
    if not isinstance(obj, dict) or "messages" not in obj:
        raise InvalidInputError(f'{where}: expected an object with a "messages" list')
    messages = obj["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        raise InvalidInputError(
            f'{where}: "messages" must list at least one prompt message and the reply'
        )
    checked: list[ChatMessage] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidInputError(f"{where}: message {index} is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidInputError(
                f"{where}: message {index} has role {role!r}; expected one of {', '.join(ROLES)}"
            )
        if not isinstance(content, str):
            raise InvalidInputError(f'{where}: message {index} has no text "content"')
        checked.append({"role": role, "content": content})
    if checked[-1]["role"] != "assistant":
        raise InvalidInputError(
            f"{where}: the last message must be the assistant's reply "
            f"(it is {checked[-1]['role']!r})"
        )
    if not checked[-1]["content"].strip():
        raise InvalidInputError(f"{where}: the assistant's reply is empty")
    return {"messages": checked}


def iter_jsonl(path: str | Path) -> Iterator[Example]:
    """Examples of a JSONL file, checked one by one; errors name the file and line.

    Blank lines are allowed (editors add them); anything else must be one
    example object per line.
    """
    source = Path(path)
    if not source.is_file():
        raise InvalidInputError(f"Dataset file not found: {source}")
    with source.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            where = f"{source}, line {number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"{where}: not UTF-8 text ({exc.reason})") from exc
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{where}: not valid JSON ({exc.msg})") from exc
            yield validate_example(obj, where)


def load_jsonl(path: str | Path) -> list[Example]:
    """All examples of a JSONL file; InvalidInputError when it is empty or a line is malformed."""
    examples = list(iter_jsonl(path))
    if not examples:
        raise InvalidInputError(
            f"{path}: the dataset is empty. Export one with: recursa dataset export -o FILE.jsonl"
        )
    return examples


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, so a resumed run can tell its data changed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "Example",
    "ExportReport",
    "ExportSource",
    "example_key",
    "export_dataset",
    "file_digest",
    "iter_jsonl",
    "load_jsonl",
    "prompt_from_trace",
    "validate_example",
    "write_jsonl",
]
