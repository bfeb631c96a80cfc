"""``multiple-choice``: which of several choices best continues (or answers) a prompt."""

from __future__ import annotations

from typing import Any

import torch

from ..modeling import SqueezeBertForMultipleChoice
from .base import Pipeline, Row, check_text


def as_prompt_choices(item: Any) -> tuple[str, list[str]]:
    """A ``{"prompt", "choices"}`` dict or a ``(prompt, choices)`` tuple as ``(prompt, choices)``."""
    if isinstance(item, dict):
        if set(item) != {"prompt", "choices"}:
            raise ValueError(f"a multiple-choice input needs the keys 'prompt' and 'choices', got {sorted(item)}")
        prompt, choices = item["prompt"], item["choices"]
    elif isinstance(item, tuple) and len(item) == 2:
        prompt, choices = item
    else:
        raise TypeError(
            "a multiple-choice input is a {'prompt': ..., 'choices': [...]} dict or a (prompt, choices) tuple, "
            f"not {type(item).__name__}"
        )
    if not isinstance(choices, (list, tuple)) or not choices:
        raise ValueError("choices must be a non-empty list of strings")
    return check_text(prompt, "prompt"), [check_text(choice, "choice") for choice in choices]


class MultipleChoicePipeline(Pipeline):
    """Score the choices of a prompt with a multiple-choice model (e.g. trained on SWAG).

    An input is ``{"prompt": ..., "choices": [...]}`` or ``(prompt, choices)``; each choice is read as the pair
    ``(prompt, choice)``. The result is ``{"choices", "scores", "answer"}``: the choices in the given order,
    their probabilities (softmax over the choices' logits) and the best choice.
    """

    task = "multiple-choice"
    model_class = SqueezeBertForMultipleChoice

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (dict, tuple))

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Row]:
        prompt, choices = as_prompt_choices(item)
        return [self.encode_row(prompt, choice) for choice in choices]

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # The head scores each (prompt, choice) sequence on its own, so a batch of rows (of any inputs) is run as
        # one "question" with as many choices as rows: logits [1, rows].
        logits = self.runner({key: value[None] for key, value in inputs.items()})["logits"]
        return {"logit": logits[0]}

    def postprocess(self, item: Any, rows: list[Row], outputs: list[dict], params: dict[str, Any]) -> Any:
        _, choices = as_prompt_choices(item)
        scores = torch.stack([output["logit"] for output in outputs]).softmax(0)
        return {"choices": choices, "scores": scores.tolist(), "answer": choices[int(scores.argmax())]}
