"""`recursa` alone and `recursa chat` open the terminal UI (in a pseudo-terminal); Ctrl+Q quits."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from pathlib import Path

import pytest

RECURSA = Path(sys.executable).with_name("recursa")
pty = pytest.importorskip("pty")  # POSIX only


def _run_tui(
    args: list[str], *, wait_for: bytes, timeout_s: float = 90.0
) -> tuple[int | None, bytes]:
    """Start the UI in a pseudo-terminal, wait until `wait_for` is drawn, press Ctrl+Q."""
    env = dict(os.environ, RECURSA_MODEL="scripted", TERM="xterm-256color")
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the recursa program
        os.execve(str(RECURSA), ["recursa", *args], env)
    screen = b""
    reaped = False
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and wait_for not in screen:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    screen += os.read(fd, 65536)
                except OSError:
                    break  # the program ended
        os.write(fd, b"\x11")  # Ctrl+Q
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                return os.waitstatus_to_exitcode(status), screen
            if select.select([fd], [], [], 0.2)[0]:
                # Drain the screen so the program never blocks on a full terminal; EIO just
                # means it closed the terminal, and its exit status comes next.
                with contextlib.suppress(OSError):
                    os.read(fd, 65536)
        return None, screen
    finally:
        if not reaped:  # it did not quit: stop it, so no test leaves a process behind
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


@pytest.mark.skipif(not RECURSA.exists(), reason="the recursa console script is not installed")
def test_recursa_chat_opens_the_conversation_from_the_chosen_database(seed, tmp_path):
    db = f"sqlite:///{tmp_path / 'tui.db'}"
    cid = seed("Pelican notes", [("Pelicans eat fish", "They do")], db_url=db)
    # The message text is on screen only once the conversation itself is open.
    code, screen = _run_tui(["--db", db, "chat", "-c", str(cid)], wait_for=b"Pelicans eat fish")
    assert b"Pelicans eat fish" in screen
    assert code == 0


@pytest.mark.skipif(not RECURSA.exists(), reason="the recursa console script is not installed")
def test_recursa_alone_opens_the_ui(seed, tmp_path):
    db = f"sqlite:///{tmp_path / 'tui.db'}"
    seed("Heron diary", [("Herons wait", "Patiently")], db_url=db)
    code, screen = _run_tui(["--db", db], wait_for=b"Heron")
    assert b"Heron" in screen
    assert code == 0
