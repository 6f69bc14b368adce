"""Many clients, one model: disconnects store interrupted replies, concurrent clients lose and
duplicate nothing, one conversation's turns never interleave, a full queue answers 429."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from recursa.agent.runtime.scripted import ScriptedRuntime

HEADER = "X-Recursa-Conversation"
LONG = " ".join(f"word{i}" for i in range(200))


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition never held")


def assert_contiguous(agent: Any, cid: int) -> list[Any]:
    """Seqs 1..n without gaps, user and assistant alternating (never interleaved)."""
    stored = agent.messages(cid)
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
    assert [m.role for m in stored] == ["user", "assistant"] * (len(stored) // 2)
    return stored


def test_a_client_that_disconnects_mid_stream_leaves_an_interrupted_reply(
    make_agent: Any, serve_agent: Any
) -> None:
    agent = make_agent(ScriptedRuntime(default=LONG, chunk_delay_s=0.02))
    served = serve_agent(agent)
    body = {"model": "scripted", "stream": True, "messages": [{"role": "user", "content": "Go"}]}
    received = ""
    with httpx.stream("POST", served.base_url + "/chat/completions", json=body) as response:
        cid = int(response.headers[HEADER])
        for line in response.iter_lines():
            if line.startswith("data: {"):
                received += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            if received.count("word") >= 3:
                break  # leaving the block closes the connection mid-reply

    reply = wait_for(lambda: next((m for m in agent.messages(cid) if m.role == "assistant"), None))
    assert reply.status == "interrupted"
    assert reply.content.startswith(received) and len(reply.content) < len(LONG)
    trace = agent.trace(reply.id)
    assert trace.usage["finish_reason"] == "cancelled"


def test_twenty_concurrent_clients_each_get_their_reply_stored_once(
    make_agent: Any, serve_agent: Any, openai_client: Any
) -> None:
    agent = make_agent(ScriptedRuntime(default=lambda messages: f"Echo: {messages[-1]['content']}"))
    served = serve_agent(agent, queue_limit=64)
    client = openai_client(served, timeout=60)

    def converse(index: int) -> tuple[str, list[str]]:
        history: list[dict[str, str]] = []
        replies = []
        for turn in range(2):
            history.append({"role": "user", "content": f"client {index} turn {turn}"})
            stream = client.chat.completions.create(model="scripted", messages=history, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            history.append({"role": "assistant", "content": text})
            replies.append(text)
        return f"client {index} turn 0", replies

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(converse, range(20)))

    conversations = agent.list_conversations()
    assert len(conversations) == 20  # each client stayed on its own conversation
    for first, replies in results:
        assert replies == [f"Echo: {first}", f"Echo: {first.replace('turn 0', 'turn 1')}"]
    for conv in conversations:
        stored = assert_contiguous(agent, conv.id)
        assert len(stored) == 4 and all(m.status == "complete" for m in stored)


def test_requests_on_one_conversation_are_serialised(
    make_agent: Any, serve_agent: Any, openai_client: Any
) -> None:
    agent = make_agent(ScriptedRuntime(default="Reply.", chunk_delay_s=0.01))
    served = serve_agent(agent, queue_limit=64)
    cid = agent.create_conversation(title="Busy")
    client = openai_client(served, timeout=60)

    def send(index: int) -> str:
        completion = client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": f"message {index}"}],
            extra_headers={HEADER: str(cid)},
        )
        return str(completion.choices[0].message.content)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(send, range(8))) == ["Reply."] * 8
    stored = assert_contiguous(agent, cid)
    assert sorted(m.content for m in stored if m.role == "user") == sorted(
        f"message {i}" for i in range(8)
    )


def test_a_full_queue_answers_429_with_retry_after_and_writes_nothing(
    make_agent: Any, serve_agent: Any, openai_client: Any
) -> None:
    agent = make_agent(ScriptedRuntime(default=LONG[:300], chunk_delay_s=0.01))
    served = serve_agent(agent, queue_limit=1)
    client = openai_client(served, timeout=60)

    def send(index: int) -> Any:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="scripted", messages=[{"role": "user", "content": f"request {index}"}]
            )
            return int(raw.headers[HEADER])
        except openai.RateLimitError as exc:
            return exc

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(send, range(6)))
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    served_ids = [o for o in outcomes if isinstance(o, int)]
    assert refused and served_ids  # one runs, one waits, the rest are turned away
    for error in refused:
        assert int(error.response.headers["Retry-After"]) >= 1
        assert error.body["code"] == "queue_full"
    conversations = agent.list_conversations()
    assert sorted(c.id for c in conversations) == sorted(served_ids)
    for conv in conversations:
        assert len(assert_contiguous(agent, conv.id)) == 2


def test_a_request_past_its_timeout_stores_the_partial_reply(
    make_agent: Any, serve_agent: Any, openai_client: Any
) -> None:
    agent = make_agent(ScriptedRuntime(default=LONG, chunk_delay_s=0.02))
    served = serve_agent(agent, request_timeout=0.5)
    client = openai_client(served)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "Take your time"}]
        )
    assert caught.value.status_code == 504 and "request_timeout" in caught.value.body["message"]
    (conv,) = agent.list_conversations()
    reply = assert_contiguous(agent, conv.id)[-1]
    assert reply.status == "interrupted" and 0 < len(reply.content) < len(LONG)


def test_shutdown_stops_a_reply_in_flight_and_stores_it(make_agent: Any, serve_agent: Any) -> None:
    agent = make_agent(ScriptedRuntime(default=LONG, chunk_delay_s=0.05))
    served = serve_agent(agent, graceful_timeout=1)
    body = {"model": "scripted", "stream": True, "messages": [{"role": "user", "content": "Go"}]}
    with httpx.stream("POST", served.base_url + "/chat/completions", json=body) as response:
        cid = int(response.headers[HEADER])
        lines = response.iter_lines()
        next(line for line in lines if "word1" in line)
        served.stop()  # what Ctrl-C or SIGTERM does: finish within 1 s, else stop the reply
        with pytest.raises(httpx.RemoteProtocolError):  # the reply could not finish in time
            list(lines)
    reply = assert_contiguous(agent, cid)[-1]
    assert reply.status == "interrupted" and 0 < len(reply.content) < len(LONG)
