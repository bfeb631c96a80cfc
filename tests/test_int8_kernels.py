"""The compiled int8 kernels (squeezebert.kernels) against the PyTorch operations they replace."""

from __future__ import annotations

import copy
import platform
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
from squeezebert.modeling.layers import from_groups, get_activation
from squeezebert.quantization import FUSED_ACTIVATIONS, Int8Projection

NONE = torch.empty(0)


@pytest.fixture(scope="module", params=["native", "no-avx512"])
def kernels(request):
    """The kernels as built for this CPU, then built again without AVX-512 (``-mno-avx512f``: the scalar loops and
    torch._int_mm, what CPUs without it run), in use (``int8_kernels()``) while the tests run."""
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler: the kernels cannot be built here")
    module = kernels_module.int8_kernels()
    assert module is not None, kernels_module.kernels_status()
    assert kernels_module.kernels_status().startswith("compiled")
    if request.param == "native":
        yield module
        return
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("-mno-avx512f is an x86-64 flag")
    name = f"{kernels_module._build_name()}_no_avx512"  # cached by torch like the native build
    without = kernels_module._compile(name, ("-mno-avx512f",))
    assert not without.vnni() and not without.attention_available()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels_module, "_STATE", {"module": without, "status": f"compiled ({without.__file__})"})
        yield without


