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
    assert {"spec", "kind", "description", "available", "detail", "path", "cache_path",
            "cached"} <= set(default)
    if default["available"]:
        assert default["path"].endswith(".gguf") and default["cache_path"]
    assert specs["scripted"]["available"] is True


def test_models_reports_the_configured_model(run, monkeypatch):
    monkeypatch.setenv("RECURSA_MODEL", "scripted")
    assert run.json("models")["configured"] == "scripted"
