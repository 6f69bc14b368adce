"""Whether the local model stack (torch, transformers) is installed, found without importing it.

The local runtime, the local embedding model and fine-tuning all need the same
packages and name the same fix when they are missing.
"""

from __future__ import annotations

import importlib.util

__all__ = ["LOCAL_DEPENDENCIES", "LOCAL_INSTALL_HINT", "missing_local_dependencies"]

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
