"""The fast path against the reference math: every head, padding, gradients, chunking, attention paths, bf16,
torch.compile / TorchScript, and the fused-QKV weight cache. No timings here (see benchmarks/)."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F
import transformers
from support.configs import ENGINE_CONFIG_NAMES, SMALL_CONFIGS, config_kwargs
from support.inputs import HEAD_IDS, HEADS, backward_target, make_inputs, make_labels
from support.numerics import (
    assert_grads_match,
    assert_outputs_match,
    assert_rounding_close,
    float64_reference,
    path_length,
)
from support.oracle import make_oracle, make_ours
from support.reference import hand_hidden_states

import squeezebert
from squeezebert.modeling import layers

ENGINE_CONFIGS = {name: SMALL_CONFIGS[name] for name in ENGINE_CONFIG_NAMES}


def pair(cfg_name: str, head: str = "SqueezeBertModel", **overrides) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The HF oracle and our model with the same (random) weights, both in eval mode."""
    oracle = make_oracle(cfg_name, head, **overrides)
    ours = make_ours(cfg_name, head, **overrides)
    info = ours.load_state_dict(oracle.state_dict(), strict=False)
    assert not info.missing_keys, info.missing_keys
    return oracle, ours


def ids_and_mask(batch: int, seq: int, padded: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (batch, seq), generator=gen)
    if not padded:
        return {"input_ids": ids}
    mask = torch.ones(batch, seq, dtype=torch.long)
    for row in range(1, batch, 2):
        mask[row, seq // 2 + row % 3 :] = 0
    return {"input_ids": ids, "attention_mask": mask}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def close(got: torch.Tensor, expected: torch.Tensor, model: torch.nn.Module, seq: int, what: str = "") -> None:
    """Two evaluations of the same forward pass of ``model`` on sequences of ``seq`` tokens, within the rounding
    error of that pass (see support.numerics)."""
    assert_rounding_close(got, expected, path_length(model.config, seq), what=what)


def last_hidden_reference(oracle: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The oracle's last hidden state, recomputed in float64."""
    return float64_reference(oracle, inputs).outputs.last_hidden_state


# ----------------------------------------------------------------------------------------------------------------
# Fast path == reference


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "grad"])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
@pytest.mark.parametrize("cfg_name", list(ENGINE_CONFIGS))
def test_every_head_matches_reference(cfg_name, head, padded, grad):
    """Outputs and gradients against a float64 run of the reference, within fp32's rounding error."""
    oracle, ours = pair(cfg_name, head)
    cfg = config_kwargs(cfg_name, head)
    inputs = make_inputs(cfg, head, "padded-types-positions" if padded else "ids", batch=3, seq=11)
    kwargs = {**inputs, **(make_labels(cfg, head, batch=3, seq=11) if grad else {})}
    reference = float64_reference(oracle, kwargs, backward=backward_target if grad else None)
    with torch.set_grad_enabled(grad):
        got = ours(**kwargs)
    assert_outputs_match(got, reference)
    if grad:
        backward_target(got).backward()
        assert_grads_match(ours, reference)


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_default_config_matches_reference(padded):
    """The published architecture (12 heads, groups 4/4/4/1/4/4, 768 channels), two layers, seq 128.

    With the reference's own initialisation (the small test configs use larger random weights).
    """
    torch.manual_seed(0)
    sizes = dict(num_hidden_layers=2, vocab_size=100, max_position_embeddings=128)
    oracle = transformers.SqueezeBertModel(transformers.SqueezeBertConfig(**sizes)).eval()
    ours = squeezebert.SqueezeBertModel(squeezebert.SqueezeBertConfig(**sizes)).eval()
    assert not ours.load_state_dict(oracle.state_dict(), strict=False).missing_keys
    inputs = ids_and_mask(2, 128, padded)
    with torch.no_grad():
        assert_outputs_match(ours(**inputs), float64_reference(oracle, inputs))


def test_inference_and_grad_paths_agree():
    _, ours = pair("engine")
    inputs = ids_and_mask(4, 9, padded=True)
    with torch.no_grad():
        fast = ours(**inputs).last_hidden_state
    slow = ours(**inputs).last_hidden_state
    assert slow.requires_grad
    close(fast, slow, ours, 9)


# ----------------------------------------------------------------------------------------------------------------
# Attention: SDPA against the explicit path


