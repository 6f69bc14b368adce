"""recursa.agent.runtime.local: models running in this process (transformers + torch).

- `runtime.py`: `load_local` and `LocalRuntime` (the protocol, the decode loop).
- `kv_cache.py`: KV prefix reuse between turns of a conversation.
- `llama.py`: the lean Llama forward pass (int4/int8/float16 weights);
  `generic.py`: Hugging Face's own forward for other architectures.
- `decode.py`: sampling, incremental detokenizing, stop strings.
- `convert.py`: the one-time GGUF to safetensors conversion cache.

Importing this package (or `runtime.py`) does not import torch; loading a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.agent._lazy import lazy_exports

_EXPORTS = {
    "LocalRuntime": "recursa.agent.runtime.local.runtime",
    "LoadInfo": "recursa.agent.runtime.local.runtime",
    "default_precision": "recursa.agent.runtime.local.runtime",
    "load_local": "recursa.agent.runtime.local.runtime",
}
__all__ = [
    "LoadInfo",
    "LocalRuntime",
    "default_precision",
    "load_local",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from recursa.agent.runtime.local.runtime import (
        LoadInfo,
        LocalRuntime,
        default_precision,
        load_local,
    )
