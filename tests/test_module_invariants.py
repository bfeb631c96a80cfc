"""Modules own their invariants: GroupedConv1x1 initialises and validates itself, float and int8 projections share
one Protocol, and the multiple-choice head keeps no state between calls."""

from __future__ import annotations

import inspect
import math
import typing

import pytest
import torch
from support.configs import tiny_config
from torch import nn

import squeezebert
from squeezebert.modeling import layers
from squeezebert.modeling.layers import GroupedConv1x1, Projection
from squeezebert.quantization import Int8Projection

# ----------------------------------------------------------------------------------------------------------------
# GroupedConv1x1.reset_parameters


def test_reset_parameters_is_nn_conv1d_init() -> None:
    torch.manual_seed(0)
    reference = nn.Conv1d(64, 96, 1, groups=4)
    torch.manual_seed(0)
    conv = GroupedConv1x1(64, 96, 4)
    assert torch.equal(conv.weight, reference.weight) and torch.equal(conv.bias, reference.bias)


def test_reset_parameters_statistics() -> None:
    torch.manual_seed(0)
    conv = GroupedConv1x1(512, 1024, 2)
    bound = 1 / math.sqrt(512 // 2)
    for tensor in (conv.weight, conv.bias):
        assert tensor.abs().max() <= bound
        assert tensor.abs().max() > 0.99 * bound
        assert abs(tensor.mean().item()) < 0.05 * bound
        assert abs(tensor.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    before = conv.weight.detach().clone()
    conv.reset_parameters()
    assert not torch.equal(before, conv.weight)


def test_models_keep_the_reference_init() -> None:
    std = 0.05
    torch.manual_seed(0)
    model = squeezebert.SqueezeBertModel(tiny_config(hidden_size=128, embedding_size=128, initializer_range=std))
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, GroupedConv1x1)])
    assert abs(weights.mean().item()) < 0.05 * std
    assert abs(weights.std().item() - std) < 0.05 * std
    assert weights.abs().max() > 3 * std  # normal, not uniform
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in model.modules() if isinstance(m, GroupedConv1x1))


@pytest.mark.parametrize(
    "head", ["SqueezeBertModel", "SqueezeBertForMaskedLM", "SqueezeBertForMultipleChoice", "SqueezeBertForPreTraining"]
)
def test_building_a_model_draws_no_extra_random_numbers(head: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """post_init initialises every projection: the projections' own init is skipped, so a seeded model has the
    same weights as before GroupedConv1x1 initialised itself (and the generator ends in the same state)."""
    cls = getattr(squeezebert, head)
    torch.manual_seed(0)
    model = cls(tiny_config())
    after = torch.rand(4)
    monkeypatch.setattr(GroupedConv1x1, "reset_parameters", lambda self: pytest.fail("reset_parameters was called"))
    torch.manual_seed(0)
    again = cls(tiny_config())
    assert torch.equal(after, torch.rand(4))
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_deferred_init_is_scoped() -> None:
    with layers.deferred_init():
        assert layers._DEFER_INIT.get()
        squeezebert.SqueezeBertModel(tiny_config())
    assert not layers._DEFER_INIT.get()
    with pytest.raises(ValueError, match="hidden_size"):
        squeezebert.SqueezeBertModel(tiny_config(hidden_size=30))
    assert not layers._DEFER_INIT.get()
    torch.manual_seed(0)
    conv = GroupedConv1x1(8, 8, 2)
    assert conv.weight.abs().max() <= 1 / math.sqrt(4)


# ----------------------------------------------------------------------------------------------------------------
# GroupedConv1x1 validates its arguments


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((32, 32, 0), "groups must be a positive integer, got 0"),
        ((32, 32, -2), "groups must be a positive integer, got -2"),
        ((32, 32, 2.0), "groups must be a positive integer, got 2.0"),
        ((32, 32, True), "groups must be a positive integer, got True"),
        ((32, 32, None), "groups must be a positive integer, got None"),
        ((30, 32, 4), r"groups \(4\) must divide in_channels \(30\)"),
        ((32, 30, 4), r"groups \(4\) must divide out_channels \(30\)"),
        ((0, 32, 1), "in_channels must be a positive integer, got 0"),
        ((32, -1, 1), "out_channels must be a positive integer, got -1"),
    ],
)
def test_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        GroupedConv1x1(*args)


