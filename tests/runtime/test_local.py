"""The local runtime on the real SmolLM2-135M-Instruct: counting, greedy decoding, streaming,
cancel, KV prefix reuse and its fallback, stop strings, sampling, thread safety."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from recursa.agent.errors import InvalidInputError
from recursa.agent.runtime.protocol import CancelToken, ChatMessage, GenerationParams

pytestmark = pytest.mark.model

GREEDY = GenerationParams(max_new_tokens=24)
QUESTION: list[ChatMessage] = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Name three colours of the rainbow."},
]


def _tokenizer(runtime: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(runtime.load_info.path)


def _template_len(tokenizer: Any, messages: list[ChatMessage]) -> int:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return len(ids)


def test_count_tokens_equals_chat_template_length(smollm: Any) -> None:
    """count_tokens is exactly the length of the templated prompt with the generation prompt."""
    tokenizer = _tokenizer(smollm)
    cases: list[list[ChatMessage]] = [
        [{"role": "user", "content": "Hi"}],
        QUESTION,
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Ünïcödé, emoji 🦊 and  double  spaces\n\nnew lines."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": ""},
        ],
    ]
    for messages in cases:
        assert smollm.count_tokens(messages) == _template_len(tokenizer, messages)
    text = "The quick brown fox 🦊 jumps."
    assert smollm.count_text(text) == len(tokenizer.encode(text, add_special_tokens=False))
    assert smollm.count_text("") == 0


def test_identity_properties(smollm: Any) -> None:
    """name, context window and a tokenizer id that names the tokenizer and template."""
    assert smollm.name == "smollm2-135m"
    assert smollm.context_window == 8192
    assert smollm.tokenizer_id.startswith("hf:") and ":49152:" in smollm.tokenizer_id


def test_greedy_output_is_stable_nonempty_english(smollm: Any) -> None:
    """Two greedy runs of the same prompt give the same non-empty English text."""
    first = smollm.stream(QUESTION, GREEDY).complete()
    second = smollm.stream(QUESTION, GREEDY).complete()
    assert first.text == second.text
    assert re.search(r"[A-Za-z]{3,}", first.text)
    assert first.usage.completion_tokens > 0
    assert first.usage.prompt_tokens == smollm.count_tokens(QUESTION)
    assert first.usage.prefill_tokens == first.usage.prompt_tokens
    assert first.usage.finish_reason in ("eos", "length")
    assert first.usage.time_to_first_token_s is not None


def test_streaming_chunks_join_to_the_complete_text(smollm: Any) -> None:
    """Iterating the stream yields several chunks whose concatenation is the whole reply."""
    whole = smollm.stream(QUESTION, GREEDY).complete().text
    stream = smollm.stream(QUESTION, GREEDY)
    chunks = list(stream)
    assert len(chunks) > 1
    assert "".join(chunks) == whole
    assert stream.usage is not None and stream.usage.completion_tokens > 1


def test_max_new_tokens_ends_with_length(smollm: Any) -> None:
    """A reply cut by max_new_tokens has exactly that many tokens and finish_reason 'length'."""
    messages: list[ChatMessage] = [{"role": "user", "content": "Tell me a long story."}]
    completion = smollm.stream(messages, GenerationParams(max_new_tokens=5)).complete()
    assert completion.usage.completion_tokens == 5
    assert completion.usage.finish_reason == "length"


def test_stop_string_ends_the_reply_before_it(smollm: Any) -> None:
    """A stop string cuts the reply just before it and is not emitted itself."""
    reference = smollm.stream(QUESTION, GREEDY).complete().text
    words = re.findall(r"[A-Za-z]{4,}", reference)
    assert words, reference
    stop = words[len(words) // 2]
    completion = smollm.stream(QUESTION, GREEDY.model_copy(update={"stop": (stop,)})).complete()
    assert completion.usage.finish_reason == "stop"
    assert completion.text == reference[: reference.index(stop)]
    assert stop not in completion.text


def test_cancel_mid_stream_then_generate_again(smollm: Any) -> None:
    """Cancelling from another thread ends the stream as 'cancelled'; the next call is normal."""
    reference = smollm.stream(QUESTION, GREEDY).complete().text
    token = CancelToken()
    stream = smollm.stream(QUESTION, GREEDY, cancel=token, cache_key="cancel-test")
    received = [next(stream)]
    worker = threading.Thread(target=token.cancel)
    worker.start()
    worker.join()
    received.extend(stream)
    assert stream.usage is not None and stream.usage.finish_reason == "cancelled"
    assert reference.startswith("".join(received))
    assert smollm.stream(QUESTION, GREEDY).complete().text == reference
    # The cancelled call's cache stays valid for the same conversation.
    again = smollm.stream(QUESTION, GREEDY, cache_key="cancel-test").complete()
    assert again.text == reference
    assert again.usage.reused_tokens > 0


def test_closing_a_stream_early_leaves_the_runtime_usable(smollm: Any) -> None:
    """Abandoning a stream after one chunk releases the runtime for the next call."""
    reference = smollm.stream(QUESTION, GREEDY).complete().text
    stream = smollm.stream(QUESTION, GREEDY)
    next(stream)
    stream.close()
    assert smollm.stream(QUESTION, GREEDY).complete().text == reference


def _second_turn(first_reply: str) -> list[ChatMessage]:
    return [
        *QUESTION,
        {"role": "assistant", "content": first_reply},
        {"role": "user", "content": "Which of them is your favourite, and why?"},
    ]


def test_kv_reuse_matches_full_prefill_and_prefills_less(smollm: Any) -> None:
    """With a cache key the second turn reuses the first turn's KV cache and says the same."""
    key = "reuse-test"
    smollm.forget(key)
    first = smollm.stream(QUESTION, GREEDY, cache_key=key).complete()
    turn2 = _second_turn(first.text)
    reused = smollm.stream(turn2, GREEDY, cache_key=key).complete()
    fresh = smollm.stream(turn2, GREEDY).complete()
    assert reused.text == fresh.text
    assert reused.usage.prompt_tokens == fresh.usage.prompt_tokens
    assert fresh.usage.prefill_tokens == fresh.usage.prompt_tokens
    # Everything up to the first reply is served from the cache.
    assert reused.usage.reused_tokens >= first.usage.prompt_tokens
    assert reused.usage.prefill_tokens < fresh.usage.prefill_tokens
    assert reused.usage.reused_tokens + reused.usage.prefill_tokens == reused.usage.prompt_tokens


