"""What every pipeline shares: loading the model and tokenizer, the device, int8, the backend, and the batched run
loop.

A task pipeline says three things and nothing else:

- :meth:`Pipeline.preprocess` turns one input into one or more *rows* (a row is one model input sequence: a text,
  one window of a long text, one (premise, hypothesis) pair, one (prompt, choice) pair...);
- :meth:`Pipeline.forward` runs the model on a padded batch of rows, through :attr:`Pipeline.runner`: named input
  tensors in, named output tensors out, whichever backend runs the model (:class:`TorchRunner` for PyTorch,
  :class:`OnnxRunner` for a folder exported with :func:`squeezebert.export.to_onnx`);
- :meth:`Pipeline.postprocess` turns the rows of one input and their outputs into that input's result.

:meth:`Pipeline.__call__` does the rest: it takes one input or many (a list, a generator, a dataset), sorts the
rows of a chunk of inputs by length so that each sub-batch of ``batch_size`` rows needs little padding, runs the
sub-batches, and hands the results back in input order (a list for a list, a stream for any other iterable).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from ..config import SqueezeBertConfig
from ..devices import resolve_device
from ..modeling import SqueezeBertModel, SqueezeBertPreTrainedModel
from ..tokenization import AutoTokenizer

logger = logging.getLogger("squeezebert")

Row = dict[
    str, Any
]  # "input_ids", "token_type_ids" (lists of ints), maybe "attention_mask", and what postprocess needs
LIST_CHUNK = 1024  # inputs of a list are sorted by length this many at a time
PROGRESS_MIN_INPUTS = 64  # inputs shorter than this never show a progress bar
# tokenizer options a text-classification call passes through, as Hugging Face's does
TOKENIZER_OPTIONS = ("truncation", "max_length", "padding", "pad_to_multiple_of", "add_special_tokens")
BACKENDS = ("torch", "onnx")


class _DropUnusedWeightsWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "checkpoint weights not used" not in str(record.msg)


def load_model(model: Any, model_class: type[SqueezeBertPreTrainedModel]) -> SqueezeBertPreTrainedModel:
    """A model object, or a folder / hub id loaded with ``model_class.from_pretrained``.

    For the bare encoder (``SqueezeBertModel``) any SqueezeBERT model object will do: its encoder is used.
    """
    if isinstance(model, (str, os.PathLike)):
        if model_class is not SqueezeBertModel:
            return model_class.from_pretrained(model)
        # the encoder of a task checkpoint: leaving its head out is the point, not worth a warning
        quiet = _DropUnusedWeightsWarning()
        logger.addFilter(quiet)
        try:
            return model_class.from_pretrained(model)
        finally:
            logger.removeFilter(quiet)
    if not isinstance(model, SqueezeBertPreTrainedModel):
        raise TypeError(f"model must be a folder, a hub id or a SqueezeBERT model, not {type(model).__name__}")
    if model_class is SqueezeBertModel:
        return model.base_model
    if not isinstance(model, model_class):
        raise TypeError(f"this task needs a {model_class.__name__}, got a {type(model).__name__}")
    return model


def int8_model(model: torch.nn.Module) -> torch.nn.Module:
    """The dynamically int8-quantised copy of ``model`` (CPU only)."""
    from ..quantization import quantize_dynamic

    return quantize_dynamic(model)


# ----------------------------------------------------------------------------------------------------------------
# Runners: the model as one call from named input tensors to named output tensors


class TorchRunner:
    """Runs a PyTorch SqueezeBERT model: ``runner(inputs)`` is the model's output tensors by name (``logits``,
    ``last_hidden_state``...).

    Attributes:
        model: the PyTorch model.
        config: its configuration.
    """

    def __init__(self, model: SqueezeBertPreTrainedModel) -> None:
        self.model = model
        self.config = model.config

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: value for name, value in self.model(**inputs).items() if isinstance(value, torch.Tensor)}


def exported_task(session: Any, config: SqueezeBertConfig) -> str:
    """The :func:`squeezebert.export.to_onnx` task an ONNX Runtime session's graph was exported for, read from its
    inputs' and outputs' names and shapes (an export records its task nowhere else)."""
    outputs = {output.name: output.shape for output in session.get_outputs()}
    if len(session.get_inputs()[0].shape) == 3:
        return "multiple-choice"
    if "start_logits" in outputs:
        return "question-answering"
    if "sentence_embedding" in outputs:
        return "sentence-embedding"
    if "last_hidden_state" in outputs:
        return "feature-extraction"
    if "logits" not in outputs:
        raise ValueError(f"the ONNX graph's outputs {sorted(outputs)} are not those of a to_onnx export")
    if len(outputs["logits"]) == 2:
        return "text-classification"
    return "fill-mask" if outputs["logits"][-1] == config.vocab_size else "token-classification"


class OnnxRunner:
    """Runs a folder written by :func:`squeezebert.export.to_onnx` in ONNX Runtime (CPU provider):
    ``runner(inputs)`` feeds the graph its named inputs and returns its outputs by name, as torch tensors.

    Args:
        folder: the exported folder (``config.json`` and ``onnx/model.onnx``).
        int8: run ``onnx/model_qint8_avx512_vnni.onnx`` (written by ``to_onnx(..., int8=True)``) instead.

    Attributes:
        model: the ``onnxruntime.InferenceSession``.
        config: the folder's configuration.
        task: the task the folder was exported for (see :func:`exported_task`).
    """

    def __init__(self, folder: str | os.PathLike, int8: bool = False) -> None:
        from ..export.onnx import load_onnx_session

        self.model = load_onnx_session(folder, int8=int8)
        self.config = SqueezeBertConfig.from_pretrained(folder)
        self.task = exported_task(self.model, self.config)
        self.input_names = [graph_input.name for graph_input in self.model.get_inputs()]
        self.output_names = [output.name for output in self.model.get_outputs()]

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feeds = {name: inputs[name].cpu().numpy() for name in self.input_names}
        values = self.model.run(self.output_names, feeds)
        return {name: torch.from_numpy(value) for name, value in zip(self.output_names, values, strict=True)}


def export_tasks_for(model_class: type[SqueezeBertPreTrainedModel]) -> list[str]:
    """The :func:`squeezebert.export.to_onnx` tasks whose graphs give what a pipeline on ``model_class`` needs: the
    head's own task, or for the bare encoder the feature tasks."""
    from ..export.onnx import TASKS

    return [task for task, (head, _) in TASKS.items() if (head or SqueezeBertModel) is model_class]


