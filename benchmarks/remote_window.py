"""Manual check: recursa against llama.cpp's Python server with a small context window.

Not part of the test suite (it needs `llama-cpp-python[server]`, which compiles
llama.cpp; `make bench-reference` installs it). It serves the embedded SmolLM2
GGUF with ``--n_ctx 4096`` (or ``--n-ctx``), then:

1. shows what recursa discovered (window, where it came from, tokenizer);
2. runs a long conversation and sends a long message;
3. re-sends each traced prompt to the server without streaming, for one token,
   to read the server's own count of it, and checks prompt + reply room <= window.

    python benchmarks/remote_window.py [--turns 12] [--message-kb 24]
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


def server_count(base_url: str, messages: list[dict[str, str]]) -> int:
    """The server's own prompt length for `messages` (a one-token plain request)."""
    body = {"model": "smollm2", "messages": messages, "max_tokens": 1, "stream": False}
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=300)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--message-kb", type=int, default=24)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()

    from recursa.agent import Agent
    from recursa.agent.runtime.default_model import default_gguf_path

    home = Path(tempfile.mkdtemp(prefix="recursa-remote-"))
    os.environ["RECURSA_HOME"] = str(home)
    os.environ["RECURSA_RECALL__EMBEDDER"] = "none"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    spec = f"openai:smollm2@{base_url}"
    server = start_server(default_gguf_path(), args.n_ctx, port, home / "server.log")
    rows: list[dict[str, object]] = []
    try:
        db = f"sqlite:///{home / 'chat.db'}"
        agent = Agent.open(db, spec, max_new_tokens=args.max_new_tokens)
        rt = agent.runtime
        print(f"model: {spec}")
        print(f"window: {rt.context_window} ({rt.window_source}); tokenizer: {rt.tokenizer_id}")
        cid = agent.create_conversation(title="long conversation")
        text = long_text(2)
        for turn in range(args.turns):
            message = f"Turn {turn}. {text[: 1500 + 40 * turn]} What was the clerk's name?"
            reply = agent.send(cid, message)
            rows.append(_row(agent, base_url, reply, f"turn {turn}"))
        print(f"after the conversation: window {rt.context_window} ({rt.window_source})")
        big = long_text(args.message_kb)
        cid2 = agent.create_conversation(title="long message")
        question = big + "\nWho began adding notes about birds?"
        print(f"{args.message_kb} KB message: {len(question.encode())} bytes")
        try:
            reply = agent.send(cid2, question)
            rows.append(_row(agent, base_url, reply, f"{args.message_kb} KB message"))
        except Exception as exc:  # reported as seen: this is a manual check
            print(f"{args.message_kb} KB message, default settings: {type(exc).__name__}: {exc}")
            agent.set_conversation_settings(cid2, {"oversized_message": "cut"})
            reply = agent.send(cid2, question)
            rows.append(_row(agent, base_url, reply, f"{args.message_kb} KB message, cut"))
        print(f"at the end: window {rt.context_window} ({rt.window_source})")
        agent.close()
        models = subprocess.run(
            [sys.executable, "-m", "recursa.tui.cli", "models", "-m", spec],
            capture_output=True, text=True, env=os.environ.copy(),
        )  # fmt: skip
        print("--- recursa models -m", spec)
        print(models.stdout[-1500:], models.stderr[-800:])
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(rows, indent=1))
    worst = max((int(r["server_total"]) for r in rows), default=0)  # type: ignore[call-overload]
    print(f"largest prompt + reply room by the server's count: {worst} (window {args.n_ctx})")


def _row(agent: object, base_url: str, reply: object, label: str) -> dict[str, object]:
    trace = reply.trace  # type: ignore[attr-defined]
    messages = [{"role": m["role"], "content": m["content"]} for m in trace.plan.messages]
    seen = server_count(base_url, messages)
    room = int(trace.params.get("max_new_tokens", 0))
    row = {
        "label": label,
        "status": reply.status,  # type: ignore[attr-defined]
        "recursa_count": trace.total_tokens,
        "server_count": seen,
        "max_new_tokens": room,
        "server_total": seen + room,
        "compactions": len(trace.compactions),
        "notes": trace.notes,
        "reply": reply.text[:60],  # type: ignore[attr-defined]
    }
    print(row)
    return row


if __name__ == "__main__":
    main()
