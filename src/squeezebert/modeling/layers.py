"""The building blocks of SqueezeBERT, written for speed on CPUs.

The math is exactly the reference architecture (Iandola et al., 2020): BERT whose Q, K, V and feed-forward
projections are grouped 1x1 convolutions. The parameters have the reference's names and shapes (a convolution's
weight is ``[out, in / groups, 1]``) so checkpoints load unchanged, but activations stay in ``[tokens, channels]``
layout throughout and every grouped convolution runs as one batched matrix multiply over its groups:

    x: (tokens, G * cin)  --view-->  (tokens, G, cin)  --transpose-->  (G, tokens, cin)   (no copy)
    y = bias + x @ W,  W: (G, cin, cout)                                                   (one bmm)

Where the group boundaries allow it, Q, K and V are one fused matmul, the attention runs through
``scaled_dot_product_attention``, and the feed-forward block keeps its intermediate activation in group layout and
works through the tokens in cache-sized chunks when no gradient is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SqueezeBertConfig

# Rows of tokens per feed-forward chunk at inference: keeps the (groups, rows, intermediate / groups) activation
# in cache and bounds the memory a large batch adds.
FFN_CHUNK_ROWS = 512


# ----------------------------------------------------------------------------------------------------------------
# Activations: each name maps to (function, in-place function or None).


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _gelu_tanh_(x: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.gelu_(x, approximate="tanh")


def _silu_(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x, inplace=True)


_ACTIVATIONS: dict[str, tuple[Callable, Callable | None]] = {
    "gelu": (F.gelu, torch.ops.aten.gelu_),
    "gelu_new": (_gelu_tanh, _gelu_tanh_),
    "gelu_pytorch_tanh": (_gelu_tanh, _gelu_tanh_),
    "gelu_fast": (_gelu_tanh, _gelu_tanh_),
    "quick_gelu": (_quick_gelu, None),
    "relu": (F.relu, torch.relu_),
    "silu": (F.silu, _silu_),
    "swish": (F.silu, _silu_),
    "tanh": (torch.tanh, torch.tanh_),
}


def get_activation(act: str | Callable) -> tuple[Callable, Callable | None]:
    """Return ``(function, in_place_function_or_None)`` for an activation name or callable."""
    if callable(act):
        return act, None
    if act not in _ACTIVATIONS:
        raise ValueError(f"hidden_act {act!r} is not one of {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[act]


# ----------------------------------------------------------------------------------------------------------------
# Grouped 1x1 convolution as a batched matmul


class GroupedConv1x1(nn.Module):
    """A 1x1 ``Conv1d`` with ``groups``, applied to channels-last input ``[..., in_channels]``.

    ``weight`` is ``[out_channels, in_channels / groups, 1]`` and ``bias`` is ``[out_channels]``, as in
    ``nn.Conv1d``, so state dicts are interchangeable with the reference.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, 1))
        self.bias = nn.Parameter(torch.empty(out_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, groups={self.groups}"

    def group_weight(self) -> torch.Tensor:
        """The weight as ``(groups, in / groups, out / groups)``, a view (no copy)."""
        g = self.groups
        return self.weight.view(g, self.out_channels // g, self.in_channels // g).transpose(1, 2)

    def group_bias(self) -> torch.Tensor:
        """The bias as ``(groups, 1, out / groups)``, a view."""
        return self.bias.view(self.groups, 1, self.out_channels // self.groups)

    def to_groups(self, x: torch.Tensor) -> torch.Tensor:
        """``(tokens, in)`` -> ``(groups, tokens, in / groups)``, a strided view."""
        return x.view(x.shape[0], self.groups, self.in_channels // self.groups).transpose(0, 1)

    def grouped(self, x_groups: torch.Tensor) -> torch.Tensor:
        """The convolution on input already in group layout: ``(G, tokens, in/G)`` -> ``(G, tokens, out/G)``."""
        return torch.baddbmm(self.group_bias(), x_groups, self.group_weight())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        x = x.reshape(-1, self.in_channels)
        if self.groups == 1:
            y = F.linear(x, self.weight.squeeze(-1), self.bias)
        else:
            y = from_groups(self.grouped(self.to_groups(x)))
        return y.view(*leading, self.out_channels)


def from_groups(y_groups: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``(G, tokens, c)`` -> ``(tokens, G * c)`` (one copy, into ``out`` when given)."""
    groups, tokens, c = y_groups.shape
    if out is None:
        return y_groups.transpose(0, 1).reshape(tokens, groups * c)
    out.view(tokens, groups, c).copy_(y_groups.transpose(0, 1))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Embeddings


class SqueezeBertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer(
            "position_ids", torch.arange(config.max_position_embeddings).unsqueeze(0), persistent=False
        )

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        seq_len = inputs_embeds.shape[1]
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_len]
        embeddings = inputs_embeds + self.position_embeddings(position_ids)
        if token_type_ids is None:
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


# ----------------------------------------------------------------------------------------------------------------
# Attention


class SqueezeBertSelfAttention(nn.Module):
    """Multi-head self-attention whose Q, K and V projections are grouped 1x1 convolutions."""

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        c = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = c // config.num_attention_heads
        self.query = GroupedConv1x1(c, c, config.q_groups)
        self.key = GroupedConv1x1(c, c, config.k_groups)
        self.value = GroupedConv1x1(c, c, config.v_groups)
        self.dropout_prob = config.attention_probs_dropout_prob
        groups = config.q_groups
        # One fused QKV matmul needs equal group counts and group boundaries on head boundaries.
        self.fused_qkv = config.k_groups == groups == config.v_groups and self.num_heads % groups == 0
        self._qkv_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    def _qkv_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Q, K, V weights side by side per group: ``(G, in/G, 3 * out/G)`` and bias ``(G, 1, 3 * out/G)``.

        Without gradients the concatenation is cached until a weight changes (in place or by ``.to()``).
        """
        convs = (self.query, self.key, self.value)
        tensors = [t for conv in convs for t in (conv.weight, conv.bias)]
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
        if not needs_grad and self._qkv_cache is not None and self._qkv_cache[0] == key:
            return self._qkv_cache[1], self._qkv_cache[2]
        weight = torch.cat([conv.group_weight() for conv in convs], dim=2)
        bias = torch.cat([conv.group_bias() for conv in convs], dim=2)
        if not needs_grad:
            self._qkv_cache = (key, weight, bias)
        return weight, bias

    def _project_qkv(self, x: torch.Tensor, batch: int, seq: int) -> tuple[torch.Tensor, ...]:
        """``x`` ``(tokens, C)`` -> q, k, v, each ``[batch, heads, seq, head_size]``."""
        heads, d = self.num_heads, self.head_size
        if not self.fused_qkv:
            return tuple(
                conv(x).view(batch, seq, heads, d).transpose(1, 2) for conv in (self.query, self.key, self.value)
            )
        groups = self.query.groups
        weight, bias = self._qkv_weight_and_bias()
        qkv = torch.baddbmm(bias, self.query.to_groups(x), weight)  # (G, tokens, 3 * heads/G * d)
        qkv = qkv.view(groups, batch, seq, 3, heads // groups, d).permute(3, 1, 0, 4, 2, 5)
        return qkv.reshape(3, batch, heads, seq, d).unbind(0)  # the one copy that splits the heads

    def forward(
        self,
        x: torch.Tensor,
        batch: int,
        seq: int,
        mask: torch.Tensor | None,
        head_mask: torch.Tensor | None,
        output_attentions: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``(tokens, C)``; ``mask`` additive, ``[batch, 1, 1, seq]``; ``head_mask`` ``(heads,)``.

        Returns the context ``(tokens, C)`` and, if asked, the attention weights ``[batch, heads, seq, seq]``.
        """
        q, k, v = self._project_qkv(x, batch, seq)
        dropout = self.dropout_prob if self.training else 0.0
        probs = None
        if output_attentions or head_mask is not None:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
            if mask is not None:
                scores = scores + mask
            probs = F.dropout(torch.softmax(scores, dim=-1), dropout, self.training)
            if head_mask is not None:
                probs = probs * head_mask.view(1, -1, 1, 1).to(probs.dtype)
            context = torch.matmul(probs, v)
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        context = context.transpose(1, 2).reshape(batch * seq, self.num_heads * self.head_size)
        return context, (probs if output_attentions else None)


# ----------------------------------------------------------------------------------------------------------------
# Projections after attention and in the feed-forward block


class ConvResidualNorm(nn.Module):
    """Grouped 1x1 conv, dropout, add the residual, LayerNorm (parameters ``conv1d.*`` and ``layernorm.*``)."""

    def __init__(self, cin: int, cout: int, groups: int, dropout_prob: float, eps: float) -> None:
        super().__init__()
        self.conv1d = GroupedConv1x1(cin, cout, groups)
        self.layernorm = nn.LayerNorm(cout, eps=eps)
        self.dropout = nn.Dropout(dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv1d(x), residual)

    def norm(self, y: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """The part after the convolution: dropout, residual, LayerNorm."""
        return self.layernorm(self.dropout(y) + residual)


class ConvActivation(nn.Module):
    """Grouped 1x1 conv followed by the activation (parameters ``conv1d.*``)."""

    def __init__(self, cin: int, cout: int, groups: int, act: str | Callable) -> None:
        super().__init__()
        self.conv1d = GroupedConv1x1(cin, cout, groups)
        self.act, self.act_inplace = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv1d(x))


class SqueezeBertLayer(nn.Module):
    """One encoder layer: attention, post-attention projection, feed-forward (intermediate + output)."""

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        c, i, eps, p = (
            config.hidden_size,
            config.intermediate_size,
            config.layer_norm_eps,
            config.hidden_dropout_prob,
        )
        self.attention = SqueezeBertSelfAttention(config)
        self.post_attention = ConvResidualNorm(c, c, config.post_attention_groups, p, eps)
        self.intermediate = ConvActivation(c, i, config.intermediate_groups, config.hidden_act)
        self.output = ConvResidualNorm(i, c, config.output_groups, p, eps)
        # The intermediate's output group g is the output conv's input group g: stay in group layout between them.
        self.ffn_in_groups = config.intermediate_groups == config.output_groups > 1

    def _feed_forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """output_conv(act(intermediate_conv(x))) for ``x`` ``(rows, C)``, without the residual/LayerNorm."""
        if not self.ffn_in_groups:
            return self.output.conv1d(self.intermediate(x))
        inter = self.intermediate.conv1d.grouped(self.intermediate.conv1d.to_groups(x))
        act_inplace = self.intermediate.act_inplace
        if act_inplace is not None and not torch.is_grad_enabled():
            act_inplace(inter)
        else:
            inter = self.intermediate.act(inter)
        return from_groups(self.output.conv1d.grouped(inter), out)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The feed-forward projections over all tokens; chunked over rows when no gradient is recorded."""
        rows = x.shape[0]
        if torch.is_grad_enabled() or rows <= FFN_CHUNK_ROWS:
            return self._feed_forward(x)
        out = x.new_empty(rows, self.output.conv1d.out_channels)
        for start in range(0, rows, FFN_CHUNK_ROWS):
            stop = min(start + FFN_CHUNK_ROWS, rows)
            if self.ffn_in_groups:
                self._feed_forward(x[start:stop], out[start:stop])
            else:
                out[start:stop] = self._feed_forward(x[start:stop])
        return out

    def forward(
        self,
        x: torch.Tensor,
        batch: int,
        seq: int,
        mask: torch.Tensor | None,
        head_mask: torch.Tensor | None,
        output_attentions: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``(tokens, C)`` -> ``(tokens, C)`` and the attention weights if asked."""
        context, probs = self.attention(x, batch, seq, mask, head_mask, output_attentions)
        x = self.post_attention(context, x)
        x = self.output.norm(self.feed_forward(x), x)
        return x, probs


# ----------------------------------------------------------------------------------------------------------------
# Pooler and masked-LM head


class SqueezeBertPooler(nn.Module):
    """tanh(dense(hidden state of the first token))."""

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))


class SqueezeBertPredictionHeadTransform(nn.Module):
    """dense, activation, LayerNorm: the transform before the MLM decoder."""

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act, _ = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(x)))


class SqueezeBertLMPredictionHead(nn.Module):
    """Transform, then the decoder whose weight is the word embedding matrix and whose bias is ``bias``."""

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        self.transform = SqueezeBertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x))


class SqueezeBertOnlyMLMHead(nn.Module):
    """Holds the prediction head under the reference's parameter names (``cls.predictions.*``)."""

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        self.predictions = SqueezeBertLMPredictionHead(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictions(x)
