"""Dynamic int8 quantization for CPU inference: int8 weights, activations quantized on the fly.

Every grouped 1x1 convolution and every ``nn.Linear`` becomes an :class:`Int8Projection`. Its input channels come
in spans (``span`` channels each, 64 by default; one span per group with ``span=None``), each with its own scales:

    weight  W (G, cin, cout)  ->  W_q = round(W / s_w) in int8,    s_w = max|W| / 127 per span and output channel
    input   x (G, T, cin)     ->  x_q = round((x - o) / s_x),      s_x = (max x - min x) / 255 per token and span
    output  y = sum over spans (s_x s_w (x_q @ W_q) + o s_w sum_k W_q) + bias   (x_q @ W_q in int32)

Attention scores, softmax, LayerNorm and the activation stay in floating point. The work around each int8 matmul
(quantizing, folding each span's int32 sums into float, the activation, the residual and the LayerNorm that follow)
runs in compiled kernels (:mod:`squeezebert.kernels`, in one parallel region per projection) where they could be
built, and as PyTorch operations otherwise; both compute the formulas above.

Calibration: ``quantize_dynamic`` runs the float model on text (a built-in set of generic English sentences,
:mod:`squeezebert.calibration_texts`, or the caller's ``calibration_texts``) through the model's tokenizer, one
unpadded sentence at a time, and records per encoder projection the peak ``|x|`` of each input channel and ``X^T X``.

Outlier channels (LLM.int8-style decomposition): a few input channels of each encoder projection stay in fp32,
``y += x[:, O] @ W[O]``, and are zeroed before the per-token quantization; their weight rows are left out of the
int8 weights. ``O`` is fixed at quantize time: the channels with the largest calibrated activations (BERT's residual
stream has a few huge channels in every token, which stretch each token's range), plus those with the largest
weight rows (which stretch each output channel's scale). fp32 channels cost about four int8 ones, so the count is
shared among a projection's groups.

GPTQ rounding (:func:`gptq_round`, the default): the weights are rounded input row by input row, each row's error
compensated in the rows not yet rounded through the calibration inputs' inverse Hessian, each span's scales taken
from its rows as updated when the span is reached, the fp32 outlier rows last (they take up the remaining error
exactly). It changes only the stored int8 levels and scales: nothing at run time.

SmoothQuant (``smoothing=alpha``, off by default): per input channel ``s = max|x|^alpha / max|W|^(1 - alpha)``,
``x / s`` quantized and ``s W`` stored. In this post-LayerNorm model every projection's input also feeds the
residual (Q, K, V, the feed-forward input) or comes out of the GELU (its output projection), so ``s`` cannot be
folded into the preceding operation; ``1 / s`` rides in the per-channel multiplier the quantize step already applies
to zero the outlier channels, in the same pass.

Measured on all-MiniLM-L6-v2 converted (``benchmarks/bench_int8_accuracy.py``; minimum per-token / mean-pooled
cosine to fp32 on its 12 sentences and on the 380 held-out chatterbot-corpus statements; the README has the table):
one span per group (the fastest) reaches 0.9987 / 0.9989 and 0.9986 / 0.9987; spans of 64 with 16 outlier
channels (the default) 0.9995 / 0.9996 and 0.9995 / 0.9996, for 10-40% more time at batch 1 x 128; spans of 32
are more accurate still, and slower. Both sides need the finer scales: fp32 weights with
per-token int8 activations, or int8 weights with fp32 activations, each reach only about 0.9992 on the held-out
set; the feed-forward output projection loses most.

Why ``torch._int_mm`` and not ``torch.ao.quantization.quantize_dynamic``: that API and the quantized tensor types
it builds on are deprecated since torch 2.10 in favour of ``torchao``. ``torchao``'s int8 dynamic-activation /
int8-weight recipe is the maintained route, but it rewrites ``nn.Linear`` only (not our grouped convolutions, whose
groups it would have to split into separate layers) and would add a dependency; on the CPU it calls the same
core kernel, ``torch._int_mm`` (int8 x int8 -> int32 through oneDNN, VNNI where the CPU has it). We call that
kernel directly, once per group, on the layout the fast path already uses: no deprecated API, no new dependency,
and the fused QKV projection stays one quantized projection.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Collection, Sequence
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from .calibration_texts import CALIBRATION_TEXTS
from .kernels import int8_kernels
from .modeling.layers import GroupedConv1x1, SqueezeBertLayer, SqueezeBertSelfAttention, get_activation
from .modeling.model import SqueezeBertModel
from .tokenization import AutoTokenizer

__all__ = ["PROJECTION_KINDS", "ROUNDING", "Int8Projection", "gptq_round", "quantize_dynamic", "quantize_rows"]


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric 8-bit quantization along the last dimension: ``x ~ scale * q + offset``.

    Returns ``q`` (int8), ``scale`` and ``offset`` (``[..., 1]``). Each row's range ``[min, max]`` maps onto the
    256 levels of int8 (min -> -128, max -> 127), so a row whose values lie mostly on one side of zero (after GELU,
    or a LayerNorm with offsets) keeps the full resolution.
    """
    low = x.amin(dim=-1, keepdim=True)
    scale = (x.amax(dim=-1, keepdim=True) - low).clamp_min_(1e-12).div_(255.0)
    inv = scale.reciprocal()
    shift = torch.mul(low, inv).neg_()  # x * inv + shift lies in [0, 255] (the levels the kernels compute)
    q = torch.addcmul(shift, x, inv).round_().clamp_(0.0, 255.0).sub_(128.0).to(torch.int8)
    return q, scale, torch.add(low, scale, alpha=128.0)


