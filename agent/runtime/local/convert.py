"""One-time conversion of a GGUF model into a safetensors folder in the user cache.

Reading a GGUF with transformers is slow (most of it is parsing the tokenizer's
metadata item by item), so the first load converts it into a plain
safetensors checkpoint plus tokenizer files, and later loads read that.

The conversion is atomic: everything is written into a temporary folder next to
the final one and renamed into place only when complete, together with a
manifest of the files and their sizes. A folder whose manifest is missing or
whose files do not match it (a truncated copy, a crash, a disk filled up) is
treated as absent and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recursa.agent.errors import MissingDependencyError, ModelError, ModelNotFoundError
from recursa.agent.runtime.packages import transformers_bars_off
from recursa.memory import locations

ProgressCallback = Callable[[str, float | None], None]

MANIFEST = "recursa-cache.json"
# Format 2 adds the tokenizer's added-token table to tokenizer_config.json (see
# `_record_added_tokens`); a format-1 folder is upgraded in place, not converted again.
CACHE_FORMAT = 2
_UPGRADABLE = (1,)
_FINGERPRINT_BYTES = 4 * 1024 * 1024
_LOCAL_INSTALL = 'pip install "recursa[local]"'


@dataclass(frozen=True)
class CachedModel:
    """A converted model folder and whether this call had to build it."""

    path: Path
    converted: bool


def gguf_fingerprint(gguf: Path) -> str:
    """A short content key for a GGUF: its size and the first and last 4 MiB.

    Hashing the whole file would cost more than the cached load it keys; the
    head holds the metadata and the tail the last tensors, so a different model
    or a different quantization changes the key.
    """
    size = gguf.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with gguf.open("rb") as f:
        digest.update(f.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            f.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            digest.update(f.read())
    return digest.hexdigest()[:16]


# GGUF value types with a fixed size, by type code (the rest are strings and arrays).
_GGUF_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_HEADER_LIMIT = 64 * 1024 * 1024
_GGUF_KEY_LIMIT = 64 * 1024


def gguf_file_type(gguf: Path) -> int | None:
    """The GGUF's `general.file_type` (llama.cpp's ftype: 3 is Q4_1, 7 is Q8_0, ...), or None.

    Reads the header's key/value pairs only, skipping values it does not need,
    so it costs milliseconds where a full GGUF parser spends seconds on the
    tokenizer's arrays. None when the key is absent or the header is not GGUF.
    """
    try:
        with gguf.open("rb") as f:
            return _scan_for_file_type(f)
    except (OSError, ValueError, struct.error):
        return None


def _scan_for_file_type(f: Any) -> int | None:
    def unpack(fmt: str) -> Any:
        size = struct.calcsize(fmt)
        data = f.read(size)
        if len(data) != size:
            raise ValueError("truncated GGUF header")
        return struct.unpack(fmt, data)[0]

    def skip(value_type: int) -> None:
        if value_type in _GGUF_FIXED:
            f.seek(_GGUF_FIXED[value_type], os.SEEK_CUR)
        elif value_type == _GGUF_STRING:
            f.seek(unpack("<Q"), os.SEEK_CUR)
        elif value_type == _GGUF_ARRAY:
            item_type, count = unpack("<I"), unpack("<Q")
            if item_type in _GGUF_FIXED:
                f.seek(_GGUF_FIXED[item_type] * count, os.SEEK_CUR)
            else:
                for _ in range(count):
                    skip(item_type)
        else:
            raise ValueError(f"unknown GGUF value type {value_type}")
        if f.tell() > _GGUF_HEADER_LIMIT:
            raise ValueError("GGUF header too large")

    if f.read(4) != b"GGUF" or unpack("<I") < 2:
        return None
    unpack("<Q")  # tensor count
    for _ in range(unpack("<Q")):
        key_length = unpack("<Q")
        if key_length > _GGUF_KEY_LIMIT:
            raise ValueError("GGUF key too long")
        key = f.read(key_length)
        value_type = unpack("<I")
        if key == b"general.file_type" and value_type in (4, 5):
            return int(unpack("<I" if value_type == 4 else "<i"))
        skip(value_type)
    return None


def cache_folder(gguf: Path, cache_root: Path | None = None) -> Path:
    """Where the converted copy of `gguf` lives (it may not exist yet)."""
    root = cache_root if cache_root is not None else locations.cache_dir() / "models"
    return root / f"{gguf.stem}-{gguf_fingerprint(gguf)}"


def is_valid_cache(folder: Path) -> bool:
    """True when `folder` holds a complete conversion: manifest present, every file intact."""
    return _cache_format(folder) == CACHE_FORMAT


def _cache_format(folder: Path) -> int | None:
    """The format of the complete conversion in `folder`; None when it is absent or broken."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    version = manifest.get("format")
    if version != CACHE_FORMAT and version not in _UPGRADABLE:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for name, size in files.items():
        path = folder / name
        try:
            if path.stat().st_size != size:
                return None
        except OSError:
            return None
        if name.endswith(".safetensors") and not _safetensors_header_ok(path, size):
            return None
    return int(version)


