"""Settings: defaults, the TOML file, environment overrides and flat keyword names."""

from __future__ import annotations

from pathlib import Path

import pytest
from recursa.agent.errors import ConfigError
from recursa.agent.settings import Settings


def test_defaults_are_documented_and_sane() -> None:
    """Every field has a default and a description; the defaults are the documented ones."""
    s = Settings.load()
    assert s.model == "smollm2-135m" and s.db_url is None and s.policy == "summary+recall"
    assert s.generation.temperature == 0.0  # greedy
    for section in (s, s.budget, s.generation, s.summarizer, s.recall, s.runtime):
        for name, field in type(section).model_fields.items():
            assert field.description, f"{type(section).__name__}.{name} has no description"


def test_toml_file_is_read_and_env_overrides_it(
    recursa_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.toml under RECURSA_HOME sets values; RECURSA_* variables win over it."""
    (recursa_home / "config.toml").write_text(
        'policy = "window"\nmodel = "scripted"\n[budget]\nmax_prompt_tokens = 700\n'
        "reply_reserve = 99\n",
        encoding="utf-8",
    )
    s = Settings.load()
    assert (s.policy, s.model, s.budget.max_prompt_tokens, s.budget.reply_reserve) == (
        "window",
        "scripted",
        700,
        99,
    )
    monkeypatch.setenv("RECURSA_BUDGET__MAX_PROMPT_TOKENS", "512")
    monkeypatch.setenv("RECURSA_POLICY", "summary")
    s = Settings.load()
    assert (s.policy, s.budget.max_prompt_tokens, s.budget.reply_reserve) == ("summary", 512, 99)
    # Values passed in code win over both.
    assert Settings.load(max_prompt_tokens=256).budget.max_prompt_tokens == 256


def test_flat_and_nested_names_are_equivalent() -> None:
    """max_prompt_tokens=512 is budget={'max_prompt_tokens': 512}."""
    a = Settings.load(max_prompt_tokens=512, max_new_tokens=20, policy="window")
    b = Settings.load(
        budget={"max_prompt_tokens": 512}, generation={"max_new_tokens": 20}, policy="window"
    )
    assert a == b


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policy": "sometimes"}, "policy"),
        ({"max_prompt_tokens": 3}, "max_prompt_tokens"),
        ({"window_share": 0.9, "summary_share": 0.5}, "at most 1.0"),
        ({"nonsense": 1}, "Unknown setting 'nonsense'"),
        ({"runtime": {"precision": "int3"}}, "precision"),
    ],
)
def test_invalid_settings_are_config_errors(kwargs: dict, match: str) -> None:
    """Bad values and unknown names raise ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=match):
        Settings.load(**kwargs)


def test_bad_toml_value_names_the_file(recursa_home: Path) -> None:
    """A bad value in config.toml is reported with the file's path."""
    (recursa_home / "config.toml").write_text('policy = "bogus"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="config.toml"):
        Settings.load()


def test_per_conversation_merge_keeps_other_fields() -> None:
    """merged() overrides only the given fields of a section."""
    base = Settings.load(max_prompt_tokens=900, reply_reserve=50)
    merged = base.merged({"max_prompt_tokens": 300})
    assert merged.budget.max_prompt_tokens == 300 and merged.budget.reply_reserve == 50


def test_runtime_precision_reaches_the_runtime_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """[runtime] precision (or RECURSA_RUNTIME__PRECISION) is passed to the runtime; None by
    default, so the model decides."""
    assert Settings.load().runtime.options().precision is None
    monkeypatch.setenv("RECURSA_RUNTIME__PRECISION", "float32")
    assert Settings.load().runtime.options().precision == "float32"
    assert Settings.load(runtime={"precision": "int8"}).runtime.options().precision == "int8"
