"""Dynamic int8 quantization for CPU inference: int8 weights, activations quantized on the fly.

Every grouped 1x1 convolution and every ``nn.Linear`` becomes an :class:`Int8Projection`:

    weight  W (G, cin, cout)  ->  W_q = round(W / s_w) in int8,        s_w = max|W| / 127 per output channel
    input   x (G, T, cin)     ->  x_q = round((x - o) / s_x) in int8,  s_x = (max x - min x) / 255 per token and group
    output  y = (s_x (x_q @ W_q) + o * sum_k W_q) * s_w + bias       (x_q @ W_q in int32 on the int8 dot products)

Attention scores, softmax, LayerNorm and the activation stay in floating point. The element-wise work around each
int8 matmul runs in compiled kernels (:mod:`squeezebert.kernels`, one pass per row) where they could be built, and
as PyTorch operations otherwise; both compute the formulas above.

Outlier channels (LLM.int8-style decomposition): a few input channels of each encoder projection stay in fp32,
``y += x[:, O] @ W[O]``, and are zeroed before the per-token quantization; their weight rows are left out of the
int8 weights. ``O`` is fixed at quantize time: the channels with the largest activations in a calibration pass on
random token ids (BERT's residual stream has a few huge channels in every token, which stretch each token's
range), plus those with the largest weight rows (which stretch each output channel's scale). Measured on MiniLM-L6
text (all-MiniLM-L6-v2 converted; ``benchmarks/bench_int8_accuracy.py``), minimum per-token cosine to fp32 on 12
sentences: 0.988 without, 0.9977 with 8 + 8 channels. What is left: the feed-forward output projection (its input
is the GELU output) is the largest source, quantized alone 0.9987 where every other kind alone stays >= 0.9995,
hence ``keep_float=("output",)`` (0.9991); weight and activation rounding weigh about the same (each alone
0.9989-0.9990), so neither better weight rounding (GPTQ) nor finer activation scales alone would reach 0.999.
SmoothQuant scales and K-blocked activation scales gained less than the fp32 channels; per-token top-16 outliers
reached 0.9991 but gather weight rows per token, which costs more than the int8 matmul. fp32 channels cost about
four int8 ones, so the count is shared among a projection's groups.

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
from collections.abc import Collection
from types import ModuleType

import torch
from torch import nn

from .kernels import int8_kernels
from .modeling.layers import GroupedConv1x1, SqueezeBertLayer, SqueezeBertSelfAttention
from .modeling.model import SqueezeBertModel

__all__ = ["PROJECTION_KINDS", "Int8Projection", "quantize_dynamic", "quantize_rows"]


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric 8-bit quantization along the last dimension: ``x ~ scale * q + offset``.

    Returns ``q`` (int8), ``scale`` and ``offset`` (``[..., 1]``). Each row's range ``[min, max]`` maps onto the
    256 levels of int8 (min -> -128, max -> 127), so a row whose values lie mostly on one side of zero (after GELU,
    or a LayerNorm with offsets) keeps the full resolution.
    """
    low = x.amin(dim=-1, keepdim=True)
    scale = (x.amax(dim=-1, keepdim=True) - low).clamp_min_(1e-12).div_(255.0)
    inv = scale.reciprocal()
    shift = torch.mul(low, inv).add_(128.0).neg_()  # x * inv + shift lies in [-128, 127]
    q = torch.addcmul(shift, x, inv).round_().to(torch.int8)
    return q, scale, torch.add(low, scale, alpha=128.0)


_NO_TENSOR = torch.empty(0)  # "none" for the kernels' optional tensor arguments


def _plain_rows(t: torch.Tensor) -> bool:
    return t.dtype == torch.float32 and t.device.type == "cpu" and t.stride(-1) == 1


