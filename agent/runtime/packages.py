"""The local model stack (torch, transformers): whether it is installed, and keeping it quiet.

The local runtime, the local embedding model and fine-tuning all need the same
packages and name the same fix when they are missing; none of them lets
transformers print its own progress bars.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

__all__ = [
    "LOCAL_DEPENDENCIES",
    "LOCAL_INSTALL_HINT",
    "missing_local_dependencies",
    "transformers_bars_off",
]

LOCAL_DEPENDENCIES = ("torch", "transformers")
LOCAL_INSTALL_HINT = (
    "pip install 'recursa[local]' (install the CPU build of torch first, "
    "e.g. pip install torch==2.13.0, so pip does not fetch a CUDA build)"
)


def missing_local_dependencies() -> list[str]:
    """The local model stack's packages that are not installed (found without importing them)."""
    missing = []
    for module in LOCAL_DEPENDENCIES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


@contextmanager
def transformers_bars_off() -> Iterator[None]:
    """transformers' own progress bars off while loading or converting, restored after.

    recursa reports its own progress (a callback, the TUI's bar); transformers'
    per-tensor bars would otherwise print to a library user's stderr and
    scribble over a terminal UI. Call it once transformers is known to import.
    """
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    # The GGUF reader calls tqdm itself, past that switch: point it at transformers'
    # own tqdm, which honours it, for the duration.
    gguf_utils: Any = None
    with suppress(ImportError):  # no GGUF support in this transformers: nothing to quiet
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    own_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_utils is not None and own_tqdm is not None:
        gguf_utils.tqdm = hf_logging.tqdm
    try:
        yield
    finally:
        if gguf_utils is not None and own_tqdm is not None:
            gguf_utils.tqdm = own_tqdm
        if enabled:
            hf_logging.enable_progress_bar()
