"""Fine-tuning aligned with Hugging Face's Trainer: balanced class weights, the weighted classification loss,
macro-F1 in the evaluation, HF's AdamW / warm-up defaults, and the loss curve against the Trainer itself."""

from __future__ import annotations

import pytest
import torch

from squeezebert.training import metrics

# --------------------------------------------------------------------------------------------------------------
# Balanced class weights (reference values derived by hand)


def test_balanced_class_weights_by_hand() -> None:
    # 6 examples over 3 present classes (counts 3, 2, 1) of 4: n / (k * count) = 6/9, 6/6, 6/3; class 3 absent -> 1
    weights = metrics.balanced_class_weights([0, 0, 0, 1, 1, 2], 4)
    assert weights.dtype == torch.float32 and weights.shape == (4,)
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 1.0, 2.0, 1.0]), rtol=0, atol=0)
    # averaged over the examples, the weights are 1: (3 * 2/3 + 2 * 1 + 1 * 2) / 6
    assert float(weights[[0, 0, 0, 1, 1, 2]].mean()) == pytest.approx(1.0, abs=1e-7)
    # balanced data: every weight 1
    torch.testing.assert_close(metrics.balanced_class_weights([1, 0, 1, 0], 2), torch.ones(2), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("labels", "num_labels", "error", "match"),
    [
        ([0, 1], 0, ValueError, "num_labels"),
        ([0, 1], 2.0, ValueError, "num_labels"),
        ([], 2, ValueError, "non-empty"),
        ([[0, 1]], 2, ValueError, "1-D"),
        ([0, 2], 2, ValueError, r"\[0, 2\)"),
        ([-1, 0], 2, ValueError, r"\[0, 2\)"),
        ([0.0, 1.0], 2, TypeError, "integer"),
    ],
)
def test_balanced_class_weights_rejects(labels, num_labels, error, match) -> None:
    with pytest.raises(error, match=match):
        metrics.balanced_class_weights(labels, num_labels)