def test_changed_prefix_falls_back_to_a_correct_prefill(smollm: Any) -> None:
    """When the start of the prompt changes, the cache is cropped and the output is still right."""
    key = "prefix-test"
    smollm.forget(key)
    smollm.stream(QUESTION, GREEDY, cache_key=key).complete()
    changed: list[ChatMessage] = [
        {"role": "system", "content": "You answer like a pirate."},
        QUESTION[1],
    ]
    reused = smollm.stream(changed, GREEDY, cache_key=key).complete()
    fresh = smollm.stream(changed, GREEDY).complete()
    assert reused.text == fresh.text
    # Only the tokens before the system text differs ("<|im_start|>system\n") are reused.
    assert 0 < reused.usage.reused_tokens < 5
    assert reused.usage.prefill_tokens == reused.usage.prompt_tokens - reused.usage.reused_tokens
    # Same prompt again: all but the last prompt token comes from the cache.
    repeat = smollm.stream(changed, GREEDY, cache_key=key).complete()
    assert repeat.text == fresh.text
    assert repeat.usage.prefill_tokens == 1


def test_cached_conversations_are_bounded(smollm: Any) -> None:
    """Only the most recently used conversations keep a KV cache."""
    short = GenerationParams(max_new_tokens=1)
    for index in range(6):
        smollm.stream(QUESTION, short, cache_key=f"lru-{index}").complete()
    keys = smollm.cached_keys()
    assert len(keys) == 4
    assert keys[-1] == "lru-5" and "lru-0" not in keys


def test_seeded_sampling_is_reproducible(smollm: Any) -> None:
    """temperature/top_p sampling with the same seed repeats; penalties keep it working."""
    params = GenerationParams(
        max_new_tokens=16,
        temperature=0.9,
        top_p=0.9,
        seed=7,
        repetition_penalty=1.3,
        no_repeat_ngram_size=3,
    )
    first = smollm.stream(QUESTION, params).complete()
    second = smollm.stream(QUESTION, params).complete()
    assert first.text == second.text and first.text


