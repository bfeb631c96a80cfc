"""Hugging Face compatibility of the models and the config: attention weights on the autograd graph,
``resize_token_embeddings``' options, ``from_pretrained`` (meta device, ``state_dict``, loading info) and the
common config / model API, each against transformers 5.x or a hand derivation where the oracle differs."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import transformers
from support.configs import CONFIG_NAMES, config_kwargs, tiny, tiny_config
from support.inputs import backward_target, make_inputs
from support.numerics import assert_rounding_close, path_length
from support.oracle import make_ours, oracle_and_ours, oracle_cls, our_cls

import squeezebert
from squeezebert.modeling import layers

BASE, MLM, SEQ = "SqueezeBertModel", "SqueezeBertForMaskedLM", "SqueezeBertForSequenceClassification"
HEAD_NAMES = (
    BASE,
    MLM,
    SEQ,
    "SqueezeBertForMultipleChoice",
    "SqueezeBertForTokenClassification",
    "SqueezeBertForQuestionAnswering",
)
# What the oracle writes that we do not: its version, and two token ids SqueezeBERT never uses.
ORACLE_ONLY_KEYS = {"transformers_version", "bos_token_id", "eos_token_id"}


# ----------------------------------------------------------------------------------------------------------------
# Attention weights are on the autograd graph


def _attentions_with_grads(model, inputs, **kwargs):
    out = model(**inputs, output_attentions=True, **kwargs)
    for attention in out.attentions:
        attention.retain_grad()
    backward_target(out).backward()
    return out


@pytest.mark.parametrize("cfg_name", CONFIG_NAMES)
def test_attention_grads_match_the_oracles_score_grads(tmp_path, cfg_name):
    """The oracle returns the scores S before softmax (its docs say the weights A = softmax(S), which we return).
    dL/dS = A * (dL/dA - sum_j A_j dL/dA_j): the softmax backward of our gradient must give the oracle's."""
    oracle, ours = oracle_and_ours(tmp_path, cfg_name, BASE, "oracle->ours")
    inputs = make_inputs(ours.config.to_dict(), BASE, "padded-types-positions")
    oracle64 = copy.deepcopy(oracle).double()
    expected = _attentions_with_grads(oracle64, inputs)
    got = _attentions_with_grads(ours, inputs)
    length = path_length(ours.config, inputs["input_ids"].shape[-1])
    for layer, (weights, scores) in enumerate(zip(got.attentions, expected.attentions, strict=True)):
        assert weights.grad is not None, f"layer {layer}: the returned attention weights are not on the graph"
        assert_rounding_close(weights, scores.softmax(-1), length, what=f"attentions[{layer}]")
        g = weights.grad
        score_grad = weights * (g - (g * weights).sum(-1, keepdim=True))
        assert_rounding_close(score_grad, scores.grad, length, what=f"dL/dscores[{layer}]")


def test_attention_grads_after_head_mask_by_finite_differences():
    """With head_mask m the returned weights are A' = m * softmax(S) and the context is A' @ V, so
    dL/dm[l, h] = sum(dL/dA'[l][:, h] * A'[l][:, h]) / m[l, h]; checked by central differences in float64."""
    model = make_ours("relu-h32", BASE).double()
    cfg = model.config
    inputs = make_inputs(cfg.to_dict(), BASE, "padded-types-positions")
    head_mask = 0.5 + torch.rand(cfg.num_hidden_layers, cfg.num_attention_heads, dtype=torch.float64)
    out = _attentions_with_grads(model, inputs, head_mask=head_mask)
    predicted = torch.stack([(a.grad * a).sum(dim=(0, 2, 3)) for a in out.attentions]) / head_mask

    def loss(mask: torch.Tensor) -> float:
        with torch.no_grad():
            return backward_target(model(**inputs, head_mask=mask)).item()

    eps = 1e-5  # truncation ~eps^2 |L'''|, rounding ~2^-53 |L| / eps: both ~1e-10 of the loss's scale
    numeric = torch.zeros_like(head_mask)
    for index in torch.cartesian_prod(*(torch.arange(n) for n in head_mask.shape)).tolist():
        step = torch.zeros_like(head_mask)
        step[tuple(index)] = eps
        numeric[tuple(index)] = (loss(head_mask + step) - loss(head_mask - step)) / (2 * eps)
    scale = max(abs(loss(head_mask)), numeric.abs().max().item())
    torch.testing.assert_close(predicted, numeric, atol=1e-7 * scale, rtol=0)


