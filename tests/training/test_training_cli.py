"""`recursa dataset export`, `recursa rate` and `recursa finetune` through the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.tui.cli import cli
from training_data import taught_examples, write_examples


def _run(db: str, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--db", db, *args])
    # User-facing failures exit through SystemExit; any other exception is a bug.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def replies(db: str) -> list[int]:
    """Three stored replies (from the scripted model) with their prompt traces."""
    agent = Agent.open(db, ScriptedRuntime(replies=["Paris.", "Blue.", "Four."]))
    try:
        cid = agent.create_conversation(system_prompt="Answer in one word.")
        return [
            agent.send(cid, q).message_id for q in ("Capital of France?", "Sky colour?", "2+2?")
        ]
    finally:
        agent.close()


def test_export_rate_and_only_rated(db: str, replies: list[int], tmp_path: Path) -> None:
    """Export writes one example per reply; after rating, --only-rated keeps the good ones."""
    out = tmp_path / "all.jsonl"
    result = _run(db, "dataset", "export", "--all", "-o", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [ex["messages"][-1]["content"] for ex in lines] == ["Paris.", "Blue.", "Four."]
    assert lines[0]["messages"][0] == {"role": "system", "content": "Answer in one word."}
    assert "3 example(s) exported" in result.stderr

    assert _run(db, "rate", str(replies[0]), "good").stdout.strip().endswith("good.")
    assert _run(db, "rate", str(replies[1]), "bad").exit_code == 0
    rated = tmp_path / "rated.jsonl"
    result = _run(db, "dataset", "export", "--all", "--only-rated", "-o", str(rated))
    assert [json.loads(x)["messages"][-1]["content"] for x in rated.read_text().splitlines()] == [
        "Paris."
    ]
    assert "1 rated bad skipped" in result.stderr and "1 unrated skipped" in result.stderr
    assert "is now unrated" in _run(db, "rate", str(replies[0]), "clear").stdout
    assert _run(db, "dataset", "export", "--all", "--only-rated", "-o", "-").stdout == ""


def test_export_and_rate_usage_errors(db: str, replies: list[int], tmp_path: Path) -> None:
    """Missing selection, unknown conversation, rating a user message: exit 2 with a reason."""
    out = str(tmp_path / "x.jsonl")
    assert _run(db, "dataset", "export", "-o", out).exit_code == 2
    unknown = _run(db, "dataset", "export", "-c", "999", "-o", out)
    assert unknown.exit_code == 2 and "999" in unknown.stderr
    user_message = replies[0] - 1
    refused = _run(db, "rate", str(user_message), "good")
    assert refused.exit_code == 2 and "only assistant replies" in refused.stderr


def test_finetune_bad_input_is_one_line_error(db: str, tmp_path: Path) -> None:
    """A malformed dataset names its line; an existing --out is refused; --resume is exclusive."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    result = _run(db, "finetune", "--data", str(bad), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "line 1" in result.stderr
    assert "Traceback" not in result.output
    good = write_examples(tmp_path / "good.jsonl", taught_examples(4))
    (tmp_path / "exists").mkdir()
    result = _run(db, "finetune", "--data", str(good), "--out", str(tmp_path / "exists"))
    assert result.exit_code == 2 and "already exists" in result.stderr
    result = _run(db, "finetune", "--resume", str(tmp_path / "exists"), "--lr", "0.1")
    assert result.exit_code == 2 and "--lr" in result.output
    assert _run(db, "finetune", "--data", str(good)).exit_code == 2


def test_finetune_stops_and_resumes_from_the_command_line(
    db: str, tiny_base: Path, taught_data: Path, tmp_path: Path
) -> None:
    """--stop-after leaves a checkpoint; --resume finishes the run and writes the model."""
    out = tmp_path / "model"
    common = [
        "--data",
        str(taught_data),
        "--out",
        str(out),
        "-m",
        str(tiny_base),
        "--batch-size",
        "8",
        "--max-steps",
        "3",
        "--device",
        "cpu",
    ]
    first = _run(db, "finetune", *common, "--stop-after", "1")
    assert first.exit_code == 0, first.output
    assert "Stopped after step 1/3" in first.stdout
    assert "step 1/3" in first.stderr  # plain progress lines when stderr is not a terminal
    second = _run(db, "finetune", "--resume", str(out), "--device", "cpu")
    assert second.exit_code == 0, second.output
    assert "Resuming at step 1" in second.stderr and "step 3/3" in second.stderr
    assert "Trained 3 step(s)" in second.stdout and "eval loss" in second.stdout
    assert (out / "model.safetensors").is_file()


def test_training_modules_import_without_torch() -> None:
    """`recursa --help` and the training package never pay for torch or transformers."""
    import subprocess
    import sys

    code = (
        "import sys, recursa.agent.training, recursa.agent.training.masking, "
        "recursa.tui.cli.train; from recursa.tui.cli import cli; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
