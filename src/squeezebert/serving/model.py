"""What a server runs: the pipeline of the checkpoint's head, and the embeddings pipeline on its encoder.

Each HTTP route runs one pipeline task (:data:`ROUTE_TASKS`); a route whose task the loaded model cannot run
answers 404 naming the head it needs. The pipelines are the library's own (:mod:`squeezebert.pipelines`), so the
server's numbers are the pipelines' numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..config import SqueezeBertConfig
from ..pipelines import PIPELINE_CLASSES, EmbeddingsPipeline, Pipeline
from ..pipelines.base import OnnxRunner
from .settings import ServeSettings

# route -> the pipeline task that answers it
ROUTE_TASKS = {
    "/embed": "embeddings",
    "/v1/embeddings": "embeddings",
    "/predict": "text-classification",
    "/rerank": "text-classification",
    "/fill-mask": "fill-mask",
    "/token-classification": "token-classification",
    "/question-answering": "question-answering",
    "/multiple-choice": "multiple-choice",
}
HEAD_TASKS = ("fill-mask", "text-classification", "token-classification", "question-answering", "multiple-choice")
EXPORT_TASKS = {"feature-extraction": "embeddings", "sentence-embedding": "embeddings"}  # to_onnx task -> ours


@dataclass
class ServedModel:
    """The pipelines of one model, by task, and what ``GET /info`` says about them.

    Attributes:
        pipelines: task -> pipeline (``embeddings`` and/or the head's task); they share one model and tokenizer.
        head: the model class of the checkpoint (``SqueezeBertForSequenceClassification``...).
        model_id: the folder or hub id it was loaded from.
        backend: ``torch`` or ``onnx``.
        int8: whether the model runs in int8.
        max_input_length: the longest input in tokens.
    """

    pipelines: dict[str, Pipeline]
    head: str
    model_id: str
    backend: str
    int8: bool
    max_input_length: int

    @property
    def tokenizer(self) -> Any:
        return next(iter(self.pipelines.values())).tokenizer

    @property
    def config(self) -> SqueezeBertConfig:
        return next(iter(self.pipelines.values())).config

    @property
    def default_route(self) -> str:
        """The route of the head's task (``/embed`` for the bare encoder), which ``POST /`` answers as well."""
        task = next(iter(self.pipelines))
        return next(route for route, route_task in ROUTE_TASKS.items() if route_task == task)

    def pipeline_for(self, route: str) -> Pipeline:
        """The pipeline that answers ``route``; a LookupError naming the head it needs when there is none."""
        task = ROUTE_TASKS[route]
        if task in self.pipelines:
            return self.pipelines[task]
        if task == "embeddings":
            needs = "any SqueezeBERT checkpoint run by PyTorch, or an ONNX export for feature-extraction"
        else:
            needs = f"a {PIPELINE_CLASSES[task].model_class.__name__} ({task})"
        raise LookupError(f"{route} needs {needs}; this server runs a {self.head} ({', '.join(self.pipelines)})")


def head_task(architecture: str) -> str | None:
    """The pipeline task of a model class name (None for the bare encoder)."""
    for task in HEAD_TASKS:
        if PIPELINE_CLASSES[task].model_class.__name__ == architecture:
            return task
    return None


def load_served_model(settings: ServeSettings) -> ServedModel:
    """Load the pipelines that ``settings.model`` can serve, as :class:`ServedModel`."""
    options: dict[str, Any] = {
        "backend": settings.backend,
        "int8": settings.int8,
        "max_length": settings.max_input_length,
    }
    architectures = SqueezeBertConfig.from_pretrained(settings.model).architectures or ["SqueezeBertModel"]
    if settings.backend == "onnx":
        # an export records its task only in its graph: read it (one extra session load), then build that task's
        # pipeline on the folder
        exported = OnnxRunner(settings.model, int8=settings.int8).task
        task = EXPORT_TASKS.get(exported, exported)
        head = "SqueezeBertModel" if task == "embeddings" else architectures[0]
        pipelines = {task: PIPELINE_CLASSES[task](settings.model, **options)}
    else:
        head = architectures[0]
        task = head_task(head)
        if task is None:
            pipelines = {"embeddings": EmbeddingsPipeline(settings.model, **options)}
        else:
            pipe = PIPELINE_CLASSES[task](settings.model, **options)
            # the embeddings pipeline runs the encoder of the same (maybe int8) model object
            encoder = EmbeddingsPipeline(pipe.model, pipe.tokenizer, max_length=settings.max_input_length)
            pipelines = {task: pipe, "embeddings": encoder}
    return ServedModel(
        pipelines=pipelines,
        head=head,
        model_id=os.fspath(settings.model),
        backend=settings.backend,
        int8=settings.int8,
        max_input_length=next(iter(pipelines.values())).max_length,
    )
