"""Checkpoints: every file format, stored dtypes, base <-> head loading, mismatches, config overrides, refusing
pickles, atomic saves, and hub ids resolved offline from a Hugging Face cache laid out by the test."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors import safe_open
from support.checkpoints import build_hub_cache, folder_files, state_dicts_equal, write_checkpoint
from support.configs import SMALL_CONFIGS, config_kwargs
from support.inputs import make_inputs
from support.logs import capture_logs
from support.oracle import assert_close, make_oracle, make_ours, oracle_cls, our_cls

import squeezebert
from squeezebert.hub import CheckpointNotFoundError

CFG_NAME = "relu-h32"
FORMATS = ("safetensors", "bin", "sharded-safetensors", "sharded-bin")
MLM = "SqueezeBertForMaskedLM"
BASE = "SqueezeBertModel"
SEQ_CLS = "SqueezeBertForSequenceClassification"
TIED_ALIASES = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
REPO_ID = "test-org/tiny-squeezebert"

pytestmark = pytest.mark.usefixtures("single_thread")


def _hf_style_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as Hugging Face saves it: tied aliases stored once."""
    return {k: v for k, v in model.state_dict().items() if k not in TIED_ALIASES}


def _config_dict(model: torch.nn.Module) -> dict:
    return model.config.to_dict()


def _forward(model: torch.nn.Module, head: str = MLM):
    inputs = make_inputs(config_kwargs(CFG_NAME, head), head, "padded-types-positions")
    return model(**inputs).to_tuple()[0]


def _load(head: str, path, **kwargs):
    return our_cls(head).from_pretrained(path, output_loading_info=True, **kwargs)


def _names(keys) -> set[str]:
    return {k if isinstance(k, str) else k[0] for k in keys}


# ----------------------------------------------------------------------------------------------------------------
# Saving


def test_save_pretrained_writes_config_and_safetensors_with_tied_weights_once(tmp_path):
    model = make_ours(CFG_NAME, MLM)
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "transformer.embeddings.word_embeddings.weight" in keys
    assert "cls.predictions.bias" in keys
    assert not keys & TIED_ALIASES
    assert keys == set(_hf_style_state(model))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "squeezebert"
    assert config["hidden_size"] == 32

    loaded, info = _load(MLM, tmp_path)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    state_dicts_equal(loaded.state_dict(), model.state_dict())
    emb = loaded.transformer.embeddings.word_embeddings.weight
    assert loaded.cls.predictions.decoder.weight.data_ptr() == emb.data_ptr()
    assert_close(_forward(loaded), _forward(model))


def test_save_pretrained_bin(tmp_path):
    model = make_ours(CFG_NAME, SEQ_CLS)
    model.save_pretrained(tmp_path, safe_serialization=False)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "pytorch_model.bin"]
    stored = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    state_dicts_equal(stored, model.state_dict())
    loaded, info = _load(SEQ_CLS, tmp_path)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    state_dicts_equal(loaded.state_dict(), model.state_dict())
    # and Hugging Face reads our .bin too
    oracle = oracle_cls(SEQ_CLS).from_pretrained(tmp_path).eval()
    assert_close(_forward(oracle, SEQ_CLS), _forward(model, SEQ_CLS))


def test_resaving_in_the_other_format_leaves_one_weights_file(tmp_path):
    first = make_ours(CFG_NAME, BASE, seed=1)
    second = make_ours(CFG_NAME, BASE, seed=2)
    first.save_pretrained(tmp_path, safe_serialization=False)
    second.save_pretrained(tmp_path)
    loaded = our_cls(BASE).from_pretrained(tmp_path)
    state_dicts_equal(loaded.state_dict(), second.state_dict())


# ----------------------------------------------------------------------------------------------------------------
# Loading each format


@pytest.mark.parametrize("head", [BASE, MLM, SEQ_CLS])
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_loads(tmp_path, fmt, head):
    source = make_ours(CFG_NAME, head)
    folder = write_checkpoint(_hf_style_state(source), _config_dict(source), tmp_path / fmt, fmt)
    loaded, info = _load(head, folder)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    state_dicts_equal(loaded.state_dict(), source.state_dict())
    assert_close(_forward(loaded, head), _forward(source, head), atol=0, rtol=0)


