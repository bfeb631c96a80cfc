"""``feature-extraction`` / ``embeddings``: token vectors or sentence vectors from the encoder."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..modeling import SqueezeBertModel
from ..modeling.layers import masked_mean
from .base import Pipeline, Row, check_text, check_tokenizer_kwargs

POOLINGS = ("none", "cls", "mean")


class FeatureExtractionPipeline(Pipeline):
    """The encoder's last hidden states, per token or pooled into one vector per text.

    Any SqueezeBERT checkpoint works (a task head is ignored). As in Hugging Face, each text's result keeps a
    leading batch level of 1: ``[1][tokens][hidden]`` (``[1][hidden]`` when pooled), a tensor of that shape with
    ``return_tensors=True``.

    Call parameters:
        pooling: ``"none"`` (one vector per token, ``[CLS]`` and ``[SEP]`` included), ``"cls"`` (the ``[CLS]``
            vector) or ``"mean"`` (the mean over the tokens of the text, special tokens included).
        normalize: scale each vector to unit L2 norm.
        return_tensors: return torch tensors instead of (nested) lists of floats.
        truncation: cut texts longer than the model window (default ``True``; Hugging Face's tokenizer default,
            no truncation, would fail on such texts anyway). Shorthand for ``tokenize_kwargs={"truncation": ...}``.
        tokenize_kwargs: more keyword arguments for the tokenizer (``max_length``, ``padding``,
            ``add_special_tokens``...); padding tokens get vectors too, as in Hugging Face, but no say in the
            mean.

    ``feature-extraction`` defaults to ``pooling="none"``; ``embeddings`` to ``pooling="mean", normalize=True``,
    and gives the vectors without the batch level (``[hidden]``, or ``[tokens][hidden]`` for ``pooling="none"``).
    """

    task = "feature-extraction"
    model_class = SqueezeBertModel
    params = ("pooling", "normalize", "return_tensors", "truncation", "tokenize_kwargs")
    default_pooling = "none"
    default_normalize = False
    batch_level = True  # each result has a leading dimension of 1

    def prepare(self, params: dict[str, Any]) -> dict[str, Any]:
        pooling = params.get("pooling", self.default_pooling)
        pooling = "none" if pooling is None else pooling
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        tokenize_kwargs = check_tokenizer_kwargs(params.get("tokenize_kwargs"), "tokenize_kwargs")
        if params.get("truncation") is not None:
            if "truncation" in tokenize_kwargs:
                raise ValueError("truncation is given twice: as a call parameter and in tokenize_kwargs")
            tokenize_kwargs["truncation"] = params["truncation"]
        return {
            "pooling": pooling,
            "normalize": bool(params.get("normalize", self.default_normalize)),
            "return_tensors": bool(params.get("return_tensors", False)),
            "tokenize_kwargs": tokenize_kwargs,
        }

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Row]:
        return [self.encode_row(check_text(item, f"{self.task} input"), **params["tokenize_kwargs"])]

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outputs = self.runner(inputs)
        hidden = outputs["last_hidden_state"]
        pooled = {"tokens": hidden, "cls": hidden[:, 0], "mean": masked_mean(hidden, inputs["attention_mask"])}
        if "sentence_embedding" in outputs:  # a sentence-embedding ONNX export: the normalised mean, from the graph
            pooled["sentence_embedding"] = outputs["sentence_embedding"]
        return pooled

    def postprocess(self, item: Any, rows: list[Row], outputs: list[dict], params: dict[str, Any]) -> Any:
        pooling = params["pooling"]
        if pooling == "mean" and params["normalize"] and "sentence_embedding" in outputs[0]:
            vectors = outputs[0]["sentence_embedding"]
        else:
            vectors = outputs[0][pooling] if pooling != "none" else outputs[0]["tokens"][: len(rows[0]["input_ids"])]
            if params["normalize"]:
                vectors = F.normalize(vectors, dim=-1)
        if self.batch_level:
            vectors = vectors.unsqueeze(0)
        return vectors if params["return_tensors"] else vectors.tolist()


class EmbeddingsPipeline(FeatureExtractionPipeline):
    """Sentence embeddings: :class:`FeatureExtractionPipeline` with mean pooling and L2 normalisation."""

    task = "embeddings"
    default_pooling = "mean"
    default_normalize = True
    batch_level = False
