"""Ctrl-C during `recursa ask`: the partial reply is stored as interrupted; exit code 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

RECURSA = Path(sys.executable).with_name("recursa")


def _ctrl_c_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stores_the_partial_reply_and_exits_130(tmp_path, openai_server):
    server_mod = openai_server
    behaviour = server_mod.Behaviour(
        models=("slow",), reply=" ".join(f"word{i}" for i in range(200)), chunk_delay_s=0.2
    )
    db = f"sqlite:///{tmp_path / 'int.db'}"
    with server_mod.serve(behaviour) as server:
        proc = subprocess.Popen(
            [str(RECURSA), "--db", db, "ask", "-m", f"openai:slow@{server.base_url}", "Go on"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
            # As in a terminal: a suite started in the background by a shell inherits
            # SIGINT ignored, and Python would then never see the Ctrl-C.
            preexec_fn=_ctrl_c_as_in_a_terminal,
        )
        assert proc.stdout is not None
        first = proc.stdout.read(5)  # wait until the reply is streaming
        assert first.startswith("word")
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Interrupted; the partial reply was stored." in err and "Traceback" not in err
    show = subprocess.run(
        [str(RECURSA), "--db", db, "conversations", "show", "1", "--json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    messages = json.loads(show.stdout)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    reply = messages[1]
    assert reply["status"] == "interrupted"
    assert reply["content"].startswith("word0") and "word199" not in reply["content"]