def test_attention_fast_path_only_without_attentions(monkeypatch):
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(layers.F, "scaled_dot_product_attention", counting)
    model = make_ours("relu-h32", BASE)
    ids = torch.randint(1, 100, (2, 5))
    plain = model(ids).last_hidden_state
    assert len(calls) == model.config.num_hidden_layers
    with_weights = model(ids, output_attentions=True).last_hidden_state
    assert len(calls) == model.config.num_hidden_layers, "the explicit path ran through SDPA"
    length = path_length(model.config, 5)
    assert_rounding_close(with_weights, plain, length, what="explicit vs fused attention")


# ----------------------------------------------------------------------------------------------------------------
# resize_token_embeddings


def _mlm_with_correlated_embeddings(vocab_size: int, seed: int = 0) -> squeezebert.SqueezeBertForMaskedLM:
    """A masked-LM model whose embedding rows have a non-zero mean and a full, non-diagonal covariance."""
    torch.manual_seed(seed)
    model = squeezebert.SqueezeBertForMaskedLM(tiny_config(vocab_size=vocab_size))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mixing = torch.randn(32, 32, generator=gen) * 0.05
        rows = torch.randn(vocab_size, 32, generator=gen) @ mixing + torch.linspace(-0.3, 0.3, 32)
        model.get_input_embeddings().weight.copy_(rows)
        model.cls.predictions.bias.copy_(torch.randn(vocab_size, generator=gen))
    return model


def test_mean_resizing_draws_from_the_old_mean_and_covariance():
    old_vocab, added = 100, 20_000
    model = _mlm_with_correlated_embeddings(old_vocab)
    old = model.get_input_embeddings().weight.detach().clone()
    old_bias = model.cls.predictions.bias.detach().clone()
    embedding = model.get_input_embeddings()
    torch.manual_seed(1)
    returned = model.resize_token_embeddings(old_vocab + added)

    assert returned is embedding  # the same module, as in transformers
    assert model.config.vocab_size == old_vocab + added and embedding.num_embeddings == old_vocab + added
    assert torch.equal(embedding.weight[:old_vocab], old)
    assert model.get_output_embeddings().weight is embedding.weight
    assert torch.equal(model.cls.predictions.bias[:old_vocab], old_bias)
    assert torch.equal(model.cls.predictions.bias[old_vocab:], torch.zeros(added))  # as the oracle's tied head

    mean = old.double().mean(0)
    cov = (old.double() - mean).T @ (old.double() - mean) / old_vocab  # the 1/N covariance of the old rows
    new = embedding.weight[old_vocab:].detach().double()
    # a sample mean's coordinate has variance cov_ii / n; a sample covariance entry (cov_ii cov_jj + cov_ij^2) / n
    var = cov.diagonal()
    assert ((new.mean(0) - mean).abs() <= 6 * (var / added).sqrt()).all()
    sample_cov = (new - new.mean(0)).T @ (new - new.mean(0)) / added
    spread = ((var[:, None] * var[None, :] + cov**2) / added).sqrt()
    assert ((sample_cov - cov).abs() <= 6 * spread).all()


def test_mean_resizing_with_fewer_rows_than_channels_stays_in_their_span():
    """16 rows in 32 channels: a singular covariance, whose normal lives on the rows' affine span."""
    model = _mlm_with_correlated_embeddings(16)
    old = model.get_input_embeddings().weight.detach().double()
    torch.manual_seed(2)
    new = model.resize_token_embeddings(100).weight[16:].detach().double()
    centered = old - old.mean(0)
    basis = torch.linalg.svd(centered, full_matrices=False).Vh[:15]  # rank N - 1 after centering
    offset = new - old.mean(0)
    residual = offset - offset @ basis.T @ basis
    assert residual.abs().max() <= 1e-5 * offset.abs().max()  # float32 rounding of the draws
    assert offset.abs().max() > 0.01


def test_resizing_without_mean_resizing_draws_from_the_initializer_normal():
    model = _mlm_with_correlated_embeddings(100)
    model.config.initializer_range = 0.3
    torch.manual_seed(3)
    new = model.resize_token_embeddings(100 + 5000, mean_resizing=False).weight[100:].detach().double()
    n, std = new.numel(), 0.3
    assert abs(new.mean().item()) <= 6 * std / math.sqrt(n)
    assert abs(new.std().item() - std) <= 6 * std / math.sqrt(2 * n)


