"""Fine-tuning a local causal language model on chat examples: the torch training loop.

`finetune(config)` trains a base model (the default SmolLM2 unless told
otherwise) on a JSONL dataset with AdamW, gradient accumulation, gradient
clipping and a warmup-then-decay learning-rate schedule; the loss covers reply
tokens only. It measures the loss on a held-out split before and after, writes
a resumable checkpoint into `OUT/checkpoint/` and, at the end, a model folder
(`OUT/`: safetensors, tokenizer, chat template) that the local runtime opens
like any other model folder. `resume_finetune(out)` continues an interrupted
run from its checkpoint with the same data order and schedule.

torch and transformers are imported inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from recursa.agent.errors import MissingDependencyError, ModelError, ModelNotFoundError
from recursa.agent.training.dataset import Example, file_digest, load_jsonl
from recursa.agent.training.masking import (
    EncodeReport,
    TokenizedExample,
    collate,
    encode_examples,
    predicted_tokens,
)
from recursa.memory.errors import InvalidInputError

if TYPE_CHECKING:
    pass

DEFAULT_BASE = "smollm2-135m"
CHECKPOINT_DIR = "checkpoint"
CONFIG_FILE = "finetune-config.json"
STATE_FILE = "trainer-state.pt"
RESULT_FILE = "recursa-finetune.json"
_LOCAL_INSTALL = 'pip install "recursa[local]"'


class FinetuneConfig(BaseModel):
    """Everything that decides what a training run computes (saved with its checkpoint)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path = Field(description="JSONL file of {'messages': [...]} examples.")
    out: Path = Field(description="Folder to create for the checkpoint and the final model.")
    base: str | None = Field(
        None,
        description="Base model: 'smollm2-135m' (default), a model folder, a .gguf file "
        "or a Hugging Face id already in the local cache.",
    )
    epochs: int = Field(1, ge=1, description="Passes over the training split.")
    max_steps: int | None = Field(
        None, ge=1, description="Total optimizer steps; overrides epochs when set."
    )
    lr: float = Field(5e-5, gt=0, description="Peak learning rate (AdamW).")
    batch_size: int = Field(4, ge=1, description="Examples per forward/backward pass.")
    grad_accum: int = Field(1, ge=1, description="Passes accumulated per optimizer step.")
    max_tokens: int = Field(1024, ge=16, description="Longest example, prompt and reply.")
    overflow: Literal["truncate", "skip"] = Field(
        "truncate", description="Longer examples: cut the prompt from the left, or skip them."
    )
    eval_split: float = Field(0.1, ge=0.0, lt=1.0, description="Held-out fraction.")
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0, description="Warmup share of the steps.")
    schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warmup (to zero for cosine and linear)."
    )
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW decay on matrices only.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(0, description="Seeds the split, the data order and torch.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, slower."
    )
    save_every: int | None = Field(
        None, ge=1, description="Checkpoint every N steps (also at each epoch's end)."
    )


@dataclass(frozen=True)
class TrainEvent:
    """Progress of a run, for a progress bar or a log.

    kind: "message" (text only), "step" (an optimizer step finished), "eval"
    (an evaluation finished: `loss` is the eval loss, `text` says which).
    """

    kind: Literal["message", "step", "eval"]
    text: str = ""
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None


EventCallback = Callable[[TrainEvent], None]


@dataclass
class FinetuneResult:
    """What a run did. `finished` is False when it stopped early at `stop_after_steps`."""

    out: Path
    steps: int
    total_steps: int
    finished: bool
    train_examples: int
    eval_examples: int
    train_losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    tokens_seen: int = 0
    truncated: int = 0
    skipped: int = 0
    device: str = "cpu"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


@dataclass
class _Prepared:
    model: Any
    tokenizer: Any
    train: list[TokenizedExample]
    eval: list[TokenizedExample]
    steps_per_epoch: int
    total_steps: int
    device: Any
    report: EncodeReport


def _torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"Fine-tuning needs torch and transformers ({exc}). Install them with: {_LOCAL_INSTALL}"
        ) from exc
    return torch


