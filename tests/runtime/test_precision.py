"""Choosing the default precision: reading a GGUF's quantization from its header."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from recursa.agent.runtime.default_model import default_gguf_path
from recursa.agent.runtime.local.convert import gguf_file_type


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _gguf_header(file_type: int | None, *, version: int = 3) -> bytes:
    """A GGUF header whose key/values hold strings, arrays and numbers before the file type."""
    pairs = [
        _string("general.architecture") + struct.pack("<I", 8) + _string("llama"),
        _string("llama.context_length") + struct.pack("<I", 4) + struct.pack("<I", 2048),
        _string("general.ratio") + struct.pack("<I", 12) + struct.pack("<d", 0.5),
        # An array of strings, as the tokenizer's vocabulary is stored, then one of floats.
        _string("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", 9, 8, 3)
        + b"".join(_string(t) for t in ("<s>", "hello", "wörld")),
        _string("tokenizer.ggml.scores")
        + struct.pack("<IIQ", 9, 6, 3)
        + struct.pack("<3f", 0, 1, 2),
    ]
    if file_type is not None:
        pairs.append(
            _string("general.file_type") + struct.pack("<I", 4) + struct.pack("<I", file_type)
        )
    pairs.append(_string("general.name") + struct.pack("<I", 8) + _string("tiny"))
    head = b"GGUF" + struct.pack("<IQQ", version, 0, len(pairs))
    return head + b"".join(pairs)


def test_the_embedded_model_is_q4_1() -> None:
    """The bundled SmolLM2 GGUF says file type 3 (Q4_1) in its header."""
    assert gguf_file_type(default_gguf_path()) == 3


@pytest.mark.parametrize("file_type", [0, 1, 3, 7, 15, 18])
def test_file_type_is_read_past_strings_and_arrays(tmp_path: Path, file_type: int) -> None:
    """The reader skips every kind of value before general.file_type and returns it."""
    path = tmp_path / "model.gguf"
    path.write_bytes(_gguf_header(file_type) + b"\0" * 64)
    assert gguf_file_type(path) == file_type


def test_unreadable_headers_give_none(tmp_path: Path) -> None:
    """No key, a truncated header, a non-GGUF file, an old version or no file: None."""
    cases = {
        "no-key.gguf": _gguf_header(None),
        "truncated.gguf": _gguf_header(3)[:60],
        "text.gguf": b"this is not a model",
        "v1.gguf": _gguf_header(3, version=1),
        "huge-key.gguf": b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**62),
        "empty.gguf": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert gguf_file_type(path) is None, name
    assert gguf_file_type(tmp_path / "missing.gguf") is None


def test_default_precision_by_quantization(tmp_path: Path) -> None:
    """4-bit files get int4 (or int8 without the kernels), 8-bit int8, float files float32."""
    pytest.importorskip("torch")
    from recursa.agent.runtime.local import default_precision
    from recursa.agent.runtime.local.llama import int4_available

    expected = {
        3: "int4" if int4_available() else "int8",  # Q4_1
        15: "int4" if int4_available() else "int8",  # Q4_K_M
        7: "int8",  # Q8_0
        18: "int8",  # Q6_K
        1: "float32",  # F16
        0: "float32",  # F32
    }
    for file_type, precision in expected.items():
        path = tmp_path / f"t{file_type}.gguf"
        path.write_bytes(_gguf_header(file_type))
        assert default_precision("cpu", path) == precision, file_type
        assert default_precision("cuda", path) == "bfloat16"
    no_key = tmp_path / "no-key.gguf"
    no_key.write_bytes(_gguf_header(None))
    assert default_precision("cpu", no_key) == "float32"
