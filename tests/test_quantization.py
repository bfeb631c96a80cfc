"""quantize_dynamic: int8 projections for CPU inference, their integer math, and their accuracy."""

from __future__ import annotations

import copy

import bench_int8_accuracy  # benchmarks/ is on sys.path (tests/conftest.py)
import pytest
import torch
import torch.nn.functional as F
import transformers
from support.configs import PAPER_128, tiny_config
from support.inputs import HEAD_IDS, HEADS, make_inputs

import squeezebert
from squeezebert.modeling.layers import GroupedConv1x1
from squeezebert.quantization import Int8Projection, gptq_round, quantize_rows

transformers.logging.set_verbosity_error()

GROUPED = {**PAPER_128, "num_labels": 3}  # the reference's group layout, scaled down
UNFUSED = {**GROUPED, **dict(q_groups=2, k_groups=1, v_groups=8, post_attention_groups=2, output_groups=2)}


def model(head: str = "SqueezeBertModel", **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return getattr(squeezebert, head)(tiny_config(**{**GROUPED, **overrides})).eval()


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.flatten(0, -2), b.flatten(0, -2), dim=-1)


def test_quantize_rows_round_trip():
    x = torch.randn(3, 5, 64) * torch.rand(3, 5, 1) * 10
    x[0, 0] = 0.0  # an all-zero row
    x[1, 1] = x[1, 1].abs()  # a row on one side of zero keeps all 256 levels
    q, scale, offset = quantize_rows(x)
    assert q.dtype == torch.int8 and scale.shape == offset.shape == (3, 5, 1)
    restored = scale * q.float() + offset
    assert ((restored - x).abs() <= scale / 2 + 1e-5).all()
    assert restored[0, 0].abs().max() == 0
    assert int(q[1, 1].min()) == -128 and int(q[1, 1].max()) == 127


@pytest.mark.parametrize("groups", [1, 4])
def test_int8_projection_is_exact_integer_math(groups):
    """The int8 path computes exactly dequantize(x) @ dequantize(W) + b (up to float rounding)."""
    torch.manual_seed(0)
    conv = GroupedConv1x1(64, 96, groups)
    torch.nn.init.normal_(conv.weight)
    torch.nn.init.normal_(conv.bias)
    q = Int8Projection.from_conv(conv)
    x = torch.randn(10, 64)
    x_q, x_scale, offset = quantize_rows(q.to_groups(x))
    x_hat = x_scale * x_q.float() + offset
    w_hat = q.weight_int8.float() * q.weight_scale
    expected = torch.baddbmm(q.bias.view(groups, 1, -1), x_hat, w_hat).transpose(0, 1).reshape(10, 96)
    assert (q(x) - expected).abs().max() < 1e-3
    assert cosines(q(x), conv(x)).min() > 0.999
    out = torch.randn(10, 96)
    accumulated = out.clone()
    q.accumulate(q.to_groups(x), q.out_groups(accumulated))
    assert (accumulated - (out + expected - q.bias)).abs().max() < 1e-3


def test_outlier_channels_are_exact_in_fp32():
    """Outlier input channels bypass the int8 path: a huge activation there leaves the others' resolution intact."""
    torch.manual_seed(0)
    conv = GroupedConv1x1(64, 32, 2)
    torch.nn.init.normal_(conv.weight)
    torch.nn.init.zeros_(conv.bias)
    outliers = torch.tensor([[3, 7], [0, 31]])
    q = Int8Projection.from_conv(conv, outliers)
    x = torch.randn(10, 64)
    x[:, 3] = x[:, 32] = 1000.0
    with torch.no_grad():
        assert cosines(q(x), conv(x)).min() > 0.9999
        plain = Int8Projection.from_conv(conv)
        assert cosines(plain(x), conv(x)).min() < cosines(q(x), conv(x)).min()


def test_linear_layers_are_quantized():
    linear = torch.nn.Linear(48, 20)
    q = Int8Projection.from_linear(linear)
    x = torch.randn(2, 7, 48)
    with torch.no_grad():
        assert q(x).shape == (2, 7, 20)
        assert cosines(q(x), linear(x)).min() > 0.999


