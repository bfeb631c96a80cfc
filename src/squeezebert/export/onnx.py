"""ONNX export: a SqueezeBERT model as ``onnx/model.onnx`` (and an int8 copy) that ONNX Runtime runs on its CPU
provider, with the inputs, outputs and task names of Hugging Face Optimum.

Every grouped 1x1 projection is exported as one plain 2-D ``MatMul`` per group, whose weight is a named initializer
(``...conv1d.weights.G``). ONNX Runtime's dynamic quantization turns those into ``MatMulInteger`` /
``DynamicQuantizeMatMul`` with one weight scale per output channel. A grouped ``Conv`` would become ``ConvInteger``
(one scale per tensor; older CPU providers refuse it, 1.32 runs it slower than fp32), and a batched ``MatMul`` over
the groups cannot take per-channel scales.

Each export checks itself in ONNX Runtime before anything appears in the output folder: the fp32 graph against
the PyTorch model (max abs difference), the int8 graph by the cosine similarity of each output row to PyTorch's.
"""

from __future__ import annotations

import copy
import importlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import hub
from ..config import SqueezeBertConfig
from ..extras import MissingExtraError
from ..modeling import (
    SqueezeBertForMaskedLM,
    SqueezeBertForMultipleChoice,
    SqueezeBertForQuestionAnswering,
    SqueezeBertForSequenceClassification,
    SqueezeBertForTokenClassification,
    SqueezeBertModel,
    SqueezeBertPreTrainedModel,
)
from ..modeling.layers import GroupedConv1x1, SqueezeBertLayer, from_groups, masked_mean
from .program import INPUT_NAMES, dynamic_shapes, example_inputs
from .sentence_transformers import write_sentence_transformers_files

ONNX_EXTRA_HINT = "ONNX export needs the onnx extra: pip install 'squeezebert[onnx]'"
MIN_OPSET = 17  # LayerNormalization
PROJECTION_KINDS = ("attention", "post_attention", "intermediate", "output")  # as squeezebert.quantization names them
MODEL_FILE = "onnx/model.onnx"
INT8_FILE = "onnx/model_qint8_avx512_vnni.onnx"  # sentence-transformers' name for dynamic int8 weights

# task -> (head class, output names); None: any head (its encoder is exported)
TASKS: dict[str, tuple[type[SqueezeBertPreTrainedModel] | None, tuple[str, ...]]] = {
    "feature-extraction": (None, ("last_hidden_state",)),
    "sentence-embedding": (None, ("last_hidden_state", "sentence_embedding")),
    "fill-mask": (SqueezeBertForMaskedLM, ("logits",)),
    "text-classification": (SqueezeBertForSequenceClassification, ("logits",)),
    "token-classification": (SqueezeBertForTokenClassification, ("logits",)),
    "multiple-choice": (SqueezeBertForMultipleChoice, ("logits",)),
    "question-answering": (SqueezeBertForQuestionAnswering, ("start_logits", "end_logits")),
}
TASK_SYNONYMS = {
    "default": "feature-extraction",
    "masked-lm": "fill-mask",
    "sequence-classification": "text-classification",
    "sentence-similarity": "sentence-embedding",
}


class MissingOnnxExtraError(MissingExtraError):
    """onnx, onnxruntime or onnxscript is not installed."""


class OnnxExportError(ValueError):
    """The exported graph failed its validation in ONNX Runtime."""


@dataclass
class OnnxExportReport:
    """What :func:`to_onnx` wrote and how closely ONNX Runtime reproduces PyTorch.

    Attributes:
        out_dir: the output folder.
        task: the exported task (canonical name).
        opset: the ONNX opset of the graphs.
        files: the files written, relative to ``out_dir``.
        inputs / outputs: the graph's input and output names.
        max_abs_diff: the largest ``|ONNX Runtime - PyTorch|`` over every output of the fp32 graph.
        int8_min_cosine: with ``int8``, the smallest cosine similarity between a row of an int8 output (a token's
            vector, a sequence's logits) and the same row from PyTorch in fp32.
        int8_max_abs_diff: with ``int8``, the largest ``|int8 - PyTorch fp32|``.
        int8_quantized: with ``int8``, how many projection MatMuls run in int8.
        int8_float: with ``int8``, how many projection MatMuls were left in fp32 (``keep_float``).
    """

    out_dir: Path
    task: str
    opset: int
    files: list[str] = field(default_factory=list)
    inputs: tuple[str, ...] = INPUT_NAMES
    outputs: tuple[str, ...] = ()
    max_abs_diff: float = 0.0
    int8_min_cosine: float | None = None
    int8_max_abs_diff: float | None = None
    int8_quantized: int = 0
    int8_float: int = 0