class Pipeline:
    """Base class of the task pipelines; build them with :func:`squeezebert.pipeline`.

    Args:
        model: a SqueezeBERT model object, or a folder / hub id to load ``model_class`` from.
        tokenizer: a tokenizer, or a folder / hub id; by default loaded from ``model`` when it is a name.
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device`` or a GPU index).
        batch_size: how many rows (sequences) one forward pass takes; a call can override it.
        num_workers: accepted for Hugging Face compatibility and ignored (inputs are tokenized in the calling
            thread).
        int8: run a dynamically int8-quantised copy of the model (CPU only); with ``backend="onnx"``, the folder's
            int8 graph ``onnx/model_qint8_avx512_vnni.onnx``.
        backend: ``"torch"`` (PyTorch) or ``"onnx"``: ``model`` is then a folder written by
            :func:`squeezebert.export.to_onnx` (``squeezebert export``) for a task that serves this pipeline, run
            by ONNX Runtime on the CPU (needs ``pip install 'squeezebert[onnx]'``). The tokenizer and
            ``config.json`` come from the folder.
        progress: show a tqdm progress bar; ``None`` shows one for long inputs when stderr is a terminal.
        max_length: the longest row in tokens; by default the model's window (``max_position_embeddings``,
            capped by the tokenizer's ``model_max_length``).
        **defaults: default call parameters of the task (``top_k=3``...), overridden by those of each call.
    """

    task: str = ""
    model_class: type[SqueezeBertPreTrainedModel]
    params: tuple[str, ...] = ()  # call parameters of the task

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        device: str | int | torch.device = "cpu",
        batch_size: int = 8,
        num_workers: int | None = None,
        int8: bool = False,
        backend: str = "torch",
        progress: bool | None = None,
        max_length: int | None = None,
        **defaults: Any,
    ) -> None:
        check_batch_options(batch_size, num_workers)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.device = resolve_device(device)
        self.backend = backend
        self.runner = self._onnx_runner(model, int8) if backend == "onnx" else self._torch_runner(model, int8)
        self.model = self.runner.model  # the PyTorch model, or the ONNX Runtime session
        if tokenizer is None:
            if not isinstance(model, (str, os.PathLike)):
                raise ValueError("tokenizer is required when model is a model object (pass a tokenizer or its folder)")
            tokenizer = model
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        self.max_length = self._window(max_length)
        self.defaults = self.check_params(defaults)

    def _torch_runner(self, model: Any, int8: bool) -> TorchRunner:
        loaded = load_model(model, self.model_class).eval()
        if int8:
            if self.device.type != "cpu":
                raise ValueError(f"int8=True runs on the CPU only, not on device={str(self.device)!r}")
            loaded = int8_model(loaded)
        return TorchRunner(loaded.to(self.device))

    def _onnx_runner(self, model: Any, int8: bool) -> OnnxRunner:
        if not isinstance(model, (str, os.PathLike)):
            raise TypeError(
                "with backend='onnx', model must be a folder written by squeezebert.export.to_onnx, not a "
                f"{type(model).__name__}"
            )
        if self.device.type != "cpu":
            raise ValueError(f"backend='onnx' runs on the CPU only, not on device={str(self.device)!r}")
        runner = OnnxRunner(model, int8=int8)
        served = export_tasks_for(self.model_class)
        if runner.task not in served:
            raise ValueError(
                f"{os.fspath(model)!r} was exported for {runner.task!r}; the {self.task} pipeline needs an export "
                f"for {' or '.join(repr(task) for task in served)} (squeezebert.export.to_onnx(..., task=...))"
            )
        return runner

    @property
    def config(self) -> Any:
        return self.runner.config

    def _window(self, max_length: int | None) -> int:
        limit = self.config.max_position_embeddings
        model_max = getattr(self.tokenizer, "model_max_length", None)
        if model_max is not None and model_max < 10**18:
            limit = min(limit, model_max)
        if max_length is None:
            return limit
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 4:
            raise ValueError(f"max_length must be an int >= 4, got {max_length!r}")
        if max_length > self.config.max_position_embeddings:
            raise ValueError(
                f"max_length={max_length} is longer than the model's max_position_embeddings "
                f"({self.config.max_position_embeddings})"
            )
        return max_length

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Return ``params`` unchanged, or raise a TypeError naming those this task does not take."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            allowed = ", ".join(self.params) or "none"
            raise TypeError(f"{self.task} pipeline got unknown parameter(s) {', '.join(unknown)} (allowed: {allowed})")
        return params

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(task={self.task!r}, backend={self.backend!r}, device={str(self.device)!r}, "
            f"batch_size={self.batch_size})"
        )

    # ------------------------------------------------------------------------------------------------------------
    # The three steps a task defines

    def is_single(self, inputs: Any) -> bool:
        """Whether ``inputs`` is one input (rather than an iterable of inputs)."""
        return isinstance(inputs, (str, dict))

    def prepare(self, params: dict[str, Any]) -> dict[str, Any]:
        """Check and complete the call parameters once per call (e.g. turn target words into ids)."""
        return params

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Row]:
        raise NotImplementedError

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run the model (:attr:`runner`) on a padded batch of rows; returns tensors whose first dimension is the
        row."""
        raise NotImplementedError

    def postprocess(self, item: Any, rows: list[Row], outputs: list[dict[str, torch.Tensor]], params: dict) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------------------------
    # Running

    def __call__(
        self, inputs: Any, *, batch_size: int | None = None, num_workers: int | None = None, **params: Any
    ) -> Any:
        """Run the pipeline on one input (returns its result) or an iterable of inputs.

        A list or tuple gives a list of results; any other iterable (a generator, a dataset) gives an iterator that
        yields each result as soon as the inputs around it have been run. ``batch_size`` overrides the pipeline's
        for this call; ``num_workers`` is accepted and ignored, as at construction.
        """
        check_batch_options(batch_size, num_workers, allow_none=True)
        batch_size = batch_size or self.batch_size
        params = self.prepare({**self.defaults, **self.check_params(params)})
        if self.is_single(inputs):
            return self._run_chunk([inputs], params, batch_size)[0]
        if isinstance(inputs, (list, tuple)):
            return list(self._stream(iter(inputs), params, len(inputs), LIST_CHUNK, batch_size))
        if not isinstance(inputs, Iterable):
            raise TypeError(f"inputs must be one input or an iterable of inputs, not {type(inputs).__name__}")
        total = len(inputs) if hasattr(inputs, "__len__") else None
        return self._stream(iter(inputs), params, total, batch_size, batch_size)

    def _stream(
        self, inputs: Iterator, params: dict[str, Any], total: int | None, chunk: int, batch_size: int
    ) -> Iterator[Any]:
        from tqdm.auto import tqdm

        show = self.progress
        if show is None:
            show = sys.stderr.isatty() and (total is None or total >= PROGRESS_MIN_INPUTS)
        with tqdm(total=total, disable=not show, desc=self.task, unit="input") as bar:
            while items := list(itertools.islice(inputs, chunk)):
                yield from self._run_chunk(items, params, batch_size)
                bar.update(len(items))

    def _run_chunk(self, items: list[Any], params: dict[str, Any], batch_size: int) -> list[Any]:
        rows_per_item = [self.preprocess(item, params) for item in items]
        rows = [row for item_rows in rows_per_item for row in item_rows]
        outputs: list[dict[str, torch.Tensor]] = [{}] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                result = self.forward(self.collate([rows[i] for i in batch]))
                result = {key: value.float().cpu() for key, value in result.items()}
                for n, i in enumerate(batch):
                    outputs[i] = {key: value[n] for key, value in result.items()}
        results, offset = [], 0
        for item, item_rows in zip(items, rows_per_item, strict=True):
            results.append(self.postprocess(item, item_rows, outputs[offset : offset + len(item_rows)], params))
            offset += len(item_rows)
        return results

    def collate(self, rows: list[Row]) -> dict[str, torch.Tensor]:
        """Pad rows on the right into ``input_ids`` / ``token_type_ids`` / ``attention_mask`` tensors (a row without
        an ``attention_mask`` attends to all its tokens)."""
        width = max(len(row["input_ids"]) for row in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for n, row in enumerate(rows):
            length = len(row["input_ids"])
            ids[n, :length] = torch.tensor(row["input_ids"])
            types[n, :length] = torch.tensor(row["token_type_ids"])
            mask[n, :length] = torch.tensor(row["attention_mask"]) if "attention_mask" in row else 1
        return {
            "input_ids": ids.to(self.device),
            "token_type_ids": types.to(self.device),
            "attention_mask": mask.to(self.device),
        }

    # ------------------------------------------------------------------------------------------------------------
    # Helpers for the tasks

    def encode(self, text: str, text_pair: str | None = None, **kwargs: Any) -> Any:
        """Tokenize one text (or pair) into model-ready lists, truncated to the model window by default.

        A ValueError says when a row is longer than the model's ``max_position_embeddings`` (e.g. with
        ``truncation=False``).
        """
        kwargs.setdefault("truncation", True)
        if kwargs["truncation"] not in (False, None, "do_not_truncate"):
            kwargs.setdefault("max_length", self.max_length)
        encoding = self.tokenizer(text, text_pair, **kwargs)
        ids = encoding["input_ids"]
        longest = max(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids)
        limit = self.config.max_position_embeddings
        if longest > limit:
            raise ValueError(
                f"{self.task} input is {longest} tokens long, more than the model's max_position_embeddings ({limit}): "
                "leave truncation on, or shorten the text"
            )
        return encoding

    def encode_row(self, text: str, text_pair: str | None = None, **kwargs: Any) -> Row:
        """The row of a text (or pair), read as one sequence: :meth:`encode` without overflowing windows."""
        encoding = self.encode(text, text_pair, **kwargs)
        row = {"input_ids": encoding["input_ids"], "token_type_ids": encoding["token_type_ids"]}
        if "attention_mask" in encoding:
            row["attention_mask"] = encoding["attention_mask"]
        return row

    @staticmethod
    def rows_of(encoding: Any, **extra: Any) -> list[Row]:
        """The rows of a tokenizer output that has a batch dimension (e.g. from overflowing windows)."""
        rows = []
        for n, ids in enumerate(encoding["input_ids"]):
            rows.append({"input_ids": ids, "token_type_ids": encoding["token_type_ids"][n], **extra})
        return rows


def check_batch_options(batch_size: Any, num_workers: Any, allow_none: bool = False) -> None:
    """ValueErrors for a ``batch_size`` that is not a positive int and a ``num_workers`` that is not an int >= 0
    (``None`` stands for "the pipeline's" or "not given")."""
    if not (batch_size is None and allow_none) and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if num_workers is not None and (
        isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0
    ):
        raise ValueError(f"num_workers must be an int >= 0 (it is ignored), got {num_workers!r}")


def check_tokenizer_kwargs(value: Any, name: str) -> dict[str, Any]:
    """``value`` (keyword arguments for the tokenizer) as a new dict, ``{}`` for ``None``; a TypeError for anything
    else, and a ValueError for the ``return_*`` options, which the pipeline sets itself."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise TypeError(f"{name} must be a dict of tokenizer keyword arguments, not {type(value).__name__}")
    reserved = sorted(key for key in value if key.startswith("return_"))
    if reserved:
        raise ValueError(f"{name} cannot set {', '.join(reserved)}: the pipeline chooses what the tokenizer returns")
    return dict(value)


def check_text(value: Any, name: str) -> str:
    """``value`` if it is a string, else a TypeError naming the argument."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    return value


def check_top_k(top_k: Any, name: str = "top_k", allow_none: bool = False) -> int | None:
    if top_k is None and allow_none:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {top_k!r}")
    return top_k
