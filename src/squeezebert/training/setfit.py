"""Contrastive fine-tuning of the encoder on pairs of labelled texts: the first stage of the ``setfit`` strategy (the
idea of SetFit, Tunstall et al. 2022), before the linear head of :mod:`squeezebert.training.probe`.

Pairs are drawn from the labelled set: per iteration, every example is paired once with an example of its own label
(target similarity 1) and once with an example of another label (target 0). The encoder learns to make the cosine
similarity of the two texts' mean-pooled vectors match the target (mean squared error). Training runs in the
:class:`~squeezebert.training.trainer.Trainer`, so it is resumable after a kill like fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling import SqueezeBertForSequenceClassification
from ..modeling.layers import masked_mean

Pair = tuple[int, int, float]  # (first example, second example, target cosine similarity)


def draw_pairs(labels: Sequence[int], iterations: int, seed: int) -> list[Pair]:
    """``2 * len(labels) * iterations`` pairs: per iteration, each example with a random example of its label (itself
    when it is its label's only one) and with a random example of another label. Depends only on ``seed``."""
    if iterations < 1:
        raise ValueError(f"setfit_iterations must be a positive integer, got {iterations}")
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    if len(by_label) < 2:
        raise ValueError("setfit needs examples of at least 2 labels to draw negative pairs")
    generator = torch.Generator().manual_seed(seed)

    def pick(candidates: Sequence[int]) -> int:
        return candidates[int(torch.randint(len(candidates), (1,), generator=generator))]

    pairs: list[Pair] = []
    for _ in range(iterations):
        for i, label in enumerate(labels):
            same = [j for j in by_label[label] if j != i] or [i]
            other = pick([k for k in by_label if k != label])
            pairs.append((i, pick(same), 1.0))
            pairs.append((i, pick(by_label[other]), 0.0))
    return pairs


def pair_collate(
    features: Sequence[dict[str, Any]], collate: Callable[[Sequence[Any]], dict[str, torch.Tensor]]
) -> Callable[[Sequence[Pair]], dict[str, torch.Tensor]]:
    """A collate function for pairs: the first texts then the second texts as one padded batch ``[2 * pairs, seq]``
    (no labels), plus ``similarity`` ``[pairs]``."""

    def collate_pairs(pairs: Sequence[Pair]) -> dict[str, torch.Tensor]:
        batch = collate([features[i] for i, _, _ in pairs] + [features[j] for _, j, _ in pairs])
        batch.pop("labels", None)
        batch["similarity"] = torch.tensor([s for _, _, s in pairs], dtype=torch.float32)
        return batch

    return collate_pairs


class CosineSimilarityPairs(nn.Module):
    """The loss of the contrastive stage around a sequence classifier's encoder (its head gets no gradient)."""

    def __init__(self, model: SqueezeBertForSequenceClassification) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        similarity: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``input_ids`` / ``attention_mask`` ``[2 * pairs, seq]`` (first texts, then second texts), ``similarity``
        ``[pairs]`` -> ``{"loss"}``: the mean squared error of the pairs' cosine similarities."""
        encoded = self.model.encode(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        vectors = masked_mean(encoded.last_hidden_state, attention_mask)  # [2 * pairs, hidden]
        first, second = vectors.chunk(2)  # [pairs, hidden] each
        return {"loss": F.mse_loss(F.cosine_similarity(first, second, dim=-1), similarity.to(vectors.dtype))}
