"""ExecuTorch export for phones: a ``.pte`` program lowered to XNNPACK, in fp32 or int8, checked in ExecuTorch's
own runtime before the file is written.

The program takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64, ``[1, seq]``, or
``[1, num_choices, seq]`` for multiple choice) and returns the task's outputs (``last_hidden_state``, ``logits``, or
``start_logits`` and ``end_logits``), in that order. The sequence length is dynamic, from 1 to ``max_length`` (and
the number of choices, from 1 to ``num_choices``), unless the lowering cannot keep it so; the program is then traced
at ``max_length`` exactly (inputs padded to it) and the report says so. The batch size is 1: one request at a time,
as a phone serves them. (ExecuTorch plans memory for the largest shape, so every dynamic axis needs a bound.)

int8 goes through PT2E (``prepare_pt2e`` / ``convert_pt2e``) with XNNPACK's quantizer and its symmetric per-channel
config: int8 weights with one scale per output channel, activations quantized per token at run time (XNNPACK's
dynamic quantization). Static activation ranges calibrated on sentences were tried first and lose too much on real
weights: BERT's residual stream has a few huge channels, so one scale per tensor leaves the other channels a few
levels (all-MiniLM-L6-v2: a minimum per-token cosine to fp32 of 0.39 to 0.80 with every operator quantized, 0.62
to 0.93 with only the linear layers; 0.98 to 0.99 per token at run time). XNNPACK's quantizer recognises
``nn.Linear`` but not the batched matmul a grouped 1x1 convolution runs as, so for int8 every grouped projection is
first rewritten as one ``nn.Linear`` per group (:class:`_GroupLinears`, the same numbers). Embeddings, LayerNorm,
softmax and the activations stay in fp32.
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import hub
from ..extras import MissingExtraError
from ..modeling import SqueezeBertPreTrainedModel
from ..modeling.layers import GroupedConv1x1, SqueezeBertSelfAttention, _concat_groups, from_groups
from .onnx import TASKS, TaskGraph, _resolve
from .program import INPUT_NAMES, example_inputs, is_multiple_choice

__all__ = ["ExecuTorchExport", "ExecuTorchExportError", "MissingExecuTorchExtraError", "to_executorch"]

EXECUTORCH_EXTRA_HINT = "ExecuTorch export needs the executorch extra: pip install 'squeezebert[executorch]'"

# Text for the int8 weight observers (when the model has a tokenizer) and held-out text for the checks.
CALIBRATION_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Grouped convolutions make SqueezeBERT fast on mobile phones.",
    "She bought three apples, two pears and a loaf of bread at the market on Saturday.",
    "Is this the right way to the train station?",
)
CHECK_SENTENCES = (
    "Paris is the capital and most populous city of France.",
    "I loved the film, although the ending was a little rushed.",
)


class MissingExecuTorchExtraError(MissingExtraError):
    """The ``executorch`` package (the ``executorch`` extra) is not installed."""


class ExecuTorchExportError(ValueError):
    """The ExecuTorch program failed its check in ExecuTorch's runtime; nothing was written."""


