"""Checking forward inputs up front, so bad input is a clear error instead of an IndexError deep in torch."""

from __future__ import annotations

import torch

from ..config import SqueezeBertConfig


def _check_tensor(name: str, value: object) -> None:
    if value is not None and not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def _tracing() -> bool:
    """Whether this forward pass is being traced (``torch.export``, ``torch.compile``, ``torch.jit.trace``)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _check_ids(name: str, ids: torch.Tensor, limit: int, limit_name: str) -> None:
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {ids.dtype}")
    if _tracing():  # the values are symbolic: the eager call checks them, an exported graph cannot
        return
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= limit):
        raise ValueError(
            f"{name} must lie in [0, {limit_name}={limit}), got values in [{int(ids.min())}, {int(ids.max())}]"
        )


def validate_inputs(
    config: SqueezeBertConfig,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    position_ids: torch.Tensor | None,
) -> tuple[int, int]:
    """Raise a ``ValueError`` / ``TypeError`` naming the first bad argument; return ``(batch, seq)``."""
    for name, value in (
        ("input_ids", input_ids),
        ("inputs_embeds", inputs_embeds),
        ("attention_mask", attention_mask),
        ("token_type_ids", token_type_ids),
        ("position_ids", position_ids),
    ):
        _check_tensor(name, value)
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
        _check_ids("input_ids", input_ids, config.vocab_size, "vocab_size")
        shape = tuple(input_ids.shape)
    else:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.embedding_size:
            raise ValueError(
                f"inputs_embeds must be [batch, seq, embedding_size={config.embedding_size}], "
                f"got shape {tuple(inputs_embeds.shape)}"
            )
        shape = tuple(inputs_embeds.shape[:2])
    batch, seq = shape
    name = "input_ids" if input_ids is not None else "inputs_embeds"
    if seq == 0:
        raise ValueError(f"{name} holds an empty sequence (length 0)")
    if seq > config.max_position_embeddings:
        raise ValueError(
            f"{name} has sequence length {seq}, more than max_position_embeddings={config.max_position_embeddings}; "
            "truncate the input"
        )
    if attention_mask is not None and tuple(attention_mask.shape) != shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} does not match the input {shape}")
    if token_type_ids is not None:
        if tuple(token_type_ids.shape) != shape:
            raise ValueError(f"token_type_ids shape {tuple(token_type_ids.shape)} does not match the input {shape}")
        _check_ids("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")
    if position_ids is not None:
        if tuple(position_ids.shape) not in (shape, (1, seq)):
            raise ValueError(
                f"position_ids shape {tuple(position_ids.shape)} does not match the input {shape} (or (1, {seq}))"
            )
        _check_ids("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")
    return batch, seq


def head_mask_per_layer(head_mask: torch.Tensor | None, config: SqueezeBertConfig) -> torch.Tensor | None:
    """A ``(heads,)`` or ``(layers, heads)`` head mask as ``(layers, heads)``; ``None`` stays ``None``."""
    if head_mask is None:
        return None
    _check_tensor("head_mask", head_mask)
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    if tuple(head_mask.shape) == (heads,):
        return head_mask.unsqueeze(0).expand(layers, heads)
    if tuple(head_mask.shape) == (layers, heads):
        return head_mask
    raise ValueError(
        f"head_mask must have shape (num_attention_heads,)=({heads},) or (num_hidden_layers, num_attention_heads)="
        f"({layers}, {heads}), got {tuple(head_mask.shape)}"
    )


def additive_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A ``[batch, seq]`` 1/0 mask as an additive ``[batch, 1, 1, seq]`` mask (0 or the dtype's minimum).

    Returns ``None`` when nothing is masked, which lets attention take its fastest kernel; a traced graph (whose
    mask values are unknown) always builds the mask.
    """
    if attention_mask is None or (not _tracing() and bool(attention_mask.all())):
        return None
    keep = attention_mask.to(torch.bool)[:, None, None, :]
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, torch.finfo(dtype).min)