def test_quantize_dynamic_returns_an_int8_copy():
    fp32 = model("SqueezeBertForMaskedLM")
    q = squeezebert.quantize_dynamic(fp32)
    assert q is not fp32
    assert any(isinstance(m, GroupedConv1x1) for m in fp32.modules())
    assert not any(isinstance(m, (GroupedConv1x1, torch.nn.Linear)) for m in q.modules())
    assert all(m.qkv is not None for m in q.modules() if hasattr(m, "fused_qkv"))
    same = squeezebert.quantize_dynamic(fp32, inplace=True)
    assert same is fp32 and not any(isinstance(m, GroupedConv1x1) for m in fp32.modules())


@pytest.mark.parametrize("kinds", [("output",), ("attention", "heads"), ("post_attention", "intermediate")])
def test_keep_float_leaves_those_projections_in_floating_point(kinds):
    fp32 = model("SqueezeBertForSequenceClassification")
    q = squeezebert.quantize_dynamic(fp32, keep_float=kinds)
    layer = q.transformer.encoder.layers[0]
    projections = {
        "attention": layer.attention.query,
        "post_attention": layer.post_attention.conv1d,
        "intermediate": layer.intermediate.conv1d,
        "output": layer.output.conv1d,
        "heads": q.classifier,
    }
    for kind, module in projections.items():
        assert isinstance(module, Int8Projection) != (kind in kinds), kind
    assert (layer.attention.qkv is None) == ("attention" in kinds)
    inputs = make_inputs({**GROUPED, "type_vocab_size": 2}, "SqueezeBertForSequenceClassification", "ids", batch=2)
    with torch.no_grad():
        assert cosines(q(**inputs).logits, fp32(**inputs).logits).min() > 0.99


def test_quantize_dynamic_rejects_bad_options():
    fp32 = model()
    with pytest.raises(ValueError, match="keep_float.*'ffn'.*choose from attention, post_attention"):
        squeezebert.quantize_dynamic(fp32, keep_float=("ffn",))
    with pytest.raises(TypeError, match="keep_float must be a collection"):
        squeezebert.quantize_dynamic(fp32, keep_float="output")
    with pytest.raises(ValueError, match="outliers must be an integer >= 0, got -1"):
        squeezebert.quantize_dynamic(fp32, outliers=-1)


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_every_head_runs_and_stays_close(head, padded):
    from support.configs import HEAD_CONFIG

    overrides = {**HEAD_CONFIG.get(head, {}), **({"num_labels": 2} if "Question" in head else {})}
    fp32 = model(head, **overrides)
    q = squeezebert.quantize_dynamic(fp32)
    cfg = {**GROUPED, "type_vocab_size": 2}
    inputs = make_inputs(cfg, head, "padded-types-positions" if padded else "ids", batch=3, seq=12)
    with torch.no_grad():
        expected, got = fp32(**inputs), q(**inputs)
    for key, value in expected.items():
        assert got[key].shape == value.shape
        assert cosines(got[key], value).min() > 0.99, key


@pytest.mark.parametrize("config", [GROUPED, UNFUSED], ids=["fused", "unfused"])
def test_hidden_states_close_on_a_grouped_random_model(config):
    fp32 = squeezebert.SqueezeBertModel(tiny_config(**config)).eval()
    q = squeezebert.quantize_dynamic(fp32)
    ids = torch.randint(0, 100, (20, 60), generator=torch.Generator().manual_seed(1))  # > 1024 tokens: sub-batches
    mask = torch.ones_like(ids)
    mask[::3, 40:] = 0
    with torch.no_grad():
        expected = fp32(input_ids=ids, attention_mask=mask).last_hidden_state
        got = q(input_ids=ids, attention_mask=mask).last_hidden_state
    valid = mask.bool()
    assert cosines(got[valid], expected[valid]).min() > 0.999


# the first default: calibrated on random token ids, rounded to nearest, one scale per token and group
PREVIOUS = {"smoothing": 0.0, "rounding": "nearest", "span": None, "outliers": 8}


@pytest.fixture(scope="module")
def minilm(minilm_dir, tmp_path_factory):
    """The real MiniLM-L6 weights, converted, with the benchmark's 12 sentences and their fp32 last hidden state."""
    folder = squeezebert.convert_bert_checkpoint(minilm_dir, tmp_path_factory.mktemp("minilm") / "model")
    fp32 = squeezebert.SqueezeBertModel.from_pretrained(folder)
    tokenizer = squeezebert.AutoTokenizer.from_pretrained(folder)
    enc = dict(tokenizer(bench_int8_accuracy.SENTENCES, padding=True, return_tensors="pt"))
    with torch.no_grad():
        expected = fp32(**enc).last_hidden_state
    return fp32, tokenizer, enc, expected


