"""Learning from stored conversations: export replies as training data, rate them, fine-tune.

Importing this package is cheap: names are imported on first use, and torch and
transformers load only when a training or tokenizing function runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent._lazy import lazy_exports

_EXPORTS = {
    "Example": "recursa.agent.training.dataset",
    "ExportReport": "recursa.agent.training.dataset",
    "export_dataset": "recursa.agent.training.dataset",
    "load_jsonl": "recursa.agent.training.dataset",
    "write_jsonl": "recursa.agent.training.dataset",
    "FinetuneConfig": "recursa.agent.training.finetune",
    "FinetuneResult": "recursa.agent.training.finetune",
    "TrainEvent": "recursa.agent.training.finetune",
    "finetune": "recursa.agent.training.finetune",
    "resume_finetune": "recursa.agent.training.finetune",
    "rate_reply": "recursa.agent.training.rating",
    "rating_label": "recursa.agent.training.rating",
}
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
    "rating_label",
    "resume_finetune",
    "write_jsonl",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
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
    from recursa.agent.training.rating import rate_reply, rating_label
