"""Inputs and labels for every head, and the scalar that a backward pass starts from."""

from __future__ import annotations

from typing import Any

import torch

HEADS = (
    "SqueezeBertModel",
    "SqueezeBertForMaskedLM",
    "SqueezeBertForSequenceClassification",
    "SqueezeBertForMultipleChoice",
    "SqueezeBertForTokenClassification",
    "SqueezeBertForQuestionAnswering",
)
NUM_CHOICES = 2
HEAD_IDS = [h.removeprefix("SqueezeBert") for h in HEADS]


VARIANTS = ("ids", "padded-types-positions", "embeds")


def input_shape(head: str, batch: int, seq: int) -> tuple[int, ...]:
    return (batch, NUM_CHOICES, seq) if head == "SqueezeBertForMultipleChoice" else (batch, seq)


def make_inputs(
    cfg: dict[str, Any], head: str, variant: str, batch: int = 3, seq: int = 7, seed: int = 1
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shape = input_shape(head, batch, seq)
    ids = torch.randint(0, cfg["vocab_size"], shape, generator=gen)
    if variant == "ids":
        return {"input_ids": ids}
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., seq - 3 :] = 0  # the second example is padded
    ids[1, ..., seq - 3 :] = cfg.get("pad_token_id", 0)
    out = {
        "attention_mask": mask,
        "token_type_ids": torch.randint(0, cfg["type_vocab_size"], shape, generator=gen),
    }
    if variant == "padded-types-positions":
        out["input_ids"] = ids
        out["position_ids"] = torch.randint(0, cfg["max_position_embeddings"], shape, generator=gen)
    elif variant == "embeds":
        out["inputs_embeds"] = torch.randn(*shape, cfg["hidden_size"], generator=gen)
    else:
        raise AssertionError(variant)
    return out


def make_labels(cfg: dict[str, Any], head: str, batch: int = 3, seq: int = 7, seed: int = 2) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    num_labels = cfg.get("num_labels", 2)
    if head == "SqueezeBertForMaskedLM":
        labels = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=gen)
        labels[:, ::3] = -100
        return {"labels": labels}
    if head == "SqueezeBertForSequenceClassification":
        return {"labels": torch.randint(0, num_labels, (batch,), generator=gen)}
    if head == "SqueezeBertForMultipleChoice":
        return {"labels": torch.randint(0, NUM_CHOICES, (batch,), generator=gen)}
    if head == "SqueezeBertForTokenClassification":
        labels = torch.randint(0, num_labels, (batch, seq), generator=gen)
        labels[:, 1::3] = -100
        return {"labels": labels}
    if head == "SqueezeBertForQuestionAnswering":
        # one start beyond the sequence (ignored after clamping), one negative end (clamped to 0)
        starts = torch.tensor([1, seq + 5, seq - 1])[:batch]
        ends = torch.tensor([-2, 2, seq + 100])[:batch]
        return {"start_positions": starts, "end_positions": ends}
    return {}


def backward_target(out: Any, seed: int = 3) -> torch.Tensor:
    """The output's loss, or for the base model a fixed random projection of both of its outputs."""
    if getattr(out, "loss", None) is not None:
        return out.loss
    gen = torch.Generator().manual_seed(seed)
    last, pooled = out.last_hidden_state, out.pooler_output
    w1 = torch.randn(last.shape, generator=gen, dtype=torch.float32).to(last.dtype)
    w2 = torch.randn(pooled.shape, generator=gen, dtype=torch.float32).to(pooled.dtype)
    return (last * w1).sum() + (pooled * w2).sum()