def resolve_base(spec: str | None) -> str:
    """The folder `from_pretrained` opens for a base model spec (the registry's spec syntax).

    The default model and GGUF files go through the runtime's one-time
    safetensors conversion, so training reads the same cache folder the local
    runtime loads; Hugging Face ids must already be in the local cache.
    """
    from recursa.agent.runtime.local.convert import ensure_converted
    from recursa.agent.runtime.registry import resolve_spec

    resolved = resolve_spec(spec or DEFAULT_BASE)
    if resolved.kind in ("default", "gguf"):
        assert resolved.path is not None
        return str(ensure_converted(resolved.path).path)
    if resolved.kind in ("folder", "huggingface"):
        assert resolved.path is not None
        return str(resolved.path)
    raise InvalidInputError(
        f"Only local models can be fine-tuned, not {resolved.name!r}. Pass 'smollm2-135m', a "
        "model folder, a .gguf file or a Hugging Face id in the local cache."
    )


def load_model(source: str, device: Any) -> tuple[Any, Any]:
    """The causal LM (fp32, train mode, on `device`) and its tokenizer from a folder or hub id."""
    torch = _torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.float32, local_files_only=True
        )
    except OSError as exc:
        raise ModelNotFoundError(f"Cannot load a model from {source}: {exc}") from exc
    if getattr(tokenizer, "chat_template", None) is None:
        raise ModelError(
            f"The model at {source} has no chat template, so chat examples cannot be rendered. "
            "Fine-tune an instruct/chat model."
        )
    return model.to(device), tokenizer


def pick_device(name: str = "auto") -> Any:
    """torch.device for "auto" (CUDA when available), "cpu" or "cuda"."""
    torch = _torch()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            "CUDA was asked for but torch sees no CUDA device; use --device cpu."
        )
    return torch.device(name)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak LR for the update made at `step` (0-based).

    Linear warmup from 1/(warmup+1) to 1, then linear or cosine decay towards 0
    over the remaining steps (the last step still learns a little).
    """
    if warmup_steps and step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def split_examples(
    examples: Sequence[Example], eval_split: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A seeded train/eval split; eval gets round(n * split) examples, at least 1 when split > 0."""
    if eval_split <= 0:
        return list(examples), []
    n_eval = max(1, round(len(examples) * eval_split))
    if len(examples) - n_eval < 1:
        raise InvalidInputError(
            f"{len(examples)} example(s) cannot be split into training and evaluation sets; "
            "add examples or pass --eval-split 0."
        )
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """This epoch's shuffled batches of example indices (a function of seed and epoch only)."""
    order = list(range(n))
    random.Random(f"{seed}/{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _steps_per_epoch(n_train: int, batch_size: int, grad_accum: int) -> int:
    return math.ceil(math.ceil(n_train / batch_size) / grad_accum)


def _emit(callback: EventCallback | None, event: TrainEvent) -> None:
    if callback is not None:
        callback(event)


def _autocast(device: Any) -> Any:
    """bf16 autocast on a CUDA device that supports it; a no-op context elsewhere."""
    torch = _torch()
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(
    model: Any,
    examples: Sequence[TokenizedExample],
    *,
    batch_size: int,
    pad_token_id: int,
    device: Any,
) -> float | None:
    """Mean loss per reply token over `examples` (None when there are none)."""
    torch = _torch()
    if not examples:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start : start + batch_size], pad_token_id)
            n = predicted_tokens(batch["labels"])
            if n == 0:
                continue
            batch = {k: v.to(device) for k, v in batch.items()}
            with _autocast(device):
                out = model(**batch, num_items_in_batch=n)
            total += float(out.loss) * n
            count += n
    model.train(was_training)
    return total / count if count else None


def _check_out_is_new(out: Path) -> None:
    if out.exists():
        hint = ""
        if (out / CHECKPOINT_DIR / STATE_FILE).is_file():
            hint = f" It holds an unfinished run: continue it with: recursa finetune --resume {out}"
        raise InvalidInputError(
            f"Output folder {out} already exists; choose a new --out so nothing is overwritten."
            + hint
        )


