"""BERT checkpoints as SqueezeBERT checkpoints.

SqueezeBERT with every group count at 1 *is* BERT: its 1x1 convolutions are BERT's Linear layers, applied
position-wise. Converting is a renaming of the keys plus a trailing unit dimension on the projection weights
(``Linear [out, in]`` -> ``Conv1d [out, in, 1]``); the numbers do not change. The result runs on SqueezeBERT's fast
path, its int8 quantization and its pipelines.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from . import hub
from .config import SqueezeBertConfig
from .modeling.pretrained import modern_weight_name

__all__ = ["convert_bert_checkpoint", "convert_bert_config", "convert_bert_state_dict"]

logger = logging.getLogger(__name__)

# Inside ``encoder.layer.N.``: BERT's module names -> SqueezeBERT's (first match wins).
_LAYER_RENAMES = (
    ("attention.self.query.", "attention.query."),
    ("attention.self.key.", "attention.key."),
    ("attention.self.value.", "attention.value."),
    ("attention.output.dense.", "post_attention.conv1d."),
    ("attention.output.LayerNorm.", "post_attention.layernorm."),
    ("intermediate.dense.", "intermediate.conv1d."),
    ("output.dense.", "output.conv1d."),
    ("output.LayerNorm.", "output.layernorm."),
)
_CONV_WEIGHTS = ("attention.query.weight", "attention.key.weight", "attention.value.weight", "conv1d.weight")
_LAYER_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?encoder\.)layer\.(?P<index>\d+)\.(?P<rest>.+)$")

_ARCHITECTURES = {
    "BertModel": "SqueezeBertModel",
    "BertForMaskedLM": "SqueezeBertForMaskedLM",
    "BertForSequenceClassification": "SqueezeBertForSequenceClassification",
    "BertForTokenClassification": "SqueezeBertForTokenClassification",
    "BertForQuestionAnswering": "SqueezeBertForQuestionAnswering",
    "BertForMultipleChoice": "SqueezeBertForMultipleChoice",
}
_COPIED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "id2label",
    "label2id",
    "problem_type",
)
_TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
_ENCODER_EPS = 1e-12  # SqueezeBERT's encoder LayerNorms (as in the reference implementation)


def convert_bert_config(bert: dict[str, Any]) -> SqueezeBertConfig:
    """A BERT ``config.json`` (as a dict) as the equivalent SqueezeBERT config (all groups 1)."""
    model_type = bert.get("model_type", "bert")
    if model_type != "bert":
        raise ValueError(f"expected a BERT config (model_type 'bert'), got model_type {model_type!r}")
    if bert.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            f"position_embedding_type {bert['position_embedding_type']!r} is not supported: SqueezeBERT has "
            "absolute position embeddings only"
        )
    if bert.get("is_decoder") or bert.get("add_cross_attention"):
        raise ValueError("decoder BERT checkpoints (is_decoder / add_cross_attention) cannot be converted")
    fields = {k: bert[k] for k in _COPIED_FIELDS if k in bert}
    eps = fields.get("layer_norm_eps", _ENCODER_EPS)
    if eps != _ENCODER_EPS:
        logger.warning(
            "layer_norm_eps=%g: SqueezeBERT's encoder LayerNorms use %g (only the embeddings and the MLM head use "
            "the config's value), so the converted model differs slightly from the BERT one",
            eps,
            _ENCODER_EPS,
        )
    architectures = [_ARCHITECTURES[a] for a in bert.get("architectures") or [] if a in _ARCHITECTURES]
    return SqueezeBertConfig(
        **fields,
        embedding_size=fields.get("hidden_size", 768),
        q_groups=1,
        k_groups=1,
        v_groups=1,
        post_attention_groups=1,
        intermediate_groups=1,
        output_groups=1,
        architectures=architectures or None,
    )


def convert_bert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BERT weights under SqueezeBERT's names and shapes.

    ``bert.*`` becomes ``transformer.*`` (the task heads keep their names: ``cls.predictions.*``, ``classifier``,
    ``qa_outputs``); the next-sentence head ``cls.seq_relationship.*`` and ``position_ids`` buffers are dropped.
    """
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = modern_weight_name(key)
        if key.endswith("position_ids") or key.startswith("cls.seq_relationship."):
            continue
        if key.startswith("bert."):
            key = "transformer." + key.removeprefix("bert.")
        match = _LAYER_KEY.match(key)
        if match:
            rest = match["rest"]
            for old, new in _LAYER_RENAMES:
                if rest.startswith(old):
                    rest = new + rest.removeprefix(old)
                    break
            else:
                raise ValueError(f"unexpected BERT weight {key!r}")
            key = f"{match['prefix']}layers.{match['index']}.{rest}"
            if rest.endswith(_CONV_WEIGHTS) and value.dim() == 2:
                value = value.unsqueeze(-1)  # Linear [out, in] -> Conv1d [out, in / 1, 1]
        converted[key] = value
    return converted


def convert_bert_checkpoint(src_dir: str | os.PathLike, dst_dir: str | os.PathLike) -> Path:
    """Write the BERT checkpoint in ``src_dir`` as a SqueezeBERT checkpoint in ``dst_dir``; return ``dst_dir``.

    ``src_dir`` holds ``config.json`` and the weights (``model.safetensors``, ``pytorch_model.bin`` or sharded);
    ``dst_dir`` gets ``config.json``, ``model.safetensors`` and the tokenizer files found beside the source. Load it
    with the SqueezeBERT class matching the BERT one (``BertModel`` -> ``SqueezeBertModel``, ...).
    """
    src, dst = Path(src_dir), Path(dst_dir)
    if not src.is_dir():
        hint = " (download a hub checkpoint first, e.g. `hf download ID --local-dir DIR`)" if not src.exists() else ""
        raise ValueError(f"src_dir must be a local folder holding a BERT checkpoint, got {os.fspath(src_dir)!r}{hint}")
    if not (src / hub.CONFIG_NAME).is_file():
        raise FileNotFoundError(f"src_dir {os.fspath(src_dir)!r} has no {hub.CONFIG_NAME}: not a checkpoint folder")
    config = convert_bert_config(hub.read_json(src / hub.CONFIG_NAME))
    state = convert_bert_state_dict(hub.load_state_dict(src))
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create dst_dir {os.fspath(dst_dir)!r}: {err.strerror}") from None
    if not os.access(dst, os.W_OK | os.X_OK):
        raise ValueError(f"dst_dir {os.fspath(dst_dir)!r} is not writable")
    hub.save_state_dict(state, dst / hub.SAFE_WEIGHTS_NAME)
    config.save_pretrained(dst)
    for name in _TOKENIZER_FILES:
        if (src / name).is_file() and src.resolve() != dst.resolve():
            with hub.atomic_write(dst / name, "wb") as f:
                f.write((src / name).read_bytes())
    return dst
