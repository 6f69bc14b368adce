"""Keys, scopes and limits: 401 for a missing or wrong key, 404 for another key's conversation,
admin keys see all, 413 for big bodies, CORS off unless configured, no open bind without a key."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from recursa.agent.runtime.scripted import ScriptedRuntime

HEADER = "X-Recursa-Conversation"
KEYS = {"api_keys": ["alpha-key", "beta-key"], "admin_keys": ["root-key"]}


@pytest.fixture
def served(make_agent: Any, serve_agent: Any) -> Any:
    agent = make_agent(ScriptedRuntime(default="Noted."))
    server = serve_agent(agent, **KEYS)
    server.agent = agent
    return server


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def counts(agent: Any) -> tuple[int, int]:
    """Conversations and stored messages, to show that a refused request wrote nothing."""
    convs = agent.list_conversations(include_archived=True)
    return len(convs), sum(c.message_count for c in convs)


def test_missing_or_wrong_keys_get_401_and_touch_nothing(served: Any, openai_client: Any) -> None:
    before = counts(served.agent)
    for key in (None, "wrong-key", "alpha-kez"):  # the last differs by one character
        headers = auth(key) if key else {}
        chat = httpx.post(
            served.base_url + "/chat/completions",
            json={"model": "scripted", "messages": [{"role": "user", "content": "Hi"}]},
            headers=headers,
        )
        assert chat.status_code == 401, key
        assert chat.json()["error"]["code"] == "invalid_api_key"
        listing = httpx.get(served.base_url + "/recursa/conversations", headers=headers)
        assert listing.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai_client(served, api_key="wrong-key").models.list()
    assert counts(served.agent) == before
    assert httpx.get(served.url + "/healthz").status_code == 200  # health needs no key


def test_another_keys_conversation_is_invisible_and_cannot_be_continued(
    served: Any, openai_client: Any
) -> None:
    alpha = openai_client(served, api_key="alpha-key")
    beta = openai_client(served, api_key="beta-key")
    raw = alpha.chat.completions.with_raw_response.create(
        model="scripted", messages=[{"role": "user", "content": "Alpha's secret plan"}]
    )
    cid = int(raw.headers[HEADER])
    reply_id = served.agent.messages(cid)[-1].id
    before = counts(served.agent)

    with pytest.raises(openai.NotFoundError):
        beta.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "Let me in"}],
            extra_headers={HEADER: str(cid)},
        )
    base, headers = served.base_url + "/recursa", auth("beta-key")
    for path in (
        f"/conversations/{cid}",
        f"/conversations/{cid}/messages",
        f"/conversations/{cid}/summaries",
        f"/conversations/{cid}/export",
        f"/messages/{reply_id}/trace",
    ):
        assert httpx.get(base + path, headers=headers).status_code == 404, path
    assert httpx.delete(base + f"/conversations/{cid}", headers=headers).status_code == 404
    assert (
        httpx.patch(base + f"/conversations/{cid}", json={"title": "x"}, headers=headers)
    ).status_code == 404
    assert httpx.get(base + "/conversations", headers=headers).json() == []
    found = httpx.get(base + "/search", params={"q": "secret"}, headers=headers).json()
    assert found == []
    assert counts(served.agent) == before
    assert served.agent.get_conversation(cid).title == "Alpha's secret plan"

    # Beta replaying alpha's exact history gets a conversation of its own.
    history = [
        {"role": "user", "content": "Alpha's secret plan"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "And then?"},
    ]
    raw = beta.chat.completions.with_raw_response.create(model="scripted", messages=history)
    assert int(raw.headers[HEADER]) != cid
    assert served.agent.get_conversation(cid).message_count == 2

    # Alpha still sees and continues its own; the admin key sees and continues every one.
    alpha_hits = httpx.get(base + "/search", params={"q": "secret"}, headers=auth("alpha-key"))
    assert [h["conversation_id"] for h in alpha_hits.json()] == [cid]
    root = openai_client(served, api_key="root-key")
    root.chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "Admin here"}],
        extra_headers={HEADER: str(cid)},
    )
    assert served.agent.get_conversation(cid).message_count == 4
    listed = httpx.get(base + "/conversations", headers=auth("root-key")).json()
    assert len(listed) == 2


def test_bodies_over_the_limit_get_413_before_parsing(make_agent: Any, serve_agent: Any) -> None:
    agent = make_agent(ScriptedRuntime())
    served = serve_agent(agent, api_keys=["k"], max_body_bytes=2048)
    big = {"model": "scripted", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = httpx.post(served.base_url + "/chat/completions", json=big, headers=auth("k"))
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["error"]["message"]
    # Without a valid key the answer is 401 even for a big body: nothing is read first.
    assert httpx.post(served.base_url + "/chat/completions", json=big).status_code == 401

    # A chunked body (no Content-Length) is counted as it arrives.
    def chunks() -> Any:
        for _ in range(5):
            yield b"x" * 1000

    chunked = httpx.post(served.base_url + "/chat/completions", content=chunks(), headers=auth("k"))
    assert chunked.status_code == 413
    assert agent.list_conversations(include_archived=True) == []


def test_cors_is_off_unless_origins_are_configured(make_agent: Any, serve_agent: Any) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    closed = serve_agent(make_agent(ScriptedRuntime()))
    answer = httpx.options(closed.base_url + "/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in answer.headers
    opened = serve_agent(make_agent(ScriptedRuntime()), cors_origins=["https://app.example"])
    answer = httpx.options(opened.base_url + "/chat/completions", headers=preflight)
    assert answer.headers["access-control-allow-origin"] == "https://app.example"


def test_listening_beyond_loopback_needs_a_key(sqlite_url: str) -> None:
    from click.testing import CliRunner
    from recursa.tui.cli import cli

    result = CliRunner().invoke(
        cli, ["--db", sqlite_url, "serve", "-m", "scripted", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2
    assert "set an API key" in result.output and "--api-key" in result.output
