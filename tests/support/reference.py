"""A hand-written SqueezeBERT encoder (from the oracle's weights), with a per-layer, per-head mask on the attention
probabilities: the reference for what the oracle does not implement (``head_mask``)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

ACTIVATIONS = {
    "relu": F.relu,
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
}


def _conv(x: torch.Tensor, conv: torch.nn.Conv1d, groups: int) -> torch.Tensor:
    return F.conv1d(x, conv.weight, conv.bias, groups=groups)


# The reference builds the two LayerNorms of every encoder layer with a fixed eps of 1e-12 (config.layer_norm_eps
# only reaches the embeddings and the MLM head), so the same checkpoint must give the same numbers.
ENCODER_LAYER_NORM_EPS = 1e-12


def _layer_norm_ncw(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x.transpose(1, 2), ln.weight.shape, ln.weight, ln.bias, ENCODER_LAYER_NORM_EPS).transpose(1, 2)


def hand_layer(
    layer: torch.nn.Module, cfg: Any, x: torch.Tensor, additive_mask: torch.Tensor, head_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One encoder layer on ``x`` [batch, channels, seq]; returns (layer output, post-attention output)."""
    att = layer.attention
    batch, channels, seq = x.shape
    heads = cfg.num_attention_heads
    d = channels // heads
    q = _conv(x, att.query, cfg.q_groups).view(batch, heads, d, seq).transpose(2, 3)
    k = _conv(x, att.key, cfg.k_groups).view(batch, heads, d, seq)
    v = _conv(x, att.value, cfg.v_groups).view(batch, heads, d, seq).transpose(2, 3)
    probs = (q @ k / math.sqrt(d) + additive_mask).softmax(-1)
    probs = probs * head_scale.view(1, heads, 1, 1)
    context = (probs @ v).transpose(2, 3).reshape(batch, channels, seq)
    post = layer.post_attention
    y = _layer_norm_ncw(_conv(context, post.conv1d, cfg.post_attention_groups) + x, post.layernorm)
    inter = ACTIVATIONS[cfg.hidden_act](_conv(y, layer.intermediate.conv1d, cfg.intermediate_groups))
    out = layer.output
    z = _layer_norm_ncw(_conv(inter, out.conv1d, cfg.output_groups) + y, out.layernorm)
    return z, y


@torch.no_grad()
def hand_hidden_states(
    base: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, head_mask: torch.Tensor
) -> list[torch.Tensor]:
    """Hidden states [batch, seq, hidden] of the oracle base model ``base``; ``head_mask`` is [layers, heads]."""
    cfg = base.config
    emb = base.embeddings
    seq = input_ids.shape[-1]
    x = emb.word_embeddings.weight[input_ids] + emb.position_embeddings.weight[:seq]
    x = x + emb.token_type_embeddings.weight[0]
    x = F.layer_norm(x, (cfg.hidden_size,), emb.LayerNorm.weight, emb.LayerNorm.bias, cfg.layer_norm_eps)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    additive = torch.zeros(attention_mask.shape, dtype=x.dtype).masked_fill(attention_mask == 0, -1e30)
    additive = additive[:, None, None, :]
    states = [x]
    h = x.transpose(1, 2)
    for index, layer in enumerate(base.encoder.layers):
        h, _ = hand_layer(layer, cfg, h, additive, head_mask[index])
        states.append(h.transpose(1, 2))
    return states
