"""The compiled kernels' attention (squeezebert/kernels/attention_cpu.cpp) against float64 attention, and its use
in the int8 model."""

from __future__ import annotations

import pytest
import torch
from support.configs import PAPER_128, tiny_config

import squeezebert
from squeezebert import kernels as kernels_module
from squeezebert.modeling.layers import SqueezeBertSelfAttention

NONE = torch.empty(0)
UNIT = 2.0**-24  # fp32's unit roundoff


@pytest.fixture(scope="module")
def kernels():
    module = kernels_module.int8_kernels()
    if module is None or not module.attention_available():
        pytest.skip(f"no compiled attention here ({kernels_module.kernels_status()})")
    return module


def fused_qkv(groups: int, tokens: int, heads: int, d: int, seed: int) -> torch.Tensor:
    """``(groups, tokens, 3 * heads / groups * d)`` as the fused projection lays it out, a strided view (row stride
    longer than the row) with a wide range of scores."""
    generator = torch.Generator().manual_seed(seed)
    wide = torch.randn(groups, tokens, 3 * heads // groups * d + 5, generator=generator) * 2.0
    return wide[..., 5:]


def reference(qkv: torch.Tensor, batch: int, heads: int, mask: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """float64 attention of ``qkv`` -> the context ``(tokens, heads * d)`` and, per output, the bound its fp32
    computation stays within."""
    groups, tokens, width = qkv.shape
    seq, per_group = tokens // batch, heads // groups
    d = width // (3 * per_group)
    q, k, v = qkv.double().view(groups, batch, seq, 3, per_group, d).permute(3, 0, 1, 4, 2, 5)  # (G, B, h, seq, d)
    scores = q @ k.transpose(-1, -2) / d**0.5
    if mask is not None:
        scores = scores + mask.double().view(1, batch, 1, 1, seq)
    p = torch.softmax(scores, dim=-1)
    # fp32: each score is off by at most (d + 2) u sum_e |q_e k_e| / sqrt(d) (a dot product, the scale); each e^x
    # and its row's sum then by twice the row's largest score error plus a few ulp (the exponential), and the
    # weighted sum over the keys by (seq + 2) u of its magnitude
    score_error = (d + 2) * UNIT * (q.abs() @ k.abs().transpose(-1, -2)) / d**0.5
    relative = 4 * score_error.amax(-1, keepdim=True) + (seq + 12) * UNIT  # (G, B, h, seq, 1)
    bound = relative * (p @ v.abs())

    def to_tokens(t: torch.Tensor) -> torch.Tensor:  # (G, B, h, seq, d) -> (B * seq, G * h * d)
        return t.permute(1, 3, 0, 2, 4).reshape(tokens, heads * d)

    return to_tokens(p @ v), to_tokens(bound)


@pytest.mark.parametrize(("groups", "heads", "d"), [(4, 12, 64), (1, 2, 16), (2, 4, 48)])
# tails of 6-row, 16- and 32-key tiles, and none (64)
@pytest.mark.parametrize(("batch", "seq"), [(1, 1), (1, 7), (3, 33), (2, 64), (2, 130)])
@pytest.mark.parametrize("masked", [False, True])
def test_attention_matches_float64(kernels, groups, heads, d, batch, seq, masked):
    qkv = fused_qkv(groups, batch * seq, heads, d, seed=seq + d)
    mask = None
    if masked:  # the model's additive mask, 0 or float32's minimum; of several sequences the last is all masked
        keep = torch.rand(batch, seq, generator=torch.Generator().manual_seed(seq)) > 0.3
        keep[0, 0] = True
        keep[-1] = batch == 1
        mask = torch.zeros(batch, seq).masked_fill(~keep, torch.finfo(torch.float32).min)
    out = torch.full((batch * seq, heads * d), float("nan"))
    kernels.attention(qkv, batch, heads, NONE if mask is None else mask, out)
    expected, bound = reference(qkv, batch, heads, mask)
    assert ((out.double() - expected).abs() <= bound).all()


def test_attention_rejects_bad_tensors(kernels):
    qkv, out = fused_qkv(1, 4, 2, 16, seed=0), torch.empty(4, 32)
    with pytest.raises(RuntimeError, match="heads of 16, 32, 48 or 64 channels, got 8"):
        kernels.attention(fused_qkv(1, 4, 2, 8, seed=0), 1, 2, NONE, torch.empty(4, 16))
    with pytest.raises(RuntimeError, match="qkv's tokens must be batch whole sequences"):
        kernels.attention(qkv, 3, 2, NONE, out)
    with pytest.raises(RuntimeError, match="out must be float32"):
        kernels.attention(qkv, 1, 2, NONE, torch.empty(4, 31))
    with pytest.raises(RuntimeError, match="mask must be empty or contiguous float32"):
        kernels.attention(qkv, 1, 2, torch.zeros(1, 3), out)
    with pytest.raises(RuntimeError, match="qkv must be float32"):
        kernels.attention(qkv.double(), 1, 2, NONE, out)


def test_int8_model_attends_through_the_kernel(kernels, monkeypatch):
    """The int8 model's layers take the kernel's context (the same as scaled_dot_product_attention's within fp32
    rounding, from the same projection), and fall back where it cannot serve: attention weights asked for."""
    torch.manual_seed(0)
    model = squeezebert.quantize_dynamic(squeezebert.SqueezeBertModel(tiny_config(**PAPER_128)).eval())
    attention = model.encoder.layers[0].attention
    x = torch.randn(2 * 9, 128)
    mask = torch.zeros(2, 1, 1, 9)
    mask[1, ..., 6:] = torch.finfo(torch.float32).min
    calls = []
    real = kernels.attention
    monkeypatch.setattr(kernels, "attention", lambda *args: calls.append(1) or real(*args))
    with torch.no_grad():
        fused, _ = attention(x, 2, 9, mask, None, False)
        assert calls == [1]
        weights = model(input_ids=torch.randint(0, 100, (1, 9)), output_attentions=True).attentions
        assert calls == [1] and weights[0].shape == (1, 8, 9, 9)  # the explicit path, which returns them
        monkeypatch.setattr(SqueezeBertSelfAttention, "_compiled_attention", lambda self, *args: None)
        plain, _ = attention(x, 2, 9, mask, None, False)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
