"""``text-classification``: labels (and scores) of texts or of (text, text_pair) pairs."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ..modeling import SqueezeBertForSequenceClassification
from .base import TOKENIZER_OPTIONS, Pipeline, Row, check_text, check_top_k

FUNCTIONS = ("softmax", "sigmoid", "none")


def default_function(config: Any) -> str:
    """The score function that matches how the classifier was trained (``config.problem_type``)."""
    if config.problem_type == "regression":
        return "none"
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def apply_function(logits: torch.Tensor, function: str) -> torch.Tensor:
    if function == "softmax":
        return logits.softmax(-1)
    if function == "sigmoid":
        return logits.sigmoid()
    return logits


def as_pair(item: Any, what: str = "text-classification input") -> tuple[str, str | None]:
    """A text, a ``(text, text_pair)`` tuple / list, or a ``{"text", "text_pair"}`` dict as ``(text, pair)``."""
    if isinstance(item, dict):
        unknown = set(item) - {"text", "text_pair"}
        if "text" not in item or unknown:
            raise ValueError(f"a {what} dict needs the key 'text' (and optionally 'text_pair'), got {sorted(item)}")
        pair = item.get("text_pair")
        return check_text(item["text"], "text"), None if pair is None else check_text(pair, "text_pair")
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise ValueError(f"a {what} pair must hold 2 texts, got {len(item)}")
        return check_text(item[0], "text"), check_text(item[1], "text_pair")
    return check_text(item, what), None


class TextClassificationPipeline(Pipeline):
    """Classify texts, or pairs of texts, with a sequence-classification model.

    An input is a text, a ``(text, text_pair)`` tuple or a ``{"text": ..., "text_pair": ...}`` dict.

    Call parameters:
        top_k: how many labels per input, best first (``None``: all). When not given, each input gives its best
            ``{"label", "score"}`` dict (and a single string input gives a list holding it).
        function_to_apply: ``"softmax"``, ``"sigmoid"`` or ``"none"``; by default the one that fits
            ``config.problem_type`` (sigmoid for multi-label or single-output models, none for regression).
        return_all_scores: the deprecated spelling of transformers 4.x, used only when ``top_k`` is not given:
            ``True`` gives every label's score in label order (not sorted), ``False`` the best label.
        truncation, max_length, padding, pad_to_multiple_of, add_special_tokens: passed to the tokenizer (texts
            are truncated to the model window unless they say otherwise).
    """

    task = "text-classification"
    model_class = SqueezeBertForSequenceClassification
    params = ("top_k", "function_to_apply", "return_all_scores", *TOKENIZER_OPTIONS)

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, dict, tuple))

    def __call__(self, inputs: Any, **params: Any) -> Any:
        result = super().__call__(inputs, **params)
        if isinstance(inputs, str) and "top_k" not in params and "top_k" not in self.defaults:
            return [result]
        return result

    def prepare(self, params: dict[str, Any]) -> dict[str, Any]:
        function = params.get("function_to_apply") or default_function(self.config)
        if function not in FUNCTIONS:
            raise ValueError(f"function_to_apply must be one of {FUNCTIONS}, got {function!r}")
        if "top_k" in params:
            top_k = check_top_k(params["top_k"], allow_none=True)
        elif params.get("return_all_scores") is not None:
            warnings.warn(
                "return_all_scores is deprecated: use top_k=None (all labels, best first) or leave top_k out",
                FutureWarning,
                stacklevel=4,
            )
            top_k = "unsorted" if params["return_all_scores"] else "best"
        else:
            top_k = "best"
        tokenizer_kwargs = {key: params[key] for key in TOKENIZER_OPTIONS if key in params}
        return {"top_k": top_k, "function_to_apply": function, "tokenizer_kwargs": tokenizer_kwargs}

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Row]:
        text, pair = as_pair(item)
        return [self.encode_row(text, pair, **params["tokenizer_kwargs"])]

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.runner(inputs)["logits"]}

    def postprocess(self, item: Any, rows: list[Row], outputs: list[dict], params: dict[str, Any]) -> Any:
        scores = apply_function(outputs[0]["logits"], params["function_to_apply"]).tolist()
        labels = self.config.id2label
        in_label_order = [{"label": labels[i], "score": score} for i, score in enumerate(scores)]
        top_k = params["top_k"]
        if top_k == "unsorted":
            return in_label_order
        ranked = sorted(in_label_order, key=lambda d: -d["score"])
        if top_k == "best":
            return ranked[0]
        return ranked if top_k is None else ranked[:top_k]
