"""Tokenization with loss masks: prompt tokens carry no label, reply tokens do; batches are padded.

Labels are aligned with the inputs (`labels[i]` is `input_ids[i]` or -100): the
model shifts them itself when it computes its loss. The prompt is tokenized
exactly as the runtime tokenizes it at generation time (the chat template with
the generation prompt), and the reply is the rest of the rendered conversation
(reply text and end-of-turn token), so the model learns to stop where the
runtime stops. Padding is masked through the attention mask and -100 labels,
never by comparing with the pad id (SmolLM2's pad token is its end-of-turn
token, which must be learned).

The tokenizer is passed in; torch is imported only by `collate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from recursa.agent.errors import ModelError
from recursa.agent.runtime.protocol import ChatMessage
from recursa.agent.training.dataset import Example
from recursa.memory.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100
Overflow = Literal["truncate", "skip"]


@dataclass(frozen=True)
class TokenizedExample:
    """One example as token ids with aligned labels (-100 on prompt tokens)."""

    input_ids: list[int]
    labels: list[int]
    prompt_tokens: int
    truncated_tokens: int = 0

    @property
    def reply_tokens(self) -> int:
        return len(self.input_ids) - self.prompt_tokens


@dataclass
class EncodeReport:
    """How many examples fit, were cut from the left, or were skipped for length."""

    kept: int = 0
    truncated: int = 0
    skipped: int = 0
    truncated_tokens: int = 0

    def summary(self, max_tokens: int) -> str:
        text = f"{self.kept} example(s) ready"
        if self.truncated:
            text += (
                f"; {self.truncated} longer than --max-tokens {max_tokens} had their prompt cut "
                f"from the left ({self.truncated_tokens} token(s) removed)"
            )
        if self.skipped:
            text += f"; {self.skipped} longer than --max-tokens {max_tokens} were skipped"
        return text


def _ids(encoded: Any) -> list[int]:
    """Token ids from whatever a tokenizer call returned (list or BatchEncoding)."""
    if isinstance(encoded, list):
        return [int(i) for i in encoded]
    return list(encoded["input_ids"])


def render_prompt(tokenizer: Any, messages: Sequence[ChatMessage]) -> str:
    """The prompt text the runtime sends: chat template plus the assistant's generation prompt."""
    return str(
        tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    )


def prompt_token_ids(tokenizer: Any, messages: Sequence[ChatMessage]) -> list[int]:
    """The prompt's token ids, computed the way the local runtime computes them."""
    encoded = tokenizer.apply_chat_template(
        [dict(m) for m in messages], add_generation_prompt=True, tokenize=True
    )
    ids = _ids(encoded) if not isinstance(encoded, list) else encoded
    if ids and isinstance(ids[0], list):  # some versions return a batch of one
        ids = ids[0]
    return [int(i) for i in ids]


def _reply_suffix(tokenizer: Any, prompt: list[ChatMessage], reply: ChatMessage) -> str:
    prompt_text = render_prompt(tokenizer, prompt)
    full_text = str(
        tokenizer.apply_chat_template([*prompt, reply], add_generation_prompt=False, tokenize=False)
    )
    if not full_text.startswith(prompt_text):
        raise ModelError(
            "This model's chat template does not render a prompt as the start of the same "
            "prompt plus its reply, so the reply tokens cannot be told apart for the loss. "
            "Fine-tune a model whose template appends the assistant turn (ChatML-style)."
        )
    return full_text[len(prompt_text) :]


def _system_span(tokenizer: Any, prompt: list[ChatMessage], prompt_ids: list[int]) -> int:
    """Tokens of the leading system message inside `prompt_ids` (0 when there is none)."""
    if not prompt or prompt[0]["role"] != "system" or len(prompt) == 1:
        return 0
    text = str(
        tokenizer.apply_chat_template(prompt[:1], add_generation_prompt=False, tokenize=False)
    )
    ids = _ids(tokenizer(text, add_special_tokens=False))
    return len(ids) if prompt_ids[: len(ids)] == ids else 0


def encode_example(
    tokenizer: Any,
    example: Example,
    *,
    max_tokens: int,
    overflow: Overflow = "truncate",
) -> TokenizedExample | None:
    """Token ids and labels of one example; None when it is too long and `overflow` is "skip".

    With "truncate", an over-long prompt loses tokens from its left end, after
    the leading system message when one is there and it still leaves room; an
    example whose reply alone does not fit (with one prompt token) is skipped,
    since a cut reply would teach the model to stop early.
    """
    if max_tokens < 2:
        raise InvalidInputError(f"max_tokens must be at least 2 (got {max_tokens})")
    messages = example["messages"]
    prompt, reply = list(messages[:-1]), messages[-1]
    prompt_ids = prompt_token_ids(tokenizer, prompt)
    reply_ids = _ids(tokenizer(_reply_suffix(tokenizer, prompt, reply), add_special_tokens=False))
    total = len(prompt_ids) + len(reply_ids)
    cut = 0
    if total > max_tokens:
        budget = max_tokens - len(reply_ids)
        if overflow == "skip" or budget < 1:
            return None
        keep_head = _system_span(tokenizer, prompt, prompt_ids)
        if keep_head >= budget:
            keep_head = 0  # the system message alone is too long: cut everything from the left
        tail = budget - keep_head
        cut = len(prompt_ids) - budget
        prompt_ids = prompt_ids[:keep_head] + prompt_ids[len(prompt_ids) - tail :]
    input_ids = prompt_ids + reply_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + reply_ids
    return TokenizedExample(input_ids, labels, len(prompt_ids), cut)


def encode_examples(
    tokenizer: Any,
    examples: Iterable[Example],
    *,
    max_tokens: int,
    overflow: Overflow = "truncate",
    report: EncodeReport | None = None,
) -> list[TokenizedExample]:
    """Encode many examples, counting truncations and skips in `report`."""
    report = report if report is not None else EncodeReport()
    encoded: list[TokenizedExample] = []
    for example in examples:
        item = encode_example(tokenizer, example, max_tokens=max_tokens, overflow=overflow)
        if item is None:
            report.skipped += 1
            continue
        if item.truncated_tokens:
            report.truncated += 1
            report.truncated_tokens += item.truncated_tokens
        report.kept += 1
        encoded.append(item)
    return encoded


def collate(batch: Sequence[TokenizedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch: input_ids, attention_mask (0 on padding), labels (-100 on padding)."""
    import torch

    if not batch:
        raise InvalidInputError("cannot collate an empty batch")
    width = max(len(item.input_ids) for item in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item.input_ids)
        input_ids[row, :n] = torch.tensor(item.input_ids, dtype=torch.long)
        attention_mask[row, :n] = 1
        labels[row, :n] = torch.tensor(item.labels, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def predicted_tokens(labels: torch.Tensor) -> int:
    """Label tokens the loss counts after the model's shift (position 0 predicts nothing)."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum().item())
