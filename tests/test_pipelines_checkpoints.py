"""Small random SqueezeBERT checkpoints (with the real bert-base-uncased tokenizer) for the pipeline and CLI tests.

``session_checkpoints`` builds each kind of checkpoint once per session, on first use. The weights are random
but shaped so that the outputs are far from uniform (scaled heads, a token classifier whose bias is centred so
that every label gets predicted somewhere), which makes the oracle comparisons meaningful.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import squeezebert

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "special_tokens_map.json", "tokenizer_config.json")
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
NER_WINDOW = 24  # model_max_length of the NER checkpoint's tokenizer: long texts are split into windows

# kind -> (head class, config fields, tokenizer model_max_length or None)
KINDS: dict[str, tuple[str, dict[str, Any], int | None]] = {
    "mlm": ("SqueezeBertForMaskedLM", {}, None),
    "sentiment": (
        "SqueezeBertForSequenceClassification",
        {"id2label": {0: "negative", 1: "neutral", 2: "positive"}},
        None,
    ),
    "multi-label": (
        "SqueezeBertForSequenceClassification",
        {
            "id2label": {0: "sports", 1: "politics", 2: "science", 3: "art"},
            "problem_type": "multi_label_classification",
        },
        None,
    ),
    "regression": ("SqueezeBertForSequenceClassification", {"num_labels": 1, "problem_type": "regression"}, None),
    "nli": (
        "SqueezeBertForSequenceClassification",
        {"id2label": {0: "entailment", 1: "neutral", 2: "contradiction"}},
        None,
    ),
    "nli-reversed": (
        "SqueezeBertForSequenceClassification",
        {"id2label": {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}},
        None,
    ),
    "ner": ("SqueezeBertForTokenClassification", {"id2label": dict(enumerate(NER_LABELS))}, NER_WINDOW),
    "qa": ("SqueezeBertForQuestionAnswering", {}, None),
    "choice": ("SqueezeBertForMultipleChoice", {}, None),
}

CALIBRATION_TEXT = (
    "John Smith and Mary Jones visited Washington and Paris for Acme Corporation, unbelievably quickly, in 2020."
)


def small_config(**fields: Any) -> squeezebert.SqueezeBertConfig:
    return squeezebert.SqueezeBertConfig(
        vocab_size=30522,
        hidden_size=32,
        embedding_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
        **fields,
    )


@torch.no_grad()
def build_checkpoint(folder: Path, kind: str, tokenizer_dir: Path, seed: int = 0) -> Path:
    """Write a random ``kind`` checkpoint and the tokenizer files of ``tokenizer_dir`` into ``folder``."""
    head, fields, model_max_length = KINDS[kind]
    torch.manual_seed(seed)
    model = getattr(squeezebert, head)(small_config(**fields)).eval()
    gen = torch.Generator().manual_seed(seed)
    for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        noise = torch.randn(param.shape, generator=gen)
        if name.endswith("LayerNorm.weight") or name.endswith("layernorm.weight"):
            param.copy_(1.0 + 0.1 * noise)
        elif "word_embeddings" in name:
            param.copy_(0.5 * noise)  # also the MLM decoder: peaked fill-mask distributions
        else:
            param.copy_(0.2 * noise)
    head_layer = getattr(model, "classifier", None) or getattr(model, "qa_outputs", None)
    if head_layer is not None:
        head_layer.weight.mul_(10.0)
    if kind == "ner":  # centre the logits so that the labels vary from token to token
        from squeezebert import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        logits = model(**tokenizer(CALIBRATION_TEXT, return_tensors="pt")).logits[0]
        model.classifier.bias.sub_(logits.mean(0))
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, folder / name)
    if model_max_length is not None:
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        config["model_max_length"] = model_max_length
        config_path.write_text(json.dumps(config))
    return folder


class Checkpoints:
    """Builds each kind of checkpoint on first request, under one folder."""

    def __init__(self, root: Path, tokenizer_dir: Path) -> None:
        self.root, self.tokenizer_dir = root, tokenizer_dir

    def __getitem__(self, kind: str) -> Path:
        folder = self.root / kind
        if not (folder / "config.json").is_file():
            build_checkpoint(folder, kind, self.tokenizer_dir)
        return folder


_CACHE: dict[Path, Checkpoints] = {}


def session_checkpoints(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Checkpoints:
    """The session's :class:`Checkpoints` (one per pytest session, whichever module asks first).

    Each test module exposes it as a session fixture: ``checkpoints = session_checkpoints(...)``.
    """
    base = tmp_path_factory.getbasetemp()
    if base not in _CACHE:
        _CACHE[base] = Checkpoints(tmp_path_factory.mktemp("pipeline-checkpoints"), tokenizer_dir)
    return _CACHE[base]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Checkpoints:
    return session_checkpoints(tmp_path_factory, minilm_dir)


# ----------------------------------------------------------------------------------------------------------------
# The checkpoints themselves: they load in both libraries with the same outputs, and they are not degenerate.


@pytest.mark.parametrize("kind", ["sentiment", "ner"])
def test_checkpoint_loads_identically_in_hf(checkpoints: Checkpoints, kind: str) -> None:
    transformers = pytest.importorskip("transformers")
    folder = checkpoints[kind]
    head = KINDS[kind][0]
    ours = getattr(squeezebert, head).from_pretrained(folder)
    oracle = getattr(transformers, head).from_pretrained(folder).eval()
    inputs = squeezebert.AutoTokenizer.from_pretrained(folder)(CALIBRATION_TEXT, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs).logits, oracle(**inputs).logits, atol=1e-4, rtol=1e-4)


def test_ner_checkpoint_predicts_several_labels(checkpoints: Checkpoints) -> None:
    folder = checkpoints["ner"]
    model = squeezebert.SqueezeBertForTokenClassification.from_pretrained(folder)
    inputs = squeezebert.AutoTokenizer.from_pretrained(folder)(CALIBRATION_TEXT, return_tensors="pt")
    with torch.no_grad():
        predicted = set(model(**inputs).logits[0].argmax(-1).tolist())
    assert len(predicted) >= 4, predicted
