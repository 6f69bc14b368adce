"""The log file: the CLI writes failures to it; the library, used alone, prints nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from recursa.agent.logs import configure_logging, log_path, stop_logging

# Uses the library as a program would, with a failing reply and a model that cannot
# load; counts the records logged (a filter adds no handler) and prints that count.
LIBRARY_SCRIPT = """
import logging, sys
from recursa.agent import Agent, ModelNotFoundError, TurnFailedError
from recursa.agent.runtime.scripted import ScriptedRuntime

records = []
logging.getLogger("recursa.agent.agent").addFilter(lambda r: records.append(r) or True)
with Agent.open(sys.argv[1], ScriptedRuntime(replies=[RuntimeError("boom")])) as agent:
    cid = agent.create_conversation()
    try:
        agent.send(cid, "hello")
    except TurnFailedError:
        pass
with Agent.open(sys.argv[1], "no-such-model") as agent:
    try:
        agent.load_model()
    except ModelNotFoundError:
        pass
print(len(records))
"""


def test_a_model_failure_is_written_to_the_log_file(run, recursa_home: Path) -> None:
    """`recursa ask` with a model that cannot load: one error line on stderr, and the log
    file under the data directory holds the failure with the model and the command."""
    result = run("ask", "-m", "no-such-model", "hello")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("Error: Unknown model spec 'no-such-model'")
    path = recursa_home / "data" / "logs" / "recursa.log"
    assert log_path() == path and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert "ERROR recursa.agent.agent" in text
    assert "Loading the model 'no-such-model' failed" in text
    assert "recursa ask failed: ModelNotFoundError" in text


def test_commands_that_succeed_leave_no_log_file(run, recursa_home: Path) -> None:
    """The log file (and its folder) appear with the first record, not before."""
    run.ok("conversations", "list")
    run.ok("db", "path")
    assert not (recursa_home / "data" / "logs").exists()


def test_user_mistakes_are_not_logged(run, recursa_home: Path) -> None:
    """An unknown id is the user's to fix, on screen; the log keeps failures of the system."""
    assert run("conversations", "show", "7").exit_code == 2
    assert not log_path().exists()


def test_the_log_file_rotates_and_reconfiguring_replaces_it(tmp_path: Path) -> None:
    """configure_logging installs one rotating file; calling it again moves to the new file."""
    import logging

    log = logging.getLogger("recursa.test")
    first = configure_logging(tmp_path / "a" / "one.log")
    try:
        log.warning("into the first file")
        second = configure_logging(tmp_path / "b" / "two.log")
        log.warning("into the second file")
        handlers = [h for h in logging.getLogger("recursa").handlers if hasattr(h, "maxBytes")]
        assert len(handlers) == 1 and handlers[0].maxBytes > 0 and handlers[0].backupCount > 0
    finally:
        stop_logging()
    assert "into the first file" in first.read_text(encoding="utf-8")
    assert "into the first file" not in second.read_text(encoding="utf-8")
    assert "into the second file" in second.read_text(encoding="utf-8")


def test_the_library_used_alone_writes_nothing_to_stderr(tmp_path: Path) -> None:
    """Failures are logged, but with no logging configured nothing reaches stderr or a file."""
    url = f"sqlite:///{tmp_path / 'lib.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", LIBRARY_SCRIPT, url],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2"  # both failures were logged...
    assert proc.stderr == ""  # ...and none of it was printed
    assert not log_path().exists()
