"""The packed-weight cache: a cached load restores the int4 engine as built; damage is rebuilt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from recursa.agent.runtime.protocol import GenerationParams

pytestmark = pytest.mark.model

PROMPT = [{"role": "user", "content": "Name three colours of the rainbow."}]
GREEDY = GenerationParams(max_new_tokens=16)


def greedy(runtime: Any) -> str:
    return str(runtime.stream(PROMPT, GREEDY).complete().text)


def test_saved_tensors_load_back_and_damage_is_detected(smollm: Any, tmp_path: Path) -> None:
    """save -> load gives back every tensor; flipped, truncated or unlisted files are refused."""
    import torch
    from recursa.agent.runtime.local.engine_cache import (
        engine_cache_path,
        load_engine_tensors,
        save_engine_tensors,
    )

    # The session's load wrote (or read) the cache of the embedded model's int4 engine.
    expected = load_engine_tensors(
        engine_cache_path(Path(smollm.load_info.path), smollm.load_info.precision)
    )
    assert expected is not None and any(k.endswith(".int4.packed") for k in expected)
    path = tmp_path / "engine.safetensors"
    manifest = path.with_suffix(".json")
    assert save_engine_tensors(path, expected) is True
    saved = load_engine_tensors(path)
    assert saved is not None and saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in expected)

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    path.write_bytes(bytes(data))
    assert load_engine_tensors(path) is None
    assert not path.exists() and not manifest.exists()  # removed, to be rebuilt

    assert save_engine_tensors(path, expected)
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    assert load_engine_tensors(path) is None

    assert save_engine_tensors(path, expected)
    manifest.unlink()  # a crash between the file and its manifest
    assert load_engine_tensors(path) is None


def test_cached_load_restores_the_engine_and_a_damaged_cache_is_rebuilt(
    smollm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second load restores the packed weights; after damage it rebuilds them; text unchanged."""
    from recursa.agent.runtime.local import load_local
    from recursa.agent.runtime.local.engine_cache import engine_cache_path

    # A private cache folder (sharing the converted model), so damaging the packed-weight
    # cache never disturbs another test process loading the model meanwhile.
    (tmp_path / "models").symlink_to(Path(smollm.load_info.path).parent)
    monkeypatch.setenv("RECURSA_CACHE_DIR", str(tmp_path))
    expected = greedy(smollm)
    first = load_local(name="smollm2-135m")
    first.close()
    cached = load_local(name="smollm2-135m")
    try:
        assert cached.load_info.packed_from_cache and cached.load_info.precision == "int4"
        assert greedy(cached) == expected
    finally:
        cached.close()

    path = engine_cache_path(Path(smollm.load_info.path), "int4", tmp_path / "engines")
    assert path.is_file()
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x55
    path.write_bytes(bytes(data))
    rebuilt = load_local(name="smollm2-135m")
    try:
        assert not rebuilt.load_info.packed_from_cache
        assert greedy(rebuilt) == expected
    finally:
        rebuilt.close()
    again = load_local(name="smollm2-135m")
    try:
        assert again.load_info.packed_from_cache
    finally:
        again.close()