def test_old_checkpoint_storing_the_tied_decoder_too(tmp_path):
    """2020-era .bin files store cls.predictions.decoder.* as well as the embeddings."""
    source = make_ours(CFG_NAME, MLM)
    folder = write_checkpoint(source.state_dict(), _config_dict(source), tmp_path, "bin")
    loaded, info = _load(MLM, folder)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    state_dicts_equal(loaded.state_dict(), source.state_dict())


def test_oracle_sharded_checkpoint_loads(tmp_path):
    oracle = make_oracle(CFG_NAME, MLM)
    oracle.save_pretrained(tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 2
    assert not (tmp_path / "model.safetensors").exists()
    loaded, info = _load(MLM, tmp_path)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    state_dicts_equal(loaded.state_dict(), oracle.state_dict())


def test_safetensors_is_preferred_over_bin(tmp_path):
    safe = make_ours(CFG_NAME, BASE, seed=1)
    legacy = make_ours(CFG_NAME, BASE, seed=2)
    write_checkpoint(safe.state_dict(), _config_dict(safe), tmp_path, "safetensors")
    torch.save(legacy.state_dict(), tmp_path / "pytorch_model.bin")
    state_dicts_equal(our_cls(BASE).from_pretrained(tmp_path).state_dict(), safe.state_dict())


def test_folder_without_weights_is_an_oserror(tmp_path):
    make_ours(CFG_NAME, BASE).config.save_pretrained(tmp_path)
    with pytest.raises(OSError):
        our_cls(BASE).from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# Stored dtypes


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, torch.float32),
        (torch.float32, torch.float32),
        (torch.bfloat16, torch.bfloat16),
        ("bfloat16", torch.bfloat16),
    ],
    ids=["default", "float32", "torch.bfloat16", "str-bfloat16"],
)
@pytest.mark.parametrize("stored", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_half_precision_weights_are_cast(tmp_path, fmt, stored, requested, expected):
    source = make_ours(CFG_NAME, MLM)
    half = {k: v.to(stored) for k, v in _hf_style_state(source).items()}
    config = {**_config_dict(source), "torch_dtype": str(stored).removeprefix("torch.")}
    folder = write_checkpoint(half, config, tmp_path, fmt)
    kwargs = {} if requested is None else {"torch_dtype": requested}
    loaded = our_cls(MLM).from_pretrained(folder, **kwargs)
    params = dict(loaded.named_parameters())
    assert all(p.dtype == expected for p in params.values())
    for key, value in half.items():
        assert torch.equal(params[key].detach(), value.to(expected)), key
    assert (
        loaded.cls.predictions.decoder.weight.data_ptr()
        == params["transformer.embeddings.word_embeddings.weight"].data_ptr()
    )
    logits = _forward(loaded)
    assert logits.dtype == expected and torch.isfinite(logits.float()).all()


# ----------------------------------------------------------------------------------------------------------------
# Base <-> head loading and loading info


def _non_base_keys(model: torch.nn.Module) -> set[str]:
    return {k for k in model.state_dict() if not k.startswith("transformer.")} - TIED_ALIASES


HEAD_CLASSES = [
    "SqueezeBertForMaskedLM",
    "SqueezeBertForSequenceClassification",
    "SqueezeBertForMultipleChoice",
    "SqueezeBertForTokenClassification",
    "SqueezeBertForQuestionAnswering",
]


@pytest.mark.parametrize("source_kind", ["ours", "oracle"])
@pytest.mark.parametrize("head", HEAD_CLASSES, ids=[h.removeprefix("SqueezeBertFor") for h in HEAD_CLASSES])
def test_base_checkpoint_into_head_model(tmp_path, head, source_kind):
    base = (make_ours if source_kind == "ours" else make_oracle)(CFG_NAME, BASE)
    base.save_pretrained(tmp_path)
    with capture_logs() as records:
        model, info = _load(head, tmp_path)
    expected_missing = _non_base_keys(model)
    assert set(info["missing_keys"]) - TIED_ALIASES == expected_missing
    assert info["unexpected_keys"] == set() and _names(info["mismatched_keys"]) == set()
    ours = model.state_dict()
    for key, value in base.state_dict().items():
        assert torch.equal(ours["transformer." + key], value), key
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    for key in expected_missing:
        assert any(key in message for message in warnings), f"{key} not in the warnings {warnings}"


@pytest.mark.parametrize("source_kind", ["ours", "oracle"])
@pytest.mark.parametrize("head", HEAD_CLASSES, ids=[h.removeprefix("SqueezeBertFor") for h in HEAD_CLASSES])
def test_head_checkpoint_into_base_model(tmp_path, head, source_kind):
    source = (make_ours if source_kind == "ours" else make_oracle)(CFG_NAME, head)
    source.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        head_keys = {k for k in list(f.keys()) if not k.startswith("transformer.")}
    with capture_logs() as records:
        model, info = _load(BASE, tmp_path)
    assert info["missing_keys"] == set()
    assert set(info["unexpected_keys"]) == head_keys
    for key, value in model.state_dict().items():
        assert torch.equal(value, source.state_dict()["transformer." + key]), key
    warnings = " ".join(r.getMessage() for r in records if r.levelno == logging.WARNING)
    for key in head_keys:
        assert key in warnings


def test_masked_lm_checkpoint_into_sequence_classifier(tmp_path):
    make_ours(CFG_NAME, MLM).save_pretrained(tmp_path)
    model, info = _load(SEQ_CLS, tmp_path)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    assert {k.split(".")[0] for k in info["unexpected_keys"]} == {"cls"}
    assert "cls.predictions.bias" in info["unexpected_keys"]


def test_clean_load_logs_no_warning(tmp_path):
    make_ours(CFG_NAME, SEQ_CLS).save_pretrained(tmp_path)
    with capture_logs() as records:
        our_cls(SEQ_CLS).from_pretrained(tmp_path)
    assert [r for r in records if r.levelno >= logging.WARNING] == []


# ----------------------------------------------------------------------------------------------------------------
# Shape mismatches


def _three_label_checkpoint(tmp_path: Path) -> torch.nn.Module:
    source = make_ours(CFG_NAME, SEQ_CLS)  # num_labels=3
    source.save_pretrained(tmp_path)
    return source


def _five_label_config(tmp_path: Path) -> squeezebert.SqueezeBertConfig:
    return squeezebert.SqueezeBertConfig(**config_kwargs(CFG_NAME, SEQ_CLS, num_labels=5))


def test_shape_mismatch_is_a_clear_error_with_config_object(tmp_path):
    _three_label_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="classifier"):
        our_cls(SEQ_CLS).from_pretrained(tmp_path, config=_five_label_config(tmp_path))


