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

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

_MIN_CAPACITY = 256


def supports(model: Any) -> bool:
    """True when `model` is a plain Llama (no biases, no rope scaling) this engine reproduces."""
    config = model.config
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


@dataclass
class _Layer:
    norm1: torch.Tensor
    qkv: torch.Tensor
    out: torch.Tensor
    norm2: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


class KVState:
    """One conversation's KV cache: keys and values of the tokens in `ids`, in place."""

    def __init__(
        self,
        layers: int,
        kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
        max_len: int,
    ) -> None:
        self._shape = (layers, kv_heads, head_dim)
        self._dtype = dtype
        self._device = device
        self.max_len = max_len
        self.capacity = 0
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.ids: list[int] = []

    @property
    def length(self) -> int:
        return len(self.ids)

    def crop(self, length: int) -> None:
        """Forget every token from position `length` on (the buffers stay allocated)."""
        del self.ids[length:]

    def reserve(self, needed: int) -> None:
        """Makes room for `needed` tokens, doubling the buffers and copying what is cached."""
        if needed <= self.capacity:
            return
        capacity = max(_MIN_CAPACITY, self.capacity)
        while capacity < needed:
            capacity *= 2
        capacity = min(max(capacity, needed), max(self.max_len, needed))
        layers, kv_heads, head_dim = self._shape
        shape = (layers, kv_heads, capacity, head_dim)
        k = torch.zeros(shape, dtype=self._dtype, device=self._device)
        v = torch.zeros(shape, dtype=self._dtype, device=self._device)
        if self.k is not None and self.v is not None and self.length:
            k[:, :, : self.length] = self.k[:, :, : self.length]
            v[:, :, : self.length] = self.v[:, :, : self.length]
        self.k, self.v, self.capacity = k, v, capacity


class LlamaEngine:
    """Runs a Llama model's forward pass over a `KVState`, returning last-position logits."""

    def __init__(self, model: Any, *, dtype: torch.dtype, device: torch.device) -> None:
        config = model.config
        self.dtype = dtype
        self.device = device
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.hidden = config.hidden_size
        self.head_dim = getattr(config, "head_dim", None) or self.hidden // self.heads
        self.eps = float(config.rms_norm_eps)
        self.max_len = int(config.max_position_embeddings)
        rope = getattr(config, "rope_parameters", None) or {}
        theta = float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))

        def w(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(device=device, dtype=dtype).contiguous()

        inner = model.model
        self.embed = w(inner.embed_tokens.weight)
        self.norm = w(inner.norm.weight)
        head = model.lm_head.weight
        self.lm_head = self.embed if head is inner.embed_tokens.weight else w(head)
        self.layers = [
            _Layer(
                norm1=w(layer.input_layernorm.weight),
                qkv=w(
                    torch.cat(
                        [
                            layer.self_attn.q_proj.weight,
                            layer.self_attn.k_proj.weight,
                            layer.self_attn.v_proj.weight,
                        ]
                    )
                ),
                out=w(layer.self_attn.o_proj.weight),
                norm2=w(layer.post_attention_layernorm.weight),
                gate_up=w(torch.cat([layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight])),
                down=w(layer.mlp.down_proj.weight),
            )
            for layer in inner.layers
        ]
        self.intermediate = self.layers[0].down.shape[1]
        # Rotary tables in float32 (as Hugging Face computes them), cast once.
        inv_freq = 1.0 / (
            theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
        )
        positions = torch.arange(self.max_len, dtype=torch.float32)
        freqs = torch.outer(positions, inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.cos = emb.cos().to(device=device, dtype=dtype)
        self.sin = emb.sin().to(device=device, dtype=dtype)
        self._scale = self.head_dim**-0.5

    def new_state(self) -> KVState:
        return KVState(
            len(self.layers), self.kv_heads, self.head_dim, self.dtype, self.device, self.max_len
        )

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * xf.to(self.dtype)

    def forward(self, state: KVState, ids: list[int]) -> torch.Tensor:
        """Feeds `ids` after the cached tokens; returns the float32 logits of the last one."""
        past = state.length
        count = len(ids)
        end = past + count
        if end > self.max_len:
            raise ValueError(f"{end} tokens exceed the model's {self.max_len}-token window")
        state.reserve(end)
        assert state.k is not None and state.v is not None
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        group = heads // kv_heads
        x = self.embed[torch.tensor(ids, device=self.device)]
        cos = self.cos[past:end]
        sin = self.sin[past:end]
        half = dim // 2
        mask = None
        if count > 1 and past > 0:
            # Query i sits at position past+i and may see keys 0..past+i.
            mask = torch.ones(count, end, dtype=torch.bool, device=self.device).tril(past)
        q_size = heads * dim
        kv_size = kv_heads * dim
        for index, layer in enumerate(self.layers):
            h = self._rms(x, layer.norm1)
            qkv = h @ layer.qkv.t()
            q = qkv[:, :q_size].view(count, heads, dim).transpose(0, 1)
            k = qkv[:, q_size : q_size + kv_size].view(count, kv_heads, dim).transpose(0, 1)
            v = qkv[:, q_size + kv_size :].view(count, kv_heads, dim).transpose(0, 1)
            q = q * cos + torch.cat([-q[..., half:], q[..., :half]], dim=-1) * sin
            k = k * cos + torch.cat([-k[..., half:], k[..., :half]], dim=-1) * sin
            keys = state.k[index]
            values = state.v[index]
            keys[:, past:end] = k
            values[:, past:end] = v
            keys = keys[:, :end]
            values = values[:, :end]
            if count == 1:
                # One query row: grouped matmuls beat the fused kernel at this shape.
                qg = q.view(kv_heads, group, dim)
                scores = (qg @ keys.transpose(1, 2)).float() * self._scale
                probs = scores.softmax(-1).to(self.dtype)
                attn = (probs @ values).reshape(1, heads * dim)
            else:
                attn = (
                    F.scaled_dot_product_attention(
                        q.unsqueeze(0),
                        keys.unsqueeze(0),
                        values.unsqueeze(0),
                        attn_mask=mask,
                        is_causal=mask is None,
                        enable_gqa=True,
                    )[0]
                    .transpose(0, 1)
                    .reshape(count, heads * dim)
                )
            x = x + attn @ layer.out.t()
            h = self._rms(x, layer.norm2)
            gate_up = h @ layer.gate_up.t()
            gate, up = gate_up[:, : self.intermediate], gate_up[:, self.intermediate :]
            x = x + (F.silu(gate) * up) @ layer.down.t()
        state.ids.extend(ids)
        last = self._rms(x[-1:], self.norm)
        return (last @ self.lm_head.t())[0].float()
