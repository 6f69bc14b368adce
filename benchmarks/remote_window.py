"""Manual check: recursa against a real OpenAI-compatible server with a small context window.

Not part of the test suite (it needs a real server). Either give the URL of a
server you started (``--url``), e.g. llama.cpp's own server::

    llama-server -m SmolLM2-135M-Instruct.Q4_1.gguf -c 4096 --port 8080
    python -m benchmarks.remote_window --url http://127.0.0.1:8080/v1

or let it start llama-cpp-python's server (``pip install 'llama-cpp-python[server]'``,
which compiles llama.cpp; ``make bench-reference`` installs it) on the embedded
SmolLM2 GGUF with ``--n_ctx 4096`` (``--n-ctx``)::

    python -m benchmarks.remote_window

Either way it runs in a fresh recursa home (nothing of yours is read or kept) and:

1. shows what recursa discovered (window, where it came from, tokenizer), and what
   ``recursa models -m <spec>`` prints before any prompt was sent;
2. runs a long conversation (enough turns to compact) and sends a long message
   (with the default ``oversized_message = "refuse"``, then with ``"cut"``);
3. for every reply, compares recursa's count of its prompt with the prompt length
   the server reported for it, and with the server's count of the same prompt
   asked again (``--recount``: a plain one-token request, which servers with a
   prefix cache answer without a new prefill), and checks prompt + reply room
   <= window;
4. prints whether any prompt was refused and how the turn recovered (the notes).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(gguf: Path, n_ctx: int, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--n_ctx", str(n_ctx),
        "--port", str(port), "--host", "127.0.0.1", "--model_alias", "smollm2",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1.0)
            return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"The server did not start; see {log}")


def server_count(base_url: str, model: str, messages: list[dict[str, str]]) -> int:
    """The server's own prompt length for `messages` (a one-token plain request)."""
    body = {"model": model, "messages": messages, "max_tokens": 1, "stream": False}
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=600)
    response.raise_for_status()
    return int(response.json()["usage"]["prompt_tokens"])


def long_text(kb: int) -> str:
    paragraph = (
        "The harbour town kept its records in a stone building by the quay. Every ship that "
        "arrived was written down with its cargo, its captain and the weather of the day, and "
        "in the spring of 1843 a clerk named Ada Morel began adding notes about the birds "
        "that nested on the masts. "
    )
    text = ""
    n = 0
    while len(text.encode()) < kb * 1024:
        n += 1
        text += f"[{n}] {paragraph}"
    return text


def recursa_models(spec: str) -> str:
    """What `recursa models -m <spec>` prints about the server model."""
    done = subprocess.run(
        [sys.executable, "-m", "recursa.tui.cli", "models", "-m", spec],
        capture_output=True, text=True, env=os.environ.copy(),
    )  # fmt: skip
    out = done.stdout
    start, end = out.find(f"{spec}:"), out.find("Chat model in use")
    if start < 0 or end < start:
        return out[-1500:] + done.stderr[-800:]
    return " ".join(out[start:end].split())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="base URL of a running server (ends in /v1)")
    parser.add_argument("--model", default="smollm2", help="model name in the spec")
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--message-kb", type=int, default=24)
    parser.add_argument("--n-ctx", type=int, default=4096, help="window of the started server")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--recount", action="store_true", help="ask the server to count again")
    args = parser.parse_args()

    from recursa.agent import Agent
    from recursa.agent.errors import RecursaError
    from recursa.agent.runtime.default_model import default_gguf_path

    home = Path(tempfile.mkdtemp(prefix="recursa-remote-"))
    os.environ["RECURSA_HOME"] = str(home)
    os.environ["RECURSA_RECALL__EMBEDDER"] = "none"
    server: subprocess.Popen[bytes] | None = None
    if args.url:
        base_url = args.url.rstrip("/")
    else:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}/v1"
        server = start_server(default_gguf_path(), args.n_ctx, port, home / "server.log")
    spec = f"openai:{args.model}@{base_url}"
    rows: list[dict[str, Any]] = []
    try:
        print(f"model: {spec}")
        print(f"--- recursa models -m {spec} (before any prompt)")
        print(recursa_models(spec))
        db = f"sqlite:///{home / 'chat.db'}"
        agent = Agent.open(db, spec, max_new_tokens=args.max_new_tokens)
        rt: Any = agent.runtime
        window = rt.context_window
        print(f"server kind: {rt.facts.kind}; window: {window} ({rt.window_source})")
        print(f"tokenizer: {rt.tokenizer_id}")
        cid = agent.create_conversation(title="long conversation")
        text = long_text(2)
        for turn in range(args.turns):
            message = f"Turn {turn}. {text[: 1500 + 40 * turn]} What was the clerk's name?"
            started = time.perf_counter()
            reply = agent.send(cid, message)
            rows.append(_row(base_url, args, reply, f"turn {turn}", time.perf_counter() - started))
        print(f"after the conversation: window {rt.context_window} ({rt.window_source})")
        big = long_text(args.message_kb)
        cid2 = agent.create_conversation(title="long message")
        question = big + "\nWho began adding notes about birds?"
        print(f"{args.message_kb} KB message: {len(question.encode())} bytes")
        try:
            started = time.perf_counter()
            reply = agent.send(cid2, question)
            rows.append(_row(base_url, args, reply, "long message", time.perf_counter() - started))
        except RecursaError as exc:
            print(f"long message, default settings: {type(exc).__name__}: {exc}")
            agent.set_conversation_settings(cid2, {"oversized_message": "cut"})
            started = time.perf_counter()
            reply = agent.send(cid2, question)
            rows.append(
                _row(base_url, args, reply, "long message, cut", time.perf_counter() - started)
            )
        print(f"long message reply: {reply.text!r}")
        window = rt.context_window
        print(f"at the end: window {window} ({rt.window_source})")
        agent.close()
        print(f"--- recursa models -m {spec} (at the end)")
        print(recursa_models(spec))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    worst = max((int(r["server_total"]) for r in rows), default=0)
    for key in ("server_prompt_tokens", "server_recount"):
        exact = sum(1 for r in rows if r["recursa_count"] == r.get(key))
        print(f"recursa's count equal to the server's {key}: {exact}/{len(rows)}")
    print(f"largest prompt + reply room by the server's count: {worst} (window {window})")


def _row(
    base_url: str, args: argparse.Namespace, reply: Any, label: str, seconds: float
) -> dict[str, Any]:
    trace = reply.trace
    reported = trace.usage.get("server_prompt_tokens")
    room = int(trace.params.get("max_new_tokens", 0))
    row: dict[str, Any] = {
        "label": label,
        "status": reply.status,
        "recursa_count": trace.total_tokens,
        "server_prompt_tokens": reported,
        "max_new_tokens": room,
        "server_total": (reported or 0) + room,
        "budget": trace.budget,
        "compactions": len(trace.compactions),
        "seconds": round(seconds, 1),
        "notes": trace.notes,
        "reply": reply.text[:80],
    }
    if args.recount:
        messages = [{"role": m["role"], "content": m["content"]} for m in trace.plan.messages]
        row["server_recount"] = server_count(base_url, args.model, messages)
        if reported is None:  # a server that reports no usage in a stream
            row["server_total"] = row["server_recount"] + room
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    main()
