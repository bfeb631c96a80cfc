"""The building blocks of SqueezeBERT, written for speed on CPUs.

The math is exactly the reference architecture (Iandola et al., 2020): BERT whose Q, K, V and feed-forward
projections are grouped 1x1 convolutions. The parameters have the reference's names and shapes (a convolution's
weight is ``[out, in / groups, 1]``) so checkpoints load unchanged, but activations stay in ``[tokens, channels]``
layout throughout and every grouped convolution runs as one batched matrix multiply over its groups:

    x: (tokens, G * cin)  --view-->  (tokens, G, cin)  --transpose-->  (G, tokens, cin)   (no copy)
    y = bias + x @ W,  W: (G, cin, cout)                                                   (one bmm)

Where the group boundaries allow it, Q, K and V are one fused matmul, the attention runs through
``scaled_dot_product_attention`` (in the int8 model at inference, through the compiled kernels' attention where
they were built), and the feed-forward block keeps its intermediate activation in group layout and works through
the tokens in cache-sized chunks when no gradient is needed.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SqueezeBertConfig
from ..kernels import int8_kernels
from .inputs import _tracing

# At inference a layer runs on sub-batches of whole sequences of about LAYER_CHUNK_TOKENS tokens, and its
# feed-forward block on chunks of FFN_CHUNK_ROWS tokens: the (groups, rows, intermediate / groups) activation stays
# in cache, and the memory a large batch adds stays bounded.
LAYER_CHUNK_TOKENS = 1024
FFN_CHUNK_ROWS = 512


# ----------------------------------------------------------------------------------------------------------------
# Activations: each name maps to (function, in-place function or None).


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each sequence's attended token vectors: ``[batch, seq, hidden]``, ``[batch, seq]`` ->
    ``[batch, hidden]`` (the sentence pooling of the embeddings pipeline and the sentence-embedding export)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [batch, seq, 1]
    return (hidden * mask).sum(1) / mask.sum(1)


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
# Dropout with a cheaper random mask


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, ``F.dropout``'s semantics, with a mask drawn about 3x faster on the CPU.

    ``F.dropout`` samples one Bernoulli float per element with the CPU's sequential Mersenne Twister (about 15% of
    a SqueezeBERT training step). Here each 64-bit draw is cut into four 16-bit words and an element is kept when
    its word is at least the ``p`` quantile: ``p`` is resolved to a multiple of 2^-16 (0.1 becomes 0.1000061)
    and the kept elements are scaled by ``1 / (1 - p)`` of that resolved ``p``, so the expectation is unchanged.
    Reproducible under ``torch.manual_seed``. Elsewhere (GPU, ``torch.compile``, tracing, ``p`` within 2^-16 of
    0 or 1) it is ``F.dropout``.
    """
    if not training or p == 0.0:
        return x
    levels = round(p * 65536)  # dropped words: [-32768, levels - 32768)
    if not 0 < levels < 65536 or x.device.type != "cpu" or _tracing():
        return F.dropout(x, p, training)
    with torch.no_grad():
        draws = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        words = draws.view(torch.int16)[: x.numel()].view(x.shape)  # uniform over [-2^15, 2^15)
        mask = (words >= levels - 32768).to(x.dtype).mul_(65536 / (65536 - levels))
    return x * mask


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`dropout` (no parameters: state dicts are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


# ----------------------------------------------------------------------------------------------------------------
# Grouped 1x1 convolution as a batched matmul


@runtime_checkable
class Projection(Protocol):
    """What the layers call on a grouped 1x1 projection: :class:`GroupedConv1x1` in floating point, or the int8
    :class:`~squeezebert.quantization.Int8Projection` that ``quantize_dynamic`` puts in its place."""

    groups: int
    in_channels: int
    out_channels: int
    bias: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in_channels]`` -> ``[..., out_channels]``."""
        ...

    def to_groups(self, x: torch.Tensor) -> torch.Tensor:
        """``(tokens, in)`` -> ``(groups, tokens, in / groups)``, a strided view."""
        ...

    def out_groups(self, y: torch.Tensor) -> torch.Tensor:
        """``(tokens, out)`` -> ``(groups, tokens, out / groups)``, a strided view."""
        ...

    def grouped(self, x_groups: torch.Tensor) -> torch.Tensor:
        """``(G, tokens, in/G)`` -> ``(G, tokens, out/G)``, bias included."""
        ...

    def accumulate(self, x_groups: torch.Tensor, out_groups: torch.Tensor) -> None:
        """``out_groups += x_groups @ W`` in place, without the bias."""
        ...


# Set while a SqueezeBertPreTrainedModel is being built: its post_init initialises every projection, so they skip
# their own initialisation (and a seeded model draws the same random numbers as it always did).
_DEFER_INIT: contextvars.ContextVar[bool] = contextvars.ContextVar("squeezebert_defer_init", default=False)


@contextlib.contextmanager
def deferred_init() -> Iterator[None]:
    """Within the block, new :class:`GroupedConv1x1` modules leave their parameters uninitialised (``torch.empty``)
    for the caller to initialise."""
    token = _DEFER_INIT.set(True)
    try:
        yield
    finally:
        _DEFER_INIT.reset(token)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class GroupedConv1x1(nn.Module):
    """A 1x1 ``Conv1d`` with ``groups``, applied to channels-last input ``[..., in_channels]``.

    ``weight`` is ``[out_channels, in_channels / groups, 1]`` and ``bias`` is ``[out_channels]``, as in
    ``nn.Conv1d``, and initialised as ``nn.Conv1d`` does (:meth:`reset_parameters`), so state dicts are
    interchangeable with the reference. The int8 projection of :mod:`squeezebert.quantization` has the same
    methods (:class:`Projection`) and replaces it in place.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.groups = _positive_int("groups", groups)
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % groups:
                raise ValueError(f"groups ({groups}) must divide {name} ({channels})")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, 1))
        self.bias = nn.Parameter(torch.empty(out_channels))
        if not _DEFER_INIT.get():
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Conv1d``'s initialisation: weight and bias uniform in ``±1 / sqrt(in_channels / groups)`` (the
        weight through ``kaiming_uniform_(a=sqrt(5))``, so the same seed gives the same numbers as ``nn.Conv1d``).

        Models built from a config replace this with ``SqueezeBertPreTrainedModel._init_weights``.
        """
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(self.in_channels // self.groups)
        nn.init.uniform_(self.bias, -bound, bound)

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

    def out_groups(self, y: torch.Tensor) -> torch.Tensor:
        """``(tokens, out)`` -> ``(groups, tokens, out / groups)``, a strided view (for :meth:`accumulate`)."""
        return y.view(y.shape[0], self.groups, self.out_channels // self.groups).transpose(0, 1)

    def grouped(self, x_groups: torch.Tensor) -> torch.Tensor:
        """The convolution on input already in group layout: ``(G, tokens, in/G)`` -> ``(G, tokens, out/G)``."""
        if self.groups == 1:
            return torch.addmm(self.bias, x_groups[0], self.group_weight()[0]).unsqueeze(0)
        return torch.baddbmm(self.group_bias(), x_groups, self.group_weight())

    def accumulate(self, x_groups: torch.Tensor, out_groups: torch.Tensor) -> None:
        """``out_groups += x_groups @ W`` in place, without the bias; ``out_groups`` may be a strided view.

        Writing straight into a ``(G, tokens, out/G)`` view of a ``(tokens, out)`` buffer that already holds the
        residual and the bias saves the copy out of group layout, the bias copy and the residual add.
        """
        if self.groups == 1:
            out_groups[0].addmm_(x_groups[0], self.group_weight()[0])
        else:
            out_groups.baddbmm_(x_groups, self.group_weight())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        x = x.reshape(-1, self.in_channels)
        return from_groups(self.grouped(self.to_groups(x))).view(*leading, self.out_channels)


def from_groups(y_groups: torch.Tensor) -> torch.Tensor:
    """``(G, tokens, c)`` -> ``(tokens, G * c)`` (one copy, none when ``G == 1``)."""
    groups, tokens, c = y_groups.shape
    if groups == 1:
        return y_groups[0]
    return y_groups.transpose(0, 1).reshape(tokens, groups * c)


def _fast_inference() -> bool:
    """True when no autograd graph is recorded: in-place activations and fused residual writes are safe.

    Not under ``torch.compile``, which fuses the plain path itself (and cannot lower in-place matmuls into views),
    nor under autocast, which does not cast the operands of in-place matmuls.
    """
    return (
        not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and not torch.is_autocast_enabled("cpu")
        and not torch.is_autocast_enabled("cuda")
    )


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
        self.dropout = Dropout(config.hidden_dropout_prob)
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


def _concat_groups(convs: list[GroupedConv1x1]) -> tuple[torch.Tensor, torch.Tensor]:
    """The convolutions' group weights and biases side by side: ``(G, in/G, sum out/G)``, ``(G, 1, sum out/G)``."""
    weight = torch.cat([conv.group_weight() for conv in convs], dim=2)
    bias = torch.cat([conv.group_bias() for conv in convs], dim=2)
    return weight, bias


