"""Checkpoints on disk: weights in every format (sharded too), a hand-made Hugging Face cache, and the small random
checkpoints with the real bert-base-uncased tokenizer that the pipeline and CLI tests share."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import squeezebert
from support.configs import PAPER_GROUPS, tiny_config


def write_sharded(state: dict[str, torch.Tensor], folder: Path, fmt: str, num_shards: int = 3) -> list[str]:
    """Split ``state`` over ``num_shards`` files in ``fmt`` ("safetensors" or "bin") and write the index."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    shards = []
    weight_map = {}
    for i in range(num_shards):
        if fmt == "safetensors":
            name = f"model-{i + 1:05d}-of-{num_shards:05d}.safetensors"
        else:
            name = f"pytorch_model-{i + 1:05d}-of-{num_shards:05d}.bin"
        part = {k: state[k].detach().clone().contiguous() for k in keys[i::num_shards]}
        if fmt == "safetensors":
            save_file(part, folder / name, metadata={"format": "pt"})
        else:
            torch.save(part, folder / name)
        weight_map.update(dict.fromkeys(part, name))
        shards.append(name)
    index_name = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / index_name).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return shards


def write_checkpoint(state: dict[str, torch.Tensor], config: dict[str, Any], folder: Path, fmt: str) -> Path:
    """Write ``config.json`` and the weights in ``fmt``: safetensors, bin, sharded-safetensors or sharded-bin."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    if fmt == "safetensors":
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    elif fmt == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    elif fmt.startswith("sharded-"):
        write_sharded(state, folder, fmt.removeprefix("sharded-"))
    else:
        raise AssertionError(fmt)
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def build_hub_cache(
    cache: Path, repo_id: str, files: dict[str, bytes], commit: str | None = None, ref: str | None = "main"
) -> str:
    """Lay ``files`` out the way huggingface_hub does: blobs by hash, snapshot symlinks, ``refs/<ref>``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    if commit is None:
        commit = hashlib.sha1(b"".join(sorted(files.values()))).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        blob = repo / "blobs" / digest
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return commit


def state_dicts_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b), (sorted(set(a) - set(b)), sorted(set(b) - set(a)))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


# ----------------------------------------------------------------------------------------------------------------
# Small random checkpoints with the real bert-base-uncased tokenizer, for the pipeline and CLI tests.
#
# ``session_checkpoints`` builds each kind of checkpoint once per session, on first use. The weights are random but
# shaped so that the outputs are far from uniform (scaled heads, a token classifier whose bias is centred so that
# every label gets predicted somewhere), which makes the oracle comparisons meaningful.

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
    """:func:`tiny_config` with the real vocabulary, 512 positions and the paper's groups."""
    return tiny_config(vocab_size=30522, max_position_embeddings=512, **PAPER_GROUPS, **fields)


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

    tests/conftest.py exposes it as the session fixture ``checkpoints``.
    """
    base = tmp_path_factory.getbasetemp()
    if base not in _CACHE:
        _CACHE[base] = Checkpoints(tmp_path_factory.mktemp("pipeline-checkpoints"), tokenizer_dir)
    return _CACHE[base]
