"""A linear head on frozen sentence vectors: the ``linear-probe`` strategy, and the head of ``setfit``.

The encoder's mean-pooled, L2-normalised token vectors (the pooling of the ``embeddings`` pipeline) are computed once;
a multinomial logistic regression with an L2 penalty is fitted on them in float64 with L-BFGS (seconds on a CPU), for
each penalty of :data:`L2_GRID`, and the one with the best validation accuracy is kept (on a tie, the one with the
lower validation cross-entropy). The features are standardised
for the fit and the standardisation is folded back into the weights, so the classifier of a
:class:`~squeezebert.modeling.SqueezeBertForSequenceClassification` with ``classifier_pooling="mean"`` and
``classifier_normalize=True`` reproduces the probe's logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..modeling import SqueezeBertForSequenceClassification

# Penalties tried; DEFAULT_L2 without validation data (the best on the chatterbot topics).
L2_GRID = (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3)
DEFAULT_L2 = 3e-2


def use_mean_pooling(model: SqueezeBertForSequenceClassification) -> None:
    """Make the classifier read the normalised mean of the token vectors (the embeddings pipeline's vector)."""
    model.config.classifier_pooling = "mean"
    model.config.classifier_normalize = True


@torch.no_grad()
def embed(
    model: SqueezeBertForSequenceClassification,
    features: Sequence[dict[str, Any]],
    collate: Callable[[Sequence[Any]], dict[str, torch.Tensor]],
    batch_size: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The vector the classifier reads for every feature, ``[len(features), hidden]`` float32 (eval mode)."""
    was_training = model.training
    model.eval()
    vectors = []
    for start in range(0, len(features), batch_size):
        batch = collate(features[start : start + batch_size])
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        encoded = model.encode(**inputs)
        vectors.append(model.pool(encoded, inputs["attention_mask"]).float().cpu())  # [batch, hidden]
    model.train(was_training)
    return torch.cat(vectors)


def fit_logistic_regression(
    x: torch.Tensor,
    y: torch.Tensor,
    num_labels: int,
    l2: float,
    class_weights: torch.Tensor | None = None,
    max_iter: int = 500,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``cross_entropy(x W^T + b, y) + l2 / 2 * |W|^2`` over standardised features; returns ``W``
    ``[num_labels, hidden]`` and ``b`` ``[num_labels]`` (float32) for the raw features ``x`` ``[n, hidden]``.

    ``class_weights`` ``[num_labels]`` weight each example's loss by its class (a weighted mean).
    """
    if l2 <= 0:
        raise ValueError(f"l2 must be positive, got {l2}")
    x64 = x.double()
    mean, std = x64.mean(0), x64.std(0, correction=0).clamp_min(1e-12)  # [hidden]
    z = (x64 - mean) / std  # [n, hidden]
    weight = torch.zeros(num_labels, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_labels, dtype=torch.float64, requires_grad=True)
    per_class = None if class_weights is None else class_weights.double()
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = z @ weight.T + bias  # [n, num_labels]
        loss = F.cross_entropy(logits, y, weight=per_class) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        folded = weight / std  # [num_labels, hidden]: z W^T = x (W / std)^T - mean (W / std)^T
        return folded.float(), (bias - folded @ mean).float()


def fit_head(
    model: SqueezeBertForSequenceClassification,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor] | None,
    class_weights: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Fit the classifier of ``model`` on ``train`` = (vectors ``[n, hidden]``, labels ``[n]``), choosing the
    penalty by accuracy on ``validation``, then by its cross-entropy (:data:`DEFAULT_L2` without validation data);
    returns the chosen penalty and the validation accuracy of each penalty tried."""
    num_labels = model.config.num_labels
    fits = {
        l2: fit_logistic_regression(*train, num_labels, l2, class_weights)
        for l2 in (L2_GRID if validation is not None else (DEFAULT_L2,))
    }
    scores: dict[float, tuple[float, float]] = {}
    if validation is not None:
        x, y = validation
        for l2, (weight, bias) in fits.items():
            logits = x @ weight.T + bias  # [n_validation, num_labels]
            scores[l2] = (float((logits.argmax(-1) == y).float().mean()), -float(F.cross_entropy(logits, y)))
    l2 = max(scores, key=scores.get) if scores else DEFAULT_L2
    weight, bias = fits[l2]
    with torch.no_grad():
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(bias)
    return {"l2": l2, "validation_accuracy_by_l2": {f"{k:g}": accuracy for k, (accuracy, _) in scores.items()}}