@dataclass(frozen=True)
class ExecuTorchExport:
    """What :func:`to_executorch` wrote and how closely ExecuTorch reproduces PyTorch.

    Attributes:
        path: the ``.pte`` file.
        task: the task the program serves (canonical name).
        int8: whether the projections run in int8.
        input_names, output_names: the program's inputs and outputs, in order.
        input_shape: the shape of every input; ``"sequence_length"`` (and ``"num_choices"``) when ``dynamic``.
        dynamic: whether the sequence length is dynamic (1 to ``max_length``; multiple choice: the number of
            choices too, 1 to ``num_choices``) or fixed at ``max_length`` (and ``num_choices``).
        max_length: the longest sequence the program takes.
        max_abs_diff: the largest ``|ExecuTorch - PyTorch fp32|`` over every output of the checks.
        tolerance: what the check allowed: the largest ``max_abs_diff`` in fp32, the smallest ``min_cosine`` in int8.
        min_cosine: the smallest cosine similarity between an output row (a token's vector, a sequence's logits)
            from ExecuTorch and the same row from PyTorch in fp32.
        delegated_fraction: the fraction of the program's operators that run in XNNPACK; the rest (the
            embeddings, LayerNorm, the attention mask) run in ExecuTorch's portable kernels.
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
    tolerance: float
    min_cosine: float
    delegated_fraction: float

    def summary(self) -> str:
        """A few lines for a log or a terminal."""
        shape = ", ".join(map(str, self.input_shape))
        length = f"dynamic, 1 to {self.max_length}" if self.dynamic else f"fixed at {self.max_length}"
        if self.int8:
            check = f"max abs diff {self.max_abs_diff:.3g}, min cosine {self.min_cosine:.6f} >= {self.tolerance:g}"
        else:
            check = f"max abs diff {self.max_abs_diff:.3g} <= {self.tolerance:g}, min cosine {self.min_cosine:.6f}"
        return (
            f"{self.path}: {self.task}, {'int8' if self.int8 else 'fp32'}, XNNPACK\n"
            f"  inputs {', '.join(self.input_names)}: int64 [{shape}], sequence length {length}\n"
            f"  outputs {', '.join(self.output_names)}\n"
            f"  ExecuTorch vs PyTorch fp32: {check}\n"
            f"  operators delegated to XNNPACK: {self.delegated_fraction:.0%}"
        )


def to_executorch(
    model_or_path: SqueezeBertPreTrainedModel | str | os.PathLike,
    out_path: str | os.PathLike,
    task: str | None = None,
    int8: bool = False,
    max_length: int = 128,
    *,
    num_choices: int = 4,
    atol: float = 1e-4,
    min_cosine: float = 0.98,
) -> ExecuTorchExport:
    """Export a model to an ExecuTorch ``.pte`` program lowered to XNNPACK, check it in ExecuTorch's runtime, and
    write it to ``out_path``.

    The program takes int64 ``input_ids``, ``attention_mask`` and ``token_type_ids`` of shape ``[1, seq]`` (``[1,
    num_choices, seq]`` for multiple choice) and returns the task's outputs, in order, named as in
    :func:`~squeezebert.export.onnx.to_onnx`. ``seq`` is dynamic from 1 to ``max_length`` unless the lowering
    cannot keep it so; then it is fixed at ``max_length`` (pad the inputs to it) and a warning says why.

    Args:
        model_or_path: a SqueezeBERT model object, a folder or a hub id.
        out_path: the ``.pte`` file; written (atomically) only once the checks have passed.
        task: a task of :func:`~squeezebert.export.onnx.to_onnx` (or its synonym); by default the model head's.
        int8: quantize every projection to int8: per-channel symmetric int8 weights, activations quantized per
            token at run time (XNNPACK's dynamic quantization through PT2E).
        max_length: the longest sequence the program takes, in ``[2, max_position_embeddings]``.
        num_choices: multiple choice: the most choices the program takes (dynamic from 1, like the length);
            other tasks ignore it.
        atol: fp32: the largest allowed ``|ExecuTorch - PyTorch|`` on any output.
        min_cosine: int8: the smallest allowed cosine similarity of an output row to PyTorch's fp32 row.

    Raises:
        MissingExecuTorchExtraError: (a :class:`~squeezebert.extras.MissingExtraError`, an ``ImportError``)
            executorch is not installed.
        ExecuTorchExportError: (a ``ValueError``) the program fails its check; nothing is written.
        ValueError: an unknown task, one the model's head cannot serve, or a bad argument.
    """
    et = _import_executorch()
    loaded, tokenizer, task = _resolve(model_or_path, None, task)
    limit = loaded.config.max_position_embeddings
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= limit:
        raise ValueError(f"max_length must be an integer in [2, max_position_embeddings={limit}], got {max_length!r}")
    if isinstance(num_choices, bool) or not isinstance(num_choices, int) or num_choices < 2:
        raise ValueError(f"num_choices must be an integer >= 2, got {num_choices!r}")
    for name, value in (("atol", atol), ("min_cosine", min_cosine)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    program = TaskGraph(copy.deepcopy(loaded).float().eval(), task).eval()
    samples = _Samples(program.model, tokenizer, num_choices)

    try:
        buffer, delegated = _lower(et, program, samples, int8, max_length, dynamic=True)
        dynamic = True
    except Exception as err:  # the lowering cannot keep the length dynamic: trace at max_length
        warnings.warn(
            f"ExecuTorch export with a dynamic sequence length failed ({type(err).__name__}: {err}); "
            f"the program takes sequences of exactly max_length={max_length} tokens instead",
            stacklevel=2,
        )
        buffer, delegated = _lower(et, program, samples, int8, max_length, dynamic=False)
        dynamic = False
    # dynamic: the longest, a middle and the shortest length (and fewer choices), and text; fixed: max_length
    lengths = (max_length, max_length // 2 + 1, 1) if dynamic else (max_length,)
    checks = [samples.random(seq, seed=i + 1, num_choices=num_choices - i % 2) for i, seq in enumerate(lengths)]
    checks += samples.text(CHECK_SENTENCES, max_length, pad=not dynamic)
    max_abs_diff, cosine = _check(et, buffer, program, checks)
    if not int8 and not max_abs_diff <= atol:
        raise ExecuTorchExportError(
            f"the ExecuTorch program differs from PyTorch by up to {max_abs_diff:.3g} (atol={atol:g}); nothing was "
            "written"
        )
    if int8 and not cosine >= min_cosine:
        raise ExecuTorchExportError(
            f"the int8 ExecuTorch program's outputs reach a cosine similarity of only {cosine:.4f} to PyTorch's "
            f"(min_cosine={min_cosine:g}); nothing was written"
        )

    with hub.atomic_write(out_path, "wb") as f:
        f.write(buffer)
    seq: int | str = "sequence_length" if dynamic else max_length
    choices: int | str = "num_choices" if dynamic else num_choices
    return ExecuTorchExport(
        path=Path(out_path),
        task=task,
        int8=int8,
        input_names=INPUT_NAMES,
        output_names=TASKS[task][1],
        input_shape=(1, choices, seq) if is_multiple_choice(program.model) else (1, seq),
        dynamic=dynamic,
        max_length=max_length,
        max_abs_diff=max_abs_diff,
        tolerance=min_cosine if int8 else atol,
        min_cosine=cosine,
        delegated_fraction=delegated,
    )


def _import_executorch() -> SimpleNamespace:
    """The ExecuTorch pieces the export uses, or :class:`MissingExecuTorchExtraError`."""
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
        raise MissingExecuTorchExtraError(EXECUTORCH_EXTRA_HINT) from err
    return SimpleNamespace(
        XnnpackPartitioner=XnnpackPartitioner,
        XNNPACKQuantizer=XNNPACKQuantizer,
        get_symmetric_quantization_config=get_symmetric_quantization_config,
        get_delegation_info=get_delegation_info,
        to_edge_transform_and_lower=to_edge_transform_and_lower,
        Runtime=Runtime,
        convert_pt2e=convert_pt2e,
        prepare_pt2e=prepare_pt2e,
    )


class _Samples:
    """Inputs for the program: random ids (the second half padded), or sentences through the tokenizer."""

    def __init__(self, model: SqueezeBertPreTrainedModel, tokenizer: Any, num_choices: int) -> None:
        self.model, self.tokenizer, self.num_choices = model, tokenizer, num_choices

    def random(self, seq: int, seed: int, num_choices: int | None = None) -> dict[str, torch.Tensor]:
        """One random sequence (or set of ``num_choices``, default all) of ``seq`` tokens."""
        return example_inputs(self.model, batch=1, seq=seq, num_choices=num_choices or self.num_choices, seed=seed)

    def text(self, sentences: tuple[str, ...], max_length: int, pad: bool) -> list[dict[str, torch.Tensor]]:
        """Each sentence tokenized (truncated to ``max_length``, with ``pad`` padded to it), as every choice for
        multiple choice; none without a tokenizer."""
        if self.tokenizer is None:
            return []
        choices = is_multiple_choice(self.model)
        samples = []
        for sentence in sentences:
            encoded = self.tokenizer(
                [sentence] * (self.num_choices if choices else 1),
                padding="max_length" if pad else False,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
                return_token_type_ids=True,
                return_attention_mask=True,
            )
            shape = (1, self.num_choices, -1) if choices else (1, -1)
            samples.append({name: encoded[name].to(torch.int64).reshape(shape) for name in INPUT_NAMES})
        return samples


# ----------------------------------------------------------------------------------------------------------------
# Lowering


def _lower(
    et: SimpleNamespace, program: TaskGraph, samples: _Samples, int8: bool, max_length: int, dynamic: bool
) -> tuple[bytes, float]:
    """The ``.pte`` bytes and the fraction of operators delegated to XNNPACK."""
    example = samples.random(max(2, max_length // 2) if dynamic else max_length, seed=0)
    shapes = None
    if dynamic:  # multiple choice: the number of choices too (a fixed count trips torch.export's shape solver)
        axes = {-1: torch.export.Dim("sequence_length", min=1, max=max_length)}
        if is_multiple_choice(program.model):
            axes[-2] = torch.export.Dim("num_choices", min=1, max=samples.num_choices)
        shapes = {name: {example[name].dim() + axis: dim for axis, dim in axes.items()} for name in INPUT_NAMES}
    program = _with_group_linears(program)  # XNNPACK takes linear layers; a batched matmul runs in portable kernels
    with torch.no_grad():
        if int8:
            captured = torch.export.export(program, (), example, dynamic_shapes=shapes).module()
            config = et.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
            prepared = et.prepare_pt2e(captured, et.XNNPACKQuantizer().set_global(config))
            # the weights' per-channel observers need a pass (activation ranges are measured at run time)
            for inputs in samples.text(CALIBRATION_SENTENCES, max_length, pad=not dynamic) or [example]:
                prepared(**inputs)
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
    """A grouped 1x1 projection as one ``nn.Linear`` per group: XNNPACK runs those (and its quantizer quantizes
    them per output channel), where the batched matmul of :class:`GroupedConv1x1` would run in portable kernels. It
    offers what a traced layer calls on a projection (the in-place ``accumulate`` runs only eagerly)."""

    def __init__(self, group_weight: torch.Tensor, group_bias: torch.Tensor) -> None:
        """``group_weight`` ``(G, in/G, out/G)``, ``group_bias`` ``(G, 1, out/G)``, as :class:`GroupedConv1x1`'s."""
        super().__init__()
        groups, cin, cout = group_weight.shape
        self.groups, self.in_channels, self.out_channels = groups, groups * cin, groups * cout
        self.linears = nn.ModuleList(nn.Linear(cin, cout) for _ in range(groups))
        with torch.no_grad():
            for linear, weight, bias in zip(self.linears, group_weight, group_bias, strict=True):
                linear.weight.copy_(weight.T)
                linear.bias.copy_(bias[0])

    to_groups = GroupedConv1x1.to_groups

    def grouped(self, x_groups: torch.Tensor) -> torch.Tensor:
        """``(G, tokens, in/G)`` -> ``(G, tokens, out/G)``, bias included."""
        return torch.stack([linear(x) for linear, x in zip(self.linears, x_groups, strict=True)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        x = x.reshape(-1, self.in_channels)
        return from_groups(self.grouped(self.to_groups(x))).view(*leading, self.out_channels)


def _with_group_linears(program: TaskGraph) -> TaskGraph:
    """A copy of ``program`` whose grouped projections (the fused Q/K/V one included) are :class:`_GroupLinears`."""
    program = copy.deepcopy(program)
    for module in list(program.modules()):
        if isinstance(module, SqueezeBertSelfAttention) and module.fused_qkv:  # query only splits x into groups
            module.qkv = _GroupLinears(*_concat_groups([module.query, module.key, module.value]))
            continue
        for name, child in list(module.named_children()):
            if isinstance(child, GroupedConv1x1):
                setattr(module, name, _GroupLinears(child.group_weight(), child.group_bias()))
    return program


# ----------------------------------------------------------------------------------------------------------------
# Checks in ExecuTorch's runtime


def _check(
    et: SimpleNamespace, buffer: bytes, program: TaskGraph, checks: list[dict[str, torch.Tensor]]
) -> tuple[float, float]:
    """Run ``buffer`` in ExecuTorch's runtime on every input of ``checks`` and the fp32 PyTorch ``program``; return
    the largest absolute difference and the smallest row cosine over every output."""
    method = et.Runtime.get().load_program(buffer).load_method("forward")
    names = TASKS[program.task][1]
    max_abs_diff, min_cosine = 0.0, 1.0
    for inputs in checks:
        got = method.execute([inputs[name] for name in INPUT_NAMES])
        with torch.no_grad():
            expected = program(**inputs)
        if len(got) != len(names):
            raise ExecuTorchExportError(f"the ExecuTorch program returned {len(got)} outputs, expected {len(names)}")
        for name, actual, reference in zip(names, got, expected, strict=True):
            if actual.shape != reference.shape:
                raise ExecuTorchExportError(
                    f"{name}: the ExecuTorch program returned shape {tuple(actual.shape)}, PyTorch "
                    f"{tuple(reference.shape)}"
                )
            actual, reference = actual.double(), reference.double()
            max_abs_diff = max(max_abs_diff, (actual - reference).abs().max().item())
            min_cosine = min(min_cosine, F.cosine_similarity(actual, reference, dim=-1).min().item())
    return max_abs_diff, min_cosine