def minilm_cosines(minilm, **options) -> tuple[float, float]:
    """The minimum per-token and mean-pooled (sentence embedding) cosine of int8 to fp32, padding excluded."""
    fp32, _, enc, expected = minilm
    with torch.no_grad():
        got = squeezebert.quantize_dynamic(fp32, **options)(**enc).last_hidden_state
    valid = enc["attention_mask"].bool()
    weights = valid.unsqueeze(-1).float()
    pooled = cosines((got * weights).sum(1), (expected * weights).sum(1))
    return cosines(got[valid], expected[valid]).min().item(), pooled.min().item()


@pytest.mark.parametrize(
    "options, bound",
    [
        ({}, 0.998),  # measured 0.99855 (per token), 0.99873 (pooled)
        ({"keep_float": ("output",)}, 0.999),  # measured 0.99928, 0.99940
        ({"keep_float": ("output", "intermediate")}, 0.9995),  # measured about 0.9998
    ],
    ids=["default", "keep-output", "keep-ffn"],
)
def test_minilm_accuracy(minilm, options, bound):
    """The real MiniLM-L6 weights, converted: int8 last hidden state against fp32 (calibrated on the built-in
    texts through the tokenizer saved in the model's folder)."""
    token, pooled = minilm_cosines(minilm, **options)
    assert token > bound and pooled > bound


def test_minilm_default_beats_the_previous_recipe(minilm):
    """Text calibration, GPTQ rounding and scales per span of 32 channels against random-id calibration, rounding
    to nearest and one scale per token, worst token and worst sentence embedding."""
    fp32 = minilm[0]
    previous = copy.deepcopy(fp32)
    previous.config.name_or_path = ""  # no tokenizer to be found: random token ids
    before = minilm_cosines((previous, *minilm[1:]), **PREVIOUS)
    after = minilm_cosines(minilm)
    assert before[0] < 0.9981 and after[0] > 0.999 and after[1] > 0.9995  # measured 0.99770 -> 0.99946, 0.99959


def test_smoothing_is_exact_where_int8_is_exact():
    """Smoothing moves ``s`` from the activations into the weights: ``(x / s) @ (s W) = x @ W``.

    With powers of two for ``s``, integer weights on the int8 grid and inputs whose ``x / s`` per token are 256
    evenly spaced levels, nothing rounds but the float32 matmul itself (each product exact, sums of ``cin`` terms):
    the int8 projection then equals the float one within ``cin * u * sum_k |x_k W_kn|``.
    """
    torch.manual_seed(0)
    groups, cin, cout, tokens = 2, 32, 16, 6
    levels = torch.randint(-127, 128, (groups, cin, cout)).float()
    levels[:, 0, :] = 127.0  # every output channel's max |W / s| is 127 in input row 0, where s = 1
    smoothing = 2.0 ** torch.randint(-4, 5, (groups, cin)).float()
    smoothing[:, 0] = 1.0
    weight = levels / smoothing.unsqueeze(-1) * 0.01  # (G, cin, cout): s W = 0.01 * levels
    x_levels = torch.randint(-128, 128, (groups, tokens, cin)).float()
    x_levels[:, :, 0], x_levels[:, :, 1] = -128.0, 127.0  # each row spans the 256 levels: x / s is exact int8
    x_groups = x_levels * 0.5 * smoothing.unsqueeze(1)  # (G, T, cin)
    q = Int8Projection(weight, None, smoothing=smoothing)
    assert q.smoothed and torch.equal(q.weight_int8.float(), levels)
    expected = torch.bmm(x_groups.double(), weight.double())
    magnitude = torch.bmm(x_groups.abs().double(), weight.abs().double())
    bound = cin * 2.0**-24 * magnitude + 1e-12
    assert ((q.grouped(x_groups).double() - expected).abs() <= bound).all()


