"""ExecuTorch export for phones: a ``.pte`` program lowered to XNNPACK, in fp32 or int8, checked in ExecuTorch's
own runtime before the file is written.

The program takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64, ``[1, seq]``, or
``[1, num_choices, seq]`` for multiple choice) and returns the task's outputs (``last_hidden_state``, ``logits``, or
``start_logits`` and ``end_logits``), in that order. The sequence length is dynamic, from 1 to ``max_length``,
unless the lowering cannot keep it so; the program is then traced at ``max_length`` exactly (inputs padded to it)
and the report says so. The batch size is 1: one request at a time, as a phone serves them.

int8 is XNNPACK's static quantization through PT2E (``prepare_pt2e`` / ``convert_pt2e`` with ``XNNPACKQuantizer``):
weights symmetric per output channel, activations per tensor with ranges calibrated on a few sentences. XNNPACK's
quantizer recognises ``nn.Linear`` but not the batched matmul a grouped 1x1 convolution runs as, so for int8 every
grouped projection is first rewritten as one ``nn.Linear`` per group (:class:`_GroupLinears`, the same numbers).
Embeddings, LayerNorm, softmax and the activations stay in fp32.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from .. import hub
from ..config import SqueezeBertConfig
from ..modeling import (
    SqueezeBertForMaskedLM,
    SqueezeBertForMultipleChoice,
    SqueezeBertForQuestionAnswering,
    SqueezeBertForSequenceClassification,
    SqueezeBertForTokenClassification,
    SqueezeBertModel,
    SqueezeBertPreTrainedModel,
)
from ..modeling.layers import GroupedConv1x1, SqueezeBertSelfAttention, _concat_groups, from_groups
from .program import INPUT_NAMES, example_inputs

__all__ = ["TASKS", "ExecuTorchExport", "ExecuTorchMissingError", "to_executorch"]

# task -> (the head that serves it, the program's outputs in order)
TASKS: dict[str, tuple[type[SqueezeBertPreTrainedModel], tuple[str, ...]]] = {
    "feature-extraction": (SqueezeBertModel, ("last_hidden_state",)),
    "fill-mask": (SqueezeBertForMaskedLM, ("logits",)),
    "text-classification": (SqueezeBertForSequenceClassification, ("logits",)),
    "multiple-choice": (SqueezeBertForMultipleChoice, ("logits",)),
    "token-classification": (SqueezeBertForTokenClassification, ("logits",)),
    "question-answering": (SqueezeBertForQuestionAnswering, ("start_logits", "end_logits")),
}

# fp32: the largest |ExecuTorch - PyTorch| allowed on any output; int8: the smallest cosine allowed between an
# int8 output row (a token's hidden state or logits) and the fp32 PyTorch one.
FP32_TOLERANCE = 1e-4
INT8_MIN_COSINE = 0.95

# Calibration text for int8 (when the model has a tokenizer) and held-out text for the checks.
CALIBRATION_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Grouped convolutions make SqueezeBERT fast on mobile phones.",
    "She bought three apples, two pears and a loaf of bread at the market on Saturday.",
    "Is this the right way to the train station?",
    "The committee postponed its decision until further evidence could be gathered.",
    "I loved the film, although the ending was a little rushed.",
)
CHECK_SENTENCES = (
    "Paris is the capital and most populous city of France.",
    "Please send me the report by Friday afternoon.",
)

_MISSING = "ExecuTorch export needs the executorch extra: pip install 'squeezebert[executorch]'"


class ExecuTorchMissingError(ImportError):
    """Raised by :func:`to_executorch` when the ``executorch`` package cannot be imported."""


@dataclass(frozen=True)
class ExecuTorchExport:
    """What :func:`to_executorch` wrote and how it checked it.

    Attributes:
        path: the ``.pte`` file.
        task: the task the program serves.
        int8: whether the projections run in int8.
        input_names, output_names: the program's inputs and outputs, in order.
        input_shape: the shape of each input; the sequence axis is ``"sequence_length"`` when ``dynamic``.
        dynamic: whether the sequence length is dynamic (1 to ``max_length``) or fixed at ``max_length``.
        max_length: the longest sequence the program takes.
        max_abs_diff: the largest ``|ExecuTorch - PyTorch fp32|`` over every output of the checks.
        tolerance: the largest difference allowed in fp32 (``None`` for int8, which is held to ``min_cosine``).
        min_cosine: the smallest cosine between an output row (per token, or per sequence for sequence-level
            outputs) of ExecuTorch and of PyTorch fp32.
        delegated_fraction: the fraction of the program's operators that run in XNNPACK (the rest run in
            ExecuTorch's portable kernels, e.g. the embeddings and LayerNorm).
    """

    path: Path
    task: str
    int8: bool
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_shape: tuple[int | str, ...]
    dynamic: bool
    max_length: int
    max_abs_diff: float
    tolerance: float | None
    min_cosine: float
    delegated_fraction: float

    def summary(self) -> str:
        """A few lines for a log or a terminal."""
        shape = "x".join(map(str, self.input_shape))
        length = f"dynamic 1..{self.max_length}" if self.dynamic else f"fixed {self.max_length}"
        check = f"<= {self.tolerance:.3g}" if self.tolerance is not None else f"(int8; cosine >= {INT8_MIN_COSINE})"
        return (
            f"{self.path} ({self.task}, {'int8' if self.int8 else 'fp32'})\n"
            f"  inputs {', '.join(self.input_names)} int64 [{shape}], sequence length {length}\n"
            f"  outputs {', '.join(self.output_names)}\n"
            f"  vs PyTorch fp32: max abs diff {self.max_abs_diff:.3g} {check}, min cosine {self.min_cosine:.6f}\n"
            f"  delegated to XNNPACK: {self.delegated_fraction:.0%} of the operators"
        )


def to_executorch(
    model_or_path: SqueezeBertPreTrainedModel | str | os.PathLike,
    out_path: str | os.PathLike,
    task: str | None = None,
    int8: bool = False,
    max_length: int = 128,
    *,
    num_choices: int = 4,
) -> ExecuTorchExport:
    """Export a model to an ExecuTorch ``.pte`` file lowered to XNNPACK, check it, and write it.

    Args:
        model_or_path: a SqueezeBERT model, or a folder saved with ``save_pretrained`` (its tokenizer, if saved
            beside it, provides the int8 calibration text).
        out_path: the ``.pte`` file to write; it is written (atomically) only once the checks have passed.
        task: one of :data:`TASKS`; default: the model's own. ``"feature-extraction"`` works for every head.
        int8: quantize the projections to int8 (XNNPACK's static quantization, calibrated on a few sentences).
        max_length: the longest sequence the program takes, at most ``max_position_embeddings``.
        num_choices: the number of choices of a ``"multiple-choice"`` program (fixed; other tasks ignore it).

    The program's outputs are run in ExecuTorch's runtime against the PyTorch model on inputs of several
    lengths: fp32 must agree within :data:`FP32_TOLERANCE`, int8 must keep every output row's cosine to fp32 at
    least :data:`INT8_MIN_COSINE`; otherwise a ``RuntimeError`` is raised and nothing is written.

    Raises:
        ExecuTorchMissingError: ``executorch`` is not installed.
        ValueError: an unknown task, one the model's head cannot serve, or a bad ``max_length`` / ``num_choices``.
    """
    et = _import_executorch()
    model, task, tokenizer = _load(model_or_path, task)
    limit = model.config.max_position_embeddings
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= limit:
        raise ValueError(f"max_length must be an integer in [2, max_position_embeddings={limit}], got {max_length!r}")
    if isinstance(num_choices, bool) or not isinstance(num_choices, int) or num_choices < 1:
        raise ValueError(f"num_choices must be a positive integer, got {num_choices!r}")
    program = _TaskProgram(model, task).eval()
    samples = _Samples(program, tokenizer, num_choices)

    try:
        buffer, delegated = _lower(et, program, samples, int8, max_length, dynamic=True)
        checks = [samples.random(max_length, seed=1), samples.random(max_length // 2, seed=2), samples.random(1, 3)]
        checks += samples.text(CHECK_SENTENCES, max_length)
        dynamic = True
        max_abs_diff, min_cosine = _check(et, buffer, program, checks, int8)
    except Exception as err:  # any failure of the dynamic program: fall back to a fixed shape
        warnings.warn(
            f"ExecuTorch export with a dynamic sequence length failed ({type(err).__name__}: {err}); "
            f"exporting at the fixed length {max_length} instead",
            stacklevel=2,
        )
        buffer, delegated = _lower(et, program, samples, int8, max_length, dynamic=False)
        checks = [samples.random(max_length, seed=1), *samples.text(CHECK_SENTENCES, max_length, pad=True)]
        dynamic = False
        max_abs_diff, min_cosine = _check(et, buffer, program, checks, int8)

    with hub.atomic_write(out_path, "wb") as f:
        f.write(buffer)
    seq: int | str = "sequence_length" if dynamic else max_length
    return ExecuTorchExport(
        path=Path(out_path),
        task=task,
        int8=int8,
        input_names=INPUT_NAMES,
        output_names=program.output_names,
        input_shape=(1, num_choices, seq) if program.multiple_choice else (1, seq),
        dynamic=dynamic,
        max_length=max_length,
        max_abs_diff=max_abs_diff,
        tolerance=None if int8 else FP32_TOLERANCE,
        min_cosine=min_cosine,
        delegated_fraction=delegated,
    )


def _import_executorch() -> SimpleNamespace:
    """The ExecuTorch pieces the export uses, or :class:`ExecuTorchMissingError`."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from executorch.devtools.backend_debug import get_delegation_info
        from executorch.exir import to_edge_transform_and_lower
        from executorch.runtime import Runtime
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as err:
        raise ExecuTorchMissingError(_MISSING) from err
    return SimpleNamespace(**{name: value for name, value in locals().items() if name != "err"})


# ----------------------------------------------------------------------------------------------------------------
# The model, its task and its inputs


def _load(model_or_path: Any, task: str | None) -> tuple[SqueezeBertPreTrainedModel, str, Any]:
    """The model (loaded with the head of its saved ``architectures``), the task it will serve, and the tokenizer
    saved beside it (``None`` for a model object or a folder without one)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    if isinstance(model_or_path, SqueezeBertPreTrainedModel):
        model, tokenizer = model_or_path, None
    elif isinstance(model_or_path, (str, os.PathLike)):
        config = SqueezeBertConfig.from_pretrained(model_or_path)
        head = _head_class((config.architectures or ["SqueezeBertModel"])[0])
        model, tokenizer = head.from_pretrained(model_or_path), _saved_tokenizer(model_or_path)
    else:
        raise TypeError(f"model_or_path must be a SqueezeBERT model or a folder, got {type(model_or_path).__name__}")
    own = next((name for name, (head, _) in TASKS.items() if type(model) is head), None)
    task = task or own
    if task is None or task not in (own, "feature-extraction"):
        serves = ", ".join(sorted({own or "feature-extraction", "feature-extraction"}))
        raise ValueError(f"task {task!r} cannot be served by a {type(model).__name__}; it serves {serves}")
    return model, task, tokenizer


def _head_class(name: str) -> type[SqueezeBertPreTrainedModel]:
    heads = {head.__name__: head for head, _ in TASKS.values()}
    if name not in heads:
        raise ValueError(f"the saved model is a {name}, which has no ExecuTorch task; it takes one of {', '.join(heads)}")
    return heads[name]


def _saved_tokenizer(path: str | os.PathLike) -> Any:
    from ..tokenization import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):  # no tokenizer files: calibrate on random ids
        return None


class _TaskProgram(nn.Module):
    """The model with the program's signature: the three int64 inputs in, the task's outputs out as a tuple."""

    def __init__(self, model: SqueezeBertPreTrainedModel, task: str) -> None:
        super().__init__()
        head, self.output_names = TASKS[task]
        self.model = model.base_model if head is SqueezeBertModel else model
        self.multiple_choice = isinstance(self.model, SqueezeBertForMultipleChoice)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return tuple(out[name] for name in self.output_names)


class _Samples:
    """Batches of inputs for the program: random ids (part padded), or sentences through the tokenizer."""

    def __init__(self, program: _TaskProgram, tokenizer: Any, num_choices: int) -> None:
        self.program, self.tokenizer, self.num_choices = program, tokenizer, num_choices

    def random(self, seq: int, seed: int) -> dict[str, torch.Tensor]:
        """One random sequence of ``seq`` tokens, its second half padded."""
        return example_inputs(self.program.model, batch=1, seq=seq, num_choices=self.num_choices, seed=seed)

    def text(self, sentences: tuple[str, ...], max_length: int, pad: bool = False) -> list[dict[str, torch.Tensor]]:
        """Each sentence tokenized (truncated to ``max_length``, padded to it with ``pad``); for multiple choice the
        sentence is every choice. Nothing without a tokenizer."""
        if self.tokenizer is None:
            return []
        samples = []
        for sentence in sentences:
            encoded = self.tokenizer(
                [sentence] * (self.num_choices if self.program.multiple_choice else 1),
                padding="max_length" if pad else False,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
                return_token_type_ids=True,
                return_attention_mask=True,
            )
            shape = (1, self.num_choices, -1) if self.program.multiple_choice else (1, -1)
            samples.append({name: encoded[name].to(torch.int64).reshape(shape) for name in INPUT_NAMES})
        return samples


# ----------------------------------------------------------------------------------------------------------------
# Lowering


def _lower(
    et: SimpleNamespace, program: _TaskProgram, samples: _Samples, int8: bool, max_length: int, dynamic: bool
) -> tuple[bytes, float]:
    """The ``.pte`` bytes and the fraction of operators delegated to XNNPACK."""
    example = samples.random(max_length // 2 if dynamic else max_length, seed=0)
    shapes = None
    if dynamic:
        seq = torch.export.Dim("sequence_length", min=1, max=max_length)
        shapes = {name: {example[name].dim() - 1: seq} for name in INPUT_NAMES}
    with torch.no_grad():
        if int8:
            captured = torch.export.export(_with_group_linears(program), (), example, dynamic_shapes=shapes).module()
            config = et.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
            prepared = et.prepare_pt2e(captured, et.XNNPACKQuantizer().set_global(config))
            exported = torch.export.export(et.convert_pt2e(prepared), (), example, dynamic_shapes=shapes)
        else:
            exported = torch.export.export(program, (), example, dynamic_shapes=shapes)
    edge = et.to_edge_transform_and_lower(exported, partitioner=[et.XnnpackPartitioner()])
    info = et.get_delegation_info(edge.exported_program().graph_module)
    # getitem nodes only unpack a delegate's outputs: not operators
    unpacking = info.delegation_by_operator.get("getitem")
    not_delegated = info.num_non_delegated_nodes - (unpacking.non_delegated if unpacking else 0)
    delegated = info.num_delegated_nodes / max(1, info.num_delegated_nodes + not_delegated)
    return edge.to_executorch().buffer, delegated


class _GroupLinears(nn.Module):
    """A grouped 1x1 projection as one ``nn.Linear`` per group, which XNNPACK's quantizer quantizes per output
    channel. It offers what a traced layer calls on a projection (the in-place ``accumulate`` runs only eagerly)."""

    def __init__(self, group_weight: torch.Tensor, group_bias: torch.Tensor) -> None:
        """``group_weight`` ``(G, in/G, out/G)``, ``group_bias`` ``(G, 1, out/G)``, as :class:`GroupedConv1x1`'s."""
        super().__init__()
        groups, cin, cout = group_weight.shape
        self.groups, self.in_channels, self.out_channels = groups, groups * cin, groups * cout
        self.linears = nn.ModuleList(nn.Linear(cin, cout) for _ in range(groups))
        for linear, weight, bias in zip(self.linears, group_weight, group_bias, strict=True):
            linear.weight.data.copy_(weight.T)
            linear.bias.data.copy_(bias[0])

    def to_groups(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], self.groups, self.in_channels // self.groups).transpose(0, 1)

    def grouped(self, x_groups: torch.Tensor) -> torch.Tensor:
        return torch.stack([linear(x) for linear, x in zip(self.linears, x_groups, strict=True)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        x = x.reshape(-1, self.in_channels)
        return from_groups(self.grouped(self.to_groups(x))).view(*leading, self.out_channels)


def _with_group_linears(program: _TaskProgram) -> _TaskProgram:
    """A copy of ``program`` whose grouped projections (the fused Q/K/V one included) are :class:`_GroupLinears`."""
    program = copy.deepcopy(program)
    for module in list(program.modules()):
        if isinstance(module, SqueezeBertSelfAttention) and module.fused_qkv:
            module.qkv = _GroupLinears(*_concat_groups([module.query, module.key, module.value]))
        for name, child in list(module.named_children()):
            if isinstance(child, GroupedConv1x1):
                setattr(module, name, _GroupLinears(child.group_weight(), child.group_bias()))
    return program


# ----------------------------------------------------------------------------------------------------------------
# Checks in ExecuTorch's runtime


def _check(
    et: SimpleNamespace, buffer: bytes, program: _TaskProgram, checks: list[dict[str, torch.Tensor]], int8: bool
) -> tuple[float, float]:
    """Run ``buffer`` in ExecuTorch on every input of ``checks`` against the fp32 PyTorch ``program``; return the
    largest absolute difference and the smallest row cosine, or raise ``RuntimeError`` past the limits."""
    method = et.Runtime.get().load_program(buffer).load_method("forward")
    max_abs_diff, min_cosine = 0.0, 1.0
    for inputs in checks:
        got = method.execute([inputs[name] for name in INPUT_NAMES])
        with torch.no_grad():
            expected = program(**inputs)
        if len(got) != len(expected):
            raise RuntimeError(f"the ExecuTorch program returned {len(got)} outputs, expected {len(expected)}")
        for name, actual, reference in zip(program.output_names, got, expected, strict=True):
            if actual.shape != reference.shape:
                raise RuntimeError(f"{name}: ExecuTorch shape {tuple(actual.shape)} != {tuple(reference.shape)}")
            actual, reference = actual.double(), reference.double()
            max_abs_diff = max(max_abs_diff, (actual - reference).abs().max().item())
            min_cosine = min(min_cosine, _row_cosine(actual, reference))
    if not int8 and not max_abs_diff <= FP32_TOLERANCE:
        raise RuntimeError(f"ExecuTorch fp32 outputs differ from PyTorch by {max_abs_diff:.3g} > {FP32_TOLERANCE}")
    if int8 and not min_cosine >= INT8_MIN_COSINE:
        raise RuntimeError(f"ExecuTorch int8 outputs reach a cosine of {min_cosine:.4f} to fp32 < {INT8_MIN_COSINE}")
    return max_abs_diff, min_cosine


def _row_cosine(actual: torch.Tensor, reference: torch.Tensor) -> float:
    """The smallest cosine between matching rows (the last axis: a token's features, or a sequence's logits)."""
    dot = (actual * reference).sum(-1)
    norms = actual.norm(dim=-1) * reference.norm(dim=-1)
    return (dot / norms.clamp_min(math.ulp(0.0))).min().item()