def _prepare(
    config: FinetuneConfig,
    examples: Sequence[Example],
    model_source: str,
    device_name: str,
    on_event: EventCallback | None,
) -> _Prepared:
    torch = _torch()
    train_examples, eval_examples = split_examples(examples, config.eval_split, config.seed)
    device = pick_device(device_name)
    _emit(on_event, TrainEvent("message", f"Loading {model_source} on {device.type}"))
    model, tokenizer = load_model(model_source, device)
    report = EncodeReport()
    train = encode_examples(
        tokenizer,
        train_examples,
        max_tokens=config.max_tokens,
        overflow=config.overflow,
        report=report,
    )
    evals = encode_examples(
        tokenizer,
        eval_examples,
        max_tokens=config.max_tokens,
        overflow=config.overflow,
        report=report,
    )
    _emit(on_event, TrainEvent("message", report.summary(config.max_tokens)))
    if not train:
        raise InvalidInputError(
            f"No training example fits --max-tokens {config.max_tokens}; raise it or use "
            "--overflow truncate."
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    steps_per_epoch = _steps_per_epoch(len(train), config.batch_size, config.grad_accum)
    total = config.max_steps or config.epochs * steps_per_epoch
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False  # a KV cache is useless in training and costs memory
    model.train()
    torch.manual_seed(config.seed)
    return _Prepared(model, tokenizer, train, evals, steps_per_epoch, total, device, report)


def _optimizer(model: Any, config: FinetuneConfig) -> Any:
    torch = _torch()
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},  # norms and biases are not shrunk
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999), eps=1e-8)


def _scheduler(optimizer: Any, config: FinetuneConfig, total_steps: int) -> Any:
    torch = _torch()
    warmup = math.ceil(total_steps * config.warmup_ratio)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup, config.schedule)
    )


def _rng_state() -> dict[str, Any]:
    torch = _torch()
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch = _torch()
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    out: Path,
    config: FinetuneConfig,
    prepared: _Prepared,
    optimizer: Any,
    scheduler: Any,
    result: FinetuneResult,
) -> Path:
    """Write `out/checkpoint/` atomically: weights, tokenizer, optimizer, schedule, step, RNG."""
    torch = _torch()
    final = out / CHECKPOINT_DIR
    tmp = out / f".{CHECKPOINT_DIR}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    prepared.model.save_pretrained(tmp, safe_serialization=True)
    prepared.tokenizer.save_pretrained(tmp)
    (tmp / CONFIG_FILE).write_text(config.model_dump_json(indent=1), encoding="utf-8")
    torch.save(
        {
            "step": result.steps,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(),
            "data_digest": file_digest(config.data),
            "result": result.to_json(),
        },
        tmp / STATE_FILE,
    )
    # Swap in the complete checkpoint; a crash before this line keeps the previous one.
    if final.exists():
        old = out / f".{CHECKPOINT_DIR}.old"
        if old.exists():
            shutil.rmtree(old)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    return final


