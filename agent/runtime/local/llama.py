"""A lean forward pass for Llama-architecture models with a KV cache written in place.

Hugging Face's generic forward spends much of a one-token decode step on Python
dispatch and on growing the KV cache with `torch.cat` every token. This module
runs the same arithmetic (RMSNorm, rotary embeddings, grouped-query attention,
SiLU MLP, tied or untied head) on weights taken from the loaded Hugging Face
model: the q/k/v and gate/up projections are fused into one matrix each, and
each cache is a pre-allocated tensor that grows by doubling, so a decode step is
a short, fixed list of tensor operations.

Only imported by the local runtime, after torch is known to be installed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from recursa.agent.runtime.local.kv_cache import KVState


def supports(model: Any) -> bool:
    """True when `model` is a plain Llama (no biases, no rope scaling) this engine reproduces."""
    return supports_config(model.config)


def supports_config(config: Any) -> bool:
    """`supports`, from the model's config alone."""
    if getattr(config, "model_type", None) != "llama":
        return False
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return False
    if getattr(config, "hidden_act", "silu") != "silu":
        return False
    if getattr(config, "pretraining_tp", 1) != 1:
        return False
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return rope.get("rope_type", rope.get("type", "default")) == "default"


def float16_weights_available() -> bool:
    """True when this torch build has the CPU kernel "float16w" needs (fbgemm, x86 only)."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return False
    try:
        packed = torch.ops.quantized.linear_prepack_fp16(torch.ones(2, 2), None)
        torch.ops.quantized.linear_dynamic_fp16(torch.ones(1, 2), packed)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return True


_INT4_GROUP = 32
_FP16_PACK_ROWS = 16384


def int4_available() -> bool:
    """True when this torch build has the CPU int4 weight kernels "int4" needs."""
    try:
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            torch.zeros(16, _INT4_GROUP * 2, dtype=torch.int32), 1
        )
        scales = torch.ones(2, 16, 2, dtype=torch.bfloat16)
        x = torch.ones(1, _INT4_GROUP * 2, dtype=torch.bfloat16)
        torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, _INT4_GROUP, scales)
        torch._weight_int8pack_mm(x, torch.zeros(2, _INT4_GROUP * 2, dtype=torch.int8), x[0, :2])
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return True


def _quantize_int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per output row: int8 values and a bfloat16 scale."""
    scales = (weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0).to(torch.bfloat16)
    quantized = torch.round(weight / scales.float()[:, None]).clamp(-127, 127)
    return quantized.to(torch.int8).contiguous(), scales


