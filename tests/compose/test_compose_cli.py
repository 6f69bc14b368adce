"""`recursa write`: the text on stdout, progress and the stop reason on stderr, resume, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from recursa.agent import Agent
from recursa.agent.runtime.scripted import ScriptedRuntime
from recursa.tui.cli import cli


def write(db_url: str, *args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(
        cli, ["write", "--db", db_url, "-m", "scripted", *args], input=input
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'write.db'}"


def stored(db_url: str, cid: int) -> str:
    with Agent.open(db_url, ScriptedRuntime()) as agent:
        return agent.composition_text(cid)


def test_write_streams_the_whole_text_to_stdout(db_url: str) -> None:
    """stdout is the opening and every step; stderr has progress and the stop reason."""
    result = write(db_url, "Today the weather", "--tokens", "12", "--step", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout == stored(db_url, 1) + "\n"
    assert result.stdout.startswith("Today the weather OK.")
    assert "[composition 1] 12/12 tokens" in result.stderr
    assert "Stopped: target (12/12 tokens" in result.stderr


def test_write_reads_the_opening_from_stdin_and_resumes(db_url: str) -> None:
    first = write(db_url, "--tokens", "6", "--step", "2", input="Once upon a time")
    assert first.exit_code == 0 and first.stdout.startswith("Once upon a time OK.")
    more = write(db_url, "--resume", "1", "--tokens", "10")
    assert more.exit_code == 0, more.output
    assert "Stopped: target (10/10 tokens" in more.stderr
    assert stored(db_url, 1) == first.stdout[:-1] + more.stdout[:-1]


def test_write_with_a_preset_and_no_text(db_url: str) -> None:
    result = write(db_url, "--preset", "weather", "--tokens", "4", "--step", "2")
    assert result.exit_code == 0 and result.stdout.startswith("Today the weather")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--tokens", "0"], "target_tokens must be at least 1"),
        (["x", "--tokens", "50", "--step", "100000"], "larger than the prompt budget"),
        (["--preset", "novel", "--tokens", "5"], "Unknown preset 'novel'"),
        (["x"], "--tokens N"),
        (["--resume", "3", "extra"], "--resume continues"),
        (["--resume", "42"], "42"),
    ],
)
def test_write_bad_input_is_one_error_line(db_url: str, args: list[str], message: str) -> None:
    result = write(db_url, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
