"""How far apart two floating-point evaluations of the same math may be: tolerances derived from rounding-error
analysis and computed from the actual tensors, instead of fixed ``atol`` / ``rtol`` numbers.

The model
---------
A float operation rounds its exact result to the nearest representable number, with a relative error of at most the
unit roundoff ``u`` (2^-24 in float32, 2^-53 in float64; :func:`unit_roundoff`). A sum of ``n`` terms ``t_k``
evaluated in any order is off by at most ``gamma_n * sum_k |t_k|`` with ``gamma_n ~ n * u`` (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., ch. 4); the rounding errors behave like independent zero-mean draws,
so in practice the error is ``~ sqrt(n) * u * sum_k |t_k|`` (Higham & Mary, *A New Approach to Probabilistic
Rounding Error Analysis*, SISC 2019). Two things follow:

* the error is proportional to the **magnitude of the terms summed**, ``sum_k |t_k|``, not to the result: a gradient
  that is mathematically zero (the key bias under softmax, the shared bias of multiple choice, the QA start/end
  biases) comes out of float32 as ``~ u * sum_k |t_k|``, which no ``rtol`` and no fixed ``atol`` can describe;
* the error grows with the **accumulation length**: the errors of a chain of dependent reductions of lengths
  ``n_1, n_2, ...`` (a layer's convolutions, its LayerNorm statistics, the attention's softmax and its product with
  the values, layer after layer) add up like a random walk, to ``~ sqrt(n_1 + n_2 + ...) * u`` relative to the
  magnitudes involved. :func:`path_length` bounds that sum for a SqueezeBERT forward (and, reversed, backward) pass.

The bound
---------
For an output tensor (a hidden state, logits, the loss, attention probabilities), with ``D = path_length``::

    max |actual - expected|  <=  C * (u_actual + u_expected) * sqrt(D) * max |expected|

For the gradient of a parameter, a sum over ``K`` uses (token positions, table rows, batch entries) of terms
``t_k = upstream_k * input_k`` that each carry the rounding error of the pass that produced them::

    max |actual - expected|  <=  C * (u_actual + u_expected) * sqrt(K + D) * max_elements sum_k |t_k|

``sum_k |t_k|`` and ``K`` are measured per parameter by :func:`float64_reference` (hooks on the Embedding, Linear,
Conv1d and LayerNorm modules the reference model is made of), in float64 on the actual activations and upstream
gradients. Taking the tensor's largest magnitude (not each element's) covers the error that reaches a parameter
through the upstream gradient: LayerNorm's backward mixes every channel of a position, so an element's error scales
with the whole vector, not with that element. ``u_actual + u_expected`` charges both sides with their own rounding:
against a float64 recomputation that is essentially the float32 side alone, between two float32 computations it is
twice that.

``C`` = :data:`SAFETY` (4) is the number of "standard deviations" of the random walk allowed. Measured on the test
configs (AMD EPYC, 1 and 2 threads), the worst error is ~1/4 of the bound for gradients and ~1/6 for outputs; the
Intel Xeon (AVX-512 VNNI) deviation of the token-type embedding gradient that broke the former fixed ``atol=1e-5``
(1.4e-5 between two float32 runs; the bound there is 7.6e-4 = 4 * 2^-24 * sqrt(33 + 1292) * 87.8, with 33 positions
of one type and 87.8 the largest sum of |upstream gradient|) is ~1/50 of it.

A real bug is not hidden: the bound is ~C * sqrt(K + D) * u ~ 1e-5 of the largest magnitude (D ~ 1000 for the test
configs), while a weight perturbed by 1e-3 relative moves outputs and gradients by ~1e-3 relative, 10 to 200 times
the bound (``test_tolerances_catch_a_perturbed_weight`` in tests/test_modeling_oracle.py).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

SAFETY = 4.0


def unit_roundoff(dtype: torch.dtype) -> float:
    """``u``: the largest relative error of one rounding to ``dtype`` (half the distance from 1 to the next float)."""
    return torch.finfo(dtype).eps / 2


def path_length(config: Any, seq: int) -> int:
    """An upper bound of the summed lengths of the dependent reductions from the inputs to any output.

    Per encoder layer: the query/key/value convolutions (at most ``H`` inputs each), the attention scores (a head's
    channels, at most ``H``), the softmax's sum and the product with the values (``seq`` each), the post-attention
    convolution (``H``), its LayerNorm's mean and variance (``2 H``), the intermediate convolution (``H``), the output
    convolution (``I``) and its LayerNorm (``2 H``): ``8 H + I + 2 seq``. Outside the encoder: the embeddings'
    LayerNorm (``2 H``) and a head (a dense layer, a LayerNorm, a decoder or classifier: ``4 H``).
    """
    hidden, inter = config.hidden_size, config.intermediate_size
    return config.num_hidden_layers * (8 * hidden + inter + 2 * seq) + 6 * hidden


def rounding_tolerance(magnitude: float, length: float, *dtypes: torch.dtype) -> float:
    """``SAFETY * sum(u(dtype)) * sqrt(length) * magnitude``: see the module docstring for the derivation."""
    return SAFETY * sum(unit_roundoff(d) for d in dtypes) * math.sqrt(length) * magnitude


def assert_rounding_close(
    actual: torch.Tensor | None,
    expected: torch.Tensor,
    length: float,
    magnitude: float | None = None,
    what: str = "",
) -> None:
    """``actual`` within :func:`rounding_tolerance` of ``expected``: sums of ``length`` accumulated terms of at most
    ``magnitude`` (default: the largest ``|expected|``), each side rounded in its own dtype."""
    assert actual is not None, f"{what}: got None"
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if magnitude is None:
        magnitude = expected.detach().abs().max().item() if expected.numel() else 0.0
    tol = rounding_tolerance(magnitude, length, actual.dtype, expected.dtype)
    diff = (actual.detach().double() - expected.detach().double()).abs()
    worst = diff.max().item() if diff.numel() else 0.0
    assert worst <= tol, (
        f"{what}: max abs diff {worst:.3g} > tolerance {tol:.3g} (magnitude {magnitude:.3g}, accumulation length "
        f"{length}, {actual.dtype} vs {expected.dtype}); worst element {tuple(divmod_index(diff.argmax(), diff.shape))}"
    )


def divmod_index(flat: torch.Tensor, shape: torch.Size) -> list[int]:
    index, rest = [], int(flat)
    for size in reversed(shape):
        rest, i = divmod(rest, size)
        index.append(i)
    return index[::-1]


# ----------------------------------------------------------------------------------------------------------------
# The float64 recomputation of a reference model, with the magnitudes its parameter gradients sum


@dataclass
class Reference:
    """A float64 run of a model: its outputs, and for backward runs each parameter's gradient, the largest
    ``sum_k |t_k|`` over the parameter's elements (``magnitudes``) and the most terms any element sums (``lengths``)."""

    outputs: Any
    path_length: int
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    magnitudes: dict[str, float] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)


