"""Every command and example in README.md runs, so the README cannot go stale.

The README's fenced blocks are parsed in order. `sh` blocks are run line by line
in bash (`set -e`, a scratch RECURSA_HOME and working directory, the venv's
programs first on PATH), with these substitutions, each checked rather than
skipped:

- `make TARGET` runs as `make -n TARGET` (the target exists and its recipe parses;
  running `make test` inside the tests would recurse, `make chat` is interactive);
- `pip install 'recursa[EXTRA]'` checks that EXTRA is an extra of pyproject.toml;
- `python -m benchmarks.NAME` runs `python -m benchmarks.NAME --help`;
- `recursa finetune ...` runs with `--help` (real training is tested in tests/training);
- `... -m pytest ...` runs with `--collect-only` (no recursion into this suite);
- the PostgreSQL example URL becomes a fresh database on RECURSA_TEST_POSTGRES_URL
  (that block is skipped without it, like every PostgreSQL test);
- the OpenAI-compatible server URL becomes a real test server on 127.0.0.1.

The model behind `recursa ask` and the library example is the scripted model
(RECURSA_MODEL=scripted), so the commands' plumbing is what is checked here; one
`model`-marked test runs the library example on the real default model.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "chatgpt_conversations.json"
PG_EXAMPLE_URL = "postgresql+psycopg://user@localhost:5432/recursa"
OPENAI_EXAMPLE = re.compile(r"openai:(?P<model>[^@\"]+)@(?P<url>http://127\.0\.0\.1:11434/v1)")
FENCE = re.compile(r"^```(?P<info>[\w-]*)\n(?P<body>.*?)^```$", re.M | re.S)


def blocks(kind: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return [m["body"] for m in FENCE.finditer(text) if m["info"] == kind]


def sh_blocks() -> list[tuple[str, str]]:
    """(id, body) of every sh block, the id from its first command."""
    out = []
    for body in blocks("sh"):
        first = next(line for line in body.splitlines() if line.strip())
        out.append((re.sub(r"\W+", "-", first.split("#")[0].strip())[:40], body))
    return out


def test_readme_has_the_sections_in_order():
    text = README.read_text(encoding="utf-8")
    order = [
        "## Two commands",
        "make chat",
        "docs/screenshot.svg",
        "## As a library",
        "Agent.open",
        "## On the command line",
        "recursa ask",
        "## How the recursive prompt works",
        "## Configuration",
        "## Using PostgreSQL",
        "## Using an OpenAI-compatible server",
        "## Running the tests",
        "## Benchmarks",
        "## Repository layout",
    ]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)


def _translate(line: str, env: dict[str, str]) -> str:
    """A README command line as the test runs it (see the module docstring)."""
    stripped = line.split(" #")[0].strip()
    words = shlex.split(stripped)
    if words[:1] == ["make"]:
        return f'make -n -C "{REPO}" {shlex.join(words[1:])} >/dev/null'
    if words[:2] == ["pip", "install"]:
        extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        for spec in words[2:]:
            match = re.fullmatch(r"recursa\[(\w+)\]", spec)
            assert match and match[1] in extras, f"README installs an unknown extra: {spec}"
        return ":"
    if words[:2] == ["python", "-m"] and words[2].startswith("benchmarks."):
        return f'(cd "{REPO}" && {stripped} --help >/dev/null)'
    if words[:2] == ["recursa", "finetune"]:
        return "recursa finetune --help >/dev/null"
    if "pytest" in words:
        return f'(cd "{REPO}" && {stripped} --collect-only >/dev/null)'
    if PG_EXAMPLE_URL in stripped:
        return stripped.replace(PG_EXAMPLE_URL, env["README_PG_URL"])
    if OPENAI_EXAMPLE.search(stripped):
        return OPENAI_EXAMPLE.sub(
            lambda m: f"openai:{m['model']}@{env['README_OPENAI_URL']}", stripped
        )
    assert words[0] in ("recursa", "export", "echo"), f"README command with no test rule: {line}"
    return stripped


def _server(module: Any, stack: ExitStack, models: tuple[str, ...]) -> str:
    server = stack.enter_context(module.serve(module.Behaviour(models=models)))
    return str(server.base_url)


# Appended to the CLI block's run: the ids the README uses must line up with what it did.
CLI_CHECK = "recursa conversations list --all --json > listing.json\n"


@pytest.mark.parametrize("block", [b for _, b in sh_blocks()], ids=[i for i, _ in sh_blocks()])
def test_readme_shell_block_runs(block, tmp_path, recursa_home, openai_server, suite_conftest):
    env = os.environ.copy()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["RECURSA_MODEL"] = "scripted"
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(FIXTURE, work / "conversations.json")  # the ChatGPT export the README imports
    is_cli_block = "recursa conversations import conversations.json" in block
    with ExitStack() as stack:
        if PG_EXAMPLE_URL in block:
            base = os.environ.get("RECURSA_TEST_POSTGRES_URL")
            if not base:
                pytest.skip("PostgreSQL README block: set RECURSA_TEST_POSTGRES_URL to run it")
            env["README_PG_URL"] = stack.enter_context(suite_conftest.fresh_postgres_database(base))
        match = OPENAI_EXAMPLE.search(block)
        if match:
            env["README_OPENAI_URL"] = _server(openai_server, stack, (match["model"],))
        lines = [_translate(line, env) for line in block.splitlines() if line.strip()]
        script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
        if is_cli_block:
            script += CLI_CHECK
        proc = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
    assert proc.returncode == 0, f"{script}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    if is_cli_block:
        # `trace 4` names a reply, `rename 1` the first conversation, `rm 2` the piped one.
        assert "Reply 4 in conversation 1" in proc.stdout
        titles = {c["id"]: c["title"] for c in json.loads((work / "listing.json").read_text())}
        assert 2 not in titles and titles[1] == "Family"
        assert {"Lisbon trip", "Portuguese"} <= set(titles.values())


def test_readme_config_file_example_is_valid(recursa_home):
    [toml_block] = blocks("toml")
    (recursa_home / "config.toml").write_text(toml_block, encoding="utf-8")
    from recursa.agent.settings import Settings

    settings = Settings.load()
    assert settings.system_prompt == "You are a concise assistant."
    assert settings.budget.max_prompt_tokens == 2048
    assert settings.generation.temperature == 0.0


def _run_library_example(env_model: str | None, recursa_home: Path) -> str:
    [example] = blocks("python")
    env = os.environ.copy()
    if env_model:
        env["RECURSA_MODEL"] = env_model
    proc = subprocess.run(
        [sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_readme_library_example_runs(recursa_home):
    out = _run_library_example("scripted", recursa_home).splitlines()
    assert out[0] == "OK." and re.fullmatch(r"\d+ of \d+ prompt tokens", out[1])
    assert out[2] == "OK."


@pytest.mark.model
def test_readme_library_example_runs_on_the_default_model(recursa_home):
    pytest.importorskip("torch")
    out = _run_library_example(None, recursa_home).splitlines()
    assert len(out) >= 3 and out[0].strip()
    assert any(re.fullmatch(r"\d+ of \d+ prompt tokens", line) for line in out)


def test_readme_links_and_images_point_at_files_that_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?://)([^)#\s]+)\)", text)
    assert "docs/screenshot.svg" in targets and "docs/cli.md" in targets
    for target in targets:
        assert (REPO / target).is_file(), f"README links to a missing file: {target}"