def _quantize_int4_groups(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Groups of 32 along each row: 4-bit codes q with w ~ (q - 8) * scale + zero.

    This is GGUF's Q4_1 layout (a scale and a minimum per block of 32), so a
    model dequantized from a Q4_1 file gets back its own 4-bit codes: each block's
    minimum and maximum are codes 0 and 15.
    """
    rows, cols = weight.shape
    blocks = weight.view(rows, cols // _INT4_GROUP, _INT4_GROUP)
    low = blocks.amin(dim=-1)
    scale = ((blocks.amax(dim=-1) - low) / 15.0).clamp(min=1e-10)
    codes = torch.round((blocks - low[..., None]) / scale[..., None]).clamp(0, 15)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
        codes.to(torch.int32).view(rows, cols).contiguous(), 1
    )
    # The kernel wants [groups, rows, (scale, zero)], the zero being the value of code 8.
    scales_and_zeros = torch.stack([scale.t(), (low + 8.0 * scale).t()], dim=-1)
    return packed, scales_and_zeros.to(torch.bfloat16).contiguous()


# Prompts of at least this many new tokens take the fast int4 prefill, in this dtype,
# in calls of up to FAST_PREFILL_CHUNK tokens. Unpacking every layer's weights costs
# about as much as 250 tokens of int4 prefill on one thread: measured on top of a
# cached prefix, 70 new tokens took 0.72 s fast against 0.31 s exact, 240 took 1.38 s
# against 1.25 s, so a chat turn's usual suffix (a message, a recall block) stays exact.
# With two threads or more, unpacking gains more from them than the int4 kernel's
# batches do: on top of a 1,000-token prefix, 96 new tokens took 0.30 s fast against
# 0.28 s exact, 160 took 0.37 s against 0.47 s, 224 took 0.49 s against 0.67 s.
FAST_PREFILL_MIN = 320
FAST_PREFILL_MIN_THREADS = 128
FAST_PREFILL_DTYPE = torch.bfloat16
FAST_PREFILL_CHUNK = 2048


def fast_prefill_min() -> int:
    """The fewest new tokens that take the fast int4 prefill with torch's current threads."""
    return FAST_PREFILL_MIN if torch.get_num_threads() < 2 else FAST_PREFILL_MIN_THREADS


def int4_layout_known() -> bool:
    """True when the CPU int4 kernel packs weights as `_Linear.dequantized` reads them."""
    if not int4_available():
        return False
    codes = (torch.arange(128 * 64, dtype=torch.int32) * 7 % 16).view(128, 64)
    try:
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
        blocks = packed.view(2, 64, 32)
        unpacked = torch.cat([blocks & 15, blocks >> 4], dim=2).transpose(1, 2).reshape(128, 64)
    except (RuntimeError, ValueError):
        return False
    return bool(torch.equal(unpacked.to(torch.int32), codes))


def _project(linear: _Linear, x: torch.Tensor) -> torch.Tensor:
    return linear(x)


class _Linear:
    """One weight matrix in the engine's precision, applied as x @ W.T.

    float32/bfloat16/float16 keep the matrix as is; a one-row input (a decode
    step) runs as a matrix-vector product, which CPU kernels stream faster than
    a one-row matmul.

    int8 and int4 are weight-only quantization with bfloat16 activations and
    float32 accumulation: decode time on a CPU is bound by reading the weights,
    and int4 reads an eighth of float32's bytes. int8 keeps per output row int8
    values and a scale; int4 keeps 4-bit codes with a scale and a zero per group
    of 32 (GGUF's Q4_1 layout, see `_quantize_int4_groups`). Both kernels give
    each row of a batch the same bits as that row alone, and prefill and decode
    run the same kernel, so a token gets the same projections whether it is
    prefilled with others or decoded alone.

    float16w stores the matrix in float16 (half the bytes of float32) and
    multiplies it with float32 activations and float32 accumulation (fbgemm's
    packed float16 GEMM, x86 CPUs). That kernel also gives each row of a batch
    the same bits as the row alone. It does not stream float16 at full memory
    speed: decode measured about 1.2-1.25x float32's rate, not 2x.
    """

    __slots__ = (
        "dense",
        "packed",
        "scales",
        "_fp16",
        "fp16_weight",
        "int4",
        "out_features",
        "_lock",
    )

    def __init__(self, weight: torch.Tensor | None, precision: str, device: torch.device) -> None:
        self.out_features = weight.shape[0] if weight is not None else 0
        self.packed: torch.Tensor | None = None
        self.scales: torch.Tensor | None = None
        self._fp16: list[Any] | None = None
        # float16w keeps its float16 matrix until it is packed (`prepare`), so a restored
        # engine can pack it after loading, in the background.
        self.fp16_weight: torch.Tensor | None = None
        self.int4: tuple[torch.Tensor, torch.Tensor] | None = None
        self.dense: torch.Tensor | None = None
        self._lock = threading.Lock()
        if weight is None:
            return  # filled in by `restore`
        weight = weight.detach().float()
        if precision == "float16w":
            self.fp16_weight = weight.to(torch.float16).contiguous()
        elif precision == "int4" and weight.shape[1] % _INT4_GROUP == 0:
            self.int4 = _quantize_int4_groups(weight)
        elif precision in ("int4", "int8"):  # int4 falls back to int8 rows off the group size
            self.packed, self.scales = _quantize_int8_rows(weight)
        else:
            self.dense = weight.to(device=device, dtype=getattr(torch, precision)).contiguous()

    @property
    def fp16(self) -> list[Any] | None:
        """fbgemm's packed float16 parts (float16w only), packed on first use."""
        if self._fp16 is None and self.fp16_weight is not None:
            self.prepare()
        return self._fp16

    def prepare(self) -> None:
        """Pack a float16w matrix now (other precisions are ready as built)."""
        with self._lock:
            if self._fp16 is not None or self.fp16_weight is None:
                return
            # fbgemm packs a large matrix several times slower per row than a small one
            # (1.7 s for the 49k-row head against 0.6 s in three parts); the parts' results
            # are concatenated, at no measurable cost per call.
            self._fp16 = [
                torch.ops.quantized.linear_prepack_fp16(part.float().contiguous(), None)
                for part in self.fp16_weight.split(_FP16_PACK_ROWS)
            ]
            self.fp16_weight = None  # packed: the float16 copy is no longer needed

    def export(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors `restore` rebuilds this matrix from, named under `prefix`."""
        if self.int4 is not None:
            return {f"{prefix}.int4.packed": self.int4[0], f"{prefix}.int4.scales": self.int4[1]}
        if self.packed is not None and self.scales is not None:
            return {f"{prefix}.int8.packed": self.packed, f"{prefix}.int8.scales": self.scales}
        if self.fp16_weight is not None:
            return {f"{prefix}.fp16.weight": self.fp16_weight}
        if self._fp16 is not None:
            raise ValueError(f"{prefix}: a packed float16 matrix cannot be exported")
        assert self.dense is not None
        return {f"{prefix}.dense": self.dense}

    @classmethod
    def restore(
        cls, tensors: dict[str, torch.Tensor], prefix: str, out_features: int, in_features: int
    ) -> _Linear:
        """The matrix `export` wrote; ValueError when its tensors are missing or misshapen."""
        linear = cls(None, "float32", torch.device("cpu"))
        linear.out_features = out_features
        if f"{prefix}.int4.packed" in tensors:
            packed = tensors[f"{prefix}.int4.packed"]
            scales = tensors[f"{prefix}.int4.scales"]
            groups = in_features // _INT4_GROUP
            if packed.shape[0] != out_features or tuple(scales.shape) != (groups, out_features, 2):
                raise ValueError(f"{prefix}: int4 tensors of the wrong shape")
            linear.int4 = (packed, scales)
        elif f"{prefix}.int8.packed" in tensors:
            packed = tensors[f"{prefix}.int8.packed"]
            if tuple(packed.shape) != (out_features, in_features):
                raise ValueError(f"{prefix}: int8 tensor of the wrong shape")
            linear.packed, linear.scales = packed, tensors[f"{prefix}.int8.scales"]
        elif f"{prefix}.fp16.weight" in tensors:
            weight = tensors[f"{prefix}.fp16.weight"]
            if tuple(weight.shape) != (out_features, in_features):
                raise ValueError(f"{prefix}: float16 tensor of the wrong shape")
            linear.fp16_weight = weight
        elif f"{prefix}.dense" in tensors:
            weight = tensors[f"{prefix}.dense"]
            if tuple(weight.shape) != (out_features, in_features):
                raise ValueError(f"{prefix}: tensor of the wrong shape")
            linear.dense = weight
        else:
            raise ValueError(f"{prefix}: no tensors saved")
        return linear

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        """The int4 matrix unpacked into `dtype` (its exact values in float32).

        Reads the CPU kernel's packed layout: blocks of 64 rows, each byte holding
        row j's code (low nibble) and row j+32's (high nibble) for one column.
        """
        assert self.int4 is not None
        packed, scales_and_zeros = self.int4
        rows, cols = self.out_features, packed.shape[1] * 2
        blocks = packed.view(rows // 64, cols, 32)
        codes = torch.cat([blocks & 15, blocks >> 4], dim=2).transpose(1, 2).reshape(rows, cols)
        # w = (code - 8) * scale + zero = code * scale + (zero - 8 * scale), per group of 32.
        scale = scales_and_zeros[..., 0].t().float().unsqueeze(-1)
        low = scales_and_zeros[..., 1].t().float().unsqueeze(-1) - 8.0 * scale
        groups = codes.view(rows, cols // _INT4_GROUP, _INT4_GROUP)
        weight = torch.addcmul(low, groups.float(), scale).reshape(rows, cols)
        return weight if dtype == torch.float32 else weight.to(dtype)

    def dense_call(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """x @ W.T, W unpacked into a dense `dtype` matrix for this call (a long prefill).

        Unpacking the whole matrix row-major and one GEMM measured faster than
        multiplying the kernel's 64-row blocks as they lie (bmm), and computing the
        values in float32 before rounding once to `dtype` keeps them closest.
        """
        if self.int4 is None:
            return self(x)
        return F.linear(x.to(dtype), self.dequantized(dtype))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.int4 is not None:
            packed, scales_and_zeros = self.int4
            return torch.ops.aten._weight_int4pack_mm_for_cpu(
                x, packed, _INT4_GROUP, scales_and_zeros
            )
        if self.packed is not None and self.scales is not None:
            return torch._weight_int8pack_mm(x, self.packed, self.scales)
        if self.fp16 is not None:
            x = x.float()
            if len(self.fp16) == 1:
                return torch.ops.quantized.linear_dynamic_fp16(x, self.fp16[0])
            parts = [torch.ops.quantized.linear_dynamic_fp16(x, packed) for packed in self.fp16]
            return torch.cat(parts, dim=1)
        assert self.dense is not None
        if x.shape[0] == 1:
            return torch.mv(self.dense, x[0]).unsqueeze(0)
        return F.linear(x, self.dense)


@dataclass
class _Layer:
    norm1: torch.Tensor
    qkv: _Linear
    out: _Linear
    norm2: torch.Tensor
    gate_up: _Linear
    down: _Linear


PRECISIONS = ("float32", "bfloat16", "float16", "int8", "int4", "float16w")
_QUANTIZED = ("int8", "int4")


class LlamaEngine:
    """Runs a Llama model's forward pass over a `KVState`, returning last-position logits.

    `precision` is how the weights are held and multiplied: "float32",
    "bfloat16", "float16", "int8" or "int4" (weight-only, CPU, bfloat16
    activations into the matrix multiplies) or
    "float16w" (float16 weights, float32 activations and accumulation, x86 CPU).
    The residual stream and the norms stay float32 in every precision, so
    rounding does not pile up across the 30 layers.
    """

    def __init__(self, model: Any, *, precision: str, device: torch.device) -> None:
        self._configure(model.config, precision, device)

        def lin(*weights: torch.Tensor) -> _Linear:
            joined = torch.cat(weights) if len(weights) > 1 else weights[0]
            return _Linear(joined, precision, device)

        def vec(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(device=device, dtype=torch.float32).contiguous()

        inner = model.model
        # The embedding is only gathered from (a few rows per step): float32 is free.
        self.embed = vec(inner.embed_tokens.weight)
        self.norm = vec(inner.norm.weight)
        self.lm_head = _Linear(model.lm_head.weight, self._head_precision, device)
        self.layers = [
            _Layer(
                norm1=vec(layer.input_layernorm.weight),
                qkv=lin(
                    layer.self_attn.q_proj.weight,
                    layer.self_attn.k_proj.weight,
                    layer.self_attn.v_proj.weight,
                ),
                out=lin(layer.self_attn.o_proj.weight),
                norm2=vec(layer.post_attention_layernorm.weight),
                gate_up=lin(layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight),
                down=lin(layer.mlp.down_proj.weight),
            )
            for layer in inner.layers
        ]

    def _configure(self, config: Any, precision: str, device: torch.device) -> None:
        """Everything but the weights: sizes, dtypes, rotary tables."""
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}")
        if precision in _QUANTIZED and device.type != "cpu":
            raise ValueError(f"{precision} weights are only supported on CPU")
        if precision == "int4" and not int4_available():
            raise ValueError("int4 needs a torch build with the CPU int4 weight kernels")
        if precision == "float16w" and (device.type != "cpu" or not float16_weights_available()):
            raise ValueError("float16w needs a CPU and a torch build with fbgemm (x86)")
        self.precision = precision
        # `dtype` feeds the matrix multiplies; `kv_dtype` holds the rotary embedding,
        # the KV cache and the attention. int8/int4 keep attention in float32: one-row
        # float32 attention is as fast here as the 16-bit kernel and rounds less.
        if precision in _QUANTIZED:
            self.dtype = torch.bfloat16
        elif precision == "float16w":
            self.dtype = torch.float32
        else:
            self.dtype = getattr(torch, precision)
        self.kv_dtype = torch.float32 if precision in _QUANTIZED else self.dtype
        self.device = device
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.hidden = config.hidden_size
        self.head_dim = getattr(config, "head_dim", None) or self.hidden // self.heads
        self.intermediate = int(config.intermediate_size)
        self.num_layers = int(config.num_hidden_layers)
        self.vocab = int(config.vocab_size)
        self.eps = float(config.rms_norm_eps)
        self._norm_shape = (self.hidden,)
        self.max_len = int(config.max_position_embeddings)
        rope = getattr(config, "rope_parameters", None) or {}
        theta = float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
        # With int8/int4 layers the output head, which scores the whole vocabulary and
        # which GGUF files keep at 8 bits (Q8_0) where the layers have 4, is held in
        # float16 where fbgemm can multiply it: it only ever sees one position, the
        # kernel streams float16 at memory speed on one row, and a 49k-row head is a
        # fifth of the model's bytes. int8 rows would round more and, in torch's
        # kernel, decode slower (bfloat16 arithmetic without native support).
        self._head_precision = precision
        if precision in _QUANTIZED:
            self._head_precision = "float16w" if float16_weights_available() else "int8"
        # Rotary tables in float32 (as Hugging Face computes them), cast once. The sign of
        # rotate_half is folded into the sine table so a rotation is a roll, two muls, an add.
        inv_freq = 1.0 / (
            theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
        )
        positions = torch.arange(self.max_len, dtype=torch.float32)
        freqs = torch.outer(positions, inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        half = self.head_dim // 2
        sin = emb.sin()
        sin[:, :half] = -sin[:, :half]
        self.cos = emb.cos().to(device=device, dtype=self.kv_dtype)
        self.sin = sin.to(device=device, dtype=self.kv_dtype)
        self._scale = self.head_dim**-0.5
        # Where the projections give a row the same bits alone or in a batch (int8, int4,
        # float16w), every query is also attended alone (see `_attend_each`), so a token
        # gets the same bits prefilled or decoded. Elsewhere prefill uses the fused
        # kernel, faster but not exact (float32's own projections are not row-exact);
        # a float32 decode step attends as `_attend_each` does, the fastest way for one
        # query, and a 16-bit one (CUDA's bfloat16) uses the fused kernel.
        self._exact_attention = precision in (*_QUANTIZED, "float16w")
        self._single_query_each = self.kv_dtype == torch.float32
        # The dtype long int4 prompts are prefilled in (None: no fast prefill).
        self._fast_prefill: torch.dtype | None = (
            FAST_PREFILL_DTYPE if precision == "int4" and int4_layout_known() else None
        )

    def _project_fast(self, linear: _Linear, x: torch.Tensor) -> torch.Tensor:
        assert self._fast_prefill is not None
        return linear.dense_call(x, self._fast_prefill).to(self.dtype)

    @property
    def prefill_chunk(self) -> int:
        """How many prompt tokens one forward call should take: unpacking is paid per call."""
        return FAST_PREFILL_CHUNK if self._fast_prefill is not None else 512

    # -- saving and restoring the built weights ------------------------------------------

    def export(self) -> dict[str, torch.Tensor]:
        """Every weight as built (int4 packed), for `restore` to load without packing again."""
        out = {"embed": self.embed, "norm": self.norm, **self.lm_head.export("lm_head")}
        for i, layer in enumerate(self.layers):
            out[f"layers.{i}.norm1"] = layer.norm1
            out[f"layers.{i}.norm2"] = layer.norm2
            for name in ("qkv", "out", "gate_up", "down"):
                out.update(getattr(layer, name).export(f"layers.{i}.{name}"))
        return out

    @classmethod
    def restore(
        cls, config: Any, tensors: dict[str, torch.Tensor], *, precision: str, device: torch.device
    ) -> LlamaEngine:
        """An engine from `export`'s tensors; ValueError when any is missing or misshapen."""
        engine = cls.__new__(cls)
        engine._configure(config, precision, device)
        hidden, dim = engine.hidden, engine.head_dim
        qkv_rows = (engine.heads + 2 * engine.kv_heads) * dim

        def vec(name: str, size: int) -> torch.Tensor:
            tensor = tensors.get(name)
            if tensor is None or tensor.dtype != torch.float32 or tensor.numel() != size:
                raise ValueError(f"{name}: missing or of the wrong shape")
            return tensor.to(device)

        engine.embed = vec("embed", engine.vocab * hidden).view(engine.vocab, hidden)
        engine.norm = vec("norm", hidden)
        engine.lm_head = _Linear.restore(tensors, "lm_head", engine.vocab, hidden)
        shapes = {
            "qkv": (qkv_rows, hidden),
            "out": (hidden, engine.heads * dim),
            "gate_up": (2 * engine.intermediate, hidden),
            "down": (hidden, engine.intermediate),
        }
        engine.layers = [
            _Layer(
                norm1=vec(f"layers.{i}.norm1", hidden),
                norm2=vec(f"layers.{i}.norm2", hidden),
                **{
                    name: _Linear.restore(tensors, f"layers.{i}.{name}", rows, cols)
                    for name, (rows, cols) in shapes.items()
                },
            )
            for i in range(engine.num_layers)
        ]
        return engine

    def prepare(self) -> None:
        """Finish what restoring left for later (packing a float16 head): safe to call often."""
        self.lm_head.prepare()

    def new_state(self) -> KVState:
        return KVState(
            len(self.layers), self.kv_heads, self.head_dim, self.kv_dtype, self.device, self.max_len
        )

    def _attend_each(
        self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, past: int
    ) -> torch.Tensor:
        """Causal attention of each new query alone, over the keys up to its own position.

        Matrix-multiply kernels pick their blocking, and so their order of sums,
        from the shapes: one query alone and the same query in a batch of a
        prefill come out a rounding apart, and with 16-bit activations such a
        difference can grow into a different greedy token. Attending query i with
        exactly the shapes a decode step uses (one query, the first past+i+1
        keys) makes a prefilled token bit-identical to the same token decoded,
        so a reply continued on a reused KV cache equals one from a full prefill.
        A decode step is a single iteration; prefill pays a few small kernel
        calls per token, small next to the projections.
        """
        heads, count, dim = q.shape
        group = heads // self.kv_heads
        # Scaled once for all rows: elementwise, so each row gets the bits it gets alone.
        grouped = (q * self._scale).reshape(self.kv_heads, group, count, dim)
        keys_t = keys.transpose(1, 2)
        out = torch.empty(count, self.kv_heads, group, dim, dtype=q.dtype, device=q.device)
        for i in range(count):
            seen = past + i + 1
            scores = torch.bmm(grouped[:, :, i], keys_t[:, :, :seen])
            torch.bmm(scores.softmax(-1), values[:, :seen], out=out[i])
        return out.view(count, heads * dim)

    def _decode_one(self, state: KVState, token: int) -> torch.Tensor:
        """`forward` for one new token: the same kernels on the same shapes, fewer operations.

        A decode step of this small model is short enough that Python's cost per
        tensor operation is a tenth of it, so this path does in about 20 calls a
        layer what `forward` with `_attend_each` does in 40 (no batch dimension to
        carry, no transposes of a one-row query, the cache written as rows), and
        gives the same bits: a token decoded here equals the same token prefilled.
        """
        past = state.length
        end = past + 1
        if end > self.max_len:
            raise ValueError(f"{end} tokens exceed the model's {self.max_len}-token window")
        state.reserve(end)
        assert state.k is not None and state.v is not None
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        group, half = heads // kv_heads, dim // 2
        qk_size = (heads + kv_heads) * dim
        rms, shape, eps = F.rms_norm, self._norm_shape, self.eps
        dtype, kv_dtype, scale, inner = self.dtype, self.kv_dtype, self._scale, self.intermediate
        cos, sin = self.cos[past], self.sin[past]
        x = self.embed[token : token + 1]
        for layer, keys, values in zip(self.layers, state.k, state.v, strict=True):
            qkv = layer.qkv(rms(x, shape, layer.norm1, eps).to(dtype)).to(kv_dtype)[0]
            qk = qkv[:qk_size].view(heads + kv_heads, dim)
            qk = qk * cos + torch.roll(qk, half, dims=-1) * sin
            keys[:, past] = qk[heads:]
            values[:, past] = qkv[qk_size:].view(kv_heads, dim)
            grouped = (qk[:heads] * scale).view(kv_heads, group, dim)
            scores = torch.bmm(grouped, keys[:, :end].transpose(1, 2))
            attn = torch.bmm(scores.softmax(-1), values[:, :end]).view(1, heads * dim)
            x = x + layer.out(attn.to(dtype))
            gate_up = layer.gate_up(rms(x, shape, layer.norm2, eps).to(dtype))
            x = x + layer.down(F.silu(gate_up[:, :inner]) * gate_up[:, inner:])
        state.ids.append(token)
        normed = rms(x, shape, self.norm, eps)
        if self.lm_head.fp16 is None:
            normed = normed.to(dtype)
        return self.lm_head(normed)[0].float()

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self._norm_shape, weight, self.eps).to(self.dtype)

    def forward(
        self, state: KVState, ids: list[int], *, yield_to: Callable[[], bool] | None = None
    ) -> torch.Tensor | None:
        """Feeds `ids` after the cached tokens; returns the float32 logits of the last one.

        `yield_to` (background work) is asked between layers whether to give the
        model up: when it says so, the call returns None with `state` as it was
        (positions past `state.length` are only ever read after a complete call
        records them), so a person's turn waits one layer, not a whole long chunk.
        """
        if len(ids) == 1 and self._single_query_each:
            return self._decode_one(state, ids[0])
        past = state.length
        count = len(ids)
        end = past + count
        if end > self.max_len:
            raise ValueError(f"{end} tokens exceed the model's {self.max_len}-token window")
        state.reserve(end)
        assert state.k is not None and state.v is not None
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        half = dim // 2
        x = self.embed[torch.tensor(ids, device=self.device)]
        cos = self.cos[past:end].unsqueeze(1)
        sin = self.sin[past:end].unsqueeze(1)
        # A long int4 prompt is prefilled with dense matrix multiplies on weights unpacked
        # layer by layer (see `dequantized`) and the fused attention kernel: several times
        # faster than the int4 kernel, whose blocking suits one row, and the per-query
        # exact attention. Its logits differ from a decoded token's by rounding only.
        fast = self._fast_prefill is not None and count >= fast_prefill_min()
        each = (self._exact_attention and not fast) or (count == 1 and self._single_query_each)
        mask = None
        if count > 1 and past > 0 and not each:
            # Query i sits at position past+i and may see keys 0..past+i.
            mask = torch.ones(count, end, dtype=torch.bool, device=self.device).tril(past)
        qk_heads = heads + kv_heads
        q_size = heads * dim
        project = self._project_fast if fast else _project
        for index, layer in enumerate(self.layers):
            if yield_to is not None and yield_to():
                return None
            qkv = project(layer.qkv, self._rms(x, layer.norm1)).to(self.kv_dtype)
            # Rotate q and k together: they are adjacent in the fused projection.
            qk = qkv[:, : qk_heads * dim].view(count, qk_heads, dim)
            qk = qk * cos + torch.roll(qk, half, dims=-1) * sin
            q = qk[:, :heads].transpose(0, 1)
            k = qk[:, heads:].transpose(0, 1)
            v = qkv[:, q_size + kv_heads * dim :].view(count, kv_heads, dim).transpose(0, 1)
            keys = state.k[index]
            values = state.v[index]
            keys[:, past:end] = k
            values[:, past:end] = v
            keys = keys[:, :end]
            values = values[:, :end]
            if each:
                attn = self._attend_each(q, keys, values, past)
            else:
                attn = F.scaled_dot_product_attention(
                    q.unsqueeze(0),
                    keys.unsqueeze(0),
                    values.unsqueeze(0),
                    attn_mask=mask,
                    is_causal=mask is None and count > 1,
                    enable_gqa=True,
                )[0]
                attn = attn.transpose(0, 1).reshape(count, q_size)
            # Adding a 16-bit projection to the float32 residual promotes it exactly.
            x = x + project(layer.out, attn.to(self.dtype))
            gate_up = project(layer.gate_up, self._rms(x, layer.norm2))
            gate, up = gate_up[:, : self.intermediate], gate_up[:, self.intermediate :]
            x = x + project(layer.down, F.silu(gate) * up)
        state.ids.extend(ids)
        # The head takes the float32 norm: float16w keeps it, the 16-bit kernels round it.
        normed = F.rms_norm(x[-1:], self._norm_shape, self.norm, self.eps)
        if self.lm_head.fp16 is None:
            normed = normed.to(self.dtype)
        return self.lm_head(normed)[0].float()
