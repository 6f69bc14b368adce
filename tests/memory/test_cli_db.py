"""`recursa --version` and `recursa db upgrade|current|path`, in process and as a script."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from recursa.memory import Store, current_revision, head_revision
from recursa.memory.locations import default_db_path
from recursa.tui.cli import cli, main

SCRIPT = Path(sys.executable).parent / "recursa"


@pytest.fixture(autouse=True)
def close_log_file() -> Iterator[None]:
    """A CLI run writes the log file of the test's RECURSA_HOME; close it after the test."""
    yield
    from recursa.agent.logs import stop_logging

    stop_logging()


def test_version_prints_the_package_version() -> None:
    """--version prints `recursa <version>`."""
    from importlib.metadata import version

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"recursa {version('recursa')}"


def test_db_path_prints_the_default_sqlite_file(recursa_home: Path) -> None:
    """`db path` prints the SQLite file under the data directory, without creating it."""
    result = CliRunner().invoke(cli, ["db", "path"])
    assert result.exit_code == 0
    assert result.output.strip() == str(default_db_path())
    assert not default_db_path().exists()


def test_db_path_hides_a_server_password() -> None:
    """`db path` for a server URL shows it with the password masked."""
    result = CliRunner().invoke(cli, ["db", "path", "--url", "postgresql+psycopg://u:secret@h/db"])
    assert result.exit_code == 0 and "secret" not in result.output and "***" in result.output


def test_db_upgrade_then_current(db_url: str) -> None:
    """`db current` says none, `db upgrade` creates the schema, then `db current` says head."""
    runner = CliRunner()
    before = runner.invoke(cli, ["db", "current", "--url", db_url])
    assert before.exit_code == 0 and before.output.startswith("none")
    upgraded = runner.invoke(cli, ["db", "upgrade", "--url", db_url])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"revision {head_revision()}" in upgraded.output
    after = runner.invoke(cli, ["db", "current", "--url", db_url])
    assert after.output.strip() == f"{head_revision()} (head)"
    with Store.open(db_url, upgrade=False) as store:  # usable without a further upgrade
        store.create_conversation()


def test_db_current_flags_a_schema_from_a_newer_recursa(tmp_path: Path) -> None:
    """`db current` on a database made by a newer recursa says so instead of suggesting upgrade."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'new.db'}"
    CliRunner().invoke(cli, ["db", "upgrade", "--url", url])
    with sqlite3.connect(tmp_path / "new.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfacef00d'")
    result = CliRunner().invoke(cli, ["db", "current", "--url", url])
    assert result.exit_code == 0 and "newer recursa" in result.output


def test_main_turns_recursa_errors_into_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() reports a RecursaError as one `Error:` line on stderr with exit code 1."""
    corrupt = tmp_path / "bad.db"
    corrupt.write_bytes(b"garbage " * 1000)
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "upgrade", "--url", f"sqlite:///{corrupt}"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(not SCRIPT.exists(), reason="the recursa console script is not installed")
def test_installed_console_script_upgrades_the_default_database(tmp_path: Path) -> None:
    """The real `recursa` script makes the database under RECURSA_HOME; errors are one line."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "RECURSA_DB_URL"}
    env["RECURSA_HOME"] = str(home)
    done = subprocess.run(
        [str(SCRIPT), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (home / "data" / "recursa.db").is_file()
    assert current_revision(f"sqlite:///{home / 'data' / 'recursa.db'}") == head_revision()
    env["RECURSA_DB_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    failed = subprocess.run(
        [str(SCRIPT), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("Error: Cannot reach") and "Traceback" not in failed.stderr
