"""The `recursa` program itself: version, help, exit codes and no torch for model-free commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from recursa.tui.cli import cli

RECURSA = Path(sys.executable).with_name("recursa")

# Runs several commands in one process, then reports whether torch was ever imported.
NO_TORCH_SCRIPT = """
import json, sys
from recursa.tui.cli import cli
url = sys.argv[1]
commands = json.loads(sys.argv[2])
codes = []
for args in commands:
    try:
        cli.main(["--db", url, *args], prog_name="recursa", standalone_mode=False)
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code)
    except Exception as exc:
        codes.append(getattr(exc, "exit_code", repr(exc)))
print(json.dumps({"codes": codes, "torch": "torch" in sys.modules,
                  "transformers": "transformers" in sys.modules}))
"""


# Runs `recursa ARG` in a fresh process, then lists the modules of interest it imported.
IMPORTS_SCRIPT = """
import json, sys
from recursa.tui.cli import main
try:
    main([sys.argv[1]])
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = ("recursa.agent", "recursa.memory", "sqlalchemy", "alembic", "pydantic_settings",
         "torch", "transformers", "textual")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(heavy))))
"""


def _recursa(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RECURSA), *args],
        capture_output=True,
        text=True,
        input=input,
        env=os.environ.copy(),
        timeout=120,
    )


def test_version_and_help(run):
    version = run.ok("--version").stdout
    assert version.startswith("recursa ")
    out = run.ok("--help").stdout
    for command in (
        "ask",
        "chat",
        "conversations (c)",
        "prompt",
        "trace",
        "summaries",
        "models",
        "db",
        "--db URL",
    ):
        assert command in out


@pytest.mark.parametrize("option", ["--version", "--help"])
def test_version_and_help_import_no_agent_database_or_model_code(option):
    """`recursa --version` and `--help` print without importing the agent, the store
    (SQLAlchemy), settings, torch or the TUI: each command imports what it uses when it runs."""
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_SCRIPT, option],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("recursa " if option == "--version" else "Usage: recursa")
    assert json.loads(lines[-1]) == []


def test_unknown_command_is_a_usage_error(run):
    result = run("frobnicate")
    assert result.exit_code == 2 and "No such command" in result.stderr


def test_model_free_commands_never_import_torch(tmp_path, sqlite_url, seed):
    """--help, listing, reading, searching, export/import, trace, summaries, models: no torch."""
    cid = seed("Torch-free", [("hello world", "hi")])
    export = tmp_path / "e.jsonl"
    commands = [
        ["--help"],
        ["conversations", "list"],
        ["conversations", "list", "--json"],
        ["c", "show", str(cid)],
        ["c", "show", "--md", str(cid)],
        ["c", "search", "hello"],
        ["c", "export", str(cid), "-f", "jsonl", "-o", str(export)],
        ["c", "import", "--again", str(export)],
        ["c", "rename", str(cid), "New"],
        ["c", "archive", str(cid)],
        ["summaries", str(cid)],
        ["trace", "1"],
        ["models"],
        ["models", "--json"],
        ["db", "path"],
        ["ask", "--help"],
        ["ask", "-m", "scripted", "hi"],
        ["prompt", "-m", "scripted", str(cid), "x"],
        ["chat", "--help"],
    ]
    # Semantic recall's embedding model is a model too (import, ask and prompt embed with
    # it): with it off, these commands need no torch at all.
    env = {**os.environ, "RECURSA_RECALL__EMBEDDER": "none"}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, sqlite_url, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["torch"] is False and report["transformers"] is False
    expected = [0] * len(commands)
    expected[commands.index(["trace", "1"])] = 2  # message 1 is the user's: it has no trace
    assert report["codes"] == expected


@pytest.mark.skipif(not RECURSA.exists(), reason="the recursa console script is not installed")
def test_console_script_errors_are_one_line_with_exit_codes(tmp_path):
    """The installed `recursa`: usage mistakes exit 2, model errors 1, never a traceback."""
    db = f"sqlite:///{tmp_path / 'cs.db'}"
    ok = _recursa("--db", db, "conversations", "list", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout) == []
    missing = _recursa("--db", db, "conversations", "show", "7")
    assert missing.returncode == 2
    assert missing.stderr.startswith("Error: No conversation with id 7")
    assert "Traceback" not in missing.stderr
    model = _recursa("--db", db, "ask", "-m", "./no/such/model.gguf", "hi")
    assert model.returncode == 1 and "Traceback" not in model.stderr
    assert model.stderr.strip().splitlines()[-1].startswith("Error: No such file or folder")
    bad_option = _recursa("conversations", "list", "--nope")
    assert bad_option.returncode == 2 and "No such option" in bad_option.stderr


def test_chat_with_an_unknown_conversation_fails_before_opening_the_ui(run):
    result = run("chat", "-c", "5")
    assert result.exit_code == 2 and "No conversation with id 5" in result.stderr


def test_cli_group_registers_every_command():
    names = set(cli.commands)
    assert {"ask", "chat", "conversations", "prompt", "trace", "summaries", "models", "db"} <= names


def test_global_db_option_is_the_default_of_the_db_commands(run, tmp_path):
    path = tmp_path / "elsewhere.db"
    result = run("db", "path", db=f"sqlite:///{path}")
    assert result.exit_code == 0 and result.stdout.strip() == str(path)
    assert "head" in run("db", "upgrade", db=f"sqlite:///{path}").stdout
    explicit = tmp_path / "explicit.db"
    assert run("db", "path", "--url", f"sqlite:///{explicit}").stdout.strip() == str(explicit)
