"""Loss masking and collation: only reply tokens carry labels, aligned with the inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from recursa.agent.training.masking import (
    IGNORE_INDEX,
    EncodeReport,
    collate,
    encode_example,
    encode_examples,
    predicted_tokens,
    prompt_token_ids,
)

pytest.importorskip("torch")

SHORT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
}
LONGER = {
    "messages": [
        {"role": "user", "content": "Name three colours, please."},
        {"role": "assistant", "content": "Red, green and blue."},
    ]
}


def test_prompt_tokens_are_masked_and_reply_tokens_are_labelled(tokenizer: Any) -> None:
    """Labels are -100 over the prompt and equal input_ids over the reply (no shift applied)."""
    item = encode_example(tokenizer, SHORT, max_tokens=512)
    assert item is not None
    prompt = prompt_token_ids(tokenizer, SHORT["messages"][:-1])
    assert item.input_ids[: len(prompt)] == prompt
    assert item.labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    reply_ids = item.input_ids[len(prompt) :]
    assert item.labels[len(prompt) :] == reply_ids
    # The reply is the text plus the end-of-turn token the runtime stops at.
    assert tokenizer.decode(reply_ids).startswith("Hello!<|im_end|>")
    assert tokenizer.eos_token_id in reply_ids


def test_prompt_ids_match_the_chat_template_the_runtime_uses(tokenizer: Any) -> None:
    """The masked prompt is exactly apply_chat_template(..., add_generation_prompt=True)."""
    messages = LONGER["messages"][:-1]
    expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    expected = list(expected["input_ids"]) if not isinstance(expected, list) else expected
    assert prompt_token_ids(tokenizer, messages) == expected


def test_collate_pads_with_masked_labels_but_keeps_the_end_of_turn_label(tokenizer: Any) -> None:
    """Padding has attention 0 and label -100, although SmolLM2's pad id is its end-of-turn id."""
    a = encode_example(tokenizer, SHORT, max_tokens=512)
    b = encode_example(tokenizer, LONGER, max_tokens=512)
    assert a is not None and b is not None
    pad = tokenizer.pad_token_id
    assert pad == tokenizer.eos_token_id  # why padding cannot be found by comparing ids
    batch = collate([a, b], pad)
    width = max(len(a.input_ids), len(b.input_ids))
    assert batch["input_ids"].shape == (2, width)
    for row, item in enumerate((a, b)):
        n = len(item.input_ids)
        assert batch["input_ids"][row, :n].tolist() == item.input_ids
        assert batch["labels"][row, :n].tolist() == item.labels
        assert batch["attention_mask"][row, :n].tolist() == [1] * n
        assert batch["attention_mask"][row, n:].tolist() == [0] * (width - n)
        assert batch["labels"][row, n:].tolist() == [IGNORE_INDEX] * (width - n)
        assert pad in batch["labels"][row, :n].tolist()  # the reply's end-of-turn is learned
    assert predicted_tokens(batch["labels"]) == a.reply_tokens + b.reply_tokens


def test_model_loss_is_the_mean_over_reply_tokens_after_its_own_shift(
    tokenizer: Any, tiny_base: Path
) -> None:
    """Aligned labels: the model's loss equals cross-entropy of position t predicting t+1,
    counted on reply tokens only."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    items = [encode_example(tokenizer, e, max_tokens=512) for e in (SHORT, LONGER)]
    batch = collate([i for i in items if i is not None], tokenizer.pad_token_id)
    with torch.no_grad():
        out = model(**batch)
        logits = out.logits[:, :-1]
        targets = batch["input_ids"][:, 1:]
        counted = batch["labels"][:, 1:] != IGNORE_INDEX
        manual = torch.nn.functional.cross_entropy(logits[counted], targets[counted])
    assert torch.allclose(out.loss, manual, atol=1e-5)


def test_over_long_prompt_is_cut_from_the_left_keeping_the_system_message(
    tokenizer: Any,
) -> None:
    """Truncation keeps the system message and the reply, drops the oldest prompt tokens."""
    filler = " ".join(f"word{i}" for i in range(200))
    example = {
        "messages": [
            {"role": "system", "content": "Keep me."},
            {"role": "user", "content": filler},
            {"role": "user", "content": "Last question?"},
            {"role": "assistant", "content": "Last answer."},
        ]
    }
    full = encode_example(tokenizer, example, max_tokens=10_000)
    assert full is not None
    limit = len(full.input_ids) - 50
    cut = encode_example(tokenizer, example, max_tokens=limit)
    assert cut is not None
    assert len(cut.input_ids) == limit
    assert cut.truncated_tokens == 50
    system = tokenizer.apply_chat_template(example["messages"][:1], tokenize=False)
    assert tokenizer.decode(cut.input_ids).startswith(system)
    assert cut.input_ids[-full.reply_tokens :] == full.input_ids[-full.reply_tokens :]
    assert cut.labels[-full.reply_tokens :] == full.labels[-full.reply_tokens :]
    assert set(cut.labels[: cut.prompt_tokens]) == {IGNORE_INDEX}


def test_over_long_examples_are_counted_when_truncated_or_skipped(tokenizer: Any) -> None:
    """Nothing is dropped silently: the report counts truncations and skips."""
    long_prompt = {
        "messages": [
            {"role": "user", "content": "x " * 300},
            {"role": "assistant", "content": "ok"},
        ]
    }
    long_reply = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "y " * 300},
        ]
    }
    report = EncodeReport()
    kept = encode_examples(
        tokenizer,
        [SHORT, long_prompt, long_reply],
        max_tokens=100,
        overflow="truncate",
        report=report,
    )
    assert (report.kept, report.truncated, report.skipped) == (2, 1, 1)
    assert len(kept) == 2 and all(len(k.input_ids) <= 100 for k in kept)
    assert "1 longer than --max-tokens 100 were skipped" in report.summary(100)
    report = EncodeReport()
    encode_examples(tokenizer, [SHORT, long_prompt], max_tokens=100, overflow="skip", report=report)
    assert (report.kept, report.truncated, report.skipped) == (1, 0, 1)