class SqueezeBertSelfAttention(nn.Module):
    """Multi-head self-attention whose Q, K and V projections are grouped 1x1 convolutions.

    With equal Q/K/V group counts ``G`` that divide the heads, Q, K and V come out of one fused grouped matmul as
    ``(G, tokens, 3 * C/G)``, and each of q, k, v is a strided *view* of it shaped ``(G * batch, heads/G, seq, d)``:
    group g's heads of sequence b sit at batch index ``g * batch + b``. Attention never needs them contiguous, so
    the heads are split without a copy; the context is gathered back to ``(tokens, C)`` with one copy (the int8
    model's compiled attention reads the fused output and writes the context itself).
    """

    query: Projection
    key: Projection
    value: Projection
    qkv: Projection | None  # Q, K and V as one fused projection (set by ``quantize_dynamic``)

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
        self.qkv = None
        self._qkv_cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    def _qkv_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Q, K, V weights side by side per group: ``(G, in/G, 3 * out/G)`` and bias ``(G, 1, 3 * out/G)``.

        Without gradients the concatenation is cached until a weight changes (in place or by ``.to()``).
        """
        convs = [conv for conv in (self.query, self.key, self.value) if isinstance(conv, GroupedConv1x1)]
        if len(convs) != 3:
            raise TypeError("the fused float QKV weights need float projections (quantize_dynamic sets qkv instead)")
        if _tracing():  # a traced graph concatenates them itself and must not write module state
            return _concat_groups(convs)
        tensors = [t for conv in convs for t in (conv.weight, conv.bias)]
        cacheable = not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors) if cacheable else ()
        if cacheable and self._qkv_cache is not None and self._qkv_cache[0] == key:
            return self._qkv_cache[1], self._qkv_cache[2]
        weight, bias = _concat_groups(convs)
        self._qkv_cache = (key, weight, bias) if cacheable else None
        return weight, bias

    def _project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(tokens, C)`` -> the fused projection's ``(G, tokens, 3 * heads/G * d)``: per group and token, the q,
        k and v of the group's heads side by side."""
        x_groups = self.query.to_groups(x)
        if self.qkv is not None:
            return self.qkv.grouped(x_groups)
        weight, bias = self._qkv_weight_and_bias()
        return torch.baddbmm(bias, x_groups, weight)

    def _split_heads(self, qkv: torch.Tensor, batch: int, seq: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fused projection's output -> q, k, v, each ``(G * batch, heads / G, seq, d)``, views."""
        groups = qkv.shape[0]
        qkv = qkv.view(groups * batch, seq, 3, self.num_heads // groups, self.head_size)
        q, k, v = qkv.unbind(2)  # unbind (unlike indexing) needs no zero-filled buffers in backward
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def _compiled_attention(self, qkv: torch.Tensor, batch: int, mask: torch.Tensor | None) -> torch.Tensor | None:
        """The context ``(tokens, C)`` from the compiled kernels' attention (``kernels/attention_cpu.cpp``), or None
        where it does not apply. It serves the int8 model (whose fused projection ``quantize_dynamic`` set, having
        built the kernels) at inference, on float32 CPU tensors, heads of 16, 32, 48 or 64 channels, a CPU with
        AVX-512."""
        kernels = int8_kernels(build=False)
        head = self.head_size in (16, 32, 48, 64)
        usable = kernels is not None and self.qkv is not None and head and not self.training
        if not usable or qkv.dtype != torch.float32 or qkv.device.type != "cpu" or not kernels.attention_available():
            return None
        mask = torch.empty(0) if mask is None else mask.reshape(batch, -1).float().contiguous()
        context = qkv.new_empty(qkv.shape[1], self.num_heads * self.head_size)
        kernels.attention(qkv, batch, self.num_heads, mask, context)
        return context

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
        if not self.fused_qkv:
            heads, d = self.num_heads, self.head_size
            convs = (self.query, self.key, self.value)
            q, k, v = (conv(x).view(batch, seq, heads, d).transpose(1, 2) for conv in convs)
        else:
            qkv = self._project_qkv(x)
            fast = not (output_attentions or head_mask is not None) and _fast_inference()
            context = self._compiled_attention(qkv, batch, mask) if fast else None
            if context is not None:
                return context, None
            q, k, v = self._split_heads(qkv, batch, seq)
        groups = q.shape[0] // batch
        heads_per_group = self.num_heads // groups
        if mask is not None and groups > 1:
            mask = mask.repeat(groups, 1, 1, 1)  # batch index g * batch + b -> sequence b
        dropout_p = self.dropout_prob if self.training else 0.0
        attentions = None
        # The explicit path for attention weights, head_mask and dropout (SDPA's CPU dropout is F.dropout's mask)
        if output_attentions or head_mask is not None or dropout_p > 0.0:
            # scaling q (half the size of the scores) also gives matmul the contiguous operand it would copy q into
            scores = torch.matmul(q * (1.0 / math.sqrt(self.head_size)), k.transpose(-1, -2))
            if mask is not None:
                scores = scores.add_(mask)  # in place: matmul's backward does not need its output
            probs = dropout(torch.softmax(scores, dim=-1), dropout_p, self.training)
            probs = probs.unflatten(0, (groups, batch))  # (G, batch, heads/G, seq, seq)
            if head_mask is not None:
                probs = probs * head_mask.to(probs.dtype).view(groups, 1, heads_per_group, 1, 1)
            if output_attentions:
                # [batch, heads, seq, seq] with head index g * heads/G + j; the context is computed from these very
                # weights, so they are on the autograd graph (gradient-based attribution reads their .grad)
                attentions = probs.transpose(0, 1).reshape(batch, self.num_heads, seq, seq)
                probs = attentions.view(batch, groups, heads_per_group, seq, seq).transpose(0, 1)
            context = torch.matmul(probs, v.unflatten(0, (groups, batch)))
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        # (G * batch, heads/G, seq, d) -> (batch, seq, G, heads/G, d) -> (tokens, C): the one copy
        context = context.view(groups, batch, heads_per_group, seq, self.head_size).permute(1, 3, 0, 2, 4)
        context = context.reshape(batch * seq, self.num_heads * self.head_size)
        return context, attentions


# ----------------------------------------------------------------------------------------------------------------
# Projections after attention and in the feed-forward block


class ConvResidualNorm(nn.Module):
    """Grouped 1x1 conv, dropout, add the residual, LayerNorm (parameters ``conv1d.*`` and ``layernorm.*``)."""

    conv1d: Projection

    def __init__(self, cin: int, cout: int, groups: int, dropout_prob: float, eps: float) -> None:
        super().__init__()
        self.conv1d = GroupedConv1x1(cin, cout, groups)
        self.layernorm = nn.LayerNorm(cout, eps=eps)
        self.dropout = Dropout(dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``x`` ``(tokens, cin)``, ``residual`` ``(tokens, cout)`` -> ``LayerNorm(residual + dropout(conv(x)))``."""
        return self.residual_norm(self.conv1d.to_groups(x), residual)

    def accumulates_in_place(self) -> bool:
        """Whether the convolution may add straight into ``residual + bias``: no autograd graph and no dropout."""
        return _fast_inference() and not (self.training and self.dropout.p > 0)

    def residual_norm(self, x_groups: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``LayerNorm(residual + dropout(conv(x)))`` for ``x`` in group layout.

        A projection that fuses the residual and the LayerNorm into its own pass (the int8 one, ``residual_norm``)
        computes it all at inference; otherwise :meth:`residual_sum`, then the LayerNorm.
        """
        if not self.fuses_norm():
            return self.layernorm(self.residual_sum(x_groups, residual))
        out = torch.empty_like(residual)
        self.conv1d.residual_norm(x_groups, residual, self.layernorm, out)
        return out

    def fuses_norm(self) -> bool:
        """Whether the projection adds the residual and applies the LayerNorm in its own pass (int8, at inference)."""
        return hasattr(self.conv1d, "residual_norm") and self.accumulates_in_place()

    def residual_sum(self, x_groups: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual + dropout(conv(x))`` for ``x`` in group layout ``(G, tokens, cin/G)``.

        At inference the convolution accumulates into ``residual + bias`` (no intermediate output).
        """
        conv = self.conv1d
        if not self.accumulates_in_place():
            return self.dropout(from_groups(conv.grouped(x_groups))) + residual
        out = residual + conv.bias
        conv.accumulate(x_groups, conv.out_groups(out))
        return out


class ConvActivation(nn.Module):
    """Grouped 1x1 conv followed by the activation (parameters ``conv1d.*``)."""

    conv1d: Projection

    def __init__(self, cin: int, cout: int, groups: int, act: str | Callable) -> None:
        super().__init__()
        self.conv1d = GroupedConv1x1(cin, cout, groups)
        self.act, self.act_inplace = get_activation(act)
        self.act_name = act if isinstance(act, str) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_groups(self.grouped(self.conv1d.to_groups(x)))

    def grouped(self, x_groups: torch.Tensor) -> torch.Tensor:
        """act(conv(x)) in group layout, the activation in place when no gradient is recorded (or applied by a
        projection that fuses it, such as the int8 one)."""
        if self.act_name in getattr(self.conv1d, "fused_activations", ()) and _fast_inference():
            return self.conv1d.grouped_activation(x_groups, self.act_name)
        y = self.conv1d.grouped(x_groups)
        if self.act_inplace is not None and _fast_inference():
            return self.act_inplace(y)
        return self.act(y)


class SqueezeBertLayer(nn.Module):
    """One encoder layer: attention, post-attention projection, feed-forward (intermediate + output).

    At inference a batch of more than ``LAYER_CHUNK_TOKENS`` tokens goes through the layer in sub-batches of whole
    sequences (sequences never interact within a layer), and the feed-forward block in chunks of
    ``FFN_CHUNK_ROWS`` tokens, so the intermediate tensors stay cache-sized and under glibc's mmap threshold.
    """

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        c, i, p = config.hidden_size, config.intermediate_size, config.hidden_dropout_prob
        eps = 1e-12  # the reference's encoder LayerNorms ignore config.layer_norm_eps
        self.attention = SqueezeBertSelfAttention(config)
        self.post_attention = ConvResidualNorm(c, c, config.post_attention_groups, p, eps)
        self.intermediate = ConvActivation(c, i, config.intermediate_groups, config.hidden_act)
        self.output = ConvResidualNorm(i, c, config.output_groups, p, eps)
        # The intermediate's output group g is the output conv's input group g: stay in group layout between them.
        self.ffn_in_groups = config.intermediate_groups == config.output_groups

    def _ffn_input(self, x: torch.Tensor) -> torch.Tensor:
        """act(intermediate(x)) for ``x`` ``(rows, C)``, in the output conv's group layout."""
        inter = self.intermediate.grouped(self.intermediate.conv1d.to_groups(x))
        return inter if self.ffn_in_groups else self.output.conv1d.to_groups(from_groups(inter))

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + dropout(output(act(intermediate(x))))``, before the last LayerNorm.

        Without gradients or dropout the output conv accumulates chunk by chunk into ``x + bias``.
        """
        rows = x.shape[0]
        if not self.output.accumulates_in_place() or rows <= FFN_CHUNK_ROWS:
            return self.output.residual_sum(self._ffn_input(x), x)
        conv = self.output.conv1d
        out = x + conv.bias
        for start in range(0, rows, FFN_CHUNK_ROWS):
            stop = min(start + FFN_CHUNK_ROWS, rows)
            conv.accumulate(self._ffn_input(x[start:stop]), conv.out_groups(out[start:stop]))
        return out

    def feed_forward_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``LayerNorm(x + dropout(output(act(intermediate(x)))))``: the feed-forward block with its LayerNorm.

        Where the output projection fuses the residual and the LayerNorm (int8 at inference), chunk by chunk of
        ``FFN_CHUNK_ROWS`` tokens into one output tensor.
        """
        if not self.output.fuses_norm():
            return self.output.layernorm(self.feed_forward(x))
        conv, out = self.output.conv1d, torch.empty_like(x)
        for start in range(0, x.shape[0], FFN_CHUNK_ROWS):
            rows = slice(start, start + FFN_CHUNK_ROWS)
            conv.residual_norm(self._ffn_input(x[rows]), x[rows], self.output.layernorm, out[rows])
        return out

    def _forward(
        self,
        x: torch.Tensor,
        batch: int,
        seq: int,
        mask: torch.Tensor | None,
        head_mask: torch.Tensor | None,
        output_attentions: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, probs = self.attention(x, batch, seq, mask, head_mask, output_attentions)
        x = self.post_attention(context, x)
        return self.feed_forward_norm(x), probs

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
        # static conditions first: a traced graph (never fast inference) must not guard on its symbolic batch size
        if output_attentions or not _fast_inference() or batch <= max(1, LAYER_CHUNK_TOKENS // seq):
            return self._forward(x, batch, seq, mask, head_mask, output_attentions)
        per_chunk = max(1, LAYER_CHUNK_TOKENS // seq)
        out = torch.empty_like(x)
        for first in range(0, batch, per_chunk):
            last = min(first + per_chunk, batch)
            rows = slice(first * seq, last * seq)
            sub_mask = None if mask is None else mask[first:last]
            out[rows] = self._forward(x[rows], last - first, seq, sub_mask, head_mask, False)[0]
        return out, None


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