def test_smoothed_projection_is_the_dequantized_math():
    """Any ``s``: the output is ``dequantize(x / s) @ dequantize(s W)``, outlier channels in fp32 untouched."""
    torch.manual_seed(0)
    conv = GroupedConv1x1(64, 96, 2)
    torch.nn.init.normal_(conv.weight)
    outliers = torch.tensor([[3], [30]])
    smoothing = torch.rand(2, 32) * 4 + 0.25
    smoothing.scatter_(1, outliers, 1.0)
    q = Int8Projection.from_conv(conv, outliers, smoothing=smoothing)
    x = torch.randn(10, 64)
    x_groups = q.to_groups(x)
    x_q, x_scale, offset = quantize_rows(x_groups * q.inlier_mask)
    x_hat = x_scale * x_q.float() + offset
    w_hat = q.weight_int8.float() * q.weight_scale
    x_out = x_groups.gather(-1, q.outliers.expand(2, 10, -1))
    w_out = conv.group_weight().gather(1, outliers.unsqueeze(-1).expand(-1, -1, 48))
    expected = torch.baddbmm(q.bias.view(2, 1, -1), x_hat, w_hat) + x_out @ w_out
    with torch.no_grad():
        assert (q.grouped(x_groups) - expected).abs().max() < 1e-3
        assert cosines(q(x), conv(x)).min() > 0.999


def test_gptq_rounding():
    """With uncorrelated inputs (a diagonal Hessian) GPTQ has nothing to compensate and rounds to nearest; with
    correlated ones it lowers the output error ``|X (W - W_hat)|`` below rounding to nearest, and further when a few
    rows kept in floating point take up the others' errors."""
    torch.manual_seed(0)
    weight = torch.randn(1, 48, 24)
    scale = weight.abs().amax(dim=1, keepdim=True) / 127.0
    nearest = torch.round(weight / scale)
    diagonal = torch.diag_embed(torch.rand(1, 48) + 0.5)
    levels, got_scale, kept = gptq_round(weight, diagonal)
    assert torch.equal(levels, nearest) and kept.shape == (1, 0, 24)
    assert torch.allclose(got_scale, scale, rtol=1e-6, atol=0)
    spans = weight.view(1, 3, 16, 24).abs().amax(dim=2) / 127.0  # one scale per 16 rows and output channel
    levels, got_scale, _ = gptq_round(weight, diagonal, span=16)
    assert torch.allclose(got_scale, spans, rtol=1e-6, atol=0)
    assert torch.equal(levels, torch.round(weight / spans.repeat_interleave(16, dim=1)))
    x = torch.randn(512, 8) @ torch.randn(8, 48) + 0.1 * torch.randn(512, 48)  # strongly correlated channels
    gram = (x.t() @ x).unsqueeze(0)
    levels, scale, _ = gptq_round(weight, gram)
    assert levels.abs().max() <= 127 and torch.equal(levels, levels.round())
    exact = torch.tensor([[5, 17]])
    with_exact, exact_scale, kept = gptq_round(weight, gram, exact)
    assert (with_exact[0, exact[0]] == 0).all()

    def error(w_hat: torch.Tensor) -> float:
        return float((x @ (weight[0] - w_hat)).norm())

    exact_rows = torch.zeros(48, 24).index_copy_(0, exact[0], weight[0, exact[0]])
    assert error(levels[0] * scale[0]) < 0.5 * error(nearest[0] * scale[0])
    assert error(with_exact[0] * exact_scale[0] + exact_rows.index_copy(0, exact[0], kept[0])) < error(
        with_exact[0] * exact_scale[0] + exact_rows
    )


def test_quantize_dynamic_rejects_bad_calibration():
    fp32 = model()
    with pytest.raises(ValueError, match="calibration_texts must be a sequence of strings, got str"):
        squeezebert.quantize_dynamic(fp32, calibration_texts="one text")
    with pytest.raises(ValueError, match="calibration_texts must be a sequence of strings, got list"):
        squeezebert.quantize_dynamic(fp32, calibration_texts=["a", 3])
    with pytest.raises(ValueError, match="calibration_texts must hold at least one non-empty text"):
        squeezebert.quantize_dynamic(fp32, calibration_texts=[])
    with pytest.raises(ValueError, match="calibration_texts need a tokenizer"):
        squeezebert.quantize_dynamic(fp32, calibration_texts=["a sentence"])
    with pytest.raises(ValueError, match="tokenizer must be a callable tokenizer, got str"):
        squeezebert.quantize_dynamic(fp32, calibration_texts=["a sentence"], tokenizer="bert-base-uncased")
    with pytest.raises(ValueError, match="smoothing must be a number in \\[0, 1\\], got 1.5"):
        squeezebert.quantize_dynamic(fp32, smoothing=1.5)
    with pytest.raises(ValueError, match="rounding must be one of nearest, gptq, got 'up'"):
        squeezebert.quantize_dynamic(fp32, rounding="up")
