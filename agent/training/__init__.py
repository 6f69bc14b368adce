"""Learning from stored conversations: export replies as training data, rate them, fine-tune.

Importing this package is cheap: torch and transformers load only when a
training or tokenizing function runs.
"""

from __future__ import annotations

from recursa.agent.training.dataset import (
    Example,
    ExportReport,
    export_dataset,
    load_jsonl,
    write_jsonl,
)
from recursa.agent.training.finetune import (
    FinetuneConfig,
    FinetuneResult,
    TrainEvent,
    finetune,
    resume_finetune,
)
from recursa.agent.training.rating import rate_reply

__all__ = [
    "Example",
    "ExportReport",
    "FinetuneConfig",
    "FinetuneResult",
    "TrainEvent",
    "export_dataset",
    "finetune",
    "load_jsonl",
    "rate_reply",
    "resume_finetune",
    "write_jsonl",
]
