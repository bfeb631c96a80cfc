"""convert_bert_checkpoint: a BERT checkpoint as a SqueezeBERT one (all groups 1), same numbers."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from support.logs import capture_logs

import squeezebert
from squeezebert.convert import convert_bert_config, convert_bert_state_dict

transformers.logging.set_verbosity_error()

SENTENCES = [
    "SqueezeBERT runs on the CPUs of phones and laptops.",
    "short",
    "Grouped convolutions cut the cost of the position-wise layers; attention stays as it was.",
]


@pytest.fixture(scope="module")
def converted(minilm_dir, tmp_path_factory):
    return squeezebert.convert_bert_checkpoint(minilm_dir, tmp_path_factory.mktemp("minilm-squeezebert"))


@pytest.fixture(scope="module")
def encoded(minilm_dir):
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    return dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))


def test_minilm_matches_bert_on_real_weights(minilm_dir, converted, encoded):
    bert = transformers.BertModel.from_pretrained(minilm_dir).eval()
    model, info = squeezebert.SqueezeBertModel.from_pretrained(converted, output_loading_info=True)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    config = model.config
    groups = [getattr(config, f"{n}_groups") for n in ("q", "k", "v", "post_attention", "intermediate", "output")]
    assert groups == [1] * 6
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (384, 6, 1536)
    valid = encoded["attention_mask"].bool()
    with torch.no_grad():
        expected = bert(**encoded)
        got = model(**encoded)
        unpadded = model(input_ids=encoded["input_ids"][:1, : int(valid[0].sum())])
    diff = (got.last_hidden_state - expected.last_hidden_state).abs()[valid]
    assert diff.max() <= 1e-5  # padded positions hold no meaning (the reference masks them differently)
    assert (got.pooler_output - expected.pooler_output).abs().max() <= 1e-5
    row = unpadded.last_hidden_state[0] - expected.last_hidden_state[0, : int(valid[0].sum())]
    assert row.abs().max() <= 1e-5


def test_converted_folder_is_complete(minilm_dir, converted):
    names = {p.name for p in converted.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json"} <= names
    stored = json.loads((converted / "config.json").read_text())
    assert stored["model_type"] == "squeezebert"
    assert stored["architectures"] == ["SqueezeBertModel"]
    tokenizer = squeezebert.AutoTokenizer.from_pretrained(converted)
    assert tokenizer("hello world")["input_ids"][0] == 101


def test_converted_weights_have_conv_shapes(converted):
    from safetensors.torch import load_file

    state = load_file(converted / "model.safetensors")
    assert state["encoder.layers.0.attention.query.weight"].shape == (384, 384, 1)
    assert state["encoder.layers.5.intermediate.conv1d.weight"].shape == (1536, 384, 1)
    assert state["encoder.layers.5.output.conv1d.weight"].shape == (384, 1536, 1)
    assert state["pooler.dense.weight"].shape == (384, 384)
    assert not any(".layer." in k or "position_ids" in k for k in state)


def test_head_checkpoints_keep_their_heads(tmp_path):
    """BertForSequenceClassification (``bert.*`` + ``classifier``) -> SqueezeBertForSequenceClassification."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=3,
        id2label={0: "a", 1: "b", 2: "c"},
        label2id={"a": 0, "b": 1, "c": 2},
    )
    bert = transformers.BertForSequenceClassification(config).eval()
    bert.save_pretrained(tmp_path / "bert")
    squeezebert.convert_bert_checkpoint(tmp_path / "bert", tmp_path / "sq")
    model, info = squeezebert.SqueezeBertForSequenceClassification.from_pretrained(
        tmp_path / "sq", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}
    ids = torch.randint(0, 50, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        assert (
            model(input_ids=ids, attention_mask=mask).logits - bert(ids, attention_mask=mask).logits
        ).abs().max() < 1e-5


def test_state_dict_renaming():
    state = {
        "bert.encoder.layer.3.attention.self.query.weight": torch.zeros(4, 4),
        "bert.encoder.layer.3.attention.output.LayerNorm.gamma": torch.ones(4),
        "bert.encoder.layer.3.output.dense.bias": torch.zeros(4),
        "bert.embeddings.position_ids": torch.arange(4),
        "cls.seq_relationship.weight": torch.zeros(2, 4),
        "cls.predictions.bias": torch.zeros(10),
    }
    out = convert_bert_state_dict(state)
    assert set(out) == {
        "transformer.encoder.layers.3.attention.query.weight",
        "transformer.encoder.layers.3.post_attention.layernorm.weight",
        "transformer.encoder.layers.3.output.conv1d.bias",
        "cls.predictions.bias",
    }
    assert out["transformer.encoder.layers.3.attention.query.weight"].shape == (4, 4, 1)
    with pytest.raises(ValueError, match="unexpected BERT weight"):
        convert_bert_state_dict({"encoder.layer.0.attention.self.rotary.weight": torch.zeros(1)})


def test_config_checks():
    with pytest.raises(ValueError, match="model_type"):
        convert_bert_config({"model_type": "roberta"})
    with pytest.raises(ValueError, match="position_embedding_type"):
        convert_bert_config({"model_type": "bert", "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="decoder"):
        convert_bert_config({"model_type": "bert", "is_decoder": True})
    with capture_logs() as records:
        config = convert_bert_config({"model_type": "bert", "layer_norm_eps": 1e-5})
    assert config.layer_norm_eps == 1e-5
    assert any("layer_norm_eps" in r.getMessage() for r in records)


def test_missing_config_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        squeezebert.convert_bert_checkpoint(tmp_path, tmp_path / "out")