def _require_onnx(*modules: str) -> None:
    """Import ``modules`` (by default all three the export needs) or raise :class:`MissingOnnxExtraError`."""
    for module in modules or ("onnx", "onnxruntime", "onnxscript"):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise MissingOnnxExtraError(ONNX_EXTRA_HINT) from err


# ----------------------------------------------------------------------------------------------------------------
# Tasks and models


def canonical_task(task: str) -> str:
    """The task name as :data:`TASKS` spells it (Optimum's synonyms accepted); ValueError for an unknown task."""
    if not isinstance(task, str):
        raise TypeError(f"task must be a string, got {type(task).__name__}")
    name = TASK_SYNONYMS.get(task, task)
    if name not in TASKS:
        known = ", ".join([*TASKS, *TASK_SYNONYMS])
        raise ValueError(f"task {task!r} is not one of {known}")
    return name


def _default_task(head: type) -> str:
    for task, (cls, _) in TASKS.items():
        if cls is head:
            return task
    return "feature-extraction"


def _check_head(task: str, head: type) -> None:
    cls = TASKS[task][0]
    if cls is not None and head is not cls:
        raise ValueError(
            f"task {task!r} needs a {cls.__name__}, but the model is a {head.__name__}; "
            f"its head serves {_default_task(head)!r} (or feature-extraction / sentence-embedding)"
        )


def _checkpoint_head(model: str | os.PathLike) -> type:
    """The model class named by a checkpoint's ``config.architectures`` (``SqueezeBertModel`` when none)."""
    import squeezebert

    architectures = SqueezeBertConfig.from_pretrained(model).architectures or ["SqueezeBertModel"]
    head = getattr(squeezebert, architectures[0], None)
    if not (isinstance(head, type) and issubclass(head, SqueezeBertPreTrainedModel)):
        raise ValueError(f"{os.fspath(model)!r} holds a {architectures[0]}, not a SqueezeBERT model")
    return head


def _resolve(model: Any, tokenizer: Any, task: str | None) -> tuple[SqueezeBertPreTrainedModel, Any, str]:
    """The model to export (the encoder for the feature tasks), its tokenizer, and the canonical task."""
    from ..pipelines.base import load_model
    from ..tokenization import AutoTokenizer

    if isinstance(model, (str, os.PathLike)):
        head = _checkpoint_head(model)
        task = _default_task(head) if task is None else canonical_task(task)
        _check_head(task, head)
        loaded = load_model(model, TASKS[task][0] or SqueezeBertModel)
        tokenizer = AutoTokenizer.from_pretrained(model) if tokenizer is None else tokenizer
    elif isinstance(model, SqueezeBertPreTrainedModel):
        task = _default_task(type(model)) if task is None else canonical_task(task)
        _check_head(task, type(model))
        loaded = model.base_model if TASKS[task][0] is None else model
    else:
        raise TypeError(f"model must be a folder, a hub id or a SqueezeBERT model, not {type(model).__name__}")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    return loaded, tokenizer, task


# ----------------------------------------------------------------------------------------------------------------
# The graph that is exported


