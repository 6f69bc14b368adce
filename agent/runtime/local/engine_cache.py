"""A cache of the lean engine's built weights (int4/int8 packed), so a cached load skips packing.

Quantizing and packing a model's weights costs about a second at every load;
reading them back costs a tenth of that. The first load of a model folder at a
quantized precision saves what `LlamaEngine.export` returns into one
safetensors file under the user cache; later loads restore the engine from it
without building the Hugging Face model at all.

The key covers everything the packed bytes depend on: the source folder's
weight files (name, size, modification time), its config, the precision, the
torch version and the CPU's instruction set (the int4 layout is the kernel's).
The file is written to a temporary name and renamed into place, then a
manifest records its size and CRC-32; a file whose manifest is missing or
does not match (a crash mid-write, a truncated copy, flipped bytes) is
treated as absent and rebuilt. Only imported by the local runtime, after
torch is known to be installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import torch
from recursa.memory import locations

__all__ = ["ENGINE_CACHE_FORMAT", "engine_cache_path", "load_engine_tensors", "save_engine_tensors"]

log = logging.getLogger(__name__)

ENGINE_CACHE_FORMAT = 1
_MANIFEST_SUFFIX = ".json"


def engine_cache_path(folder: Path, precision: str, cache_root: Path | None = None) -> Path:
    """Where the built weights of the model in `folder` at `precision` are cached."""
    digest = hashlib.sha256()
    digest.update(f"{ENGINE_CACHE_FORMAT}\n{precision}\n{torch.__version__}\n".encode())
    digest.update(torch.backends.cpu.get_cpu_capability().encode())
    digest.update(str(folder.resolve()).encode())
    for path in sorted(folder.glob("*.safetensors")):
        stat = path.stat()
        digest.update(f"\n{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    root = cache_root if cache_root is not None else locations.cache_dir() / "engines"
    return root / f"{folder.name[:60]}-{precision}-{digest.hexdigest()[:16]}.safetensors"


def load_engine_tensors(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None when the cache is absent or damaged (then it is removed).

    The tensors are views of a private (copy-on-write) memory map of the file,
    so nothing is copied: pages are read as the engine first touches them.
    """
    manifest_path = path.with_suffix(_MANIFEST_SUFFIX)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        with path.open("rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None
    ok = (
        isinstance(manifest, dict)
        and manifest.get("format") == ENGINE_CACHE_FORMAT
        and manifest.get("size") == len(mapped)
        and manifest.get("crc32") == zlib.crc32(mapped)
    )
    tensors = _views(mapped) if ok else None
    if tensors is None:
        log.warning("The cached engine weights in %s are damaged; rebuilding them.", path)
        mapped.close()
        _remove(path, manifest_path)
    return tensors


_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I32": torch.int32,
}


def _views(mapped: mmap.mmap) -> dict[str, torch.Tensor] | None:
    """Tensors over a safetensors file's bytes (None when its header does not parse)."""
    try:
        (header_len,) = struct.unpack("<Q", mapped[:8])
        header = json.loads(mapped[8 : 8 + header_len])
        base = 8 + header_len
        out: dict[str, torch.Tensor] = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            dtype = _DTYPES[entry["dtype"]]
            if not 0 <= begin <= end <= len(mapped) - base:
                return None
            if end == begin:
                raw = torch.empty(0, dtype=torch.uint8)
            else:
                raw = torch.frombuffer(
                    mapped, dtype=torch.uint8, count=end - begin, offset=base + begin
                )
            out[name] = raw.view(dtype).view(entry["shape"])
        return out
    except (ValueError, KeyError, TypeError, RuntimeError, struct.error):
        return None


def save_engine_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> bool:
    """Write the cache atomically; False (logged) when it cannot be written."""
    from safetensors.torch import save

    manifest_path = path.with_suffix(_MANIFEST_SUFFIX)
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    tmp = path.with_name(f".tmp-{stamp}-{path.name}")
    tmp_manifest = path.with_name(f".tmp-{stamp}-{manifest_path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = save({name: t.contiguous() for name, t in tensors.items()})
        _write(tmp, data)
        os.replace(tmp, path)
        manifest: dict[str, Any] = {
            "format": ENGINE_CACHE_FORMAT,
            "size": len(data),
            "crc32": zlib.crc32(data),
        }
        _write(tmp_manifest, json.dumps(manifest).encode())
        os.replace(tmp_manifest, manifest_path)
    except OSError as exc:
        log.warning("Could not cache the engine weights in %s: %s", path, exc)
        _remove(tmp, tmp_manifest)
        return False
    return True


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("Could not remove %s: %s", path, exc)
