"""SqueezeBertConfig: documented defaults, validation, labels, JSON round trips, old configs, HF interop."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from support.configs import tiny

from squeezebert import SqueezeBertConfig

DOCUMENTED_DEFAULTS = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "embedding_size": 768,
    "q_groups": 4,
    "k_groups": 4,
    "v_groups": 4,
    "post_attention_groups": 1,
    "intermediate_groups": 4,
    "output_groups": 4,
}

SMALL = tiny(vocab_size=50, post_attention_groups=1)  # the config tests' fields: TINY with a dense post-attention


def test_documented_defaults():
    config = SqueezeBertConfig()
    for name, value in DOCUMENTED_DEFAULTS.items():
        assert getattr(config, name) == value, name
    assert config.num_labels == 2
    assert config.id2label == {0: "LABEL_0", 1: "LABEL_1"}
    assert config.label2id == {"LABEL_0": 0, "LABEL_1": 1}
    assert config.problem_type is None
    assert config.output_attentions is False
    assert config.output_hidden_states is False
    assert config.return_dict is True
    assert config.architectures is None
    assert config.torch_dtype is None
    assert config.model_type == "squeezebert"


def test_defaults_equal_the_oracles():
    ours, theirs = SqueezeBertConfig(), transformers.SqueezeBertConfig()
    for name in DOCUMENTED_DEFAULTS:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.num_labels == theirs.num_labels


@pytest.mark.parametrize("act", ["gelu", "relu", "silu", "gelu_new"])
def test_named_activations_accepted(act):
    assert SqueezeBertConfig(hidden_act=act).hidden_act == act


def test_callable_activation_accepted():
    config = SqueezeBertConfig(hidden_act=torch.tanh)
    assert config.hidden_act is torch.tanh
    json.loads(config.to_json_string())  # still serialisable


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hidden_size": 100, "embedding_size": 100}, "num_attention_heads"),
        ({"q_groups": 5}, "q_groups"),
        ({"k_groups": 7}, "k_groups"),
        ({"v_groups": 9}, "v_groups"),
        ({"post_attention_groups": 5}, "post_attention_groups"),
        ({"intermediate_size": 3070, "intermediate_groups": 4, "output_groups": 2}, "intermediate_groups"),
        ({"intermediate_size": 3070, "intermediate_groups": 2, "output_groups": 4}, "output_groups"),
        ({"hidden_size": 768, "intermediate_groups": 5}, "intermediate_groups"),
        ({"output_groups": 7}, "output_groups"),
        ({"embedding_size": 512}, "embedding_size"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"hidden_size": -768, "embedding_size": -768}, "hidden_size"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"num_attention_heads": 0}, "num_attention_heads"),
        ({"intermediate_size": 0}, "intermediate_size"),
        ({"max_position_embeddings": 0}, "max_position_embeddings"),
        ({"type_vocab_size": 0}, "type_vocab_size"),
        ({"q_groups": 0}, "q_groups"),
        ({"hidden_act": "no_such_activation"}, "hidden_act"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()),
)
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SqueezeBertConfig(**kwargs)


def test_hidden_size_not_divisible_by_heads_names_both():
    with pytest.raises(ValueError) as info:
        SqueezeBertConfig(hidden_size=100, embedding_size=100)
    assert "hidden_size" in str(info.value)
    assert "num_attention_heads" in str(info.value)


def test_group_count_not_dividing_intermediate_size_names_it():
    with pytest.raises(ValueError) as info:
        SqueezeBertConfig(intermediate_size=3070, intermediate_groups=4, output_groups=2)
    assert "intermediate_size" in str(info.value)


def test_id2label_derives_label2id_and_num_labels():
    config = SqueezeBertConfig(id2label={0: "neg", 1: "neutral", 2: "pos"})
    assert config.num_labels == 3
    assert config.label2id == {"neg": 0, "neutral": 1, "pos": 2}


def test_label2id_derives_id2label():
    config = SqueezeBertConfig(label2id={"a": 0, "b": 1, "c": 2, "d": 3})
    assert config.num_labels == 4
    assert config.id2label == {0: "a", 1: "b", 2: "c", 3: "d"}


def test_num_labels_generates_labels():
    config = SqueezeBertConfig(num_labels=5)
    assert config.id2label == {i: f"LABEL_{i}" for i in range(5)}
    assert config.label2id == {f"LABEL_{i}": i for i in range(5)}
    config.num_labels = 3
    assert config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


def test_string_keys_of_id2label_become_ints():
    config = SqueezeBertConfig(id2label={"0": "neg", "1": "pos"})
    assert config.id2label == {0: "neg", 1: "pos"}


def test_json_round_trip(tmp_path):
    config = SqueezeBertConfig(
        **SMALL,
        id2label={0: "neg", 1: "pos", 2: "mixed"},
        problem_type="single_label_classification",
        output_hidden_states=True,
        architectures=["SqueezeBertForSequenceClassification"],
        torch_dtype="float16",
    )
    config.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["model_type"] == "squeezebert"
    assert raw["id2label"] == {"0": "neg", "1": "pos", "2": "mixed"}
    loaded = SqueezeBertConfig.from_pretrained(tmp_path)
    assert loaded == config
    assert loaded.to_dict() == config.to_dict()
    assert loaded.id2label == {0: "neg", 1: "pos", 2: "mixed"}
    assert all(isinstance(k, int) for k in loaded.id2label)
    assert loaded.problem_type == "single_label_classification"
    assert loaded.output_hidden_states is True
    assert loaded.torch_dtype == "float16"
    assert loaded.hidden_size == 32


def test_to_json_string_and_from_dict():
    config = SqueezeBertConfig(**SMALL, num_labels=4)
    data = json.loads(config.to_json_string())
    assert data == json.loads(json.dumps(config.to_dict()))
    again = SqueezeBertConfig.from_dict(data)
    assert again == config
    assert again.id2label == {i: f"LABEL_{i}" for i in range(4)}
    overridden = SqueezeBertConfig.from_dict(data, num_hidden_layers=3)
    assert overridden.num_hidden_layers == 3


def test_from_pretrained_kwargs_override(tmp_path):
    SqueezeBertConfig(**SMALL).save_pretrained(tmp_path)
    loaded = SqueezeBertConfig.from_pretrained(tmp_path, num_labels=3, output_attentions=True)
    assert loaded.num_labels == 3
    assert loaded.output_attentions is True
    assert loaded.hidden_size == 32


def test_unknown_keys_survive_round_trip(tmp_path):
    config = SqueezeBertConfig(**SMALL, my_custom_field=[1, 2, 3], another={"nested": True})
    assert config.my_custom_field == [1, 2, 3]
    assert config.to_dict()["another"] == {"nested": True}
    config.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["my_custom_field"] == [1, 2, 3]
    loaded = SqueezeBertConfig.from_pretrained(tmp_path)
    assert loaded.my_custom_field == [1, 2, 3]
    assert loaded.another == {"nested": True}
    loaded.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["another"] == {"nested": True}


def test_2020_config_without_layer_norm_eps_and_pad_token_id(tmp_path):
    old = {
        "architectures": ["SqueezeBertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "embedding_size": 768,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "model_type": "squeezebert",
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "type_vocab_size": 2,
        "vocab_size": 30528,
        "q_groups": 4,
        "k_groups": 4,
        "v_groups": 4,
        "post_attention_groups": 1,
        "intermediate_groups": 4,
        "output_groups": 4,
    }
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = SqueezeBertConfig.from_pretrained(tmp_path)
    assert config.layer_norm_eps == 1e-12
    assert config.pad_token_id == 0
    assert config.vocab_size == 30528
    assert config.architectures == ["SqueezeBertForMaskedLM"]


def test_our_config_loads_in_transformers(tmp_path):
    config = SqueezeBertConfig(
        **SMALL,
        hidden_act="gelu_new",
        layer_norm_eps=1e-6,
        pad_token_id=3,
        type_vocab_size=3,
        id2label={0: "x", 1: "y", 2: "z"},
        problem_type="multi_label_classification",
    )
    config.save_pretrained(tmp_path)
    theirs = transformers.SqueezeBertConfig.from_pretrained(tmp_path)
    for name in DOCUMENTED_DEFAULTS:
        assert getattr(theirs, name) == getattr(config, name), name
    assert theirs.id2label == {0: "x", 1: "y", 2: "z"}
    assert theirs.label2id == {"x": 0, "y": 1, "z": 2}
    assert theirs.problem_type == "multi_label_classification"


def test_transformers_config_loads_in_ours(tmp_path):
    theirs = transformers.SqueezeBertConfig(
        **tiny(vocab_size=50, post_attention_groups=1, max_position_embeddings=128),
        hidden_act="silu",
        layer_norm_eps=1e-7,
        pad_token_id=5,
        id2label={0: "x", 1: "y", 2: "z"},
        problem_type="regression",
    )
    theirs.save_pretrained(tmp_path)
    ours = SqueezeBertConfig.from_pretrained(tmp_path)
    for name in DOCUMENTED_DEFAULTS:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.id2label == {0: "x", 1: "y", 2: "z"}
    assert ours.label2id == {"x": 0, "y": 1, "z": 2}
    assert ours.problem_type == "regression"
    # and back out again, unchanged
    ours.save_pretrained(tmp_path / "again")
    assert SqueezeBertConfig.from_pretrained(tmp_path / "again") == ours


def test_config_from_folder_without_config_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        SqueezeBertConfig.from_pretrained(tmp_path)
