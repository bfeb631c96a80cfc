"""The small random pipeline checkpoints (support.checkpoints): they load in both libraries with the same outputs,
and they are not degenerate."""

from __future__ import annotations

import pytest
import torch
from support.checkpoints import CALIBRATION_TEXT, KINDS, Checkpoints
from support.numerics import assert_rounding_close, float64_reference

import squeezebert


@pytest.mark.parametrize("kind", ["sentiment", "ner"])
def test_checkpoint_loads_identically_in_hf(checkpoints: Checkpoints, kind: str) -> None:
    transformers = pytest.importorskip("transformers")
    folder = checkpoints[kind]
    head = KINDS[kind][0]
    ours = getattr(squeezebert, head).from_pretrained(folder)
    oracle = getattr(transformers, head).from_pretrained(folder).eval()
    inputs = squeezebert.AutoTokenizer.from_pretrained(folder)(CALIBRATION_TEXT, return_tensors="pt")
    reference = float64_reference(oracle, dict(inputs))
    got = ours(**inputs).logits
    assert_rounding_close(got, reference.outputs.logits, reference.path_length, what="logits")


def test_ner_checkpoint_predicts_several_labels(checkpoints: Checkpoints) -> None:
    folder = checkpoints["ner"]
    model = squeezebert.SqueezeBertForTokenClassification.from_pretrained(folder)
    inputs = squeezebert.AutoTokenizer.from_pretrained(folder)(CALIBRATION_TEXT, return_tensors="pt")
    with torch.no_grad():
        predicted = set(model(**inputs).logits[0].argmax(-1).tolist())
    assert len(predicted) >= 4, predicted