@pytest.mark.parametrize("cfg_name", list(ENGINE_CONFIGS))
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_sdpa_matches_explicit_attention(cfg_name, padded):
    oracle, ours = pair(cfg_name)
    inputs = ids_and_mask(3, 10, padded)
    heads = ENGINE_CONFIGS[cfg_name]["num_attention_heads"]
    with torch.no_grad():
        fast = ours(**inputs).last_hidden_state
        explicit = ours(**inputs, output_attentions=True)
        ones_mask = ours(**inputs, head_mask=torch.ones(heads)).last_hidden_state
        reference = float64_reference(oracle, {**inputs, "output_attentions": True})
    close(fast, explicit.last_hidden_state, ours, 10)
    close(fast, ones_mask, ours, 10)
    assert_outputs_match(explicit, reference)  # the reference returns the scores before softmax: compared after


@pytest.mark.parametrize("cfg_name", list(ENGINE_CONFIGS))
def test_head_mask_matches_hand_math(cfg_name):
    """Per-layer, per-head masks (the reference ignores head_mask: compare with the hand-written encoder)."""
    oracle, ours = pair(cfg_name)
    inputs = ids_and_mask(2, 7, padded=True)
    heads = ENGINE_CONFIGS[cfg_name]["num_attention_heads"]
    head_mask = torch.rand(2, heads, generator=torch.Generator().manual_seed(5))
    head_mask[0, 1] = 0
    with torch.no_grad():
        got = ours(**inputs, head_mask=head_mask, output_hidden_states=True).hidden_states
        expected = hand_hidden_states(oracle, inputs["input_ids"], inputs["attention_mask"], head_mask)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        close(a, b, ours, 7, f"hidden_states[{i}]")


# ----------------------------------------------------------------------------------------------------------------
# Chunking at inference


@pytest.mark.parametrize("cfg_name", list(ENGINE_CONFIGS))
def test_chunked_ffn_matches_unchunked(cfg_name):
    """More than FFN_CHUNK_ROWS (512) tokens: the feed-forward block runs in chunks."""
    oracle, ours = pair(cfg_name)
    inputs = ids_and_mask(15, 40, padded=True)  # 600 rows, one layer sub-batch (15 * 40 < 1024)
    assert inputs["input_ids"].numel() > layers.FFN_CHUNK_ROWS
    with torch.no_grad():
        chunked = ours(**inputs).last_hidden_state
        expected = last_hidden_reference(oracle, inputs)
        unchunked = ours(**inputs, output_attentions=True).last_hidden_state  # the explicit path never chunks
    close(chunked, expected, ours, 40)
    close(chunked, unchunked, ours, 40)


@pytest.mark.parametrize("cfg_name", list(ENGINE_CONFIGS))
def test_layer_sub_batches_match(cfg_name, monkeypatch):
    """A batch split into sub-batches of whole sequences (and the FFN in chunks) gives the same numbers."""
    oracle, ours = pair(cfg_name)
    inputs = ids_and_mask(7, 12, padded=True)
    with torch.no_grad():
        whole = ours(**inputs).last_hidden_state
        monkeypatch.setattr(layers, "LAYER_CHUNK_TOKENS", 30)  # 2 sequences per sub-batch, the last one alone
        monkeypatch.setattr(layers, "FFN_CHUNK_ROWS", 10)
        split = ours(**inputs).last_hidden_state
        expected = last_hidden_reference(oracle, inputs)
    close(split, whole, ours, 12)
    close(split, expected, ours, 12)


# ----------------------------------------------------------------------------------------------------------------
# Training mode


