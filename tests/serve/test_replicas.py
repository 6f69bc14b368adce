"""Two `recursa serve` processes on one PostgreSQL database share one memory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

pytestmark = pytest.mark.postgres
HEADER = "X-Recursa-Conversation"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    import importlib.util

    # tests/conftest.py by path: inside tests/serve, `conftest` is this folder's.
    spec = importlib.util.spec_from_file_location(
        "serve_suite_conftest", Path(__file__).resolve().parents[1] / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    base = suite.postgres_base_url()
    if base is None:
        pytest.skip("PostgreSQL tests skipped: set RECURSA_TEST_POSTGRES_URL to run them")
    with suite.fresh_postgres_database(base) as url:
        yield url


def start_replica(db_url: str, home: Path) -> tuple[subprocess.Popen[str], str]:
    """`recursa --db URL serve -m scripted --port 0`; returns the process and its base URL."""
    command = [
        sys.executable,
        "-m",
        "recursa.tui.cli",
        "--db",
        db_url,
        "serve",
        "-m",
        "scripted",
        "--port",
        "0",
    ]
    env = {**os.environ, "RECURSA_HOME": str(home)}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    end = time.monotonic() + 60
    while time.monotonic() < end:
        line = process.stderr.readline()
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            url = found.group(1)
            while time.monotonic() < end:
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        return process, url
                except httpx.HTTPError:
                    time.sleep(0.05)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"the replica did not start: {process.stderr.read()}")


def test_two_processes_on_one_database_write_one_conversation_in_turn(
    postgres_url: str, tmp_path: Path
) -> None:
    replicas = [start_replica(postgres_url, tmp_path / f"home{i}") for i in range(2)]
    try:
        clients = [
            openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
            for _, url in replicas
        ]
        # A client's replayed history finds its conversation on the other replica.
        history = [{"role": "user", "content": "Hello from replica A"}]
        raw = clients[0].chat.completions.with_raw_response.create(
            model="scripted", messages=history
        )
        cid = int(raw.headers[HEADER])
        history += [
            {"role": "assistant", "content": raw.parse().choices[0].message.content},
            {"role": "user", "content": "And hello from replica B"},
        ]
        raw = clients[1].chat.completions.with_raw_response.create(
            model="scripted", messages=history
        )
        assert int(raw.headers[HEADER]) == cid

        def send(index: int) -> None:
            clients[index % 2].chat.completions.create(
                model="scripted",
                messages=[{"role": "user", "content": f"parallel {index}"}],
                extra_headers={HEADER: str(cid)},
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(8)))
        messages = httpx.get(
            f"{replicas[0][1]}/v1/recursa/conversations/{cid}/messages", params={"limit": 1000}
        ).json()
    finally:
        for process, _ in replicas:
            process.terminate()
        errors = [process.communicate(timeout=30)[1] for process, _ in replicas]
    assert [m["seq"] for m in messages] == list(range(1, 21))
    assert [m["role"] for m in messages] == ["user", "assistant"] * 10
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert sorted(users[2:]) == sorted(f"parallel {i}" for i in range(8))
    assert all(m["status"] == "complete" for m in messages)
    # uvicorn shuts down cleanly on SIGTERM, then exits by that signal (its exit status).
    assert all(p.returncode in (0, -signal.SIGTERM) for p, _ in replicas)
    assert not any("Traceback" in e for e in errors)
    assert all('"path": "/v1/chat/completions"' in e for e in errors)  # access logs
    assert not any("parallel" in e for e in errors)  # ... without message contents
