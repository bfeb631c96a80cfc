"""``torch.export`` of any SqueezeBERT head, with dynamic batch size and sequence length.

The traced forward pass skips what only an eager call can do (the input range checks, the "nothing is masked"
shortcut, the in-place and chunked inference paths) and branches on shapes and the config alone, so one exported
program serves every batch size and every sequence length up to ``max_position_embeddings``.
"""

from __future__ import annotations

import torch
from torch.export import Dim, ExportedProgram

from ..modeling import SqueezeBertForMultipleChoice, SqueezeBertPreTrainedModel

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def is_multiple_choice(model: SqueezeBertPreTrainedModel) -> bool:
    """Whether the model takes ``[batch, num_choices, seq]`` inputs."""
    return isinstance(model, SqueezeBertForMultipleChoice)


def example_inputs(
    model: SqueezeBertPreTrainedModel, batch: int = 2, seq: int = 16, num_choices: int = 4, seed: int = 0
) -> dict[str, torch.Tensor]:
    """int64 ``input_ids``, ``attention_mask`` and ``token_type_ids`` for ``model``: random ids, the last sequence
    padded over its second half, token type 1 over the second half where the model has two types.

    Shapes are ``[batch, seq]``, or ``[batch, num_choices, seq]`` for multiple choice.
    """
    config = model.config
    if not 1 <= seq <= config.max_position_embeddings:
        raise ValueError(f"seq must lie in [1, max_position_embeddings={config.max_position_embeddings}], got {seq}")
    shape = (batch, num_choices, seq) if is_multiple_choice(model) else (batch, seq)
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, config.vocab_size, shape, generator=generator)
    attention_mask = torch.ones(shape, dtype=torch.long)
    token_type_ids = torch.zeros(shape, dtype=torch.long)
    half = seq // 2
    if half:
        attention_mask[-1, ..., seq - half :] = 0
        if config.type_vocab_size > 1:
            token_type_ids[..., seq - half :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def dynamic_shapes(model: SqueezeBertPreTrainedModel) -> dict[str, dict[int, Dim]]:
    """``torch.export`` dynamic shapes of :data:`INPUT_NAMES`: ``batch_size`` and ``sequence_length`` (at most
    ``max_position_embeddings``), and ``num_choices`` in the middle for multiple choice."""
    batch = Dim("batch_size")
    seq = Dim("sequence_length", max=model.config.max_position_embeddings)
    axes = {0: batch, 1: Dim("num_choices"), 2: seq} if is_multiple_choice(model) else {0: batch, 1: seq}
    return {name: axes for name in INPUT_NAMES}


def export_program(model: SqueezeBertPreTrainedModel, strict: bool = False) -> ExportedProgram:
    """``torch.export.export`` of ``model`` (in eval mode) on :func:`example_inputs`, dynamic in
    :func:`dynamic_shapes`; the program returns the model's output dataclass."""
    if not isinstance(model, SqueezeBertPreTrainedModel):
        raise TypeError(f"model must be a SqueezeBERT model, got {type(model).__name__}")
    model.eval()
    return torch.export.export(model, (), example_inputs(model), dynamic_shapes=dynamic_shapes(model), strict=strict)
