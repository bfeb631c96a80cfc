"""Fine-tuning tasks: how each turns rows into model features, which head it trains, and how it is evaluated.

A task is built from already-read rows (see :mod:`squeezebert.training.data`) and a tokenizer with the Hugging Face
``__call__`` API. :meth:`TrainingTask.evaluate` runs a model over held-out rows and returns the task's metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .. import modeling
from . import metrics
from .data import discover_labels, pad_batch, split_labels

Features = list[dict[str, Any]]
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")


class TrainingTask:
    """Base class. Subclasses set ``model_class``, ``main_metric`` and implement ``encode`` and ``evaluate``."""

    name: str = ""
    model_class: type[modeling.SqueezeBertPreTrainedModel]
    main_metric: str = "accuracy"
    label_pad: int = -100

    def __init__(self, tokenizer: Any, max_length: int = 128) -> None:
        if max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = max_length

    def config_overrides(self) -> dict[str, Any]:
        """Config fields the head needs (``num_labels``, ``id2label``, ...)."""
        return {}

    def encode(self, rows: Sequence[Any], training: bool) -> Features:
        """Model features (dicts of lists / numbers; keys starting with ``_`` are bookkeeping)."""
        raise NotImplementedError

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return pad_batch(features, self.tokenizer.pad_token_id, self.label_pad)

    def evaluate(self, model: torch.nn.Module, rows: Sequence[Any], features: Features, **kw: Any) -> dict[str, float]:
        raise NotImplementedError

    def predict(
        self,
        model: torch.nn.Module,
        features: Features,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> tuple[dict[str, list[np.ndarray]], float]:
        """Run ``model`` over ``features`` in eval mode: the outputs per batch (float32 numpy) and the mean loss."""
        was_training = model.training
        model.eval()
        outputs: dict[str, list[np.ndarray]] = {}
        loss_sum, count = 0.0, 0
        try:
            with torch.no_grad():
                for start in range(0, len(features), batch_size):
                    chunk = features[start : start + batch_size]
                    batch = {k: v.to(device) for k, v in self.collate(chunk).items()}
                    with autocast():
                        out = model(**batch)
                    if out.get("loss") is not None:
                        loss_sum += float(out["loss"]) * len(chunk)
                        count += len(chunk)
                    for key, value in out.items():
                        if key != "loss" and isinstance(value, torch.Tensor):
                            outputs.setdefault(key, []).append(value.float().cpu().numpy())
        finally:
            model.train(was_training)
        return outputs, (loss_sum / count if count else float("nan"))


def _encode_pairs(task: TrainingTask, texts: Sequence[str], pairs: Sequence[str] | None) -> dict[str, list]:
    for name, values in (("text", texts), ("text pair", pairs or [])):
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise TypeError(f"row {i + 1}: the {name} must be a string, got {type(value).__name__}")
    return dict(
        task.tokenizer(list(texts), None if pairs is None else list(pairs), truncation=True, max_length=task.max_length)
    )


# --------------------------------------------------------------------------------------------------------------


class SequenceClassificationTask(TrainingTask):
    """Single-label, multi-label or regression targets for one text or a text pair (GLUE style).

    Rows are ``{"text": str, "text_pair": str | None, "label": Any}``; labels are names (single-label), lists of
    names or ``separator``-joined names (multi-label), or numbers (regression).
    """

    name = "sequence-classification"
    model_class = modeling.SqueezeBertForSequenceClassification

    def __init__(
        self,
        tokenizer: Any,
        labels: Sequence[str] | None,
        problem_type: str = "single_label_classification",
        max_length: int = 128,
        separator: str = ";",
    ) -> None:
        super().__init__(tokenizer, max_length)
        self.separator = separator
        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
        self.problem_type = problem_type
        if problem_type == "regression":
            self.labels: list[str] = []
            self.main_metric = "pearson"
        else:
            if not labels:
                raise ValueError("a classification task needs at least one label name")
            self.labels = list(labels)
            self.main_metric = "f1_micro" if problem_type == "multi_label_classification" else "accuracy"
        self.label2id = {name: i for i, name in enumerate(self.labels)}

    @classmethod
    def from_rows(
        cls, tokenizer: Any, rows: Sequence[dict[str, Any]], problem_type: str, max_length: int, separator: str = ";"
    ) -> SequenceClassificationTask:
        """Discover the label set from ``rows`` (train and validation together)."""
        if problem_type == "regression":
            return cls(tokenizer, None, problem_type, max_length)
        if problem_type == "multi_label_classification":
            names = discover_labels(n for r in rows for n in split_labels(r["label"], separator))
        else:
            names = discover_labels(r["label"] for r in rows)
        return cls(tokenizer, names, problem_type, max_length, separator)

    def config_overrides(self) -> dict[str, Any]:
        if self.problem_type == "regression":
            return {"num_labels": 1, "problem_type": "regression"}
        return {
            "id2label": dict(enumerate(self.labels)),
            "label2id": dict(self.label2id),
            "problem_type": self.problem_type,
        }

    def _target(self, value: Any, index: int) -> Any:
        if self.problem_type == "regression":
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ValueError(f"row {index + 1}: regression label {value!r} is not a number") from None
        if self.problem_type == "multi_label_classification":
            target = [0.0] * len(self.labels)
            for name in split_labels(value, self.separator):
                if name not in self.label2id:
                    raise ValueError(f"row {index + 1}: unknown label {name!r} (known: {self.labels})")
                target[self.label2id[name]] = 1.0
            return target
        if str(value) not in self.label2id:
            raise ValueError(f"row {index + 1}: unknown label {value!r} (known: {self.labels})")
        return self.label2id[str(value)]

    def encode(self, rows: Sequence[dict[str, Any]], training: bool) -> Features:
        pairs = [r.get("text_pair") for r in rows]
        has_pairs = any(p is not None for p in pairs)
        if has_pairs and any(p is None for p in pairs):
            raise ValueError("either every row or none has a text pair")
        enc = _encode_pairs(self, [r["text"] for r in rows], pairs if has_pairs else None)
        return [
            {
                "input_ids": enc["input_ids"][i],
                "attention_mask": enc["attention_mask"][i],
                "token_type_ids": enc["token_type_ids"][i],
                "labels": self._target(row["label"], i),
            }
            for i, row in enumerate(rows)
        ]

    def evaluate(self, model: torch.nn.Module, rows: Sequence[Any], features: Features, **kw: Any) -> dict[str, float]:
        outputs, loss = self.predict(model, features, **kw)
        logits = np.concatenate(outputs["logits"])
        targets = np.array([f["labels"] for f in features])
        result: dict[str, float] = {"loss": loss}
        if self.problem_type == "regression":
            preds = logits.reshape(-1)
            result.update(
                pearson=metrics.pearson(preds, targets),
                spearman=metrics.spearman(preds, targets),
                mse=float(((preds - targets) ** 2).mean()),
            )
        elif self.problem_type == "multi_label_classification":
            result.update(metrics.multilabel_scores(logits > 0, targets))
        else:
            preds = logits.argmax(-1)
            result.update(
                accuracy=metrics.accuracy(preds, targets),
                f1=metrics.f1_score(preds, targets, "binary" if len(self.labels) == 2 else "macro"),
                f1_macro=metrics.f1_score(preds, targets, "macro"),
                matthews_corrcoef=metrics.matthews_corrcoef(preds, targets),
            )
        return result


# --------------------------------------------------------------------------------------------------------------


class TokenClassificationTask(TrainingTask):
    """Tagging words (CoNLL rows ``(words, tags)``); the first word piece of each word carries its tag."""

    name = "token-classification"
    model_class = modeling.SqueezeBertForTokenClassification
    main_metric = "f1"

    def __init__(self, tokenizer: Any, labels: Sequence[str], max_length: int = 128) -> None:
        super().__init__(tokenizer, max_length)
        if not labels:
            raise ValueError("a token classification task needs at least one tag")
        self.labels = list(labels)
        self.label2id = {name: i for i, name in enumerate(self.labels)}

    @classmethod
    def from_rows(cls, tokenizer: Any, rows: Sequence[tuple[list[str], list[str]]], max_length: int):
        return cls(tokenizer, discover_labels(t for _, tags in rows for t in tags), max_length)

    def config_overrides(self) -> dict[str, Any]:
        return {"id2label": dict(enumerate(self.labels)), "label2id": dict(self.label2id)}

    def encode(self, rows: Sequence[tuple[list[str], list[str]]], training: bool) -> Features:
        tok = self.tokenizer
        words = [w for sentence, _ in rows for w in sentence]
        pieces = tok(words, add_special_tokens=False)["input_ids"] if words else []
        features, cursor = [], 0
        room = self.max_length - 2
        for i, (sentence, tags) in enumerate(rows):
            ids, labels, first_pieces = [tok.cls_token_id], [-100], []
            for word_index, tag in enumerate(tags):
                word_ids = pieces[cursor + word_index] or [tok.unk_token_id]
                if len(ids) - 1 + len(word_ids) > room:
                    break
                if tag not in self.label2id:
                    raise ValueError(f"sentence {i + 1}: unknown tag {tag!r} (known: {self.labels})")
                first_pieces.append(len(ids))
                ids += word_ids
                labels += [self.label2id[tag]] + [-100] * (len(word_ids) - 1)
            cursor += len(sentence)
            ids.append(tok.sep_token_id)
            labels.append(-100)
            features.append(
                {
                    "input_ids": ids,
                    "attention_mask": [1] * len(ids),
                    "token_type_ids": [0] * len(ids),
                    "labels": labels,
                    "_first_pieces": first_pieces,
                }
            )
        return features

    def evaluate(self, model: torch.nn.Module, rows: Sequence[Any], features: Features, **kw: Any) -> dict[str, float]:
        outputs, loss = self.predict(model, features, **kw)
        predicted, gold = [], []
        row = 0
        for logits in outputs["logits"]:
            for sequence in logits.argmax(-1):
                words, tags = rows[row]
                firsts = features[row]["_first_pieces"]
                tags_pred = [self.labels[sequence[p]] for p in firsts] + ["O"] * (len(tags) - len(firsts))
                predicted.append(tags_pred)
                gold.append(list(tags))
                row += 1
        return {"loss": loss, **metrics.entity_scores(predicted, gold)}


# --------------------------------------------------------------------------------------------------------------


class QuestionAnsweringTask(TrainingTask):
    """Extractive QA on SQuAD rows; long contexts are cut into overlapping windows (``doc_stride`` tokens shared)."""

    name = "question-answering"
    model_class = modeling.SqueezeBertForQuestionAnswering
    main_metric = "f1"

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 384,
        doc_stride: int = 128,
        max_answer_length: int = 30,
        n_best: int = 20,
    ) -> None:
        super().__init__(tokenizer, max_length)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("question answering needs a fast tokenizer (character offsets of the tokens)")
        if not 0 <= doc_stride < max_length // 2:
            raise ValueError(f"doc_stride must lie in [0, max_length / 2), got {doc_stride}")
        self.doc_stride = doc_stride
        self.max_answer_length = max_answer_length
        self.n_best = n_best

    def encode(self, rows: Sequence[dict[str, Any]], training: bool) -> Features:
        enc = self.tokenizer(
            [r["question"].lstrip() for r in rows],
            [r["context"] for r in rows],
            truncation="only_second",
            max_length=self.max_length,
            stride=self.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        features = []
        for i, sample in enumerate(enc["overflow_to_sample_mapping"]):
            types, offsets = enc["token_type_ids"][i], enc["offset_mapping"][i]
            context = [j for j, t in enumerate(types) if t == 1][:-1]  # the context's tokens, not the final [SEP]
            first, last = (context[0], context[-1]) if context else (0, -1)
            feature = {
                "input_ids": enc["input_ids"][i],
                "attention_mask": enc["attention_mask"][i],
                "token_type_ids": types,
                "_sample": sample,
                "_offsets": [tuple(o) if first <= j <= last else None for j, o in enumerate(offsets)],
            }
            answers = rows[sample]["answers"]
            start = end = 0  # the answer is not in this window: point at [CLS]
            if answers["text"] and context:
                char_start = answers["answer_start"][0]
                char_end = char_start + len(answers["text"][0])
                if offsets[first][0] <= char_start and offsets[last][1] >= char_end:
                    start = next(j for j in range(first, last + 1) if offsets[j][1] > char_start)
                    end = next(j for j in range(last, first - 1, -1) if offsets[j][0] < char_end)
            feature["start_positions"], feature["end_positions"] = start, end
            features.append(feature)
        return features

    def evaluate(self, model: torch.nn.Module, rows: Sequence[Any], features: Features, **kw: Any) -> dict[str, float]:
        outputs, loss = self.predict(model, features, **kw)
        starts = [row for batch in outputs["start_logits"] for row in batch]
        ends = [row for batch in outputs["end_logits"] for row in batch]
        best: dict[int, tuple[float, str]] = {}
        for feature, start_logits, end_logits in zip(features, starts, ends, strict=True):
            offsets, sample = feature["_offsets"], feature["_sample"]
            context = rows[sample]["context"]
            n = len(offsets)
            for s in np.argsort(start_logits[:n])[::-1][: self.n_best]:
                if offsets[s] is None:
                    continue
                for e in np.argsort(end_logits[:n])[::-1][: self.n_best]:
                    if offsets[e] is None or e < s or e - s + 1 > self.max_answer_length:
                        continue
                    score = float(start_logits[s] + end_logits[e])
                    if sample not in best or score > best[sample][0]:
                        best[sample] = (score, context[offsets[s][0] : offsets[e][1]])
        predictions = [best.get(i, (0.0, ""))[1] for i in range(len(rows))]
        return {"loss": loss, **metrics.squad_scores(predictions, [r["answers"]["text"] for r in rows])}


# --------------------------------------------------------------------------------------------------------------


class MultipleChoiceTask(TrainingTask):
    """Picking one of several endings (SWAG style): rows ``{"context", "question", "choices": [...], "label"}``;
    each choice is encoded as the pair ``(context, question + " " + choice)``."""

    name = "multiple-choice"
    model_class = modeling.SqueezeBertForMultipleChoice
    main_metric = "accuracy"

    def encode(self, rows: Sequence[dict[str, Any]], training: bool) -> Features:
        if not rows:
            return []
        num_choices = len(rows[0]["choices"])
        firsts, seconds = [], []
        for i, row in enumerate(rows):
            if len(row["choices"]) != num_choices:
                raise ValueError(f"row {i + 1}: {len(row['choices'])} choices, the first row has {num_choices}")
            for choice in row["choices"]:
                firsts.append(str(row["context"]))
                seconds.append(f"{row.get('question') or ''} {choice}".strip())
        enc = _encode_pairs(self, firsts, seconds)
        features = []
        for i, row in enumerate(rows):
            try:
                label = int(row["label"])
            except (TypeError, ValueError):
                raise ValueError(f"row {i + 1}: label {row['label']!r} is not a choice index") from None
            if not 0 <= label < num_choices:
                raise ValueError(f"row {i + 1}: label {label} is not in [0, {num_choices})")
            span = slice(i * num_choices, (i + 1) * num_choices)
            features.append({key: enc[key][span] for key in ("input_ids", "attention_mask", "token_type_ids")})
            features[-1]["labels"] = label
        return features

    def evaluate(self, model: torch.nn.Module, rows: Sequence[Any], features: Features, **kw: Any) -> dict[str, float]:
        outputs, loss = self.predict(model, features, **kw)
        preds = np.concatenate(outputs["logits"]).argmax(-1)
        return {"loss": loss, "accuracy": metrics.accuracy(preds, [f["labels"] for f in features])}


TRAINING_TASKS = {
    cls.name: cls
    for cls in (SequenceClassificationTask, TokenClassificationTask, QuestionAnsweringTask, MultipleChoiceTask)
}