def random_projection(
    groups: int, width: int, cout: int, count: int, seed: int, span: int | None = None
) -> Int8Projection:
    """An int8 projection of random weights with ``count`` outlier channels per group."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(groups, width, cout, generator=generator)
    outliers = torch.stack([torch.randperm(width, generator=generator)[:count] for _ in range(groups)])
    bias = torch.randn(groups * cout, generator=generator)
    return Int8Projection(weight, bias, outliers if count else None, span=span)


def strided_groups(tokens: int, groups: int, width: int, seed: int) -> torch.Tensor:
    """``(groups, tokens, width)``, a strided view of ``(tokens, groups * width)`` as the model passes them."""
    x = torch.randn(tokens, groups, width, generator=torch.Generator().manual_seed(seed))
    x[tokens // 2, 0] += 40.0  # a row with a wide range
    return x.transpose(0, 1)


@pytest.mark.parametrize(("groups", "width"), [(1, 37), (4, 64), (2, 192)])  # tails after the 16-wide loops
@pytest.mark.parametrize("tokens", [1, 50, 300])  # one block, one per thread, blocks of at most 128 rows
@pytest.mark.parametrize("count", [0, 3])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("matmul", ["vnni", "int_mm"])
@pytest.mark.parametrize("span", [None, 16])  # one span; spans of 16 input channels (the last shorter for 37)
def test_project_matches_the_pytorch_path(kernels, groups, width, tokens, count, accumulate, matmul, span):
    """kernels.project (one parallel region) against Int8Projection's PyTorch operations, the same formulas, with
    each of its int8 matmuls: its own VNNI one on unsigned levels and packed weights (where the CPU has it), and
    torch._int_mm on signed levels (the weights not packed).

    The int8 matmul is exact in all. Two things may differ: the float rounding of the few operations after it
    (a few ulp of the terms' magnitude; the outlier terms are summed in another order), and a quantization tie that
    rounds the other way (FMA vs multiply and add), which moves one level of one input: at most
    ``s_x * max|W_q| * s_w = s_x * 127 * s_w`` on that row, and rare.
    """
    q = random_projection(groups, width, 40, count, seed=width + count, span=span)
    if matmul == "vnni" and not kernels.vnni():
        pytest.skip("this CPU has no AVX-512 VNNI")
    if matmul == "vnni":
        assert q.weight_packed.shape == (groups, 2, (width + 3) // 4, 32, 4)  # panels of 32: the second has 8
    else:
        q.weight_packed = torch.empty(0, dtype=torch.int8)
    x = strided_groups(tokens, groups, width, seed=tokens)
    base = torch.randn(tokens, groups * 40)
    out = q.out_groups(base.clone()) if accumulate else None
    with torch.no_grad():
        got = q._project(x, out)
        expected = q._dequantize(x, q.out_groups(base.clone()) if accumulate else None)
        acc, x_scale, offset, x_outliers = q._product(x)  # per span: (G, spans, tokens, ...)
    steps = q.weight_scale.unsqueeze(2).double()
    sums = q.weight_offset.unsqueeze(2).double() / steps  # the sums of the levels over each span
    # the terms in the signed form (levels - 128, here and torch._int_mm) and in the unsigned one (VNNI)
    signed = (acc.double() * x_scale).abs() + (offset * sums).abs()
    unsigned = ((acc.double() + 128 * sums) * x_scale).abs() + ((offset - 128 * x_scale) * sums).abs()
    magnitude = (torch.maximum(signed, unsigned) * steps).sum(1)  # (G, tokens, 40)
    if x_outliers is not None:
        magnitude += x_outliers.abs().double() @ q.outlier_weight.abs().double()
    magnitude += q.out_groups(base).abs() if accumulate else q.bias.view(groups, 1, -1).abs()
    float_bound = (8 + count + acc.shape[1]) * 2.0**-24 * magnitude
    level = (x_scale.double() * 127 * steps).amax(1)
    diff = (got.double() - expected.double()).abs()
    assert (diff <= float_bound + level).all()
    assert (diff > float_bound).double().mean() < 0.01
    assert got.shape == (groups, tokens, 40)


@pytest.mark.parametrize("activation", sorted(FUSED_ACTIVATIONS))
def test_project_applies_the_activation(kernels, activation, monkeypatch):
    """The activation applied in the kernel's pass is the activation of the kernel's own output, against the exact
    function (float64). The kernel's erf is Abramowitz and Stegun 7.1.26 (absolute error 1.5e-7, so the GELU is off
    by at most |x| / 2 * 1.5e-7), its exp and tanh forms accurate to a few ulp of the result."""
    q = random_projection(4, 64, 48, 2, seed=0)
    x = strided_groups(130, 4, 64, seed=1)
    function = get_activation(activation)[0]
    with torch.no_grad():
        before = q.grouped(x)
        fused = q.grouped_activation(x, activation)
        exact = function(before.double())
        bound = 0.75e-7 * before.abs().double() + 8 * 2.0**-24 * exact.abs()
        assert ((fused.double() - exact).abs() <= bound).all()
        monkeypatch.setattr(kernels_module, "_STATE", {"module": None, "status": "off (test)"})
        assert torch.equal(q.grouped_activation(x, activation), function(q.grouped(x)))  # PyTorch's path
    assert before.abs().max() > 4 and (before < -3).any()  # the range where erf and tanh are hardest
    with pytest.raises(ValueError, match="activation must be one of"):
        q.grouped_activation(x, "tanh")


def test_pack_weight_layout(kernels):
    """packed[g, p, k4, c, j] = W[g, 4 * k4 + j, 32 * p + c], zero beyond W's rows and columns."""
    weight = torch.randint(-127, 128, (2, 10, 70), dtype=torch.int8, generator=torch.Generator().manual_seed(0))
    packed = kernels.pack_weight(weight)
    assert packed.shape == (2, 3, 3, 32, 4) and packed.dtype == torch.int8
    g, k, n = torch.meshgrid(torch.arange(2), torch.arange(10), torch.arange(70), indexing="ij")
    assert torch.equal(packed[g, n // 32, k // 4, n % 32, k % 4], weight)
    assert int((packed != 0).sum()) == int((weight != 0).sum())  # the padding is zero


def test_project_rejects_bad_tensors(kernels):
    q = random_projection(1, 16, 8, 0, seed=0)
    weights = q._arguments()[2:]  # weight, packed, weight_offset, weight_scale, bias and the outlier weights
    x, out, none = torch.zeros(1, 2, 16), torch.zeros(1, 2, 8), torch.zeros(1, 0, dtype=torch.long)
    norm = (torch.ones(8), torch.zeros(8), 1e-12)
    no_norm = (NONE, NONE, 0.0)
    with pytest.raises(RuntimeError, match="x and out must be float32"):
        kernels.project(x.double(), NONE, none, *weights, out, NONE, *no_norm, "", 16)
    with pytest.raises(RuntimeError, match="outlier channel out of range"):
        kernels.project(x, NONE, torch.tensor([[16]]), *weights, out, NONE, *no_norm, "", 16)
    with pytest.raises(RuntimeError, match="activation must be"):
        kernels.project(x, NONE, none, *weights, out, NONE, *no_norm, "tanh", 16)
    with pytest.raises(RuntimeError, match="no activation with a residual"):
        kernels.project(x, NONE, none, *weights, out, out, *no_norm, "gelu", 16)
    with pytest.raises(RuntimeError, match="the LayerNorm needs a residual"):
        kernels.project(x, NONE, none, *weights, out, NONE, *norm, "", 16)
    with pytest.raises(RuntimeError, match="residual must be float32 shaped like out"):
        kernels.project(x, NONE, none, *weights, out, torch.zeros(1, 3, 8), *no_norm, "", 16)
    with pytest.raises(RuntimeError, match="out must be"):
        kernels.project(x, NONE, none, *weights, torch.zeros(1, 3, 8), NONE, *no_norm, "", 16)
    with pytest.raises(RuntimeError, match="span must be >= 1"):
        kernels.project(x, NONE, none, *weights, out, NONE, *no_norm, "", 0)
    with pytest.raises(RuntimeError, match=r"weight_offset and weight_scale must be \(groups, spans, out\)"):
        kernels.project(x, NONE, none, *weights, out, NONE, *no_norm, "", 8)  # 2 spans, the weights have 1
    if kernels.vnni():
        wrong = (weights[0], torch.zeros(1, 1, 3, 64, 4, dtype=torch.int8), *weights[2:])
        with pytest.raises(RuntimeError, match="packed must be pack_weight"):
            kernels.project(x, NONE, none, *wrong, out, NONE, *no_norm, "", 16)


@pytest.mark.parametrize(("groups", "tokens"), [(1, 7), (4, 130)])
def test_residual_norm_matches_the_pytorch_path(kernels, groups, tokens, monkeypatch):
    """``residual_norm``: LayerNorm(residual + bias + x @ W) in the projection's pass, against the PyTorch path.

    The LayerNorm divides by the row's standard deviation, so the pre-norm differences (bounded as in the test
    above; ties aside, a few ulp of the terms) scale by ``|weight| / std``; rows are compared by their cosine and
    their largest difference relative to that scale.
    """
    q = random_projection(groups, 48, 40, 2, seed=groups)
    x = strided_groups(tokens, groups, 48, seed=tokens)
    residual = torch.randn(tokens, groups * 40, generator=torch.Generator().manual_seed(3))
    layernorm = torch.nn.LayerNorm(groups * 40, eps=1e-12)
    with torch.no_grad():
        layernorm.weight.uniform_(0.5, 1.5)
        layernorm.bias.normal_()
        fused = torch.empty_like(residual)
        q.residual_norm(x, residual, layernorm, fused)
        in_place = residual.clone()
        q.residual_norm(x, in_place, layernorm, in_place)  # out may be the residual itself
        monkeypatch.setattr(kernels_module, "_STATE", {"module": None, "status": "off (test)"})
        summed = residual + q.bias + from_groups(q.grouped(x) - q.bias.view(groups, 1, -1))
        expected = layernorm(summed)
        plain = torch.empty_like(residual)
        q.residual_norm(x, residual, layernorm, plain)
    assert torch.equal(fused, in_place)
    torch.testing.assert_close(plain, expected, rtol=1e-5, atol=1e-5)
    spread = layernorm.weight.abs().max() / summed.std(-1, unbiased=False)  # (tokens,)
    float_bound = spread * 16 * 2.0**-24 * summed.abs().amax(-1)
    x_scale = q._product(x)[1]  # (G, 1 span, tokens, 1): a tie moves one level of one input of one group
    level = spread * (x_scale[..., 0] * 127 * q.weight_scale.amax(-1)).amax(0)
    diff = (fused - expected).abs().amax(-1)
    assert (diff <= float_bound + level).all()
    assert F.cosine_similarity(fused, expected, dim=-1).min() > 1 - 1e-6


def test_loading_a_state_dict_repacks_the_weights(kernels):
    """The packed weights are derived, not saved: a quantized model that loads another's state dict computes what
    the other computes (its packed weights and outlier levels follow the loaded int8 weights)."""
    config = tiny_config(**PAPER_128)
    torch.manual_seed(0)
    source = squeezebert.quantize_dynamic(squeezebert.SqueezeBertModel(config).eval())
    target = squeezebert.quantize_dynamic(squeezebert.SqueezeBertModel(config).eval())
    ids = torch.randint(0, 100, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = source(input_ids=ids).last_hidden_state
        assert not torch.equal(target(input_ids=ids).last_hidden_state, expected)
        target.load_state_dict(source.state_dict())
        assert torch.equal(target(input_ids=ids).last_hidden_state, expected)


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


def test_cached_kernel_arguments_follow_the_buffers(kernels, monkeypatch):
    """The kernels' arguments are built once per projection; a copy, ``.to()`` or a replaced buffer builds them
    again, so a call never reads stale tensors."""
    q = random_projection(2, 32, 24, 2, seed=5)
    x = strided_groups(9, 2, 32, seed=6)
    with torch.no_grad():
        expected = q.grouped(x)
        copied = copy.deepcopy(q)
        q.bias.zero_()  # in place: the cached arguments see it, the copy keeps its own
        assert torch.equal(copied.grouped(x), expected)
        assert torch.allclose(q.grouped(x), expected - copied.bias.view(2, 1, -1), atol=1e-5)
        q.bias = copied.bias.clone()  # replaced: built again
        assert torch.equal(q.grouped(x), expected)
        doubled = q.to(torch.float64)  # weight_scale float64: the PyTorch path, in float64
        assert doubled._kernels(x.double()) is None
        assert doubled.grouped(x.double()).dtype == torch.float64