# ----------------------------------------------------------------------------------------------------------------
# One Protocol for the float and the int8 projection

_METHODS = ("__call__", "to_groups", "out_groups", "grouped", "accumulate")


def _projections() -> list[nn.Module]:
    conv = GroupedConv1x1(32, 64, 4)
    return [conv, Int8Projection.from_conv(conv), Int8Projection.from_linear(nn.Linear(32, 64))]


@pytest.mark.parametrize("projection", _projections(), ids=["float", "int8-conv", "int8-linear"])
def test_both_projections_satisfy_the_protocol(projection: nn.Module) -> None:
    assert isinstance(projection, Projection)
    for name in _METHODS[1:]:
        expected = list(inspect.signature(getattr(Projection, name)).parameters)[1:]
        assert list(inspect.signature(getattr(projection, name)).parameters) == expected, name
    assert list(inspect.signature(projection.forward).parameters) == ["x"]
    tokens = torch.randn(5, projection.in_channels)
    out = projection.grouped(projection.to_groups(tokens))
    assert out.shape == (projection.groups, 5, projection.out_channels // projection.groups)
    assert projection(tokens).shape == (5, projection.out_channels)


def test_other_modules_do_not_satisfy_the_protocol() -> None:
    assert not isinstance(nn.Linear(4, 4), Projection)
    assert not isinstance(nn.Conv1d(4, 4, 1), Projection)


def test_the_layers_projections_are_typed_with_the_protocol() -> None:
    for cls, attributes in (
        (layers.SqueezeBertSelfAttention, ("query", "key", "value")),
        (layers.ConvResidualNorm, ("conv1d",)),
        (layers.ConvActivation, ("conv1d",)),
    ):
        hints = typing.get_type_hints(cls)
        for attribute in attributes:
            assert hints[attribute] is Projection, (cls.__name__, attribute)
    assert typing.get_type_hints(layers.SqueezeBertSelfAttention)["qkv"] == Projection | None


def test_quantized_model_holds_protocol_projections() -> None:
    torch.manual_seed(0)
    model = squeezebert.SqueezeBertModel(tiny_config()).eval()
    quantized = squeezebert.quantize_dynamic(model, outliers=0)
    layer = quantized.encoder.layers[0]
    for projection in (layer.attention.qkv, layer.post_attention.conv1d, layer.intermediate.conv1d):
        assert isinstance(projection, Int8Projection) and isinstance(projection, Projection)


# ----------------------------------------------------------------------------------------------------------------
# Multiple choice: no state between calls


def test_multiple_choice_keeps_no_state_between_calls() -> None:
    torch.manual_seed(0)
    model = squeezebert.SqueezeBertForMultipleChoice(tiny_config()).eval()
    attributes = set(vars(model))
    three = torch.randint(5, 100, (2, 3, 7))
    four = torch.randint(5, 100, (1, 4, 7))
    with torch.no_grad():
        first = model(three).logits
        assert model(four).logits.shape == (1, 4)
        again = model(three, labels=torch.tensor([0, 2]))
    assert first.shape == (2, 3)
    torch.testing.assert_close(again.logits, first)
    assert again.loss is not None
    assert set(vars(model)) == attributes
    assert not hasattr(model, "_num_choices")


def test_multiple_choice_logits_are_the_flattened_base_scores() -> None:
    torch.manual_seed(0)
    model = squeezebert.SqueezeBertForMultipleChoice(tiny_config()).eval()
    ids = torch.randint(5, 100, (2, 3, 6))
    mask = torch.ones_like(ids)
    mask[0, 1, 4:] = 0
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        pooled = model.transformer(ids.view(6, 6), attention_mask=mask.view(6, 6)).pooler_output
        expected = model.classifier(pooled).view(2, 3)
    torch.testing.assert_close(logits, expected)
