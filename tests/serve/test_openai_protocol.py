"""The official openai client against `recursa serve` on the scripted model: replies, streams,
which conversation a request continues, parameter mapping and the 400s for what is unsupported."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from recursa.agent.runtime.scripted import ScriptedRuntime

HEADER = "X-Recursa-Conversation"


def numbered_replies() -> Any:
    """A scripted model whose n-th reply is 'Reply number n.'"""
    count = {"n": 0}

    def reply(messages: Any) -> str:
        count["n"] += 1
        return f"Reply number {count['n']}."

    return reply


@pytest.fixture
def served(make_agent: Any, serve_agent: Any) -> Any:
    runtime = ScriptedRuntime(default=numbered_replies())
    agent = make_agent(runtime)
    server = serve_agent(agent)
    server.agent, server.runtime = agent, runtime
    return server


def test_non_streaming_reply_is_stored_and_names_its_conversation(
    served: Any, openai_client: Any
) -> None:
    client = openai_client(served)
    raw = client.chat.completions.with_raw_response.create(
        model="scripted", messages=[{"role": "user", "content": "Hello there"}]
    )
    completion = raw.parse()
    cid = int(raw.headers[HEADER])
    assert completion.choices[0].message.content == "Reply number 1."
    assert completion.choices[0].finish_reason == "stop"
    stored = served.agent.messages(cid)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "Hello there"),
        ("assistant", "Reply number 1."),
    ]
    trace = served.agent.trace(stored[1].id)
    assert completion.usage.prompt_tokens == trace.total_tokens
    assert completion.usage.completion_tokens == trace.usage["completion_tokens"]


def test_stream_yields_the_stored_reply_and_a_final_usage_chunk(
    served: Any, openai_client: Any
) -> None:
    client = openai_client(served)
    chunks = list(
        client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "Stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Reply number 1."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    (conv,) = served.agent.list_conversations()
    reply = served.agent.messages(conv.id)[-1]
    assert reply.content == text and reply.status == "complete"
    assert (
        chunks[-1].usage.completion_tokens
        == served.agent.trace(reply.id).usage["completion_tokens"]
    )


def test_a_client_replaying_its_history_stays_on_one_conversation(
    served: Any, openai_client: Any
) -> None:
    """Only each new user message is stored; the model sees recursa's prompt, not the replay."""
    client = openai_client(served)
    history: list[dict[str, str]] = [{"role": "system", "content": "Be brief."}]
    for question in ("First question?", "Second question?", "Third question?"):
        history.append({"role": "user", "content": question})
        reply = client.chat.completions.create(model="scripted", messages=history)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    (conv,) = served.agent.list_conversations()
    assert conv.system_prompt == "Be brief."
    stored = [(m.role, m.content) for m in served.agent.messages(conv.id)]
    assert stored == [(h["role"], h["content"]) for h in history[1:]]
    # The last prompt came from memory: system prompt, the stored window, the new message.
    last = served.runtime.calls[-1].messages
    assert last[0]["role"] == "system" and "Be brief." in last[0]["content"]
    assert last[-1] == {"role": "user", "content": "Third question?"}


def test_a_history_that_matches_nothing_starts_a_conversation_seeded_with_it(
    served: Any, openai_client: Any
) -> None:
    client = openai_client(served)
    client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "A"}])
    edited = [
        {"role": "user", "content": "A"},
        {"role": "assistant", "content": "An answer the server never gave."},
        {"role": "user", "content": "B"},
    ]
    raw = client.chat.completions.with_raw_response.create(model="scripted", messages=edited)
    cid = int(raw.headers[HEADER])
    assert len(served.agent.list_conversations()) == 2
    assert [m.content for m in served.agent.messages(cid)] == [
        "A",
        "An answer the server never gave.",
        "B",
        "Reply number 2.",
    ]


def test_the_header_or_metadata_chooses_the_conversation(served: Any, openai_client: Any) -> None:
    client = openai_client(served)
    cid = served.agent.create_conversation(title="Chosen")
    client.chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "Via header"}],
        extra_headers={HEADER: str(cid)},
    )
    client.chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "Via metadata"}],
        metadata={"conversation_id": str(cid)},
    )
    assert [m.content for m in served.agent.messages(cid)] == [
        "Via header",
        "Reply number 1.",
        "Via metadata",
        "Reply number 2.",
    ]
    assert len(served.agent.list_conversations()) == 1
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "Nowhere"}],
            extra_headers={HEADER: "999"},
        )


def test_generation_parameters_reach_the_model(served: Any, openai_client: Any) -> None:
    served.runtime.push("one two three four five six seven eight nine ten")
    client = openai_client(served)
    completion = client.chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "Count"}],
        max_tokens=3,
        temperature=0.7,
        top_p=0.9,
        seed=42,
        stop=["END"],
    )
    params = served.runtime.calls[-1].params
    assert (params.max_new_tokens, params.temperature, params.top_p, params.seed) == (
        3,
        0.7,
        0.9,
        42,
    )
    assert params.stop == ("END",)
    assert completion.choices[0].message.content == "one two"  # 3 word tokens: one, ' ', two
    assert completion.choices[0].finish_reason == "length"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"extra_body": {"guided_json": {}}}, "guided_json"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_unsupported_fields_are_refused_by_name_and_nothing_is_written(
    served: Any, openai_client: Any, kwargs: dict[str, Any], param: str
) -> None:
    client = openai_client(served)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "Hi"}], **kwargs
        )
    error = caught.value.body
    assert error["param"] == param and param in error["message"]
    assert served.agent.list_conversations(include_archived=True) == []


def test_bad_messages_and_unknown_models_get_openai_errors(served: Any, openai_client: Any) -> None:
    client = openai_client(served)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="scripted",
            messages=[{"role": "tool", "content": "x", "tool_call_id": "1"}],  # type: ignore[list-item]
        )
    assert caught.value.body["param"] == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="scripted", messages=[{"role": "assistant", "content": "I spoke last"}]
        )
    assert caught.value.body["param"] == "messages"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert "scripted" in caught.value.body["message"]
    assert [m.id for m in client.models.list()] == ["scripted"]
    assert served.agent.list_conversations(include_archived=True) == []
