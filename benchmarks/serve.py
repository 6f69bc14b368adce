"""`recursa serve` under load: N concurrent streaming clients on the scripted model and on SmolLM2.

    python -m benchmarks.serve [--clients 1,8,32] [--turns 3] [--skip-smollm]

For each model, a `recursa serve` process runs on a fresh SQLite database and N
clients (asyncio + httpx, in this process) each hold one conversation: every
request streams (SSE) and re-sends the client's whole history, as an ordinary
OpenAI client does, so the server finds the conversation by its history key.
Reported per run: requests/s, time to first token (first content chunk)
p50/p95/p99, and the check that nothing was lost or duplicated: each
conversation, read back through the memory endpoint, holds exactly the
client's messages and the replies it received, seqs 1..n without a gap.

Server overhead: with one client, the median request time through HTTP minus the
median time of the same turn through `Agent.stream` in this process (same
model, same kind of database, same history length). Goal on the scripted model:
<= 5 ms at p50. SmolLM2 replies are capped at `--smollm-tokens` tokens, and each
of its clients sends one request (a 135M model on a CPU takes about a second
per reply, and the queue runs them one at a time).
A benchmark, not a test: read medians and ratios from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HEADER = "X-Recursa-Conversation"


@dataclass
class Run:
    model: str
    clients: int
    requests: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    lost_or_duplicated: int = 0
    checked_messages: int = 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_server(model: str, db_url: str, home: Path) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "recursa.tui.cli",
        "--db",
        db_url,
        "serve",
        "-m",
        model,
        "--port",
        "0",
        "--queue-limit",
        "1000",
        "--request-timeout",
        "600",
    ]
    env = {**os.environ, "RECURSA_HOME": str(home), "RECURSA_RECALL__EMBEDDER": "none"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    while True:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            raise SystemExit(f"recursa serve did not start: {process.stderr.read()}")
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            url = found.group(1)
            break
    # Drain the access log, so a full pipe never blocks the server.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            health = httpx.get(url + "/healthz", timeout=5).json()
            if health["model"]["state"] == "loaded":
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("recursa serve never loaded its model")


async def one_request(
    client: httpx.AsyncClient, model: str, history: list[dict[str, str]], max_tokens: int | None
) -> tuple[int, str, float, float]:
    """One streamed request: (conversation id, reply text, time to first token, total time)."""
    body: dict[str, Any] = {"model": model, "messages": history, "stream": True}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    start = time.perf_counter()
    first: float | None = None
    text = ""
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        cid = int(response.headers[HEADER])
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            for choice in chunk["choices"]:
                piece = choice["delta"].get("content")
                if piece:
                    if first is None:
                        first = time.perf_counter() - start
                    text += piece
    total = time.perf_counter() - start
    return cid, text, first if first is not None else total, total


async def client_session(
    client: httpx.AsyncClient,
    run: Run,
    model: str,
    index: int,
    turns: int,
    max_tokens: int | None,
) -> tuple[int, list[dict[str, str]]]:
    history: list[dict[str, str]] = []
    cid = -1
    for turn in range(turns):
        history.append({"role": "user", "content": f"Client {index}, question {turn}: go on."})
        cid, text, ttft, total = await one_request(client, model, history, max_tokens)
        history.append({"role": "assistant", "content": text})
        run.ttft.append(ttft)
        run.latency.append(total)
        run.requests += 1
    return cid, history


async def load(url: str, model: str, clients: int, turns: int, max_tokens: int | None) -> Run:
    run = Run(model, clients)
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        start = time.perf_counter()
        sessions = await asyncio.gather(
            *(client_session(client, run, model, i, turns, max_tokens) for i in range(clients))
        )
        run.seconds = time.perf_counter() - start
        cids = [cid for cid, _ in sessions]
        run.lost_or_duplicated += len(cids) - len(set(cids))  # two clients on one conversation
        for cid, history in sessions:
            stored = (
                await client.get(
                    f"/v1/recursa/conversations/{cid}/messages", params={"limit": 1000}
                )
            ).json()
            got = [(m["seq"], m["role"], m["content"]) for m in stored]
            want = [(i + 1, h["role"], h["content"]) for i, h in enumerate(history)]
            run.checked_messages += len(stored)
            run.lost_or_duplicated += sum(1 for a, b in zip(got, want, strict=False) if a != b)
            run.lost_or_duplicated += abs(len(got) - len(want))
    return run


def direct_latency(model: str, turns: int, samples: int, max_tokens: int | None) -> list[float]:
    """The same turns through Agent.stream in this process: the baseline of the overhead."""
    from recursa.agent import Agent

    times: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        os.environ["RECURSA_HOME"] = folder
        os.environ["RECURSA_RECALL__EMBEDDER"] = "none"
        overrides = {"max_new_tokens": max_tokens} if max_tokens else {}
        with Agent.open(f"sqlite:///{folder}/direct.db", model, **overrides) as agent:
            agent.load_model()
            for index in range(samples):
                cid = agent.create_conversation()
                for turn in range(turns):
                    start = time.perf_counter()
                    stream = agent.stream(cid, f"Client {index}, question {turn}: go on.")
                    for _ in stream:
                        pass
                    times.append(time.perf_counter() - start)
    return times


def table(runs: list[Run]) -> str:
    lines = [
        "| model | clients | requests | req/s | TTFT p50 ms | p95 ms | p99 ms | messages checked "
        "| lost or duplicated |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.model} | {r.clients} | {r.requests} | {r.requests / r.seconds:.1f} "
            f"| {pct(r.ttft, 50) * 1000:.1f} | {pct(r.ttft, 95) * 1000:.1f} "
            f"| {pct(r.ttft, 99) * 1000:.1f} | {r.checked_messages} | {r.lost_or_duplicated} |"
        )
    return "\n".join(lines)


def bench_model(
    model: str, clients: list[int], turns: int, max_tokens: int | None, overhead_samples: int
) -> tuple[list[Run], str]:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        process, url = start_server(model, f"sqlite:///{home / 'serve.db'}", home)
        try:
            served_model = httpx.get(url + "/v1/models").json()["data"][0]["id"]
            runs = []
            for n in clients:
                runs.append(asyncio.run(load(url, served_model, n, turns, max_tokens)))
                print(table(runs[-1:]).splitlines()[-1], flush=True)
            # The overhead: one client at a time, against Agent.stream directly.
            sequential: list[float] = []
            for _ in range(overhead_samples):
                sequential += asyncio.run(load(url, served_model, 1, turns, max_tokens)).latency
        finally:
            process.terminate()
            process.wait(timeout=60)
    direct = direct_latency(model, turns, overhead_samples, max_tokens)
    http_p50, direct_p50 = statistics.median(sequential), statistics.median(direct)
    note = (
        f"{model}: one client, {len(sequential)} requests: HTTP p50 {http_p50 * 1000:.2f} ms, "
        f"Agent.stream p50 {direct_p50 * 1000:.2f} ms, server overhead p50 "
        f"{(http_p50 - direct_p50) * 1000:.2f} ms"
    )
    return runs, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--turns", type=int, default=3, help="requests per scripted client")
    parser.add_argument("--overhead-samples", type=int, default=20)
    parser.add_argument("--smollm-tokens", type=int, default=16)
    parser.add_argument("--skip-smollm", action="store_true")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    runs, notes = [], []
    scripted_runs, note = bench_model("scripted", clients, args.turns, None, args.overhead_samples)
    runs += scripted_runs
    notes.append(note)
    if not args.skip_smollm:
        smollm_runs, note = bench_model(
            "smollm2-135m", clients, 1, args.smollm_tokens, max(3, args.overhead_samples // 4)
        )
        runs += smollm_runs
        notes.append(note)
    print()
    print(table(runs))
    print()
    for line in notes:
        print(line)


if __name__ == "__main__":
    main()