def test_training_mode_without_dropout_matches_reference():
    oracle, ours = pair("engine", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    oracle.train()
    ours.train()
    inputs = ids_and_mask(3, 9, padded=True)
    assert_outputs_match(ours(**inputs), float64_reference(oracle, inputs))


def test_training_mode_with_dropout_runs_and_is_random():
    _, ours = pair("engine", "SqueezeBertForSequenceClassification")
    ours.train()
    inputs = ids_and_mask(3, 9, padded=True)
    labels = torch.tensor([0, 1, 0])
    first = ours(**inputs, labels=labels)
    first.loss.backward()
    assert all(p.grad is not None for p in ours.parameters() if p.requires_grad)
    second = ours(**inputs, labels=labels)
    assert max_diff(first.logits, second.logits) > 0
    with torch.no_grad():  # dropout also applies when no gradient is recorded in train mode
        third = ours(**inputs).logits
    assert max_diff(third, second.logits) > 0


def test_chunked_feed_forward_keeps_dropout_in_train_mode_without_grad(monkeypatch):
    """More than FFN_CHUNK_ROWS tokens in train mode under no_grad: the output projection's dropout still applies."""
    monkeypatch.setattr(layers, "FFN_CHUNK_ROWS", 8)
    model = make_ours("engine", "SqueezeBertModel", attention_probs_dropout_prob=0.0)
    layer = model.encoder.layers[0].train()
    x = torch.randn(40, layer.output.conv1d.out_channels, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first, second = layer.feed_forward(x), layer.feed_forward(x)
    assert max_diff(first, second) > 0
    layer.eval()
    with torch.no_grad():
        chunked = layer.feed_forward(x)
    with torch.enable_grad():
        plain = layer.feed_forward(x)
    close(chunked, plain, model, 1)  # a sub-path of the model's: its bound covers it


# ----------------------------------------------------------------------------------------------------------------
# bf16


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "grad"])
@pytest.mark.parametrize("cfg_name", list(ENGINE_CONFIGS))
def test_bf16_runs_and_is_close(cfg_name, grad):
    _, ours = pair(cfg_name, "SqueezeBertForMaskedLM")
    inputs = ids_and_mask(3, 16, padded=True)
    with torch.no_grad():
        reference = ours(**inputs).logits
    low = ours.to(torch.bfloat16)
    with torch.set_grad_enabled(grad):
        logits = low(**inputs).logits
    assert logits.dtype == torch.bfloat16
    assert torch.isfinite(logits.float()).all()
    cosine = F.cosine_similarity(logits.float().flatten(1), reference.flatten(1), dim=-1)
    assert cosine.min() > 0.99, cosine
    if grad:
        logits.float().sum().backward()
        grads = {name: p.grad for name, p in low.named_parameters() if p.grad is not None}
        assert "transformer.encoder.layers.0.attention.query.weight" in grads
        assert all(g.dtype == torch.bfloat16 and torch.isfinite(g.float()).all() for g in grads.values())


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "grad"])
@pytest.mark.parametrize("cfg_name", list(ENGINE_CONFIGS))
def test_bf16_autocast_matches_fp32(cfg_name, grad, monkeypatch):
    """Autocast (as in mixed-precision training and evaluation) on an fp32 model, sub-batched and chunked."""
    monkeypatch.setattr(layers, "FFN_CHUNK_ROWS", 8)
    monkeypatch.setattr(layers, "LAYER_CHUNK_TOKENS", 16)
    _, ours = pair(cfg_name, "SqueezeBertForSequenceClassification")
    inputs = ids_and_mask(6, 16, padded=True)
    with torch.no_grad():
        reference = ours(**inputs).logits
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = ours(**inputs).logits
    assert logits.dtype == torch.bfloat16
    assert max_diff(logits, reference) < 0.05


# ----------------------------------------------------------------------------------------------------------------
# torch.compile and TorchScript