def test_shape_mismatch_is_a_clear_error_with_num_labels_override(tmp_path):
    _three_label_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="classifier"):
        our_cls(SEQ_CLS).from_pretrained(tmp_path, num_labels=5)


def test_shape_mismatch_ignored_reinitialises(tmp_path):
    source = _three_label_checkpoint(tmp_path)
    with capture_logs() as records:
        model, info = _load(SEQ_CLS, tmp_path, config=_five_label_config(tmp_path), ignore_mismatched_sizes=True)
    assert _names(info["mismatched_keys"]) == {"classifier.weight", "classifier.bias"}
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert model.classifier.weight.shape == (5, 32)
    assert torch.equal(model.classifier.bias, torch.zeros(5))
    std = model.classifier.weight.std().item()
    assert 0.005 < std < 0.05  # normal(0, initializer_range=0.02), not the checkpoint's
    for key, value in source.state_dict().items():
        if key.startswith("transformer."):
            assert torch.equal(model.state_dict()[key], value), key
    assert any("classifier.weight" in r.getMessage() for r in records if r.levelno == logging.WARNING)
    assert model(torch.tensor([[5, 6, 7]])).logits.shape == (1, 5)


def test_shape_mismatch_ignored_with_num_labels_override(tmp_path):
    _three_label_checkpoint(tmp_path)
    model, info = _load(SEQ_CLS, tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert _names(info["mismatched_keys"]) == {"classifier.weight", "classifier.bias"}
    assert model.config.num_labels == 5
    assert model.config.id2label == {i: f"LABEL_{i}" for i in range(5)}


# ----------------------------------------------------------------------------------------------------------------
# Config overrides


@pytest.fixture
def base_checkpoint(tmp_path):
    base = make_ours(CFG_NAME, BASE)
    base.save_pretrained(tmp_path / "base")
    return tmp_path / "base", base


def test_num_labels_and_problem_type_overrides(base_checkpoint):
    folder, _ = base_checkpoint
    model = our_cls(SEQ_CLS).from_pretrained(folder, num_labels=3, problem_type="multi_label_classification")
    assert model.config.num_labels == 3
    assert model.config.problem_type == "multi_label_classification"
    assert model.classifier.weight.shape == (3, 32)
    labels = torch.tensor([[1.0, 0.0, 1.0]])
    out = model(torch.tensor([[4, 5, 6]]), labels=labels)
    assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels))


