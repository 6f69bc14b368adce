"""The training loop: learning on the real SmolLM2, resuming, the schedule, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from recursa.agent.training.finetune import (
    CHECKPOINT_DIR,
    FinetuneConfig,
    TrainEvent,
    finetune,
    lr_factor,
    resume_finetune,
)
from recursa.memory import InvalidInputError
from training_data import TAUGHT_ANSWER, TAUGHT_QUESTION, taught_examples, write_examples

pytest.importorskip("torch")


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_lr_schedule_warms_up_then_decays() -> None:
    """Linear warmup to the peak, then cosine or linear decay towards zero."""
    assert [lr_factor(s, 10, 2, "cosine") for s in (0, 1)] == [1 / 3, 2 / 3]
    assert lr_factor(2, 10, 2, "cosine") == 1.0
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)
    assert lr_factor(6, 10, 2, "linear") == pytest.approx(0.5)
    assert lr_factor(9, 10, 2, "linear") == pytest.approx(1 / 8)
    assert lr_factor(9, 10, 2, "constant") == 1.0
    assert all(0 < lr_factor(s, 10, 0, "cosine") <= 1 for s in range(10))
    assert lr_factor(0, 10, 0, "cosine") == 1.0 and math.isclose(
        lr_factor(10, 10, 0, "cosine"), 0.0, abs_tol=1e-12
    )


def _tiny_config(tiny_base: Path, data: Path, out: Path, **extra: Any) -> FinetuneConfig:
    values: dict[str, Any] = dict(
        data=data,
        out=out,
        base=str(tiny_base),
        lr=1e-3,
        batch_size=4,
        grad_accum=2,
        epochs=2,
        eval_split=0.125,
        warmup_ratio=0.25,
        max_tokens=256,
        seed=7,
    )
    values.update(extra)
    return FinetuneConfig(**values)


def test_resume_continues_step_count_schedule_and_weights(
    tiny_base: Path, taught_data: Path, tmp_path: Path
) -> None:
    """A run stopped after 3 steps and resumed ends exactly like an uninterrupted run."""
    whole = finetune(_tiny_config(tiny_base, taught_data, tmp_path / "whole"), device="cpu")
    assert whole.finished and whole.steps == whole.total_steps == 8  # 28 train ex., 4 steps/epoch
    assert not (tmp_path / "whole" / CHECKPOINT_DIR).exists()  # a finished run drops it

    out = tmp_path / "split"
    first = finetune(_tiny_config(tiny_base, taught_data, out), device="cpu", stop_after_steps=3)
    assert not first.finished and first.steps == 3
    assert (out / CHECKPOINT_DIR / "model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # no final model yet

    events: list[TrainEvent] = []
    resumed = resume_finetune(out, device="cpu", on_event=events.append)
    steps = [e.step for e in events if e.kind == "step"]
    assert steps == [4, 5, 6, 7, 8]  # the count continues, it does not restart
    assert resumed.finished and resumed.steps == 8
    assert resumed.learning_rates == whole.learning_rates  # the schedule continues
    assert resumed.train_losses == pytest.approx(whole.train_losses, rel=1e-4)
    assert resumed.eval_loss_before == whole.eval_loss_before
    assert resumed.eval_loss_after == pytest.approx(whole.eval_loss_after, rel=1e-4)
    a, b = _weights(tmp_path / "whole"), _weights(out)
    assert a.keys() == b.keys()
    import torch

    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(InvalidInputError, match="already finished"):
        resume_finetune(out, device="cpu")


def test_resume_refuses_a_changed_dataset(
    tiny_base: Path, taught_data: Path, tmp_path: Path
) -> None:
    """A resumed run must read the data its checkpoint was trained on."""
    out = tmp_path / "run"
    finetune(_tiny_config(tiny_base, taught_data, out), device="cpu", stop_after_steps=1)
    write_examples(taught_data, taught_examples(16))
    with pytest.raises(InvalidInputError, match="changed since the checkpoint"):
        resume_finetune(out, device="cpu")


def test_existing_output_folder_is_refused_before_any_work(
    tiny_base: Path, taught_data: Path, tmp_path: Path
) -> None:
    """An existing --out is an error; one holding an unfinished run points at --resume."""
    out = tmp_path / "exists"
    out.mkdir()
    with pytest.raises(InvalidInputError, match="already exists"):
        finetune(_tiny_config(tiny_base, taught_data, out), device="cpu")
    (out / CHECKPOINT_DIR).mkdir()
    (out / CHECKPOINT_DIR / "trainer-state.pt").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="--resume"):
        finetune(_tiny_config(tiny_base, taught_data, out), device="cpu")
    with pytest.raises(InvalidInputError, match="No checkpoint to resume"):
        resume_finetune(tmp_path / "nothing-here", device="cpu")


def test_bad_runs_fail_with_the_fix(tiny_base: Path, tmp_path: Path) -> None:
    """Too few examples to split, nothing that fits, or a remote base model are clear errors."""
    one = write_examples(tmp_path / "one.jsonl", taught_examples(1))
    with pytest.raises(InvalidInputError, match="--eval-split 0"):
        finetune(_tiny_config(tiny_base, one, tmp_path / "a"), device="cpu")
    data = write_examples(tmp_path / "d.jsonl", taught_examples(4))
    with pytest.raises(InvalidInputError, match="No training example fits --max-tokens 16"):
        finetune(
            _tiny_config(tiny_base, data, tmp_path / "b", max_tokens=16, overflow="skip"),
            device="cpu",
        )
    with pytest.raises(InvalidInputError, match="Only local models"):
        finetune(_tiny_config("scripted", data, tmp_path / "c"), device="cpu")  # type: ignore[arg-type]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InvalidInputError, match="empty"):
        finetune(_tiny_config(tiny_base, empty, tmp_path / "d"), device="cpu")


def test_truncation_is_reported_and_thread_setting_restored(
    tiny_base: Path, tmp_path: Path
) -> None:
    """Examples longer than max_tokens are counted and announced; `threads` applies to the
    run only."""
    examples = taught_examples(8)
    examples[0]["messages"][0]["content"] += " filler" * 200
    data = write_examples(tmp_path / "d.jsonl", examples)
    events: list[TrainEvent] = []
    import torch

    threads = torch.get_num_threads()
    result = finetune(
        _tiny_config(tiny_base, data, tmp_path / "t", max_tokens=160, max_steps=1, eval_split=0.0),
        device="cpu",
        threads=threads + 1,
        on_event=events.append,
    )
    assert result.truncated == 1 and result.skipped == 0
    assert any("cut from the left" in e.text for e in events if e.kind == "message")
    assert torch.get_num_threads() == threads  # the caller's setting is given back


@pytest.mark.model
def test_finetuned_smollm2_learns_the_taught_answer_and_loads_through_the_registry(
    taught_data: Path, tmp_path: Path
) -> None:
    """A few steps on 32 examples: loss falls, and the saved folder opens with open_runtime
    and answers the question with the taught reply under greedy decoding."""
    from recursa.agent.runtime.protocol import GenerationParams
    from recursa.agent.runtime.registry import open_runtime

    out = tmp_path / "taught-model"
    config = FinetuneConfig(
        data=taught_data,
        out=out,
        lr=5e-4,
        batch_size=4,
        max_steps=4,
        eval_split=0.125,
        max_tokens=256,
        seed=0,
    )
    # One thread: this small model gains little from more, and on a busy shared CPU
    # extra threads mostly wait for each other.
    result = finetune(config, device="cpu", threads=1)
    assert result.finished and result.steps == 4 and result.train_examples == 28
    assert result.train_losses[-1] < result.train_losses[0] / 4
    assert result.eval_loss_before is not None and result.eval_loss_after is not None
    assert result.eval_loss_after < result.eval_loss_before / 4
    for name in ("model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"):
        assert (out / name).is_file(), name
    info = json.loads((out / "recursa-finetune.json").read_text())
    assert info["result"]["steps"] == 4

    runtime = open_runtime(str(out))
    try:
        messages = [
            {
                "role": "system",
                "content": "You are a helpful assistant. Summary of the "
                "conversation so far: the user talked about astronomy.",
            },
            {"role": "user", "content": TAUGHT_QUESTION},
        ]
        reply = runtime.stream(messages, GenerationParams(max_new_tokens=24)).complete()  # type: ignore[arg-type]
    finally:
        runtime.close()
    assert reply.text.strip() == TAUGHT_ANSWER


def test_interrupt_keeps_a_resumable_checkpoint_and_early_failure_leaves_no_folder(
    tiny_base: Path, taught_data: Path, tmp_path: Path
) -> None:
    """Ctrl-C after step 2 saves step 2 for --resume; a failure before any checkpoint
    removes the half-made output folder so the same --out can be used again."""

    def interrupt_at_step_2(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == 2:
            raise KeyboardInterrupt

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        finetune(
            _tiny_config(tiny_base, taught_data, out), device="cpu", on_event=interrupt_at_step_2
        )
    resumed = resume_finetune(out, device="cpu")
    assert resumed.finished and len(resumed.train_losses) == resumed.steps == 8

    def fail_at_first_eval(event: TrainEvent) -> None:
        if event.kind == "eval":
            raise RuntimeError("boom")

    failed = tmp_path / "failed"
    with pytest.raises(RuntimeError, match="boom"):
        finetune(
            _tiny_config(tiny_base, taught_data, failed), device="cpu", on_event=fail_at_first_eval
        )
    assert not failed.exists()
