"""``zero-shot-classification``: score any labels with a natural-language-inference (MNLI) model.

Each candidate label becomes a hypothesis ("This example is {label}.") that the model reads after the text; how
strongly the text entails it is the label's score.
"""

from __future__ import annotations

from typing import Any

import torch

from ..modeling import SqueezeBertForSequenceClassification
from .base import Pipeline, Row, check_text

DEFAULT_TEMPLATE = "This example is {}."


def find_label(id2label: dict[int, str], prefix: str) -> int | None:
    """The id of the first label that starts with ``prefix`` (case-insensitive), or ``None``."""
    for index, label in sorted(id2label.items()):
        if str(label).lower().startswith(prefix):
            return index
    return None


class ZeroShotClassificationPipeline(Pipeline):
    """Classify texts into labels chosen at call time, with an NLI model.

    The model's ``id2label`` must have an ``entailment`` label; the contradiction label is the one starting with
    ``contradiction`` (or, failing that, the first / last other label as in the usual 3-way MNLI heads).

    Call parameters:
        candidate_labels: the labels, a list or a comma-separated string (required).
        hypothesis_template: how a label becomes a hypothesis; ``{}`` is replaced by the label.
        multi_label: score each label on its own (entailment vs contradiction) instead of sharing one unit of
            probability between the labels. One label is always scored on its own.

    Each result is ``{"sequence", "labels", "scores"}``, labels sorted best first.
    """

    task = "zero-shot-classification"
    model_class = SqueezeBertForSequenceClassification
    params = ("candidate_labels", "hypothesis_template", "multi_label")

    def __init__(self, model: Any, tokenizer: Any = None, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        id2label = self.config.id2label
        self.entailment_id = find_label(id2label, "entail")
        if self.entailment_id is None:
            raise ValueError(
                f"zero-shot-classification needs an NLI model whose id2label has an 'entailment' label; this one has "
                f"{sorted(id2label.values())}"
            )
        contradiction = find_label(id2label, "contradict")
        if contradiction is None:
            contradiction = len(id2label) - 1 if self.entailment_id == 0 else 0
        self.contradiction_id = contradiction

    def __call__(self, inputs: Any, candidate_labels: Any = None, **params: Any) -> Any:
        """Classify ``inputs`` (a text or texts) into ``candidate_labels``."""
        if candidate_labels is not None:
            params["candidate_labels"] = candidate_labels
        return super().__call__(inputs, **params)

    def prepare(self, params: dict[str, Any]) -> dict[str, Any]:
        labels = params.get("candidate_labels")
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        if not isinstance(labels, (list, tuple)) or not labels or not all(isinstance(x, str) for x in labels):
            raise ValueError("candidate_labels must be a non-empty list of strings (or a comma-separated string)")
        template = params.get("hypothesis_template", DEFAULT_TEMPLATE)
        if not isinstance(template, str) or template.format(labels[0]) == template:
            raise ValueError(f"hypothesis_template must contain {{}} where the label goes, got {template!r}")
        multi_label = params.get("multi_label", False)
        if not isinstance(multi_label, bool):
            raise TypeError(f"multi_label must be a bool, got {multi_label!r}")
        return {"labels": list(labels), "template": template, "multi_label": multi_label or len(labels) == 1}

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Row]:
        text = check_text(item, "zero-shot input")
        return [
            self.encode_row(text, params["template"].format(label), truncation="only_first")
            for label in params["labels"]
        ]

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.runner(inputs)["logits"]}

    def postprocess(self, item: Any, rows: list[Row], outputs: list[dict], params: dict[str, Any]) -> Any:
        logits = torch.stack([output["logits"] for output in outputs])  # [labels, nli classes]
        if params["multi_label"]:
            scores = logits[:, [self.contradiction_id, self.entailment_id]].softmax(-1)[:, 1]
        else:
            scores = logits[:, self.entailment_id].softmax(0)
        order = scores.argsort(descending=True, stable=True).tolist()
        return {
            "sequence": item,
            "labels": [params["labels"][i] for i in order],
            "scores": [float(scores[i]) for i in order],
        }