class GroupMatMul(nn.Module):
    """A grouped 1x1 projection as one 2-D matmul per group (the export form of :class:`GroupedConv1x1`).

    ``weights[g]`` is group g's ``(in / groups, out / groups)`` matrix, ``bias`` is ``(out,)``; the methods are the
    ones the layers call on a projection in a traced forward pass.
    """

    def __init__(self, group_weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.groups, cin, cout = group_weight.shape
        self.in_channels, self.out_channels = self.groups * cin, self.groups * cout
        self.weights = nn.ParameterList(nn.Parameter(w.detach().clone(), requires_grad=False) for w in group_weight)
        self.bias = nn.Parameter(bias.detach().reshape(-1).clone(), requires_grad=False)

    @classmethod
    def from_conv(cls, conv: GroupedConv1x1) -> GroupMatMul:
        return cls(conv.group_weight(), conv.bias)

    to_groups = GroupedConv1x1.to_groups

    def grouped(self, x_groups: torch.Tensor) -> torch.Tensor:
        """``(G, tokens, in/G)`` -> ``(G, tokens, out/G)``, bias included."""
        bias = self.bias.view(self.groups, self.out_channels // self.groups)
        return torch.stack([x_groups[g] @ w + bias[g] for g, w in enumerate(self.weights)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        x = x.reshape(-1, self.in_channels)
        return from_groups(self.grouped(self.to_groups(x))).view(*leading, self.out_channels)


def export_copy(model: SqueezeBertPreTrainedModel) -> tuple[SqueezeBertPreTrainedModel, dict[GroupMatMul, str]]:
    """A float32 eval copy of ``model`` whose grouped projections are :class:`GroupMatMul` (fused Q/K/V as one per
    group where the model fuses them), and the kind of each (one of :data:`PROJECTION_KINDS`)."""
    model = copy.deepcopy(model).float().eval()
    kinds: dict[GroupMatMul, str] = {}
    with torch.no_grad():
        for layer in [module for module in model.modules() if isinstance(module, SqueezeBertLayer)]:
            attention = layer.attention
            if attention.fused_qkv:
                attention.qkv = GroupMatMul(*attention._qkv_weight_and_bias())
                kinds[attention.qkv] = "attention"
            else:
                for name in ("query", "key", "value"):
                    setattr(attention, name, GroupMatMul.from_conv(getattr(attention, name)))
                    kinds[getattr(attention, name)] = "attention"
            for kind in ("post_attention", "intermediate", "output"):
                block = getattr(layer, kind)
                block.conv1d = GroupMatMul.from_conv(block.conv1d)
                kinds[block.conv1d] = kind
    return model, kinds


def _mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The L2-normalised mean of the attended tokens' vectors (what the ``embeddings`` pipeline returns)."""
    return F.normalize(masked_mean(hidden, attention_mask), dim=-1)


class TaskGraph(nn.Module):
    """``model`` as a function of the three named inputs returning the task's outputs (a tuple, in order)."""

    def __init__(self, model: SqueezeBertPreTrainedModel, task: str) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.task == "sentence-embedding":
            return out.last_hidden_state, _mean_pool(out.last_hidden_state, attention_mask)
        return tuple(out[name] for name in TASKS[self.task][1])


# ----------------------------------------------------------------------------------------------------------------
# Export, quantization, validation


def _check_opset(opset: int) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset must be an integer in [{MIN_OPSET}, {newest}] (the graph needs LayerNormalization, opset "
            f"{MIN_OPSET}; onnx {onnx.__version__} knows up to {newest}), got {opset!r}"
        )


def _export_fp32(graph: TaskGraph, sample: dict[str, torch.Tensor], opset: int, path: Path) -> None:
    import warnings

    model = graph.model
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's progress notes and deprecation chatter
        program = torch.onnx.export(
            graph,
            (),
            kwargs={name: sample[name] for name in INPUT_NAMES},  # input_names name them in this order
            dynamic_shapes=dynamic_shapes(model),
            input_names=list(INPUT_NAMES),
            output_names=list(TASKS[graph.task][1]),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    program.save(os.fspath(path), external_data=False)


def _projection_nodes(path: Path, weight_names: set[str]) -> list[str]:
    """The names of the ``MatMul`` nodes of the ONNX file whose weight is one of ``weight_names``."""
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[1] in weight_names]


def _quantize(src: Path, dst: Path, nodes: list[str]) -> None:
    """Dynamic int8 quantization of the ``nodes`` MatMuls: int8 weights with one scale per output channel,
    activations quantized per tensor at run time (uint8)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" warning on the root logger
    try:
        quantize_dynamic(
            os.fspath(src),
            os.fspath(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_quantize=nodes,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        root.setLevel(level)


def load_onnx_session(out_dir: str | os.PathLike, int8: bool = False) -> Any:
    """An ``onnxruntime.InferenceSession`` (CPU provider) of an exported folder's ``onnx/model.onnx`` (or its int8
    copy); feed it ``{name: int64 numpy array}`` for :data:`INPUT_NAMES`, read outputs by name. Running a graph
    needs only onnxruntime."""
    _require_onnx("onnxruntime")
    import onnxruntime

    path = Path(out_dir) / (INT8_FILE if int8 else MODEL_FILE)
    if not path.is_file():
        hint = " (export with int8=True / --int8 to write it)" if int8 else ""
        raise FileNotFoundError(f"{os.fspath(out_dir)!r} has no {INT8_FILE if int8 else MODEL_FILE}{hint}")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def _run_session(path: Path, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    names = [out.name for out in session.get_outputs()]
    values = session.run(names, {name: value.numpy() for name, value in inputs.items()})
    return {name: torch.from_numpy(value) for name, value in zip(names, values, strict=True)}


def _max_abs_diff(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> float:
    return max((got[name].double() - value.double()).abs().max().item() for name, value in expected.items())


def _min_row_cosine(
    got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], attention_mask: torch.Tensor
) -> float:
    """The smallest cosine similarity between matching rows (last dimension) of the outputs; of a per-token output
    only the attended tokens' rows count (a padding token's vector means nothing)."""
    worst = 1.0
    for name, value in expected.items():
        cosine = F.cosine_similarity(got[name].double(), value.double(), dim=-1)
        if cosine.shape == attention_mask.shape:
            cosine = cosine[attention_mask.bool()]
        worst = min(worst, cosine.min().item())
    return worst


# ----------------------------------------------------------------------------------------------------------------
# Output folder


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {os.fspath(out_dir)!r} is a file, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(
            f"out_dir {os.fspath(out_dir)!r} is not empty; pass overwrite=True (--overwrite) to write into it "
            "(files of the same name are replaced, others are kept)"
        )


def _move_into(staging: Path, out_dir: Path) -> None:
    """Move the staged files into ``out_dir``: a rename of the whole folder when ``out_dir`` does not exist, file by
    file (replacing same-named files, keeping the others) when it does."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            target = out_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    shutil.rmtree(staging)


def _write_folder(out_dir: Path, write: Callable[[Path], None]) -> list[str]:
    """Run ``write`` on a staging folder beside ``out_dir``, then move its files into place; on any error the
    staging folder is removed and ``out_dir`` is left as it was. Returns the files written (relative paths)."""
    staging = hub.staging_dir(out_dir)
    try:
        write(staging)
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        _move_into(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return files


# ----------------------------------------------------------------------------------------------------------------
# The entry point


def to_onnx(
    model: Any,
    out_dir: str | os.PathLike,
    task: str | None = None,
    opset: int = 18,
    int8: bool = False,
    atol: float = 1e-4,
    *,
    tokenizer: Any = None,
    min_cosine: float = 0.99,
    keep_float: tuple[str, ...] | list[str] = ("intermediate", "output"),
    overwrite: bool = False,
) -> OnnxExportReport:
    """Export ``model`` to ONNX in ``out_dir`` and check the result in ONNX Runtime.

    ``out_dir`` gets ``config.json``, the tokenizer files and ``onnx/model.onnx`` (with ``int8`` also
    ``onnx/model_qint8_avx512_vnni.onnx``); a sentence-embedding export also gets the sentence-transformers files
    (``modules.json``, ``sentence_bert_config.json``, ``1_Pooling/config.json``), so that
    ``SentenceTransformer(out_dir, backend="onnx")`` loads it. The graph takes int64 ``input_ids``,
    ``attention_mask`` and ``token_type_ids`` of shape ``[batch_size, sequence_length]`` (``[batch_size,
    num_choices, sequence_length]`` for multiple choice) and returns the task's outputs, named as Hugging Face
    Optimum names them.

    Args:
        model: a folder, a hub id, or a SqueezeBERT model object.
        out_dir: the output folder; it must be missing or empty unless ``overwrite``.
        task: ``feature-extraction`` (``default``), ``sentence-embedding`` (``sentence-similarity``: token vectors
            plus ``sentence_embedding``, the L2-normalised mean over the attention mask), ``fill-mask``
            (``masked-lm``), ``text-classification`` (``sequence-classification``), ``token-classification``,
            ``multiple-choice`` or ``question-answering``; by default the task of the model's head.
        opset: the ONNX opset (at least 17).
        int8: also write a dynamically int8-quantised graph: int8 weights with one scale per output channel, the
            activations quantized per tensor at run time. The task heads stay in fp32.
        atol: the largest allowed ``|ONNX Runtime - PyTorch|`` of the fp32 graph on a 2 x 16-token batch (4
            choices for multiple choice).
        tokenizer: the tokenizer to save beside the model (an object or a folder / hub id); by default the one
            saved with ``model`` when it is a name; none is saved for a model object without one.
        min_cosine: the smallest allowed cosine similarity of an int8 output row (an attended token's vector, a
            sequence's logits or embedding) to PyTorch's fp32 row.
        keep_float: the projections left in fp32 in the int8 graph, among ``attention`` (Q, K, V),
            ``post_attention``, ``intermediate`` and ``output``. By default the feed-forward pair, which is where
            int8 costs most accuracy: on all-MiniLM-L6-v2 the smallest token cosine is 0.92 with every projection
            in int8 per tensor, 0.98 per channel, 0.987 with ``output`` kept, 0.996 with both.
        overwrite: write into a non-empty ``out_dir`` (same-named files are replaced, other files kept).

    Raises:
        MissingOnnxExtraError: (an ``ImportError``) onnx, onnxruntime or onnxscript is missing.
        OnnxExportError: (a ``ValueError``) a graph fails its check; nothing is written.
    """
    _require_onnx()
    out_dir = Path(out_dir)
    _check_opset(opset)
    unknown = sorted(set(keep_float) - set(PROJECTION_KINDS))
    if isinstance(keep_float, str) or unknown:
        raise ValueError(f"keep_float must list kinds among {', '.join(PROJECTION_KINDS)}, got {keep_float!r}")
    for name, value in (("atol", atol), ("min_cosine", min_cosine)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    _check_out_dir(out_dir, overwrite)
    loaded, tokenizer, task = _resolve(model, tokenizer, task)
    exported, kinds = export_copy(loaded)
    graph = TaskGraph(exported, task).eval()
    report = OnnxExportReport(out_dir=out_dir, task=task, opset=opset, outputs=TASKS[task][1])
    sample = example_inputs(exported, batch=2, seq=min(16, exported.config.max_position_embeddings))

    def write(staging: Path) -> None:
        reference = TaskGraph(copy.deepcopy(loaded).float().eval(), task)
        with torch.no_grad():
            expected = dict(zip(report.outputs, reference(**sample), strict=True))
        fp32_path = staging / MODEL_FILE
        _export_fp32(graph, sample, opset, fp32_path)
        report.max_abs_diff = _max_abs_diff(_run_session(fp32_path, sample), expected)
        if not report.max_abs_diff <= atol:
            raise OnnxExportError(
                f"the ONNX graph differs from PyTorch by up to {report.max_abs_diff:.3g} (atol={atol:g}) on a "
                f"{'x'.join(map(str, sample['input_ids'].shape))} batch; nothing was written"
            )
        if int8:
            _write_int8(staging, graph, kinds, tuple(keep_float), sample, expected, report, min_cosine)
        config = exported.config
        config.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if task == "sentence-embedding":
            window = min(config.max_position_embeddings, getattr(tokenizer, "model_max_length", None) or 10**9)
            write_sentence_transformers_files(staging, config.hidden_size, window)

    report.files = _write_folder(out_dir, write)
    return report


def _write_int8(
    staging: Path,
    graph: TaskGraph,
    kinds: dict[GroupMatMul, str],
    keep_float: tuple[str, ...],
    sample: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    report: OnnxExportReport,
    min_cosine: float,
) -> None:
    """Quantize the projections of ``MODEL_FILE`` into ``INT8_FILE`` and check the int8 outputs' cosines."""
    names = {id(param): name for name, param in graph.named_parameters()}
    quantized, float_kept = set(), set()
    for projection, kind in kinds.items():
        (float_kept if kind in keep_float else quantized).update(names[id(w)] for w in projection.weights)
    fp32_path, int8_path = staging / MODEL_FILE, staging / INT8_FILE
    nodes = _projection_nodes(fp32_path, quantized)
    _quantize(fp32_path, int8_path, nodes)
    got = _run_session(int8_path, sample)
    report.int8_quantized, report.int8_float = len(nodes), len(_projection_nodes(fp32_path, float_kept))
    report.int8_min_cosine = _min_row_cosine(got, expected, sample["attention_mask"])
    report.int8_max_abs_diff = _max_abs_diff(got, expected)
    if not report.int8_min_cosine >= min_cosine:
        raise OnnxExportError(
            f"the int8 ONNX graph's outputs reach a cosine similarity of only {report.int8_min_cosine:.4f} to "
            f"PyTorch's (min_cosine={min_cosine:g}); nothing was written"
        )