def test_no_repeat_ngram_forbids_repeated_trigrams(smollm: Any) -> None:
    """With no_repeat_ngram_size=3 no token trigram occurs twice in prompt plus reply."""
    messages: list[ChatMessage] = [{"role": "user", "content": "Repeat 'la la la' many times."}]
    params = GenerationParams(max_new_tokens=24, no_repeat_ngram_size=3)
    text = smollm.stream(messages, params).complete().text
    prompt = smollm.prompt_ids(messages)
    reply = smollm._tokenizer.encode(text, add_special_tokens=False)
    ids = prompt + reply
    grams = [tuple(ids[i : i + 3]) for i in range(len(ids) - 2)]
    # Re-tokenizing the text may merge tokens differently; the reply's own trigrams must be new.
    reply_grams = grams[len(prompt) - 2 :]
    assert len(set(reply_grams)) == len(reply_grams)


def test_concurrent_calls_are_serialized_and_correct(smollm: Any) -> None:
    """Two threads generating at once both get the same text a lone call gets."""
    reference = smollm.stream(QUESTION, GREEDY).complete().text
    results: list[str] = []

    def worker() -> None:
        results.append(smollm.stream(QUESTION, GREEDY).complete().text)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [reference, reference]


def test_prompt_longer_than_the_window_is_refused(smollm: Any) -> None:
    """A prompt that cannot fit the context window raises InvalidInputError before decoding."""
    huge: list[ChatMessage] = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(InvalidInputError, match="8192"):
        smollm.stream(huge, GREEDY).complete()
    assert smollm.stream(QUESTION, GenerationParams(max_new_tokens=2)).complete().text


@pytest.fixture(scope="module")
def float32_model(smollm: Any) -> Iterator[Any]:
    """The same converted model held in float32: the reference for the quantized precisions."""
    from recursa.agent.runtime.local import load_local

    runtime = load_local(smollm.load_info.path, name="smollm2-f32", precision="float32")
    yield runtime
    runtime.close()


def _logits(runtime: Any, ids: list[int], *steps: int) -> Any:
    """Last-position logits of `ids` fed in pieces of the given sizes, then one at a time."""
    import torch

    engine = runtime._engine
    state = engine.new_state()
    with torch.inference_mode():
        start = 0
        for size in steps:
            engine.forward(state, ids[start : start + size])
            start += size
        logits = None
        for token in ids[start:]:
            logits = engine.forward(state, [token])
    return logits


def test_default_precision_follows_the_gguf_quantization(smollm: Any) -> None:
    """The embedded Q4_1 model runs with int4 weights on CPU; a plain folder in float32."""
    from recursa.agent.runtime.local import default_precision
    from recursa.agent.runtime.local.llama import int4_available

    assert smollm.load_info.precision == ("int4" if int4_available() else "int8")
    assert default_precision("cpu", None) == "float32"
    assert default_precision("cuda", None) == "bfloat16"


def test_lean_engine_matches_transformers_logits(float32_model: Any) -> None:
    """The in-place Llama engine in float32 computes the transformers model's logits."""
    import torch
    from transformers import AutoModelForCausalLM

    assert float32_model.load_info.engine == "llama-inplace"
    model = AutoModelForCausalLM.from_pretrained(float32_model.load_info.path).eval()
    ids = float32_model.prompt_ids(QUESTION)
    with torch.inference_mode():
        expected = model(torch.tensor([ids])).logits[0, -1].float()
    got = _logits(float32_model, ids, 10, len(ids) - 11)  # a prefix, a chunk, one token
    assert torch.allclose(got, expected, atol=1e-2, rtol=0)
    assert int(got.argmax()) == int(expected.argmax())


def test_int4_keeps_the_gguf_weights_and_float32_text(smollm: Any, float32_model: Any) -> None:
    """int4 re-packs the Q4_1 codes: logits stay near float32's and the greedy text is the same."""
    ids = smollm.prompt_ids(QUESTION)
    quantized = _logits(smollm, ids, len(ids) - 1)
    reference = _logits(float32_model, ids, len(ids) - 1)
    assert float((quantized - reference).abs().max()) < 0.5
    assert int(quantized.argmax()) == int(reference.argmax())
    expected = float32_model.stream(QUESTION, GREEDY).complete().text
    assert smollm.stream(QUESTION, GREEDY).complete().text == expected


