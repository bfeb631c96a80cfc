"""The files that make an exported sentence-embedding folder a sentence-transformers model: ``modules.json`` (the
encoder, mean pooling, L2 normalisation: what ``squeezebert.pipeline("embeddings")`` computes),
``sentence_bert_config.json`` and ``1_Pooling/config.json``. sentence-transformers' ONNX backend then loads the
folder as it is (``SentenceTransformer(folder, backend="onnx")``) and gives our embeddings."""

from __future__ import annotations

from pathlib import Path

from .. import hub

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
POOLING_MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken")


def write_sentence_transformers_files(folder: Path, hidden_size: int, max_seq_length: int) -> None:
    """Describe, in ``folder``, mean pooling of ``hidden_size``-wide token vectors (at most ``max_seq_length``
    tokens) followed by L2 normalisation."""
    hub.write_json(folder / "modules.json", MODULES)
    hub.write_json(folder / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    pooling = {f"pooling_mode_{mode}": mode == "mean_tokens" for mode in POOLING_MODES}
    hub.write_json(folder / "1_Pooling" / "config.json", {"word_embedding_dimension": hidden_size, **pooling})
