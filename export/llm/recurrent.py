"""One-token decoder step with explicit states for hybrid linear-attention decoders (Qwen3.5).

Qwen3.5's text model (MiniCPM-V 4.6's LLM) mixes Gated DeltaNet layers (linear attention:
a causal depthwise conv + a gated delta-rule recurrence) with full-attention layers. The
former carry a fixed-size state, not a KV cache, and transformers' full-sequence path for
them (`torch_chunk_gated_delta_rule`) loops over chunks in Python, which torch.export
cannot trace with a dynamic sequence length. So we export ONE graph for one token:

    (inputs_embeds (B,1,H), position_ids (B,1),
     per linear layer i:  conv_state.i (B, conv_dim, K-1), recurrent_state.i (B, Hv, Dk, Dv),
     per full layer i:    past_key.i / past_value.i (B, kv_heads, past, head_dim))
    -> (logits (B,1,V), the same states updated, named present_*)

The edge feeds the prompt token by token through it ("stepwise" prefill): O(1) state per
linear layer, a KV cache only on the few full-attention layers, no recompute. Slower
prefill than a whole-sequence graph (one run per prompt token), which the tokens/s
figures include. The step re-implements the layer math from the layer's own weights; the
parity check compares it with transformers' full-sequence (chunked) path, independently.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SUPPORTED_LAYERS = ("linear_attention", "full_attention")


def is_hybrid(config) -> bool:
    """True for a Qwen3.5-style decoder: linear-attention layers (+ full attention)."""
    kinds = list(getattr(config, "layer_types", None) or [])
    return "linear_attention" in kinds and set(kinds) <= set(SUPPORTED_LAYERS)


class _PastKV:
    """The one method a transformers attention layer calls on its cache: append and return all."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.keys, self.values = keys, values

    def update(self, keys, values, layer_idx, cache_kwargs=None):
        self.keys = torch.cat([self.keys, keys], dim=2)
        self.values = torch.cat([self.values, values], dim=2)
        return self.keys, self.values


def _l2norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True) + eps)  # as transformers' (FLA's) l2norm


def delta_step(la, x: torch.Tensor, conv_state: torch.Tensor, state: torch.Tensor):
    """One token through a Qwen3_5GatedDeltaNet: (B,1,H) -> (B,1,H), new conv state, new recurrent state."""
    batch = x.shape[0]
    mixed = la.in_proj_qkv(x).transpose(1, 2)  # (B, conv_dim, 1)
    window = torch.cat([conv_state, mixed], dim=-1)  # (B, conv_dim, K): the causal conv's receptive field
    conv = (window * la.conv1d.weight[:, 0, :]).sum(-1, keepdim=True)
    if la.conv1d.bias is not None:
        conv = conv + la.conv1d.bias[:, None]
    mixed = F.silu(conv) if la.activation in ("silu", "swish") else getattr(F, la.activation)(conv)
    query, key, value = torch.split(mixed[..., 0], [la.key_dim, la.key_dim, la.value_dim], dim=-1)
    query = query.reshape(batch, -1, la.head_k_dim).float()
    key = key.reshape(batch, -1, la.head_k_dim).float()
    value = value.reshape(batch, -1, la.head_v_dim).float()
    if la.num_v_heads != la.num_k_heads:  # grouped value heads share query/key heads
        query = query.repeat_interleave(la.num_v_heads // la.num_k_heads, dim=1)
        key = key.repeat_interleave(la.num_v_heads // la.num_k_heads, dim=1)
    query = _l2norm(query) * la.head_k_dim**-0.5
    key = _l2norm(key)
    b, a = la.in_proj_b(x)[:, 0], la.in_proj_a(x)[:, 0]
    beta = b.sigmoid().float()
    decay = (-la.A_log.float().exp() * F.softplus(a.float() + la.dt_bias)).exp()  # (B, Hv)
    state = state.float() * decay[..., None, None]  # (B, Hv, Dk, Dv)
    remembered = (state * key[..., None]).sum(dim=-2)
    delta = (value - remembered) * beta[..., None]
    state = state + key[..., None] * delta[..., None, :]
    core = (state * query[..., None]).sum(dim=-2).to(x.dtype)  # (B, Hv, Dv)
    z = la.in_proj_z(x).reshape(-1, la.head_v_dim)
    out = la.norm(core.reshape(-1, la.head_v_dim), z).reshape(batch, 1, -1)
    return la.out_proj(out), window[:, :, 1:], state


def state_specs(config) -> list[dict]:
    """Per state tensor: input/output names and its shape without the batch axis ('past' grows)."""
    specs = []
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    for i, kind in enumerate(config.layer_types[: config.num_hidden_layers]):
        if kind == "linear_attention":
            conv_dim = (
                2 * config.linear_key_head_dim * config.linear_num_key_heads
                + config.linear_value_head_dim * config.linear_num_value_heads
            )
            specs.append(
                {
                    "input": f"conv_state.{i}",
                    "output": f"present_conv_state.{i}",
                    "shape": [conv_dim, config.linear_conv_kernel_dim - 1],
                }
            )
            specs.append(
                {
                    "input": f"recurrent_state.{i}",
                    "output": f"present_recurrent_state.{i}",
                    "shape": [config.linear_num_value_heads, config.linear_key_head_dim, config.linear_value_head_dim],
                }
            )
        else:
            for part in ("key", "value"):
                specs.append(
                    {
                        "input": f"past_{part}.{i}",
                        "output": f"present_{part}.{i}",
                        "shape": [kv_heads, 0, head_dim],
                        "grows": 1,
                    }
                )
    return specs


class RecurrentStep(torch.nn.Module):
    """(inputs_embeds (B,1,H), position_ids (B,1), *states) -> (logits, *new states); see the module docstring."""

    def __init__(self, decoder, lm_head) -> None:
        super().__init__()
        self.decoder, self.lm_head = decoder, lm_head
        config = decoder.config
        self.kinds = list(config.layer_types[: config.num_hidden_layers])

    def forward(self, inputs_embeds, position_ids, *states):
        dec = self.decoder
        h = inputs_embeds
        position_embeddings = dec.rotary_emb(h, position_ids)
        new_states = []
        for i, (layer, kind) in enumerate(zip(dec.layers, self.kinds)):
            first, second = states[2 * i], states[2 * i + 1]
            x = layer.input_layernorm(h)
            if kind == "linear_attention":
                x, first, second = delta_step(layer.linear_attn, x, first, second)
            else:
                cache = _PastKV(first, second)
                x, _ = layer.self_attn(
                    hidden_states=x,
                    position_embeddings=position_embeddings,
                    attention_mask=None,
                    position_ids=position_ids,
                    past_key_values=cache,
                )
                first, second = cache.keys, cache.values
            new_states += [first, second]
            h = h + x
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return (self.lm_head(dec.norm(h)), *new_states)