@pytest.mark.parametrize("precision", ["int4", "int8"])
def test_quantized_prefill_and_decode_give_the_same_bits(smollm: Any, precision: str) -> None:
    """A token prefilled in a short batch or decoded alone gets bit-identical logits.

    With 16-bit activations a rounding apart can grow into a different greedy
    token, so reuse equals a full prefill only if the arithmetic is the same.
    int4 prefills long batches (`fast_prefill_min()` tokens or more) with unpacked
    dense weights instead: those logits differ by rounding only (see
    test_fast_int4_prefill_keeps_the_greedy_text), and the text is unchanged.
    """
    import torch
    from recursa.agent.runtime.local import load_local
    from recursa.agent.runtime.local.llama import fast_prefill_min

    runtime = smollm
    if smollm.load_info.precision != precision:
        runtime = load_local(
            smollm.load_info.path, name=f"smollm2-{precision}", precision=precision
        )
    try:
        ids = runtime.prompt_ids(_second_turn("Red, orange and yellow are three of them."))
        full = _logits(runtime, ids)  # every token decoded alone
        assert full is not None
        fast = precision == "int4"
        for steps in [(7,), (7, 19), (len(ids) - 3,), (1, len(ids) - 2)]:
            got = _logits(runtime, ids, *steps)
            if fast and max(steps) >= fast_prefill_min():
                assert float((got - full).abs().max()) < 0.5, steps
                assert int(got.argmax()) == int(full.argmax()), steps
            else:
                assert torch.equal(got, full), steps
        key = f"{precision}-reuse"
        runtime.forget(key)
        first = runtime.stream(QUESTION, GREEDY, cache_key=key).complete()
        turn2 = _second_turn(first.text)
        reused = runtime.stream(turn2, GREEDY, cache_key=key).complete()
        assert reused.usage.reused_tokens >= first.usage.prompt_tokens
        assert reused.text == runtime.stream(turn2, GREEDY).complete().text
    finally:
        if runtime is not smollm:
            runtime.close()


def test_int8_precision_decodes_the_same_first_word_as_float32(float32_model: Any) -> None:
    """The opt-in int8 weights give a coherent reply starting like float32's."""
    from recursa.agent.runtime.local import load_local

    reference = float32_model.stream(QUESTION, GREEDY).complete()
    fast = load_local(float32_model.load_info.path, name="smollm2-int8", precision="int8")
    try:
        assert fast.load_info.precision == "int8"
        first = fast.stream(QUESTION, GREEDY).complete()
        second = fast.stream(QUESTION, GREEDY).complete()
        assert first.text == second.text and re.search(r"[A-Za-z]{3,}", first.text)
        assert first.text.split()[0] == reference.text.split()[0]
        assert first.usage.prompt_tokens == reference.usage.prompt_tokens
    finally:
        fast.close()


def test_float16w_keeps_reuse_identical_and_matches_float32(float32_model: Any) -> None:
    """float16 weights with float32 activations: reuse equals a full prefill, text as float32."""
    import torch
    from recursa.agent.runtime.local import load_local
    from recursa.agent.runtime.local.llama import float16_weights_available
    from recursa.agent.runtime.options import RuntimeOptions

    if not float16_weights_available():
        pytest.skip("this torch build has no fbgemm float16 kernel")
    options = RuntimeOptions(precision="float16w")  # chosen through the options, as specs do
    fast = load_local(float32_model.load_info.path, name="smollm2-f16w", options=options)
    try:
        assert fast.load_info.precision == "float16w"
        assert fast.load_info.engine == "llama-inplace"
        key = "f16w-reuse"
        first = fast.stream(QUESTION, GREEDY, cache_key=key).complete()
        assert first.text == float32_model.stream(QUESTION, GREEDY).complete().text
        turn2 = _second_turn(first.text)
        reused = fast.stream(turn2, GREEDY, cache_key=key).complete()
        fresh = fast.stream(turn2, GREEDY).complete()
        assert reused.usage.reused_tokens >= first.usage.prompt_tokens
        assert reused.text == fresh.text == float32_model.stream(turn2, GREEDY).complete().text

        # Token by token after a prefix vs one prefill: float32-level agreement.
        ids = float32_model.prompt_ids(turn2)
        full = _logits(fast, ids, len(ids) - 1)
        stepped = _logits(fast, ids, 8)
        exact = _logits(float32_model, ids, len(ids) - 1)
        assert float((full - stepped).abs().max()) < 1e-3
        assert float((full - exact).abs().max()) < 0.2
        assert int(full.argmax()) == int(exact.argmax())
        assert torch.isfinite(full).all()
    finally:
        fast.close()