def _safetensors_header_ok(path: Path, size: int) -> bool:
    """Checks that the header parses and that its tensors end exactly at the file's end."""
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len <= 0 or 8 + header_len > size:
                return False
            header = json.loads(f.read(header_len))
    except (OSError, ValueError, struct.error):
        return False
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return bool(ends) and 8 + header_len + max(ends) == size


def ensure_converted(
    gguf: Path,
    *,
    cache_root: Path | None = None,
    progress: ProgressCallback | None = None,
) -> CachedModel:
    """The converted folder for `gguf`, converting it first when no valid copy exists."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise ModelNotFoundError(f"GGUF file not found: {gguf}. Check the path.")
    final = cache_folder(gguf, cache_root)
    version = _cache_format(final)
    if version in _UPGRADABLE:
        version = _upgrade(final, gguf)
    if version == CACHE_FORMAT:
        return CachedModel(final, converted=False)
    report = progress or (lambda _m, _f: None)
    report(f"Converting {gguf.name} for fast loading (one time, about 15-30 s)", 0.0)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        _convert_into(gguf, tmp, report)
        _write_manifest(tmp, gguf)
        _install(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not is_valid_cache(final):
        raise ModelError(f"The converted model in {final} is incomplete; delete it and retry.")
    report("Conversion finished", 1.0)
    return CachedModel(final, converted=True)


def _convert_into(gguf: Path, out: Path, report: ProgressCallback) -> None:
    try:
        import torch  # noqa: F401  (checked here so the message names the fix)
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError(
            f"Loading a GGUF model needs torch and transformers ({exc}). "
            f"Install them with: {_LOCAL_INSTALL}"
        ) from exc
    for module in ("gguf", "accelerate"):
        try:
            __import__(module)
        except ImportError as exc:
            raise MissingDependencyError(
                f"Loading a GGUF model needs the '{module}' package. "
                f"Install it with: pip install {module}  (or {_LOCAL_INSTALL})"
            ) from exc
    folder, name = str(gguf.parent), gguf.name
    with transformers_bars_off():
        report("Reading the tokenizer from the GGUF", 0.05)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        report("Dequantizing the weights", 0.35)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        # save_pretrained refuses a model that still carries the GGUF quantizer; the
        # weights are already dequantized, so dropping it yields a plain checkpoint.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        report("Writing the safetensors copy", 0.75)
        out.mkdir(parents=True)
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    _record_added_tokens(out)
    report("Checking the written files", 0.95)


def _record_added_tokens(folder: Path) -> None:
    """Copies tokenizer.json's added tokens into tokenizer_config.json (`added_tokens_decoder`).

    Without that table transformers parses the whole tokenizer.json in Python at
    every load to find them (3.5 MB for SmolLM2, then parsed again by the
    tokenizers library): most of a cached load's time. With it, only the fast
    parser reads the file. The table is what `save_pretrained` writes for models
    loaded from a Hugging Face folder, so the loaded tokenizer is the same.
    """
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "added_tokens_decoder" in config:
        return
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = {
        str(token["id"]): {key: value for key, value in token.items() if key != "id"}
        for token in tokenizer.get("added_tokens", [])
    }
    _write_json(config_path, config)


def _upgrade(folder: Path, gguf: Path) -> int | None:
    """Brings a complete older-format folder to CACHE_FORMAT in place; its new format.

    Each file is replaced whole (written aside, then renamed), the manifest last:
    a crash in between leaves a manifest whose sizes no longer match, which counts
    as broken and is converted again.
    """
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        _record_added_tokens(folder)
        _write_manifest(folder, gguf)
    return _cache_format(folder)


def _write_manifest(folder: Path, gguf: Path) -> None:
    files = {
        p.name: p.stat().st_size
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }
    _write_json(folder / MANIFEST, {"format": CACHE_FORMAT, "source": gguf.name, "files": files})


def _write_json(path: Path, value: Any) -> None:
    """Writes `value` to `path` whole: into a temporary file beside it, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{time.monotonic_ns()}")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(value, f, indent=1, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _install(tmp: Path, final: Path) -> None:
    """Renames the finished folder into place, replacing a broken one if present."""
    if final.exists():
        if is_valid_cache(final):
            return  # another process finished first; its copy is as good as ours
        trash = final.parent / f".trash-{final.name}-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        if not is_valid_cache(final):
            raise