class Int8Projection(nn.Module):
    """A grouped 1x1 convolution (or a Linear layer, ``groups=1``) with int8 weights, for inference.

    A :class:`~squeezebert.modeling.layers.Projection`, like :class:`~squeezebert.modeling.layers.GroupedConv1x1`
    (``grouped``, ``accumulate``, ``to_groups``, ``out_groups``, and ``forward`` on ``[..., in_features]``), so it
    replaces either in place.
    """

    def __init__(
        self, group_weight: torch.Tensor, bias: torch.Tensor | None, outliers: torch.Tensor | None = None
    ) -> None:
        """``group_weight`` ``(G, cin, cout)`` in floating point, ``bias`` ``(G * cout,)`` or None.

        ``outliers`` ``(G, k)``: per group, the input channels computed in fp32 instead (none when None).
        """
        super().__init__()
        groups, cin, cout = group_weight.shape
        self.groups, self.in_channels, self.out_channels = groups, groups * cin, groups * cout
        weight = group_weight.detach().float()
        outliers = torch.zeros(groups, 0, dtype=torch.long) if outliers is None else outliers.long()
        rows = outliers.unsqueeze(-1).expand(-1, -1, cout)
        outlier_weight = weight.gather(1, rows)  # (G, k, cout)
        weight = weight.scatter(1, rows, 0.0)
        scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0  # (G, 1, cout)
        self.register_buffer("weight_int8", torch.round(weight / scale).to(torch.int8).contiguous())
        self.register_buffer("weight_scale", scale)
        # sum_k W_q[k, n]: the contribution of the activations' offset, added after the integer matmul
        self.register_buffer("weight_sum", self.weight_int8.sum(dim=1, keepdim=True, dtype=torch.float32))
        self.register_buffer("outliers", outliers.unsqueeze(1).contiguous())  # (G, 1, k)
        self.register_buffer("outlier_weight", (outlier_weight / scale).contiguous())  # in units of s_w
        self.register_buffer("inlier_mask", torch.ones(groups, 1, cin).scatter_(2, self.outliers, 0.0))
        bias = torch.zeros(groups * cout) if bias is None else bias.detach().float()
        self.register_buffer("bias", bias.reshape(groups * cout).clone())

    @classmethod
    def from_conv(cls, conv: GroupedConv1x1, outliers: torch.Tensor | None = None) -> Int8Projection:
        return cls(conv.group_weight(), conv.bias, outliers)

    @classmethod
    def from_linear(cls, linear: nn.Linear, outliers: torch.Tensor | None = None) -> Int8Projection:
        return cls(linear.weight.t().unsqueeze(0), linear.bias, outliers)

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
        usable = kernels is not None and self.weight_scale.dtype == torch.float32
        return kernels if usable and all(_plain_rows(t) for t in tensors) else None

    def _product(
        self, x_groups: torch.Tensor, kernels: ModuleType | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``x_q @ W_q`` in int32 with the rows' ``s_x`` and ``o``, and the outlier channels' inputs (None if none).

        With ``x ~ s_x x_q + o``: ``x @ W_q = s_x (x_q @ W_q) + o * sum_k W_q[k]``, the matmul in int8 -> int32.
        The outlier channels are zeroed before the quantization (their rows of ``W_q`` are zero) and added in fp32.
        """
        groups, tokens = x_groups.shape[:2]
        has_outliers = self.outliers.shape[-1] > 0
        if kernels is not None:  # the mask and the gather happen inside the one pass
            keep = self.inlier_mask.view(groups, -1) if has_outliers else _NO_TENSOR
            index = self.outliers.view(groups, self.outliers.shape[-1])
            x_q, x_scale, offset, x_outliers = kernels.quantize_rows(x_groups, keep, index)
        else:
            x_outliers = x_groups.gather(-1, self.outliers.expand(groups, tokens, -1)) if has_outliers else None
            x_q, x_scale, offset = quantize_rows(x_groups * self.inlier_mask if has_outliers else x_groups)
        acc = torch.empty(groups, tokens, self.out_channels // groups, dtype=torch.int32, device=x_groups.device)
        for g in range(groups):
            torch._int_mm(x_q[g], self.weight_int8[g], out=acc[g])
        return acc, x_scale, offset, x_outliers

    def _dequantize(self, x_groups: torch.Tensor, out: torch.Tensor | None, kernels: ModuleType | None) -> torch.Tensor:
        """``bias + x @ W`` (``out`` None: a new tensor) or ``out += x @ W``, in group layout."""
        acc, x_scale, offset, x_outliers = self._product(x_groups, kernels)
        if kernels is not None:
            result = torch.empty(acc.shape, device=acc.device) if out is None else out
            weights = (self.weight_sum, self.weight_scale, self.bias, x_outliers, self.outlier_weight)
            kernels.dequantize(acc, x_scale, offset, *weights, result, out is not None)
            return result
        y = acc.to(x_scale.dtype).mul_(x_scale)
        y.addcmul_(offset, self.weight_sum.to(y.dtype))
        if x_outliers is not None:
            y.baddbmm_(x_outliers, self.outlier_weight.to(y.dtype))
        if out is not None:
            return out.addcmul_(y, self.weight_scale.to(y.dtype))
        bias = self.bias.view(self.groups, 1, -1).to(y.dtype)
        return torch.addcmul(bias, y, self.weight_scale.to(y.dtype), out=y)

    def grouped(self, x_groups: torch.Tensor) -> torch.Tensor:
        """``(G, tokens, in/G)`` -> ``(G, tokens, out/G)``, bias included."""
        return self._dequantize(x_groups, None, self._kernels(x_groups))

    def accumulate(self, x_groups: torch.Tensor, out_groups: torch.Tensor) -> None:
        """``out_groups += x_groups @ W`` in place, without the bias."""
        self._dequantize(x_groups, out_groups, self._kernels(x_groups, out_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        y = self.grouped(self.to_groups(x.reshape(-1, self.in_channels)))
        y = y[0] if self.groups == 1 else y.transpose(0, 1).reshape(-1, self.out_channels)
        return y.reshape(*leading, self.out_channels)


def _input_ranges(model: nn.Module, batch: int = 8, seq: int = 64) -> dict[nn.Module, torch.Tensor]:
    """Calibration: per input channel, the largest ``|x|`` each encoder projection sees on random token ids.

    Keyed by the projection (the self-attention module for Q, K and V, which share their input). Empty when
    ``model`` holds no :class:`~squeezebert.modeling.model.SqueezeBertModel`.
    """
    encoder_model = next((m for m in model.modules() if isinstance(m, SqueezeBertModel)), None)
    if encoder_model is None:
        return {}
    ranges: dict[nn.Module, torch.Tensor] = {}

    def record(key: nn.Module, x: torch.Tensor) -> None:
        peak = x.detach().reshape(-1, x.shape[-1]).abs().amax(0).float()
        ranges[key] = torch.maximum(ranges[key], peak) if key in ranges else peak

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
    config = encoder_model.config
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (batch, min(seq, config.max_position_embeddings)), generator=generator)
    try:
        with torch.no_grad():
            encoder_model.eval()(input_ids=ids.to(encoder_model.embeddings.word_embeddings.weight.device))
    finally:
        for hook in hooks:
            hook.remove()
    return ranges


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


def quantize_dynamic(
    model: nn.Module, inplace: bool = False, outliers: int = 8, keep_float: Collection[str] = ()
) -> nn.Module:
    """An int8 copy of a SqueezeBERT model (or ``model`` itself with ``inplace=True``) for CPU inference.

    Every grouped projection and ``nn.Linear`` (pooler, heads, MLM decoder) gets int8 weights with per-channel
    scales; activations are quantized per token (and group) at run time; the Q, K and V projections of a layer
    run as one fused int8 projection. In the encoder, ``2 * outliers`` input channels of each projection (shared
    among its groups) stay in fp32 (see the module docstring; 0 turns this off). ``keep_float`` names projection
    kinds left in floating point, trading speed for accuracy: any of ``"attention"`` (Q, K, V),
    ``"post_attention"``, ``"intermediate"``, ``"output"`` (the feed-forward block's second projection, the one
    whose int8 error is largest) and ``"heads"``. The result is for inference: it has no gradients, and its state
    dict holds int8 buffers, not the checkpoint's parameters (save the float model).
    """
    if isinstance(keep_float, str):
        raise TypeError(f"keep_float must be a collection of projection kinds, not the string {keep_float!r}")
    unknown = sorted(set(keep_float) - set(PROJECTION_KINDS))
    if unknown:
        choices = ", ".join(PROJECTION_KINDS)
        raise ValueError(f"keep_float has unknown projection kinds {unknown}; choose from {choices}")
    if not isinstance(outliers, int) or outliers < 0:
        raise ValueError(f"outliers must be an integer >= 0, got {outliers!r}")
    int8_kernels()  # compiled once per machine (about half a minute), then loaded from torch's cache
    if not inplace:
        model = copy.deepcopy(model)
    kinds = {module: kind for module, kind in _projection_kinds(model).items() if kind not in keep_float}
    ranges = _input_ranges(model) if outliers > 0 else {}
    for module in list(model.modules()):
        if isinstance(module, SqueezeBertSelfAttention) and module in kinds and module.fused_qkv:
            with torch.no_grad():
                weight, bias = module._qkv_weight_and_bias()
            channels = _outlier_channels(weight, ranges[module], outliers) if module in ranges else None
            module.qkv = Int8Projection(weight, bias.reshape(-1), channels)
            module._qkv_cache = None
        elif isinstance(module, SqueezeBertSelfAttention) and module in ranges:
            for conv in (module.query, module.key, module.value):
                ranges[conv] = ranges[module]
    for name, module in list(model.named_modules()):
        if module not in kinds:
            continue
        if isinstance(module, GroupedConv1x1):
            channels = _outlier_channels(module.group_weight(), ranges[module], outliers) if module in ranges else None
            replacement = Int8Projection.from_conv(module, channels)
        elif isinstance(module, nn.Linear):
            replacement = Int8Projection.from_linear(module)
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, replacement)
    return model.eval()