def _to_float64(value: Any) -> Any:
    return value.double() if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def _sequence_length(kwargs: dict[str, Any]) -> int:
    if kwargs.get("input_ids") is not None:
        return kwargs["input_ids"].shape[-1]
    return kwargs["inputs_embeds"].shape[-2]


def _is_channels_first(module: torch.nn.Module) -> bool:
    # the reference's SqueezeBertLayerNorm: a LayerNorm subclass that normalises dim 1 of [batch, channels, seq]
    return type(module).forward is not torch.nn.LayerNorm.forward


class _TermMagnitudes:
    """Hooks that add up ``sum_k |t_k|`` for the weight and bias gradient of every Embedding, Linear, Conv1d and
    LayerNorm in a model, from each module's input and the gradient reaching its output."""

    KINDS = (torch.nn.Embedding, torch.nn.Linear, torch.nn.Conv1d, torch.nn.LayerNorm)

    def __init__(self, model: torch.nn.Module) -> None:
        self.names = {id(p): name for name, p in model.named_parameters()}
        self.sums: dict[str, torch.Tensor] = {}
        self.lengths: dict[str, int] = {}
        self.handles = [m.register_forward_hook(self._forward) for m in model.modules() if isinstance(m, self.KINDS)]

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()

    def _add(self, param: torch.Tensor | None, terms: torch.Tensor, length: int) -> None:
        if param is None:
            return
        name = self.names[id(param)]  # tied parameters (decoder / word embeddings) add up under one name
        self.sums[name] = self.sums.get(name, 0) + terms.reshape(param.shape)
        self.lengths[name] = self.lengths.get(name, 0) + length

    def _forward(self, module: torch.nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        if output.requires_grad:
            x = inputs[0].detach()
            output.register_hook(lambda grad: self._backward(module, x, grad.detach().abs()))

    def _backward(self, module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
        if isinstance(module, torch.nn.Embedding):  # row v sums the upstream gradient of every position of id v
            ids = x.reshape(-1)
            rows = torch.zeros_like(module.weight).index_add_(0, ids, grad.reshape(ids.numel(), -1))
            self._add(module.weight, rows, int(torch.bincount(ids).max()))
        elif isinstance(module, torch.nn.Conv1d):  # kernel size 1: a grouped matmul over batch * seq positions
            groups = module.groups
            xs = x.abs().transpose(1, 2).reshape(-1, groups, module.in_channels // groups)
            gs = grad.transpose(1, 2).reshape(-1, groups, module.out_channels // groups)
            self._add(module.weight, torch.einsum("kgo,kgi->goi", gs, xs), xs.shape[0])
            self._add(module.bias, gs.sum(0), xs.shape[0])
        elif isinstance(module, torch.nn.LayerNorm):
            if _is_channels_first(module):
                x, grad = x.transpose(1, 2), grad.transpose(1, 2)
            normalized = F.layer_norm(x, module.normalized_shape, eps=module.eps).abs().reshape(-1, x.shape[-1])
            grad = grad.reshape(normalized.shape)
            self._add(module.weight, (grad * normalized).sum(0), grad.shape[0])
            self._add(module.bias, grad.sum(0), grad.shape[0])
        else:  # Linear
            xs, gs = x.abs().reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
            self._add(module.weight, gs.T @ xs, xs.shape[0])
            self._add(module.bias, gs.sum(0), xs.shape[0])


def float64_reference(
    model: torch.nn.Module,
    kwargs: dict[str, Any],
    backward: Callable[[Any], torch.Tensor] | None = None,
) -> Reference:
    """Run a float64 copy of ``model`` on ``kwargs`` (floating inputs cast to float64); with ``backward`` (the output
    to scalar map), also backpropagate and measure each parameter's gradient terms. ``model`` is left untouched."""
    model64 = copy.deepcopy(model).double()
    magnitudes = _TermMagnitudes(model64) if backward is not None else None
    try:
        outputs = model64(**{key: _to_float64(value) for key, value in kwargs.items()})
        reference = Reference(outputs, path_length(model64.config, _sequence_length(kwargs)))
        if backward is not None:
            backward(outputs).backward()
    finally:
        if magnitudes is not None:
            magnitudes.close()
    if magnitudes is not None:
        for name, param in model64.named_parameters():
            reference.grads[name] = param.grad if param.grad is not None else torch.zeros_like(param)
            terms = magnitudes.sums.get(name)
            reference.magnitudes[name] = terms.max().item() if isinstance(terms, torch.Tensor) else 0.0
            reference.lengths[name] = magnitudes.lengths.get(name, 0)
    return reference


# ----------------------------------------------------------------------------------------------------------------
# Comparisons against a reference run


def _pairs(actual: Any, expected: Any, what: str) -> list[tuple[Any, Any, str]]:
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)), f"{what}: expected a tuple, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{what}: {len(actual)} items, expected {len(expected)}"
        return [p for i, (a, e) in enumerate(zip(actual, expected, strict=True)) for p in _pairs(a, e, f"{what}[{i}]")]
    return [(actual, expected, what)]


def assert_outputs_match(ours: Any, reference: Reference, attentions_are_scores: bool = True) -> None:
    """Every field of the reference's output against ours. The reference returns attention scores before softmax
    (``attentions_are_scores``); ours returns the probabilities."""
    expected_fields = reference.outputs
    items = expected_fields.items() if hasattr(expected_fields, "items") else enumerate(expected_fields)
    for key, expected in items:
        actual = ours[key]
        if key == "attentions" and attentions_are_scores:
            expected = tuple(e.softmax(-1) for e in expected)
        for a, e, what in _pairs(actual, expected, str(key)):
            assert_rounding_close(a, e, reference.path_length, what=what)


def assert_grads_match(ours: torch.nn.Module, reference: Reference) -> None:
    """The gradient of every parameter of the reference, by name, against ours (``None`` counts as zeros)."""
    assert reference.grads, "the reference ran without backward"
    our_params = dict(ours.named_parameters(remove_duplicate=False))
    for name, expected in reference.grads.items():
        assert name in our_params, f"no parameter named {name}"
        param = our_params[name]
        got = param.grad if param.grad is not None else torch.zeros_like(param)
        length = reference.lengths[name] + reference.path_length
        assert_rounding_close(got, expected, length, reference.magnitudes[name], f"grad of {name}")
