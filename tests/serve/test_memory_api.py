"""The memory endpoints: conversations, messages, search, prompt, trace, summaries, export."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from recursa.agent.runtime.scripted import ScriptedRuntime


@pytest.fixture
def api(make_agent: Any, serve_agent: Any) -> Any:
    agent = make_agent(ScriptedRuntime(default="Porto is lovely."))
    served = serve_agent(agent)
    client = httpx.Client(base_url=served.base_url + "/recursa")
    client.agent = agent  # type: ignore[attr-defined]
    client.served = served  # type: ignore[attr-defined]
    yield client
    client.close()


def test_conversation_lifecycle(api: Any) -> None:
    created = api.post("/conversations", json={"title": "Trip", "system_prompt": "Be kind."})
    assert created.status_code == 201
    cid = created.json()["id"]
    assert api.agent.get_conversation(cid).system_prompt == "Be kind."
    renamed = api.patch(f"/conversations/{cid}", json={"title": "Porto trip"}).json()
    assert renamed["title"] == "Porto trip"
    assert api.patch(f"/conversations/{cid}", json={"archived": True}).json()["archived"]
    assert api.get("/conversations").json() == []
    listed = api.get("/conversations", params={"include_archived": True}).json()
    assert [c["id"] for c in listed] == [cid]
    assert api.delete(f"/conversations/{cid}").status_code == 204
    assert api.get(f"/conversations/{cid}").status_code == 404
    error = api.post("/conversations", json={"title": "x", "colour": "red"})
    assert error.status_code == 400 and error.json()["error"]["param"] == "colour"


def test_messages_search_prompt_trace_and_summaries(api: Any) -> None:
    agent = api.agent
    cid = agent.create_conversation(title="Notes")
    for text in ("My sister lives in Porto.", "She works at the harbour.", "Any plans?"):
        agent.send(cid, text)
    page = api.get(f"/conversations/{cid}/messages", params={"limit": 2, "after_seq": 2}).json()
    assert [m["seq"] for m in page] == [3, 4]
    newest = api.get(
        f"/conversations/{cid}/messages", params={"limit": 2, "newest_first": True}
    ).json()
    assert [m["seq"] for m in newest] == [6, 5]
    hits = api.get("/search", params={"q": "harbour"}).json()
    assert [(h["conversation_id"], h["seq"]) for h in hits] == [(cid, 3)]
    plan = api.post(f"/conversations/{cid}/prompt", json={"text": "Where is she?"}).json()
    assert plan["messages"][-1] == {"role": "user", "content": "Where is she?"}
    assert plan["total_tokens"] <= plan["budget"]
    assert agent.get_conversation(cid).message_count == 6  # a preview stores nothing
    reply_id = agent.messages(cid)[-1].id
    trace = api.get(f"/messages/{reply_id}/trace").json()
    assert trace["message_id"] == reply_id and trace["plan"]["messages"][-1]["content"] == (
        "Any plans?"
    )
    assert api.get(f"/conversations/{cid}/summaries").json() == []
    assert api.get("/messages/1/trace").status_code == 404  # a user message has no trace


def test_export_and_import_in_the_cli_formats(api: Any) -> None:
    agent = api.agent
    cid = agent.create_conversation(title="Round trip")
    agent.send(cid, "Remember the blue door.")
    exported = api.get(f"/conversations/{cid}/export")
    assert exported.headers["content-type"].startswith("application/json")
    imported = api.post("/conversations/import", content=exported.content).json()
    (new_id,) = imported["conversation_ids"]
    assert imported["format"] == "json"
    assert [(m.role, m.content) for m in agent.messages(new_id)] == [
        (m.role, m.content) for m in agent.messages(cid)
    ]
    jsonl = api.get(f"/conversations/{cid}/export", params={"format": "jsonl"}).text
    # The same content again is recognised and skipped, as in the CLI, unless asked.
    skipped = api.post(
        "/conversations/import", params={"format": "jsonl"}, content=jsonl.encode()
    ).json()
    assert skipped["conversation_ids"] == []
    assert any("imported before" in note for note in skipped["notes"])
    again = api.post(
        "/conversations/import", params={"format": "jsonl", "again": "true"}, content=jsonl.encode()
    ).json()
    assert len(again["conversation_ids"]) == 1
    markdown = api.get(f"/conversations/{cid}/export", params={"format": "md"}).text
    assert "blue door" in markdown
    bad = api.post("/conversations/import", content=b'{"messages": [{"role": "robot"}]}')
    assert bad.status_code == 400
    assert len(agent.list_conversations()) == 3  # the bad import wrote nothing


def test_openapi_document_describes_both_apis(api: Any) -> None:
    document = httpx.get(api.served.url + "/openapi.json").json()
    paths = document["paths"]
    assert "/v1/chat/completions" in paths and "/v1/recursa/conversations" in paths
    schemas = document["components"]["schemas"]
    assert {"ConversationRecord", "MessageRecord", "PromptPlan", "PromptTrace"} <= set(schemas)
    assert json.dumps(document)  # serialisable as it is served