@pytest.mark.parametrize(
    ("new_num_tokens", "pad_to_multiple_of"),
    [(115, 8), (None, 64), (128, 64), (60, 7), (None, None), (130, None)],
)
def test_resize_sizes_match_the_oracle(new_num_tokens, pad_to_multiple_of):
    cfg = tiny(vocab_size=99)
    ours = squeezebert.SqueezeBertForMaskedLM(squeezebert.SqueezeBertConfig(**cfg))
    oracle = transformers.SqueezeBertForMaskedLM(transformers.SqueezeBertConfig(**cfg))
    for model in (ours, oracle):
        embedding = model.get_input_embeddings()
        returned = model.resize_token_embeddings(new_num_tokens, pad_to_multiple_of=pad_to_multiple_of)
        assert returned is embedding
    assert ours.config.vocab_size == oracle.config.vocab_size
    assert ours.get_input_embeddings().weight.shape == oracle.get_input_embeddings().weight.shape
    assert ours.cls.predictions.bias.shape == oracle.cls.predictions.bias.shape
    assert ours.get_output_embeddings().out_features == oracle.get_output_embeddings().weight.shape[0]
    assert ours(torch.tensor([[1, 2]])).logits.shape == oracle(torch.tensor([[1, 2]])).logits.shape


@pytest.mark.parametrize("bad", [0, -8, 2.0, "8", True])
def test_resize_rejects_a_bad_pad_to_multiple_of(bad):
    model = make_ours("relu-h32", MLM)
    with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive integer"):
        model.resize_token_embeddings(130, pad_to_multiple_of=bad)
    assert model.config.vocab_size == 100


# ----------------------------------------------------------------------------------------------------------------
# from_pretrained


def _saved_mlm(tmp_path):
    model = make_ours("relu-h32", MLM)
    model.save_pretrained(tmp_path / "mlm")
    return model, tmp_path / "mlm"


def test_loading_info_matches_the_oracle(tmp_path):
    _, folder = _saved_mlm(tmp_path)
    _, ours = our_cls(SEQ).from_pretrained(folder, output_loading_info=True)
    _, theirs = oracle_cls(SEQ).from_pretrained(folder, output_loading_info=True)
    assert ours == theirs
    assert ours["missing_keys"] == {"classifier.weight", "classifier.bias"}
    assert isinstance(ours["unexpected_keys"], set) and ours["error_msgs"] == []

    bigger = squeezebert.SqueezeBertConfig.from_pretrained(folder, vocab_size=120)
    _, ours = our_cls(MLM).from_pretrained(
        folder, config=bigger, ignore_mismatched_sizes=True, output_loading_info=True
    )
    bigger_hf = transformers.SqueezeBertConfig.from_pretrained(folder, vocab_size=120)
    _, theirs = oracle_cls(MLM).from_pretrained(
        folder, config=bigger_hf, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert ours == theirs
    assert ("cls.predictions.bias", torch.Size([100]), torch.Size([120])) in ours["mismatched_keys"]


def test_from_pretrained_under_the_meta_device_loads_the_weights(tmp_path):
    """The oracle raises here; we build and load on the CPU (a meta model has nowhere to put the weights)."""
    source, folder = _saved_mlm(tmp_path)
    with torch.device("meta"):
        model = our_cls(MLM).from_pretrained(folder)
    assert {t.device.type for t in (*model.parameters(), *model.buffers())} == {"cpu"}
    for name, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    ids = torch.randint(1, 100, (2, 6))
    assert torch.equal(model(ids).logits, source(ids).logits)


def test_from_pretrained_with_a_state_dict_and_no_path():
    source = make_ours("relu-h32", MLM)
    state = source.state_dict()
    ours, info = our_cls(MLM).from_pretrained(None, config=source.config, state_dict=state, output_loading_info=True)
    hf_config = transformers.SqueezeBertConfig(**config_kwargs("relu-h32", MLM))
    theirs = oracle_cls(MLM).from_pretrained(None, config=hf_config, state_dict=state)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    for name, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name


def test_state_dict_replaces_the_checkpoints_weights(tmp_path):
    """As in transformers 4.x (5.x refuses a path with a state_dict): the config from the folder, the weights given."""
    source, folder = _saved_mlm(tmp_path)
    halved = {k: v / 2 for k, v in source.state_dict().items()}
    model = our_cls(MLM).from_pretrained(folder, state_dict=halved, num_labels=3)
    assert model.config.num_labels == 3 and model.config.vocab_size == source.config.vocab_size
    for name, value in model.state_dict().items():
        assert torch.equal(value, halved[name]), name


def test_from_pretrained_none_needs_config_and_state_dict():
    config = tiny_config()
    with pytest.raises(ValueError, match="pretrained_model_name_or_path may be None only"):
        squeezebert.SqueezeBertModel.from_pretrained(None, config=config)
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        squeezebert.SqueezeBertModel.from_pretrained(None, config=config, state_dict=[("a", torch.zeros(1))])


# ----------------------------------------------------------------------------------------------------------------
# Common config API


CONFIG_CASES = {
    "default": {},
    "tiny": tiny(),
    "common-fields-set": dict(
        num_labels=3,
        output_hidden_states=True,
        output_attentions=True,
        return_dict=False,
        dtype="float16",
        problem_type="regression",
        architectures=["SqueezeBertForSequenceClassification"],
        tie_word_embeddings=False,
        my_field=[1],
    ),
}


@pytest.mark.parametrize("use_diff", [True, False])
@pytest.mark.parametrize("case", CONFIG_CASES)
def test_to_json_file_matches_the_oracle(tmp_path, case, use_diff):
    fields = CONFIG_CASES[case]
    squeezebert.SqueezeBertConfig(**fields).to_json_file(tmp_path / "ours.json", use_diff=use_diff)
    transformers.SqueezeBertConfig(**fields).to_json_file(tmp_path / "theirs.json", use_diff=use_diff)
    ours = json.loads((tmp_path / "ours.json").read_text())
    theirs = json.loads((tmp_path / "theirs.json").read_text())
    if use_diff:
        assert ours == {k: v for k, v in theirs.items() if k not in ORACLE_ONLY_KEYS}
    else:  # the oracle also writes fields of its other models (chunk_size_feed_forward, ...)
        assert {k: theirs[k] for k in ours} == ours

    expected = squeezebert.SqueezeBertConfig(**fields).to_dict()
    for json_file in ("ours.json", "theirs.json"):  # the oracle's extra keys are kept as unknown keys
        loaded = squeezebert.SqueezeBertConfig.from_json_file(tmp_path / json_file).to_dict()
        assert {k: loaded[k] for k in expected} == expected, json_file
    back = json.loads(transformers.SqueezeBertConfig.from_json_file(tmp_path / "ours.json").to_json_string(False))
    assert {k: back[k] for k in ours} == ours


def test_dtype_and_its_4x_spelling():
    assert squeezebert.SqueezeBertConfig().dtype is None is transformers.SqueezeBertConfig().dtype
    for kwargs in ({"dtype": torch.bfloat16}, {"torch_dtype": "float16"}, {"torch_dtype": torch.float16}):
        ours, theirs = squeezebert.SqueezeBertConfig(**kwargs), transformers.SqueezeBertConfig(**kwargs)
        assert ours.dtype == theirs.dtype and isinstance(ours.dtype, torch.dtype)
        assert ours.to_dict()["dtype"] == theirs.to_dict()["dtype"]
        assert "torch_dtype" not in ours.to_dict()
    config = squeezebert.SqueezeBertConfig(torch_dtype="float16")
    config.dtype = torch.bfloat16
    assert config.torch_dtype == "bfloat16"
    with pytest.raises(ValueError, match="dtype 'float17' is not a torch dtype"):
        _ = squeezebert.SqueezeBertConfig(dtype="float17").dtype


def test_saved_config_records_dtype_like_the_oracle(tmp_path):
    model = make_ours("relu-h32", BASE).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "ours")
    oracle = transformers.SqueezeBertModel(transformers.SqueezeBertConfig(**tiny())).to(torch.bfloat16)
    oracle.save_pretrained(tmp_path / "theirs")
    ours = json.loads((tmp_path / "ours" / "config.json").read_text())
    theirs = json.loads((tmp_path / "theirs" / "config.json").read_text())
    assert ours["dtype"] == theirs["dtype"] == "bfloat16" and "torch_dtype" not in ours