def test_id2label_override(base_checkpoint):
    folder, _ = base_checkpoint
    model = our_cls(SEQ_CLS).from_pretrained(folder, id2label={0: "neg", 1: "neu", 2: "pos"})
    assert model.config.num_labels == 3
    assert model.config.label2id == {"neg": 0, "neu": 1, "pos": 2}
    assert model.classifier.weight.shape == (3, 32)


def test_output_flags_override(base_checkpoint):
    folder, base = base_checkpoint
    model = our_cls(BASE).from_pretrained(folder, output_hidden_states=True, output_attentions=True)
    out = model(torch.tensor([[4, 5, 6]]))
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert_close(out.last_hidden_state, base(torch.tensor([[4, 5, 6]])).last_hidden_state)


def test_config_object(base_checkpoint):
    folder, base = base_checkpoint
    config = squeezebert.SqueezeBertConfig(**config_kwargs(CFG_NAME, SEQ_CLS, num_labels=4, output_hidden_states=True))
    model = our_cls(SEQ_CLS).from_pretrained(folder, config=config)
    assert model.config.num_labels == 4 and model.config.output_hidden_states is True
    assert model.classifier.weight.shape == (4, 32)
    assert torch.equal(model.transformer.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight)


def test_loaded_model_is_in_eval_mode(base_checkpoint):
    folder, _ = base_checkpoint
    model = our_cls(BASE).from_pretrained(folder)
    assert not model.training
    ids = torch.tensor([[4, 5, 6]])
    assert torch.equal(model(ids).last_hidden_state, model(ids).last_hidden_state)


# ----------------------------------------------------------------------------------------------------------------
# Never unpickle arbitrary objects


