"""Pipelines: one call from raw text to task results, for every SqueezeBERT head.

>>> from squeezebert import pipeline
>>> fill = pipeline("fill-mask", model="squeezebert/squeezebert-uncased")
>>> fill("The capital of France is [MASK].")[0]["token_str"]

A folder exported with :func:`squeezebert.export.to_onnx` runs in ONNX Runtime with ``backend="onnx"``:

>>> fill = pipeline("fill-mask", model="squeezebert-onnx/", backend="onnx")
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .base import Pipeline
from .feature_extraction import EmbeddingsPipeline, FeatureExtractionPipeline
from .fill_mask import FillMaskPipeline
from .multiple_choice import MultipleChoicePipeline
from .question_answering import QuestionAnsweringPipeline
from .text_classification import TextClassificationPipeline
from .token_classification import TokenClassificationPipeline
from .zero_shot import ZeroShotClassificationPipeline

PIPELINE_CLASSES: dict[str, type[Pipeline]] = {
    "fill-mask": FillMaskPipeline,
    "text-classification": TextClassificationPipeline,
    "zero-shot-classification": ZeroShotClassificationPipeline,
    "token-classification": TokenClassificationPipeline,
    "question-answering": QuestionAnsweringPipeline,
    "multiple-choice": MultipleChoicePipeline,
    "feature-extraction": FeatureExtractionPipeline,
    "embeddings": EmbeddingsPipeline,
}
ALIASES = {"ner": "token-classification", "sentiment-analysis": "text-classification", "qa": "question-answering"}

# Hub checkpoints used when no model is given. Tasks without a published SqueezeBERT head need model=...
DEFAULT_MODELS: dict[str, str] = {
    "fill-mask": "squeezebert/squeezebert-uncased",
    "text-classification": "squeezebert/squeezebert-mnli",
    "zero-shot-classification": "squeezebert/squeezebert-mnli",
    "feature-extraction": "squeezebert/squeezebert-uncased",
    "embeddings": "squeezebert/squeezebert-uncased",
}


def pipeline(
    task: str,
    model: str | os.PathLike | Any = None,
    tokenizer: Any = None,
    device: str | int | torch.device = "cpu",
    batch_size: int = 8,
    int8: bool = False,
    backend: str = "torch",
    **kwargs: Any,
) -> Pipeline:
    """Build the pipeline of ``task``.

    Args:
        task: one of ``fill-mask``, ``text-classification``, ``zero-shot-classification``,
            ``token-classification`` (alias ``ner``), ``question-answering``, ``multiple-choice``,
            ``feature-extraction``, ``embeddings``.
        model: a folder, a hub id or a model object; by default the task's default hub checkpoint.
        tokenizer: a tokenizer or its folder / hub id; by default the one saved with ``model``.
        device: where the model runs (``"cpu"``, ``"cuda"``, a GPU index...).
        batch_size: sequences per forward pass (a call can override it: ``pipe(texts, batch_size=32)``).
        int8: run a dynamically int8-quantised model (CPU); with ``backend="onnx"``, the folder's int8 graph.
        backend: ``"torch"`` (PyTorch) or ``"onnx"``: run a folder written by :func:`squeezebert.export.to_onnx`
            with ONNX Runtime on the CPU (``model`` is then that folder; needs ``squeezebert[onnx]``).
        **kwargs: ``progress``, ``max_length``, ``num_workers`` (accepted for Hugging Face compatibility, ignored),
            and default call parameters of the task (e.g. ``top_k=3``).
    """
    if not isinstance(task, str):
        raise TypeError(f"task must be a string, not {type(task).__name__}")
    name = ALIASES.get(task, task)
    if name not in PIPELINE_CLASSES:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(sorted([*PIPELINE_CLASSES, *ALIASES]))}")
    if model is None:
        if name not in DEFAULT_MODELS:
            raise ValueError(f"there is no default SqueezeBERT checkpoint for {name}: pass model=<folder or hub id>")
        model = DEFAULT_MODELS[name]
    return PIPELINE_CLASSES[name](
        model, tokenizer, device=device, batch_size=batch_size, int8=int8, backend=backend, **kwargs
    )


__all__ = [
    "DEFAULT_MODELS",
    "PIPELINE_CLASSES",
    "EmbeddingsPipeline",
    "FeatureExtractionPipeline",
    "FillMaskPipeline",
    "MultipleChoicePipeline",
    "Pipeline",
    "QuestionAnsweringPipeline",
    "TextClassificationPipeline",
    "TokenClassificationPipeline",
    "ZeroShotClassificationPipeline",
    "pipeline",
]