def _save_final(
    out: Path, prepared: _Prepared, result: FinetuneResult, config: FinetuneConfig
) -> None:
    model = prepared.model
    if config.gradient_checkpointing:
        model.gradient_checkpointing_disable()
    model.config.use_cache = True  # the saved model is for generation
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    prepared.tokenizer.save_pretrained(out)  # includes the chat template
    info = {"config": json.loads(config.model_dump_json()), "result": result.to_json()}
    (out / RESULT_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")


def _batches_from(
    prepared: _Prepared, config: FinetuneConfig, step: int
) -> Iterator[list[list[int]]]:
    """Groups of `grad_accum` batches, one group per optimizer step, starting at `step`."""
    n = len(prepared.train)
    while True:
        epoch, within = divmod(step, prepared.steps_per_epoch)
        batches = epoch_batches(n, config.batch_size, config.seed, epoch)
        groups = [
            batches[i : i + config.grad_accum] for i in range(0, len(batches), config.grad_accum)
        ]
        for group in groups[within:]:
            yield group
            step += 1


def _train(
    config: FinetuneConfig,
    prepared: _Prepared,
    *,
    checkpoint: Path | None,
    stop_after_steps: int | None,
    keep_checkpoint: bool,
    on_event: EventCallback | None,
) -> FinetuneResult:
    torch = _torch()
    model, device = prepared.model, prepared.device
    pad_id = int(prepared.tokenizer.pad_token_id)
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config, prepared.total_steps)
    result = FinetuneResult(
        out=config.out,
        steps=0,
        total_steps=prepared.total_steps,
        finished=False,
        train_examples=len(prepared.train),
        eval_examples=len(prepared.eval),
        truncated=prepared.report.truncated,
        skipped=prepared.report.skipped,
        device=device.type,
    )
    if checkpoint is not None:
        state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=True)
        if state["data_digest"] != file_digest(config.data):
            raise InvalidInputError(
                f"{config.data} changed since the checkpoint was written; a resumed run must "
                "read the same data. Restore the file or start a new run."
            )
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        saved = state["result"]
        result.steps = int(state["step"])
        result.train_losses = list(saved["train_losses"])
        result.learning_rates = list(saved["learning_rates"])
        result.eval_loss_before = saved["eval_loss_before"]
        result.tokens_seen = int(saved["tokens_seen"])
        _emit(
            on_event,
            TrainEvent(
                "message",
                f"Resuming at step {result.steps}",
                step=result.steps,
                total_steps=prepared.total_steps,
            ),
        )
    else:
        result.eval_loss_before = evaluate(
            model, prepared.eval, batch_size=config.batch_size, pad_token_id=pad_id, device=device
        )
        if result.eval_loss_before is not None:
            _emit(
                on_event,
                TrainEvent(
                    "eval",
                    "before training",
                    total_steps=prepared.total_steps,
                    loss=result.eval_loss_before,
                ),
            )
    start_step = result.steps
    model.train()
    optimizer.zero_grad(set_to_none=True)
    groups = _batches_from(prepared, config, result.steps)
    try:
        while result.steps < prepared.total_steps:
            if stop_after_steps is not None and result.steps - start_step >= stop_after_steps:
                save_checkpoint(config.out, config, prepared, optimizer, scheduler, result)
                return result
            group = next(groups)
            batches = [collate([prepared.train[i] for i in b], pad_id) for b in group]
            n_items = sum(predicted_tokens(b["labels"]) for b in batches)
            started = time.perf_counter()
            step_loss, step_tokens = 0.0, 0
            for batch in batches:
                step_tokens += int(batch["attention_mask"].sum())
                if n_items == 0:
                    continue
                batch = {k: v.to(device) for k, v in batch.items()}
                with _autocast(device):
                    # The loss is a sum over the group's reply tokens / their count, so
                    # accumulated passes weigh every token the same.
                    loss = model(**batch, num_items_in_batch=n_items).loss
                loss.backward()
                step_loss += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            lr = float(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - started
            result.steps += 1
            result.tokens_seen += step_tokens
            result.train_losses.append(step_loss)
            result.learning_rates.append(lr)
            _emit(
                on_event,
                TrainEvent(
                    "step",
                    step=result.steps,
                    total_steps=prepared.total_steps,
                    loss=step_loss,
                    lr=lr,
                    tokens_per_s=step_tokens / elapsed if elapsed > 0 else None,
                ),
            )
            at_epoch_end = result.steps % prepared.steps_per_epoch == 0
            if result.steps < prepared.total_steps and (
                at_epoch_end or (config.save_every and result.steps % config.save_every == 0)
            ):
                save_checkpoint(config.out, config, prepared, optimizer, scheduler, result)
    except KeyboardInterrupt:
        # Keep what was learned: the last completed step becomes the checkpoint.
        save_checkpoint(config.out, config, prepared, optimizer, scheduler, result)
        raise
    result.eval_loss_after = evaluate(
        model, prepared.eval, batch_size=config.batch_size, pad_token_id=pad_id, device=device
    )
    if result.eval_loss_after is not None:
        _emit(
            on_event,
            TrainEvent(
                "eval",
                "after training",
                step=result.steps,
                total_steps=prepared.total_steps,
                loss=result.eval_loss_after,
            ),
        )
    result.finished = True
    if keep_checkpoint:
        save_checkpoint(config.out, config, prepared, optimizer, scheduler, result)
    _save_final(config.out, prepared, result, config)
    if not keep_checkpoint and (config.out / CHECKPOINT_DIR).exists():
        shutil.rmtree(config.out / CHECKPOINT_DIR)
    _emit(
        on_event,
        TrainEvent(
            "message",
            f"Model saved to {config.out}",
            step=result.steps,
            total_steps=prepared.total_steps,
        ),
    )
    return result


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Use `threads` CPU threads for the run, then give torch back its previous setting."""
    torch = _torch()
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def quiet_transformers_progress() -> None:
    """Turns off transformers' own progress bars, for a caller that shows its own.

    Here rather than in the CLI, so that torch and transformers stay imported only
    under `recursa.agent`.
    """
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return  # finetune itself reports the missing dependency
    hf_logging.disable_progress_bar()


def finetune(
    config: FinetuneConfig,
    *,
    device: str = "auto",
    threads: int | None = None,
    stop_after_steps: int | None = None,
    keep_checkpoint: bool = False,
    on_event: EventCallback | None = None,
) -> FinetuneResult:
    """Train `config.base` on `config.data` and write the model folder `config.out`.

    `config.out` must not exist. `stop_after_steps` ends the run after that many
    optimizer steps with a checkpoint and no final model (continue it with
    `resume_finetune`); an interrupt (Ctrl-C) also leaves a checkpoint.
    `keep_checkpoint` keeps `out/checkpoint/` after a finished run (it holds
    the optimizer state: about three times the model's size).
    """
    out = Path(config.out)
    _check_out_is_new(out)
    examples = load_jsonl(config.data)  # bad data fails before the slow model load
    source = resolve_base(config.base)
    with _torch_threads(threads):
        return _finetune_new(
            config, examples, source, device, stop_after_steps, keep_checkpoint, on_event
        )


def _finetune_new(
    config: FinetuneConfig,
    examples: Sequence[Example],
    source: str,
    device: str,
    stop_after_steps: int | None,
    keep_checkpoint: bool,
    on_event: EventCallback | None,
) -> FinetuneResult:
    out = Path(config.out)
    prepared = _prepare(config, examples, source, device, on_event)
    out.mkdir(parents=True)
    try:
        return _train(
            config,
            prepared,
            checkpoint=None,
            stop_after_steps=stop_after_steps,
            keep_checkpoint=keep_checkpoint,
            on_event=on_event,
        )
    except BaseException:
        # A run that fails or is interrupted before its first checkpoint leaves nothing
        # worth keeping in the folder this call created: remove it so the same --out works.
        if not (out / CHECKPOINT_DIR).exists() and not (out / RESULT_FILE).exists():
            shutil.rmtree(out, ignore_errors=True)
        raise


def resume_finetune(
    out: str | Path,
    *,
    device: str = "auto",
    threads: int | None = None,
    stop_after_steps: int | None = None,
    keep_checkpoint: bool = False,
    on_event: EventCallback | None = None,
) -> FinetuneResult:
    """Continue the run whose checkpoint is in `out/checkpoint/`: same data, order and schedule."""
    out = Path(out)
    checkpoint = out / CHECKPOINT_DIR
    if (out / RESULT_FILE).is_file():
        raise InvalidInputError(f"The run in {out} already finished; nothing to resume.")
    if not (checkpoint / STATE_FILE).is_file():
        raise InvalidInputError(
            f"No checkpoint to resume in {out} (expected {checkpoint / STATE_FILE}). "
            "Start a run with: recursa finetune --data FILE.jsonl --out DIR"
        )
    try:
        config = FinetuneConfig.model_validate_json(
            (checkpoint / CONFIG_FILE).read_text(encoding="utf-8")
        )
    except (OSError, ValidationError) as exc:
        raise InvalidInputError(f"The checkpoint's {CONFIG_FILE} is unreadable: {exc}") from exc
    config = config.model_copy(update={"out": out})
    examples = load_jsonl(config.data)
    with _torch_threads(threads):
        # The checkpoint holds the weights and tokenizer; the base model is not needed again.
        prepared = _prepare(config, examples, str(checkpoint), device, on_event)
        return _train(
            config,
            prepared,
            checkpoint=checkpoint,
            stop_after_steps=stop_after_steps,
            keep_checkpoint=keep_checkpoint,
            on_event=on_event,
        )