class _Payload:
    """Unpickling this creates a folder: the test checks that it never happens."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


@pytest.mark.parametrize("layout", ["single", "sharded"])
def test_malicious_pickle_is_refused(tmp_path, layout):
    source = make_ours(CFG_NAME, BASE)
    marker = tmp_path / "pwned"
    folder = tmp_path / "ckpt"
    state = dict(source.state_dict())
    if layout == "single":
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(_config_dict(source)))
        torch.save({**state, "evil": _Payload(str(marker))}, folder / "pytorch_model.bin")
    else:
        write_checkpoint(state, _config_dict(source), folder, "sharded-bin")
        shard = sorted(folder.glob("pytorch_model-*.bin"))[0]
        part = torch.load(shard, weights_only=True)
        torch.save({**part, "evil": _Payload(str(marker))}, shard)
    with pytest.raises(ValueError):
        our_cls(BASE).from_pretrained(folder)
    assert not marker.exists(), "the pickle was executed"


# ----------------------------------------------------------------------------------------------------------------
# Atomic saves


def _failing_serializers(monkeypatch):
    """Make every serializer write part of its output, then raise."""

    class Boom(RuntimeError):
        pass

    def bad_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise Boom("disk full")

    def bad_save(tensors, metadata=None):
        raise Boom("disk full")

    def bad_torch_save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as fh:
                fh.write(b"partial")
        else:
            f.write(b"partial")
        raise Boom("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", bad_save_file)
    monkeypatch.setattr(safetensors.torch, "save", bad_save)
    monkeypatch.setattr(torch, "save", bad_torch_save)
    return Boom


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_failed_save_leaves_previous_save_intact(tmp_path, monkeypatch, safe):
    first = make_ours(CFG_NAME, MLM, seed=1)
    second = make_ours(CFG_NAME, MLM, seed=2)
    first.save_pretrained(tmp_path, safe_serialization=safe)
    before = folder_files(tmp_path)
    with monkeypatch.context() as patch:
        boom = _failing_serializers(patch)
        with pytest.raises(boom):
            second.save_pretrained(tmp_path, safe_serialization=safe)
    weights = "model.safetensors" if safe else "pytorch_model.bin"
    assert sorted(os.listdir(tmp_path)) == sorted(before), "temporary files left behind"
    assert folder_files(tmp_path)[weights] == before[weights]
    json.loads((tmp_path / "config.json").read_text())
    state_dicts_equal(our_cls(MLM).from_pretrained(tmp_path).state_dict(), first.state_dict())


# ----------------------------------------------------------------------------------------------------------------
# Hub ids, resolved offline from a cache laid out like huggingface_hub's


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """Offline, with HF_HUB_CACHE at an empty cache and HF_HOME elsewhere; returns the cache folder."""
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return cache


def _checkpoint_files(tmp_path: Path, model: torch.nn.Module, fmt: str, config: dict | None = None) -> dict:
    folder = write_checkpoint(_hf_style_state(model), config or _config_dict(model), tmp_path / f"src-{fmt}", fmt)
    return folder_files(folder)


@pytest.mark.parametrize("fmt", FORMATS)
def test_hub_id_from_cache(tmp_path, hub_env, fmt):
    source = make_ours(CFG_NAME, MLM)
    build_hub_cache(hub_env, REPO_ID, _checkpoint_files(tmp_path, source, fmt))
    loaded, info = _load(MLM, REPO_ID)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    state_dicts_equal(loaded.state_dict(), source.state_dict())
    assert squeezebert.SqueezeBertConfig.from_pretrained(REPO_ID).hidden_size == 32


def test_hub_id_via_hf_home(tmp_path, hub_env, monkeypatch):
    home = tmp_path / "another-home"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(home))
    source = make_ours(CFG_NAME, BASE)
    build_hub_cache(home / "hub", REPO_ID, _checkpoint_files(tmp_path, source, "safetensors"))
    state_dicts_equal(our_cls(BASE).from_pretrained(REPO_ID).state_dict(), source.state_dict())


def test_hub_id_via_cache_dir_argument(tmp_path, hub_env):
    elsewhere = tmp_path / "explicit-cache"
    source = make_ours(CFG_NAME, BASE)
    build_hub_cache(elsewhere, REPO_ID, _checkpoint_files(tmp_path, source, "bin"))
    with pytest.raises(CheckpointNotFoundError):
        our_cls(BASE).from_pretrained(REPO_ID)  # not in HF_HUB_CACHE
    loaded = our_cls(BASE).from_pretrained(REPO_ID, cache_dir=elsewhere)
    state_dicts_equal(loaded.state_dict(), source.state_dict())


def test_hub_id_with_local_files_only(tmp_path, hub_env, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    source = make_ours(CFG_NAME, BASE)
    build_hub_cache(hub_env, REPO_ID, _checkpoint_files(tmp_path, source, "safetensors"))
    loaded = our_cls(BASE).from_pretrained(REPO_ID, local_files_only=True)
    state_dicts_equal(loaded.state_dict(), source.state_dict())


def test_hub_env_is_read_at_call_time(tmp_path, hub_env, monkeypatch):
    first, second = make_ours(CFG_NAME, BASE, seed=1), make_ours(CFG_NAME, BASE, seed=2)
    other = tmp_path / "other-cache"
    build_hub_cache(hub_env, REPO_ID, _checkpoint_files(tmp_path / "a", first, "safetensors"))
    build_hub_cache(other, REPO_ID, _checkpoint_files(tmp_path / "b", second, "safetensors"))
    state_dicts_equal(our_cls(BASE).from_pretrained(REPO_ID).state_dict(), first.state_dict())
    monkeypatch.setenv("HF_HUB_CACHE", str(other))
    state_dicts_equal(our_cls(BASE).from_pretrained(REPO_ID).state_dict(), second.state_dict())


def test_hub_revision(tmp_path, hub_env):
    old, new = make_ours(CFG_NAME, BASE, seed=1), make_ours(CFG_NAME, BASE, seed=2)
    old_commit = build_hub_cache(hub_env, REPO_ID, _checkpoint_files(tmp_path / "old", old, "safetensors"), ref=None)
    new_commit = build_hub_cache(hub_env, REPO_ID, _checkpoint_files(tmp_path / "new", new, "sharded-bin"))
    assert old_commit != new_commit
    state_dicts_equal(our_cls(BASE).from_pretrained(REPO_ID).state_dict(), new.state_dict())
    state_dicts_equal(our_cls(BASE).from_pretrained(REPO_ID, revision=old_commit).state_dict(), old.state_dict())


def _config_2020(cfg: dict) -> dict:
    """A config.json as written in 2020: no layer_norm_eps, no pad_token_id, no labels."""
    keep = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "max_position_embeddings",
        "type_vocab_size",
        "embedding_size",
        "q_groups",
        "k_groups",
        "v_groups",
        "post_attention_groups",
        "intermediate_groups",
        "output_groups",
    )
    return {
        "architectures": ["SqueezeBertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "model_type": "squeezebert",
        **{k: cfg[k] for k in keep},
    }


@pytest.fixture
def squeezebert_uncased(tmp_path, hub_env):
    """A tiny stand-in for squeezebert/squeezebert-uncased: fp16 pytorch_model.bin (decoder stored too), 2020 config."""
    cfg = SMALL_CONFIGS[CFG_NAME]
    source = make_ours(CFG_NAME, MLM)
    half = {k: v.detach().to(torch.float16).clone() for k, v in source.state_dict().items()}
    folder = tmp_path / "uncased-src"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_config_2020(cfg), indent=2))
    torch.save(half, folder / "pytorch_model.bin")
    build_hub_cache(hub_env, "squeezebert/squeezebert-uncased", folder_files(folder))
    return half


def test_squeezebert_uncased_style_repo(squeezebert_uncased):
    half = squeezebert_uncased
    model, info = _load(MLM, "squeezebert/squeezebert-uncased")
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.layer_norm_eps == 1e-12 and model.config.pad_token_id == 0
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, half[key].float()), key

    # the same fp16-rounded weights in the oracle give the same logits
    oracle = make_oracle(CFG_NAME, MLM)
    oracle.load_state_dict({k: v.float() for k, v in half.items()})
    assert_close(_forward(model), _forward(oracle.eval()))


def test_squeezebert_uncased_style_repo_into_classifier(squeezebert_uncased):
    model, info = _load(SEQ_CLS, "squeezebert/squeezebert-uncased", num_labels=3)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    assert "cls.predictions.bias" in info["unexpected_keys"]
    assert model.classifier.weight.shape == (3, 32)
    assert torch.equal(
        model.transformer.embeddings.word_embeddings.weight,
        squeezebert_uncased["transformer.embeddings.word_embeddings.weight"].float(),
    )


@pytest.mark.parametrize("loader", ["model", "config"])
def test_uncached_hub_id_offline_is_a_clear_error(hub_env, loader):
    repo = "nobody-here/not-cached-anywhere"
    load = our_cls(BASE).from_pretrained if loader == "model" else squeezebert.SqueezeBertConfig.from_pretrained
    with pytest.raises(CheckpointNotFoundError) as info:
        load(repo)
    assert isinstance(info.value, OSError)
    assert repo in str(info.value)


def test_missing_local_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "does" / "not" / "exist"
    with pytest.raises(OSError) as info:
        our_cls(BASE).from_pretrained(missing)
    assert str(missing) in str(info.value)
