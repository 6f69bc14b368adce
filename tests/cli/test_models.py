"""`recursa models`: known specs, their availability, and where the default model's files are."""

from __future__ import annotations


def test_models_lists_the_default_and_scripted_specs(run):
    out = run.ok("models").stdout
    assert "smollm2-135m" in out and "scripted" in out
    assert "Chat model in use: smollm2-135m" in out
    assert "openai:<model>@<base-url>" in out


def test_models_json_shape(run):
    data = run.json("models")
    assert set(data) == {"default", "configured", "models"}
    assert data["default"] == "smollm2-135m"
    specs = {m["spec"]: m for m in data["models"]}
    assert {"smollm2-135m", "scripted"} <= set(specs)
    default = specs["smollm2-135m"]
    assert {
        "spec",
        "kind",
        "description",
        "available",
        "detail",
        "path",
        "cache_path",
        "cached",
    } <= set(default)
    if default["available"]:
        assert default["path"].endswith(".gguf") and default["cache_path"]
    assert specs["scripted"]["available"] is True


def test_models_reports_the_configured_model(run, monkeypatch):
    monkeypatch.setenv("RECURSA_MODEL", "scripted")
    assert run.json("models")["configured"] == "scripted"


def test_models_shows_a_server_models_discovered_window(run, openai_server):
    """-m asks a server model for its window and says where it comes from."""
    behaviour = openai_server.Behaviour(models=("m",), flavor="vllm", context_window=3000)
    with openai_server.serve(behaviour) as server:
        spec = f"openai:m@{server.base_url}"
        out = run.ok("models", "-m", spec).stdout
        data = run.json("models", "-m", spec)
    said = " ".join(out.split())
    assert "Context window 3000 tokens (vLLM /v1/models max_model_len)" in said
    assert "prompts counted with the server's own tokenizer and chat template (vLLM" in said
    entry = next(m for m in data["models"] if m["spec"] == spec)
    assert entry["context_window"] == 3000
    assert entry["window_guess"] is False
    assert entry["tokenizer_id"].startswith("server:vllm:")


def test_models_marks_a_guessed_window_and_names_the_setting(run, openai_server):
    with openai_server.serve(openai_server.Behaviour(models=("m",))) as server:
        out = " ".join(run.ok("models", "-m", f"openai:m@{server.base_url}").stdout.split())
    assert "Context window 4096 tokens (a guess: the server did not say)" in out
    assert "tiktoken (cl100k_base) times a margin of 1.20: the server has no tokenizer" in out
    assert "RECURSA_RUNTIME__CONTEXT_WINDOW" in out