def test_encoder_only_config_api():
    ours, theirs = squeezebert.SqueezeBertConfig(), transformers.SqueezeBertConfig()
    assert ours.is_encoder_decoder is theirs.is_encoder_decoder is False
    assert ours.sub_configs == theirs.sub_configs == {}
    assert ours.get_text_config() is ours and ours.get_text_config(decoder=True) is ours
    assert squeezebert.SqueezeBertConfig(is_encoder_decoder=False) == ours
    with pytest.raises(ValueError, match="is_encoder_decoder must be False"):
        squeezebert.SqueezeBertConfig(is_encoder_decoder=True)


# ----------------------------------------------------------------------------------------------------------------
# Common model API


@pytest.mark.parametrize("head", HEAD_NAMES)
def test_model_level_api_matches_the_oracle(head):
    assert our_cls(head).main_input_name == oracle_cls(head).main_input_name == "input_ids"
    assert our_cls(head).can_generate() is oracle_cls(head).can_generate() is False


def test_save_pretrained_is_main_process_and_state_dict(tmp_path):
    model = make_ours("relu-h32", MLM)
    model.save_pretrained(tmp_path / "skipped", is_main_process=False)
    assert not (tmp_path / "skipped").exists()

    halved = {k: v / 2 for k, v in model.state_dict().items()}
    model.save_pretrained(tmp_path / "given", state_dict=halved)
    for cls in (our_cls(MLM), oracle_cls(MLM)):
        loaded = cls.from_pretrained(tmp_path / "given")
        for name, value in loaded.state_dict().items():
            assert torch.equal(value, halved[name]), (cls.__module__, name)