def gptq_round(
    weight: torch.Tensor,
    gram: torch.Tensor,
    exact: torch.Tensor | None = None,
    span: int | None = None,
    damping: float = 0.1,
    block: int = 128,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GPTQ rounding: int8 levels and scales for ``weight`` ``(G, cin, cout)`` that keep ``x @ W`` close on inputs
    whose ``X^T X`` is ``gram`` ``(G, cin, cin)``; one scale per output channel and per ``span`` input rows (None:
    all rows).

    Input rows are rounded one after the other; each row's rounding error is spread over the rows not yet rounded,
    weighted by the inverse Hessian (Frantar et al., 2022: the optimal brain surgeon update, through the Cholesky
    factor of ``H^-1``, in blocks of ``block`` rows; ``damping`` times the mean diagonal is added to it). A span's
    scales, ``max |W| / 127`` per output channel, are taken from its rows as updated when the first of them is
    rounded. The ``exact`` rows ``(G, k)`` (the fp32 outlier channels) come last and are not rounded: they take up
    the others' errors in floating point. Rows no calibration input reaches (zero diagonal) round to 0. Returns the
    levels in ``[-127, 127]`` as floats (0 in the ``exact`` rows), the scales ``(G, spans, cout)`` and the
    ``exact`` rows' new weights ``(G, k, cout)``.
    """
    groups, cin, cout = weight.shape
    span = cin if span is None else min(span, cin)
    exact = torch.zeros(groups, 0, dtype=torch.long) if exact is None else exact
    levels = torch.zeros(groups, cin, cout)
    scale = torch.full((groups, -(-cin // span), cout), 1e-12 / 127.0)  # spans without inlier rows keep this
    kept = torch.empty(groups, exact.shape[1], cout)
    for g in range(groups):
        is_exact = torch.zeros(cin, dtype=torch.bool).index_fill_(0, exact[g], True)
        order = torch.cat([(~is_exact).nonzero()[:, 0], exact[g]])  # the exact rows last
        rounded = cin - exact.shape[1]
        span_of = order[:rounded] // span  # ascending: each span's rows are rounded together
        w = weight[g, order].double()  # (cin, cout), updated as rows are rounded
        hessian = gram[g][order][:, order].double()
        dead = hessian.diagonal() == 0
        hessian.diagonal()[dead] = 1.0
        w[dead] = 0.0
        hessian.diagonal().add_(damping * hessian.diagonal().mean())
        u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(hessian)), upper=True)  # H^-1 = u^T u
        step = None
        for start in range(0, rounded, block):
            stop = min(start + block, rounded)
            errors = torch.empty(stop - start, cout, dtype=torch.float64)
            for i in range(start, stop):
                if i == 0 or span_of[i] != span_of[i - 1]:  # a new span: its scales from its rows as they are now
                    step = w[:rounded][span_of == span_of[i]].abs().amax(0).clamp_min(1e-12) / 127.0
                    scale[g, span_of[i]] = step.float()
                q = torch.round(w[i] / step).clamp_(-127, 127)
                levels[g, order[i]] = q.float()
                errors[i - start] = (w[i] - q * step) / u[i, i]
                w[i + 1 : stop] -= u[i, i + 1 : stop, None] * errors[i - start]
            w[stop:] -= u[start:stop, stop:].t() @ errors
        kept[g] = w[rounded:].float()
    return levels, scale, kept


_NO_TENSOR = torch.empty(0)  # "none" for the kernels' optional tensor arguments


def _check_span(span: object) -> None:
    if span is not None and (isinstance(span, bool) or not isinstance(span, int) or span < 4 or span % 4):
        raise ValueError(f"span must be a multiple of 4 (at least 4) or None, got {span!r}")


# The activations (``hidden_act`` names) the kernels apply to a projection's output in the same pass, and theirs.
FUSED_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
}


def _plain_rows(t: torch.Tensor) -> bool:
    return t.dtype == torch.float32 and t.device.type == "cpu" and t.stride(-1) == 1


class Int8Projection(nn.Module):
    """A grouped 1x1 convolution (or a Linear layer, ``groups=1``) with int8 weights, for inference.

    A :class:`~squeezebert.modeling.layers.Projection`, like :class:`~squeezebert.modeling.layers.GroupedConv1x1`
    (``grouped``, ``accumulate``, ``to_groups``, ``out_groups``, and ``forward`` on ``[..., in_features]``), so it
    replaces either in place. Where the kernels are built, each call is one ``kernels.project``: one parallel
    region for the whole projection, the activation of the feed-forward block included (``grouped_activation``).
    """

    fused_activations = frozenset(FUSED_ACTIVATIONS)

    def __init__(
        self,
        group_weight: torch.Tensor,
        bias: torch.Tensor | None,
        outliers: torch.Tensor | None = None,
        smoothing: torch.Tensor | None = None,
        gram: torch.Tensor | None = None,
        span: int | None = None,
    ) -> None:
        """``group_weight`` ``(G, cin, cout)`` in floating point, ``bias`` ``(G * cout,)`` or None.

        ``outliers`` ``(G, k)``: per group, the input channels computed in fp32 instead (none when None).
        ``smoothing`` ``(G, cin)``: per input channel a factor ``s`` moved from the activations into the weights
        (``x / s`` is quantized, ``s W`` stored; 1 at outlier channels). ``gram`` ``(G, cin, cin)``: calibration
        inputs' ``X^T X``; given, the weights are rounded by :func:`gptq_round` instead of to nearest. ``span``:
        input channels per quantization span (a multiple of 4), each with its own activation and weight scales
        (None: one span, the whole group).
        """
        super().__init__()
        groups, cin, cout = group_weight.shape
        self.groups, self.in_channels, self.out_channels = groups, groups * cin, groups * cout
        _check_span(span)
        self.span = cin if span is None or span >= cin else span
        weight = group_weight.detach().float()
        outliers = torch.zeros(groups, 0, dtype=torch.long) if outliers is None else outliers.long()
        smoothing = torch.ones(groups, cin) if smoothing is None else smoothing.detach().float()
        self.smoothed = bool((smoothing != 1.0).any())  # then x is multiplied by inlier_mask even without outliers
        rows = outliers.unsqueeze(-1).expand(-1, -1, cout)
        outlier_weight = weight.gather(1, rows)  # (G, k, cout)
        weight = weight.scatter(1, rows, 0.0) * smoothing.unsqueeze(-1)  # (G, cin, cout)
        if gram is None:
            scale = self._by_span(weight).abs().amax(dim=2).clamp_min(1e-12) / 127.0  # (G, spans, cout)
            weight_int8 = torch.round(weight / scale.repeat_interleave(self.span, dim=1)[:, :cin])
        else:  # on the smoothed inputs x / s; the outlier rows take up rounding errors in fp32
            gram = gram / (smoothing.unsqueeze(-1) * smoothing.unsqueeze(-2))
            weight = weight.scatter(1, rows, outlier_weight)
            weight_int8, scale, outlier_weight = gptq_round(weight, gram, outliers, self.span)
        self.register_buffer("weight_int8", weight_int8.to(torch.int8).contiguous())
        self.register_buffer("weight_scale", scale.contiguous())  # (G, spans, cout)
        # s_w * sum_k W_q[k, n] over each span's rows: what multiplies the span's activation offset
        self.register_buffer("weight_offset", self._by_span(self.weight_int8.float()).sum(dim=2) * scale)
        self.register_buffer("outliers", outliers.unsqueeze(1).contiguous())  # (G, 1, k)
        self.register_buffer("outlier_weight", outlier_weight.contiguous())  # (G, k, cout)
        # what multiplies x before its quantization: 1 / s, and 0 at the outlier channels
        self.register_buffer("inlier_mask", smoothing.reciprocal().unsqueeze(1).scatter_(2, self.outliers, 0.0))
        bias = torch.zeros(groups * cout) if bias is None else bias.detach().float()
        self.register_buffer("bias", bias.reshape(groups * cout).clone())
        self._pack()
        self.register_load_state_dict_post_hook(Int8Projection._after_load)

    def _pack(self) -> None:
        """``weight_packed``: ``weight_int8`` in the layout of the kernels' VNNI matmul where it was compiled, else
        empty (derived, not saved: built again when a state dict is loaded)."""
        self._kernel_arguments: tuple[torch.Tensor, ...] | None = None  # built on first use, see _arguments
        kernels = int8_kernels(build=False)
        vnni = kernels is not None and kernels.vnni() and self.weight_int8.device.type == "cpu"
        packed = kernels.pack_weight(self.weight_int8) if vnni else torch.empty(0, dtype=torch.int8)
        self.register_buffer("weight_packed", packed, False)

    @staticmethod
    def _after_load(module: Int8Projection, incompatible_keys: object) -> None:
        module._pack()

    def _by_span(self, rows: torch.Tensor) -> torch.Tensor:
        """``(G, cin, cout)`` -> ``(G, spans, span, cout)``, the last span padded with zero rows."""
        groups, cin, cout = rows.shape
        spans = -(-cin // self.span)
        return F.pad(rows, (0, 0, 0, spans * self.span - cin)).view(groups, spans, self.span, cout)

    def __setattr__(self, name: str, value: object) -> None:
        if name in self.__dict__.get("_buffers", ()):
            self.__dict__["_kernel_arguments"] = None  # a buffer replaced: build the kernels' arguments again
        super().__setattr__(name, value)

    def _apply(self, fn: Callable, recurse: bool = True) -> Int8Projection:
        self._kernel_arguments = None  # .to(), .float(), ...: the buffers may be new tensors
        return super()._apply(fn, recurse)

    def _arguments(self) -> tuple[torch.Tensor, ...]:
        """``kernels.project``'s weight arguments before ``out``: ``keep``, ``outliers``, ``weight``, ``packed``,
        ``weight_offset``, ``weight_scale``, ``bias``, ``outlier_weight`` (the buffers' views, built once: a call
        of a small projection should not spend its time in ``nn.Module.__getattr__``)."""
        if self._kernel_arguments is None:
            groups, count = self.groups, self.outliers.shape[-1]
            keep = self.inlier_mask.view(groups, -1) if count > 0 or self.smoothed else _NO_TENSOR
            self._kernel_arguments = (keep, self.outliers.view(groups, count), self.weight_int8, self.weight_packed)
            self._kernel_arguments += (self.weight_offset, self.weight_scale, self.bias, self.outlier_weight)
        return self._kernel_arguments

    @classmethod
    def from_conv(
        cls, conv: GroupedConv1x1, outliers: torch.Tensor | None = None, **options: torch.Tensor | int | None
    ) -> Int8Projection:
        """``options``: :class:`Int8Projection`'s ``smoothing``, ``gram`` and ``span``."""
        return cls(conv.group_weight(), conv.bias, outliers, **options)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, outliers: torch.Tensor | None = None, span: int | None = None
    ) -> Int8Projection:
        return cls(linear.weight.t().unsqueeze(0), linear.bias, outliers, span=span)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, groups={self.groups}, int8"

    def to_groups(self, x: torch.Tensor) -> torch.Tensor:
        """``(tokens, in)`` -> ``(groups, tokens, in / groups)``, a strided view."""
        return x.view(x.shape[0], self.groups, self.in_channels // self.groups).transpose(0, 1)

    def out_groups(self, y: torch.Tensor) -> torch.Tensor:
        """``(tokens, out)`` -> ``(groups, tokens, out / groups)``, a strided view."""
        return y.view(y.shape[0], self.groups, self.out_channels // self.groups).transpose(0, 1)

    def _kernels(self, *tensors: torch.Tensor) -> ModuleType | None:
        """The compiled kernels (:mod:`squeezebert.kernels`) if built and applicable (fp32 CPU, contiguous rows)."""
        kernels = int8_kernels(build=False)
        usable = kernels is not None and _plain_rows(self._arguments()[5])  # weight_scale: fp32 on the CPU
        return kernels if usable and all(_plain_rows(t) for t in tensors) else None

    def _product(self, x_groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Per span of input channels, ``x_q @ W_q`` in int32 with the spans' ``s_x`` and ``o``, and the outlier
        channels' inputs (None if none): ``(G, spans, tokens, cout)``, ``(G, spans, tokens, 1)`` twice.

        With ``x ~ s_x x_q + o`` on a span: ``x @ W_q = s_x (x_q @ W_q) + o * sum_k W_q[k]``, the matmul in int8 ->
        int32. The outlier channels are zeroed before the quantization (their rows of ``W_q`` are zero) and added
        in fp32.
        """
        groups, tokens, cin = x_groups.shape
        spans = self.weight_scale.shape[1]
        has_outliers = self.outliers.shape[-1] > 0
        masked = has_outliers or self.smoothed
        x_outliers = x_groups.gather(-1, self.outliers.expand(groups, tokens, -1)) if has_outliers else None
        x = x_groups * self.inlier_mask if masked else x_groups
        x = F.pad(x, (0, spans * self.span - cin), mode="replicate")  # the last span's range unchanged
        x_q, x_scale, offset = quantize_rows(x.view(groups, tokens, spans, self.span).transpose(1, 2))
        weight = self._by_span(self.weight_int8)  # (G, spans, span, cout)
        acc = torch.empty(groups, spans, tokens, weight.shape[-1], dtype=torch.int32, device=x_groups.device)
        for g in range(groups):
            for s in range(spans):
                torch._int_mm(x_q[g, s], weight[g, s], out=acc[g, s])
        return acc, x_scale, offset, x_outliers

    def _dequantize(self, x_groups: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        """``bias + x @ W`` (``out`` None: a new tensor) or ``out += x @ W``, in group layout, in PyTorch."""
        acc, x_scale, offset, x_outliers = self._product(x_groups)
        y = acc.to(x_scale.dtype).mul_(x_scale).mul_(self.weight_scale.unsqueeze(2).to(x_scale.dtype))
        y = y.addcmul_(offset, self.weight_offset.unsqueeze(2).to(y.dtype)).sum(dim=1)  # (G, tokens, cout)
        if x_outliers is not None:
            y.baddbmm_(x_outliers, self.outlier_weight.to(y.dtype))
        if out is not None:
            return out.add_(y)
        return y.add_(self.bias.view(self.groups, 1, -1).to(y.dtype))

    def _project(
        self,
        x_groups: torch.Tensor,
        out: torch.Tensor | None,
        activation: str | None = None,
        residual: torch.Tensor | None = None,
        layernorm: nn.LayerNorm | None = None,
    ) -> torch.Tensor:
        """One ``kernels.project`` call (quantization, int8 matmul per group, dequantization and what follows, in one
        parallel region), or the same in PyTorch operations without the kernels. ``out`` None: returns
        ``act(bias + x @ W)`` in a new tensor. ``out`` given: ``out += x @ W`` (no bias), or with ``residual`` (a
        group view like ``out``) ``out = residual + bias + x @ W``, then each whole row of the ``(tokens, out)``
        tensor ``out`` views replaced by its ``layernorm`` when given."""
        tensors = (x_groups,) if out is None else (x_groups, out) if residual is None else (x_groups, out, residual)
        kernels = self._kernels(*tensors)
        if kernels is None:
            return self._project_in_pytorch(x_groups, out, activation, residual, layernorm)
        arguments = self._arguments()
        if out is None:  # act(bias + x @ W) into a new tensor
            out, base = x_groups.new_empty(self.groups, x_groups.shape[1], self.out_channels // self.groups), None
        elif residual is None:  # out += x @ W: no bias
            arguments, base = (*arguments[:6], _NO_TENSOR, arguments[7]), out
        else:  # out = residual + bias + x @ W
            base = residual
        norm = (_NO_TENSOR, _NO_TENSOR, 0.0) if layernorm is None else (layernorm.weight, layernorm.bias, layernorm.eps)
        base = _NO_TENSOR if base is None else base
        kernels.project(x_groups, *arguments, out, base, *norm, FUSED_ACTIVATIONS.get(activation, ""), self.span)
        return out

    def _project_in_pytorch(
        self,
        x_groups: torch.Tensor,
        out: torch.Tensor | None,
        activation: str | None,
        residual: torch.Tensor | None,
        layernorm: nn.LayerNorm | None,
    ) -> torch.Tensor:
        """:meth:`_project` without the kernels."""
        if out is None:
            y = self._dequantize(x_groups, None)
            return y if activation is None else get_activation(activation)[1](y)
        if residual is not None:
            out.copy_(residual + self.bias.view(self.groups, 1, -1))
        self._dequantize(x_groups, out)
        if layernorm is not None:
            rows = out.transpose(0, 1).reshape(out.shape[1], -1)  # (tokens, G * out/G), a copy
            out.copy_(self.out_groups(layernorm(rows)))
        return out

    def grouped(self, x_groups: torch.Tensor) -> torch.Tensor:
        """``(G, tokens, in/G)`` -> ``(G, tokens, out/G)``, bias included."""
        return self._project(x_groups, None)

    def grouped_activation(self, x_groups: torch.Tensor, activation: str) -> torch.Tensor:
        """``act(grouped(x_groups))`` for an activation named in :attr:`fused_activations` (inference only)."""
        if activation not in FUSED_ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(FUSED_ACTIVATIONS)}, got {activation!r}")
        return self._project(x_groups, None, activation)

    def accumulate(self, x_groups: torch.Tensor, out_groups: torch.Tensor) -> None:
        """``out_groups += x_groups @ W`` in place, without the bias."""
        self._project(x_groups, out_groups)

    def residual_norm(
        self, x_groups: torch.Tensor, residual: torch.Tensor, layernorm: nn.LayerNorm, out: torch.Tensor
    ) -> None:
        """``out = layernorm(residual + bias + x @ W)`` for ``residual`` and ``out`` ``(tokens, out_channels)``
        (``out`` may be ``residual``), the LayerNorm in the projection's pass (inference only)."""
        self._project(x_groups, self.out_groups(out), residual=self.out_groups(residual), layernorm=layernorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        y = self.grouped(self.to_groups(x.reshape(-1, self.in_channels)))
        y = y[0] if self.groups == 1 else y.transpose(0, 1).reshape(-1, self.out_channels)
        return y.reshape(*leading, self.out_channels)


class _InputStatistics:
    """What calibration records of one projection's input ``x`` ``(tokens, C)``: the peak ``|x|`` per channel
    ``(C,)`` and ``X^T X`` ``(C, C)`` (the GPTQ Hessian, up to a factor), summed over the calibration tokens."""

    def __init__(self) -> None:
        self.peak: torch.Tensor | None = None
        self.gram: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).double()  # (tokens, C)
        peak, gram = x.abs().amax(0).float(), x.t() @ x
        self.peak = peak if self.peak is None else torch.maximum(self.peak, peak)
        self.gram = gram if self.gram is None else self.gram + gram

    def gram_blocks(self, groups: int) -> torch.Tensor:
        """The diagonal blocks of ``X^T X`` for a projection with ``groups`` groups: ``(G, C/G, C/G)``."""
        width = self.gram.shape[0] // groups
        return torch.stack([self.gram[g * width : (g + 1) * width, g * width : (g + 1) * width] for g in range(groups)])


def _calibrate(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> dict[nn.Module, _InputStatistics]:
    """Runs ``batches`` (model inputs, one unpadded sequence each) and records each encoder projection's inputs.

    Keyed by the projection (the self-attention module for Q, K and V, which share their input). Empty when
    ``model`` holds no :class:`~squeezebert.modeling.model.SqueezeBertModel`.
    """
    encoder_model = next((m for m in model.modules() if isinstance(m, SqueezeBertModel)), None)
    if encoder_model is None:
        return {}
    stats: dict[nn.Module, _InputStatistics] = {}

    def record(key: nn.Module, x: torch.Tensor) -> None:
        stats.setdefault(key, _InputStatistics()).add(x)

    def after_post_attention(layer: SqueezeBertLayer, out: torch.Tensor) -> None:
        record(layer.intermediate.conv1d, out)
        record(layer.output.conv1d, layer.intermediate(out))

    hooks = []
    for layer in encoder_model.modules():
        if isinstance(layer, SqueezeBertLayer):
            hooks += [
                layer.attention.register_forward_pre_hook(lambda m, args: record(m, args[0])),
                layer.post_attention.register_forward_pre_hook(lambda m, args: record(m.conv1d, args[0])),
                layer.post_attention.register_forward_hook(
                    lambda m, a, out, layer=layer: after_post_attention(layer, out)
                ),
            ]
    device = encoder_model.embeddings.word_embeddings.weight.device
    try:
        with torch.no_grad():
            for batch in batches:
                encoder_model.eval()(**{key: value.to(device) for key, value in batch.items()})
    finally:
        for hook in hooks:
            hook.remove()
    return stats


def _random_batches(model: nn.Module, count: int = 8, seq: int = 64) -> list[dict[str, torch.Tensor]]:
    """Random token ids: the calibration input when there is no tokenizer."""
    config = next(m for m in model.modules() if isinstance(m, SqueezeBertModel)).config
    generator = torch.Generator().manual_seed(0)
    seq = min(seq, config.max_position_embeddings)
    return [{"input_ids": torch.randint(0, config.vocab_size, (1, seq), generator=generator)} for _ in range(count)]


def _outlier_channels(weight: torch.Tensor, ranges: torch.Tensor, count: int) -> torch.Tensor | None:
    """``(G, 2 * count / G)``: per group of ``weight`` ``(G, cin, cout)``, the input channels kept in fp32.

    The ``count`` channels with the largest calibrated activations (they would stretch every token's int8 range),
    then the ``count`` others with the largest weight rows (they would stretch every output channel's scale).
    """
    groups, cin, _ = weight.shape
    count = min(count // groups, cin // 8)  # fp32 channels cost about 4 int8 ones: keep them few
    if count <= 0:
        return None
    rows = weight.detach().abs().amax(dim=2).float()  # (G, cin)
    by_activation = ranges.view(groups, cin).topk(count, dim=1).indices
    by_weight = rows.scatter(1, by_activation, -1.0).topk(count, dim=1).indices
    return torch.cat([by_activation, by_weight], dim=1)


# The projection kinds ``keep_float`` may name (found in a model by ``_projection_kinds``).
PROJECTION_KINDS = ("attention", "post_attention", "intermediate", "output", "heads")


def _projection_kinds(model: nn.Module) -> dict[nn.Module, str]:
    """Every projection ``quantize_dynamic`` would replace, mapped to its kind (the self-attention module stands for
    its Q, K and V)."""
    kinds: dict[nn.Module, str] = {}
    for layer in model.modules():
        if isinstance(layer, SqueezeBertLayer):
            kinds[layer.attention] = "attention"
            for conv in (layer.attention.query, layer.attention.key, layer.attention.value):
                kinds[conv] = "attention"
            kinds[layer.post_attention.conv1d] = "post_attention"
            kinds[layer.intermediate.conv1d] = "intermediate"
            kinds[layer.output.conv1d] = "output"
    for module in model.modules():
        if isinstance(module, (GroupedConv1x1, nn.Linear)) and module not in kinds:
            kinds[module] = "heads"  # pooler, task heads, MLM transform and decoder
    return kinds


def _model_tokenizer(model: nn.Module) -> object | None:
    """The tokenizer saved with ``model`` (its config's local ``name_or_path`` folder), or None."""
    config = next(m for m in model.modules() if isinstance(m, SqueezeBertModel)).config
    if not config.name_or_path or not os.path.isdir(config.name_or_path):
        return None
    try:
        return AutoTokenizer.from_pretrained(config.name_or_path)
    except (OSError, ValueError):
        return None


def _calibration_batches(
    model: nn.Module, texts: Sequence[str] | None, tokenizer: Callable | None
) -> list[dict[str, torch.Tensor]]:
    """One unpadded batch per calibration text (the built-in set by default); random ids without a tokenizer."""
    if texts is not None and (
        isinstance(texts, str) or not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts)
    ):
        raise ValueError(f"calibration_texts must be a sequence of strings, got {type(texts).__name__}")
    if texts is not None and not any(t.strip() for t in texts):
        raise ValueError("calibration_texts must hold at least one non-empty text")
    if tokenizer is not None and not callable(tokenizer):
        raise ValueError(f"tokenizer must be a callable tokenizer, got {type(tokenizer).__name__}")
    tokenizer = tokenizer if tokenizer is not None else _model_tokenizer(model)
    if tokenizer is None:
        if texts is not None:
            raise ValueError("calibration_texts need a tokenizer: pass tokenizer=..., the model's tokenizer")
        return _random_batches(model)
    config = next(m for m in model.modules() if isinstance(m, SqueezeBertModel)).config
    batches = []
    for text in CALIBRATION_TEXTS if texts is None else [t for t in texts if t.strip()]:
        encoded = tokenizer(text, truncation=True, max_length=config.max_position_embeddings, return_tensors="pt")
        batches.append({key: encoded[key] for key in ("input_ids", "attention_mask") if key in encoded})
    return batches


def _smoothing_factors(weight: torch.Tensor, peak: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's ``s_j = max|x_j|^alpha / max|W_j|^(1 - alpha)`` per input channel: ``(G, cin)`` for ``weight``
    ``(G, cin, cout)`` and the calibrated ``peak`` ``(G * cin,)``; 1 where a channel saw no input or has no weight."""
    groups, cin, _ = weight.shape
    rows = weight.detach().abs().amax(dim=2).float()  # (G, cin)
    peak = peak.view(groups, cin)
    factors = peak.pow(alpha) / rows.pow(1.0 - alpha)
    return torch.where((peak > 0) & (rows > 0), factors, 1.0)


def _projection_options(
    weight: torch.Tensor, stats: _InputStatistics | None, outliers: int, smoothing: float, rounding: str
) -> dict[str, torch.Tensor | None]:
    """Int8Projection's calibrated arguments for ``weight`` ``(G, cin, cout)``: outlier channels, smoothing
    factors (1 at the outliers) and, for GPTQ rounding, the inputs' ``X^T X`` blocks."""
    if stats is None:
        return {}
    groups = weight.shape[0]
    channels = _outlier_channels(weight, stats.peak, outliers) if outliers > 0 else None
    factors = None
    if smoothing > 0:
        factors = _smoothing_factors(weight, stats.peak, smoothing)
        if channels is not None:
            factors.scatter_(1, channels, 1.0)
    gram = stats.gram_blocks(groups) if rounding == "gptq" else None
    return {"outliers": channels, "smoothing": factors, "gram": gram}


# How ``quantize_dynamic`` rounds weights: to the nearest level, or GPTQ's error compensation on calibration inputs.
ROUNDING = ("nearest", "gptq")


def quantize_dynamic(
    model: nn.Module,
    inplace: bool = False,
    outliers: int = 16,
    keep_float: Collection[str] = (),
    calibration_texts: Sequence[str] | None = None,
    tokenizer: Callable | None = None,
    smoothing: float = 0.0,
    rounding: str = "gptq",
    span: int | None = 64,
) -> nn.Module:
    """An int8 copy of a SqueezeBERT model (or ``model`` itself with ``inplace=True``) for CPU inference.

    Every grouped projection and ``nn.Linear`` (pooler, heads, MLM decoder) gets int8 weights with a scale per
    output channel and per ``span`` input channels (None: one span per group); activations are quantized per
    token and span at run time; the Q, K and V projections of a layer run as one fused int8 projection.
    ``keep_float`` names projection kinds left in floating point, trading speed for accuracy: any of
    ``"attention"`` (Q, K, V), ``"post_attention"``, ``"intermediate"``, ``"output"`` (the feed-forward block's
    second projection) and ``"heads"``.

    The encoder's projections are calibrated on text (see the module docstring): ``calibration_texts`` (default: a
    built-in set of generic English sentences, :data:`squeezebert.calibration_texts.CALIBRATION_TEXTS`) tokenized
    by ``tokenizer`` (default: the one saved in the model's folder; without any, random token ids). From what each
    projection sees, ``2 * outliers`` of its input channels (shared among its groups) stay in fp32 (0: none),
    ``rounding`` is ``"gptq"`` (error-compensating, on the calibration inputs) or ``"nearest"``, and ``smoothing``
    is SmoothQuant's migration strength alpha (0, the default: off; it costs accuracy on MiniLM). ``span`` (a
    multiple of 4, default 64) trades speed for accuracy: finer spans are more accurate and slower (see the
    README's int8 table; None is the fastest).

    The result is for inference: it has no gradients, and its state dict holds int8 buffers, not the checkpoint's
    parameters (save the float model).
    """
    if isinstance(keep_float, str):
        raise TypeError(f"keep_float must be a collection of projection kinds, not the string {keep_float!r}")
    unknown = sorted(set(keep_float) - set(PROJECTION_KINDS))
    if unknown:
        choices = ", ".join(PROJECTION_KINDS)
        raise ValueError(f"keep_float has unknown projection kinds {unknown}; choose from {choices}")
    if not isinstance(outliers, int) or outliers < 0:
        raise ValueError(f"outliers must be an integer >= 0, got {outliers!r}")
    if not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be a number in [0, 1], got {smoothing!r}")
    if rounding not in ROUNDING:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDING)}, got {rounding!r}")
    _check_span(span)
    int8_kernels()  # compiled once per machine (about half a minute), then loaded from torch's cache
    if not inplace:
        model = copy.deepcopy(model)
    kinds = {module: kind for module, kind in _projection_kinds(model).items() if kind not in keep_float}
    has_encoder = any(isinstance(m, SqueezeBertModel) for m in model.modules())
    stats = _calibrate(model, _calibration_batches(model, calibration_texts, tokenizer)) if has_encoder else {}
    for module in list(model.modules()):
        if isinstance(module, SqueezeBertSelfAttention) and module in kinds and module.fused_qkv:
            with torch.no_grad():
                weight, bias = module._qkv_weight_and_bias()
            options = _projection_options(weight, stats.get(module), outliers, smoothing, rounding)
            module.qkv = Int8Projection(weight, bias.reshape(-1), **options, span=span)
            module._qkv_cache = None
        elif isinstance(module, SqueezeBertSelfAttention) and module in stats:
            for conv in (module.query, module.key, module.value):
                stats[conv] = stats[module]
    for name, module in list(model.named_modules()):
        if module not in kinds:
            continue
        if isinstance(module, GroupedConv1x1):
            weight = module.group_weight().detach()
            options = _projection_options(weight, stats.get(module), outliers, smoothing, rounding)
            replacement = Int8Projection.from_conv(module, **options, span=span)
        elif isinstance(module, nn.Linear):
            replacement = Int8Projection.from_linear(module, span=span)
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, replacement)
    return model.eval()