def test_unknown_precision_is_refused(smollm: Any) -> None:
    """A precision the runtime does not know raises InvalidInputError naming the choices."""
    from recursa.agent.runtime.local import load_local

    with pytest.raises(InvalidInputError, match="float16w"):
        load_local(smollm.load_info.path, precision="float8")


LONG_QUESTION: list[ChatMessage] = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {
        "role": "user",
        "content": " ".join(
            f"Note {i}: the {colour} box holds {i * 3} marbles."
            for i, colour in enumerate(["red", "blue", "green", "yellow", "white"] * 12)
        )
        + " Which colours of boxes did I list?",
    },
]


def _prefilled(runtime: Any, messages: list[ChatMessage]) -> Any:
    """The last-position logits of the whole prompt prefilled in one forward call."""
    import torch

    engine = runtime._engine
    with torch.inference_mode():
        return engine.forward(engine.new_state(), runtime.prompt_ids(messages))


def test_fast_int4_prefill_keeps_the_greedy_text(smollm: Any) -> None:
    """The fast int4 prefill (unpacked dense weights) gives the greedy text of the exact path.

    Also bounds the largest logit difference between the two on the test prompts.
    """
    import torch

    engine = smollm._engine
    if getattr(engine, "_fast_prefill", None) is None:
        pytest.skip("no fast int4 prefill on this torch build")
    prompts = [QUESTION, _second_turn("Red, orange and yellow are three of them."), LONG_QUESTION]
    fast_texts = [smollm.stream(p, GREEDY).complete().text for p in prompts]
    fast_logits = [_prefilled(smollm, p) for p in prompts]
    saved, engine._fast_prefill = engine._fast_prefill, None
    try:
        exact_texts = [smollm.stream(p, GREEDY).complete().text for p in prompts]
        exact_logits = [_prefilled(smollm, p) for p in prompts]
    finally:
        engine._fast_prefill = saved
    assert len(smollm.prompt_ids(LONG_QUESTION)) > 500
    assert fast_texts == exact_texts
    for fast, exact in zip(fast_logits, exact_logits, strict=True):
        assert float((fast - exact).abs().max()) < 0.75
        assert int(fast.argmax()) == int(exact.argmax())
    assert not all(torch.equal(f, e) for f, e in zip(fast_logits, exact_logits, strict=True))


def test_a_forward_pass_asked_to_yield_leaves_the_cache_as_it_was(smollm: Any) -> None:
    """Background prefill gives the model up between layers; the KV state is then unchanged.

    The interrupted chunk is computed again later: the logits then equal those
    of an uninterrupted pass, so a turn never sees half a chunk.
    """
    import torch

    engine = smollm._engine
    ids = smollm.prompt_ids(_second_turn("Red, orange and yellow are three of them."))
    head, tail = ids[:9], ids[9:]
    asked: list[int] = []

    def after_five_layers() -> bool:
        asked.append(1)
        return len(asked) > 5

    with torch.inference_mode():
        reference = engine.forward(engine.new_state(), ids)
        state = engine.new_state()
        engine.forward(state, head)
        assert engine.forward(state, tail, yield_to=after_five_layers) is None
        assert len(asked) == 6 and state.ids == head
        resumed = engine.forward(state, tail, yield_to=lambda: False)
    # Short batches take the exact path: the same bits as one uninterrupted call.
    assert resumed is not None and state.ids == ids
    assert torch.equal(resumed, reference)