class LastHidden(torch.nn.Module):
    """The encoder's last hidden state alone (a tensor output, for tracing)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def test_torch_jit_trace_matches():
    _, ours = pair("engine")
    wrapper = LastHidden(ours).eval()
    inputs = ids_and_mask(2, 12, padded=True)
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, (inputs["input_ids"], inputs["attention_mask"]), check_trace=False)
        expected = wrapper(inputs["input_ids"], inputs["attention_mask"])
        got = traced(inputs["input_ids"], inputs["attention_mask"])
    close(got, expected, ours, 12)


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "grad"])
def test_torch_compile_matches(grad):
    backend = "inductor" if shutil.which("g++") or shutil.which("c++") else "aot_eager"
    torch._dynamo.reset()
    _, ours = pair("engine")
    inputs = ids_and_mask(2, 12, padded=True)
    with torch.set_grad_enabled(grad):
        expected = ours(**inputs).last_hidden_state
        compiled = torch.compile(ours, backend=backend)
        got = compiled(**inputs).last_hidden_state
    assert max_diff(got, expected) <= 1e-4  # inductor may fuse and reorder float arithmetic
    if grad:
        got.sum().backward()
        assert ours.encoder.layers[0].attention.query.weight.grad is not None
    torch._dynamo.reset()


# ----------------------------------------------------------------------------------------------------------------
# The fused-QKV weight cache


def test_fused_qkv_cache_follows_in_place_updates():
    oracle, ours = pair("engine")
    assert ours.encoder.layers[0].attention.fused_qkv
    inputs = ids_and_mask(2, 8, padded=False)
    with torch.no_grad():
        before = ours(**inputs).last_hidden_state
        assert ours.encoder.layers[0].attention._qkv_cache is not None
        for model in (oracle, ours):
            model.encoder.layers[0].attention.value.weight.mul_(1.5)
            model.encoder.layers[1].attention.key.bias.add_(0.3)
        after = ours(**inputs).last_hidden_state
        expected = last_hidden_reference(oracle, inputs)
    assert max_diff(before, after) > 1e-3
    close(after, expected, ours, 8)


def test_fused_qkv_cache_follows_load_state_dict_and_optimizer_steps():
    oracle, ours = pair("engine")
    inputs = ids_and_mask(2, 8, padded=False)
    with torch.no_grad():
        ours(**inputs)
    optimizer = torch.optim.SGD(ours.parameters(), lr=0.1)
    ours(**inputs).last_hidden_state.square().mean().backward()
    optimizer.step()
    fresh = make_ours("engine", "SqueezeBertModel")
    fresh.load_state_dict(ours.state_dict())
    with torch.no_grad():
        close(ours(**inputs).last_hidden_state, fresh(**inputs).last_hidden_state, ours, 8)
        ours.load_state_dict(oracle.state_dict(), strict=False)  # copies in place: versions change
        close(ours(**inputs).last_hidden_state, last_hidden_reference(oracle, inputs), ours, 8)


def test_fused_qkv_cache_follows_to():
    oracle, ours = pair("engine")
    inputs = ids_and_mask(2, 8, padded=True)
    with torch.no_grad():
        ours(**inputs)
        ours.double()
        oracle.double()
        got = ours(**inputs).last_hidden_state
        expected = oracle(**inputs).last_hidden_state
        assert got.dtype == torch.float64
        close(got, expected, ours, 8)  # float64 on both sides: a bound of ~1e-14
        ours.float()
        oracle.float()
        close(ours(**inputs).last_hidden_state, last_hidden_reference(oracle, inputs), ours, 8)


def test_public_names_unchanged():
    """Parameter names and shapes are the reference's (Conv1d weights ``[out, in / groups, 1]``)."""
    oracle, ours = pair("engine")
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    for key, value in oracle.state_dict().items():
        if key.endswith("position_ids"):
            continue
        assert ours_shapes[key] == tuple(value.shape), key
    assert isinstance(squeezebert.SqueezeBertModel, type)


# ----------------------------------------------------------------------------------------------------------------
# Dropout with the cheaper mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_each_element_with_probability_1_minus_p(p):
    torch.manual_seed(0)
    n = 400_000
    out = layers.dropout(torch.full((n,), 2.0), p, True)
    kept = out != 0
    resolved = round(p * 2**16) / 2**16  # p in steps of 2^-16
    assert abs(resolved - p) <= 2**-17
    assert torch.equal(out[kept], torch.full((int(kept.sum()),), 2.0 / (1.0 - resolved)))  # inverted dropout
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sigma
    # the four 16-bit words of one 64-bit draw are independent of each other
    words = kept.view(-1, 4).float()
    for i, j in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        both = (words[:, i] * words[:, j]).mean().item()
        assert abs(both - (1 - p) ** 2) < 5 * ((1 - p) ** 2 * (1 - (1 - p) ** 2) / (n // 4)) ** 0.5


def test_dropout_gradient_reproducibility_and_identities():
    x = torch.randn(3, 5, 7, requires_grad=True)
    torch.manual_seed(1)
    out = layers.dropout(x, 0.3, True)
    torch.manual_seed(1)
    assert torch.equal(out, layers.dropout(x, 0.3, True))  # the default generator's seed decides the mask
    assert not torch.equal(out, layers.dropout(x, 0.3, True))
    grad = torch.randn_like(x)
    out.backward(grad)
    mask = (out != 0).float() * 65536 / (65536 - round(0.3 * 65536))
    torch.testing.assert_close(x.grad, grad * mask)
    for p in (1e-6, 1 - 1e-6):  # within 2^-16 of 0 or 1: F.dropout's mask, never a 1 / 0 scale
        assert torch.isfinite(layers.dropout(x, p, True)).all()
    assert layers.dropout(x, 0.3, False) is x and layers.dropout(x, 0.0, True) is x
    assert torch.equal(layers.dropout(x, 1.0, True), torch.zeros_like(x))
    assert layers.dropout(x.detach().bfloat16(), 0.5, True).dtype == torch.bfloat16
    module = layers.Dropout(0.3)
    assert module.eval()(x) is x and module.train()(x).shape == x.shape
