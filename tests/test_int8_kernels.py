"""The compiled int8 kernels (squeezebert.kernels) against the PyTorch operations they replace."""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from support.configs import PAPER_128, tiny_config

import squeezebert
from squeezebert import kernels as kernels_module
from squeezebert.quantization import Int8Projection, quantize_rows

NONE = torch.empty(0)


@pytest.fixture(scope="module")
def kernels():
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler: the kernels cannot be built here")
    module = kernels_module.int8_kernels()
    assert module is not None, kernels_module.kernels_status()
    assert kernels_module.kernels_status().startswith("compiled")
    return module


@pytest.mark.parametrize("width", [37, 64, 192])  # with and without a tail after the 16-wide vector loop
@pytest.mark.parametrize("with_outliers", [False, True])
def test_quantize_rows_matches_pytorch(kernels, width, with_outliers):
    generator = torch.Generator().manual_seed(width)
    groups, tokens = 3, 50
    x = torch.randn(tokens, groups, width, generator=generator).transpose(0, 1)  # strided, like the model's views
    x[1, 7] += 40.0  # a row with a wide range
    outliers = torch.stack([torch.randperm(width, generator=generator)[:3] for _ in range(groups)])
    keep = torch.ones(groups, width).scatter_(1, outliers, 0.0) if with_outliers else NONE
    if not with_outliers:
        outliers = outliers[:, :0].contiguous()
    q, scale, offset, picked = kernels.quantize_rows(x, keep, outliers)
    masked = x * keep.unsqueeze(1) if with_outliers else x
    expected_q, expected_scale, expected_offset = quantize_rows(masked)
    torch.testing.assert_close(scale, expected_scale, rtol=1e-6, atol=0)
    torch.testing.assert_close(offset, expected_offset, rtol=1e-5, atol=1e-6)
    differ = q.int() != expected_q.int()
    assert (q.int() - expected_q.int()).abs().max() <= 1  # a tie may round the other way (FMA vs mul + add)
    assert differ.float().mean() < 1e-3
    assert torch.equal(picked, x.gather(-1, outliers.unsqueeze(1).expand(-1, tokens, -1)))
    assert q.dtype == torch.int8 and q.is_contiguous() and q.shape == x.shape


@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("count", [0, 4])
def test_dequantize_matches_the_formula(kernels, accumulate, count):
    generator = torch.Generator().manual_seed(count)
    groups, tokens, width = 2, 30, 40
    acc = torch.randint(-50_000, 50_000, (groups, tokens, width), generator=generator, dtype=torch.int32)
    x_scale, offset = torch.rand(groups, tokens, 1, generator=generator), torch.randn(groups, tokens, 1)
    weight_sum, weight_scale = torch.randn(groups, 1, width), torch.rand(groups, 1, width) / 100
    bias = torch.randn(groups * width)
    x_outliers, outlier_weight = torch.randn(groups, tokens, count), torch.randn(groups, count, width)
    outlier_term = x_outliers.double() @ outlier_weight.double()
    expected = (acc.double() * x_scale + offset * weight_sum + outlier_term) * weight_scale
    base = torch.randn(tokens, groups * width)
    out = base.clone().view(tokens, groups, width).transpose(0, 1)  # a strided view, as the residual writes use
    if not accumulate:
        out = torch.empty(groups, tokens, width)
    kernels.dequantize(
        acc, x_scale, offset, weight_sum, weight_scale, bias, x_outliers, outlier_weight, out, accumulate
    )
    base_groups = base.view(tokens, groups, width).transpose(0, 1)
    expected = expected + (base_groups.double() if accumulate else bias.view(groups, 1, width).double())
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-4)


def test_kernels_reject_bad_tensors(kernels):
    with pytest.raises(RuntimeError, match="x must be float32"):
        kernels.quantize_rows(torch.zeros(1, 2, 3, dtype=torch.float64), NONE, torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(RuntimeError, match="outlier channel out of range"):
        kernels.quantize_rows(torch.zeros(1, 2, 3), NONE, torch.tensor([[5]]))


def test_model_with_kernels_matches_the_pytorch_path(kernels, monkeypatch):
    torch.manual_seed(0)
    config = tiny_config(**PAPER_128)
    fp32 = squeezebert.SqueezeBertForSequenceClassification(config).eval()
    q = squeezebert.quantize_dynamic(fp32)
    ids = torch.randint(0, 100, (3, 40), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, 25:] = 0
    calls = []
    monkeypatch.setattr(
        Int8Projection, "_kernels", lambda self, *t, real=Int8Projection._kernels: calls.append(1) or real(self, *t)
    )
    with torch.no_grad():
        expected = fp32(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        compiled = q(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        monkeypatch.setattr(kernels_module, "_STATE", {"module": None, "status": "off (test)"})
        plain = q(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    assert calls  # the projections asked for the kernels
    valid = mask.bool()
    cos = F.cosine_similarity(compiled[valid], plain[valid], dim=-1)
    assert cos.min() > 0.9999
    assert F.cosine_similarity(compiled[valid], expected[valid], dim=-1).min() > 0.999
    assert not torch.equal(compiled, plain)  # the two paths did run (ties round differently somewhere)


def test_kernels_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("SQUEEZEBERT_KERNELS", "0")
    assert kernels_module._build() == (None, "off (SQUEEZEBERT_KERNELS=0)")


def test_a_failed_build_falls_back_with_one_warning(monkeypatch):
    import torch.utils.cpp_extension

    def no_compiler(**kwargs):
        raise RuntimeError("Error building extension: c++: command not found")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    monkeypatch.setattr(kernels_module, "_compiler_path", lambda: Path(sys.executable))  # as if there were one
    monkeypatch.setattr(kernels_module, "_is_cached", lambda name: True)
    monkeypatch.setattr(kernels_module, "_STATE", {})
    with pytest.warns(RuntimeWarning, match="could not be built .*command not found.*PyTorch operations"):
        assert kernels_module.int8_kernels() is None
    assert kernels_module.kernels_status().startswith("unavailable (RuntimeError")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert kernels_module.int8_kernels() is None  # decided once: no second attempt, no second warning
    assert caught == []


def test_first_build_says_so_on_stderr(monkeypatch, capsys):
    import torch.utils.cpp_extension

    monkeypatch.setattr(torch.utils.cpp_extension, "load", lambda **kwargs: kernels_module)  # any module object
    monkeypatch.setattr(kernels_module, "_is_cached", lambda name: False)
    module, status = kernels_module._build()
    assert module is kernels_module and status.startswith("compiled")
    assert "compiling the int8 CPU kernels" in capsys.readouterr().err
