"""Task metrics, written on numpy: accuracy, F1, Matthews correlation, Pearson / Spearman, SQuAD exact match and
F1, entity-level F1 over BIO / IOB2 tags; and the "balanced" class weights of a label set."""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

import numpy as np
import torch


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Fraction of predictions equal to their label."""
    p, y = np.asarray(predictions), np.asarray(labels)
    return float((p == y).mean()) if y.size else 0.0


def f1_score(predictions: Sequence[int], labels: Sequence[int], average: str = "macro") -> float:
    """F1 of single-label predictions: ``"binary"`` (class 1), ``"macro"`` (mean over the classes seen in either)
    or ``"micro"`` (equals accuracy for single-label)."""
    p, y = np.asarray(predictions), np.asarray(labels)
    if average == "micro":
        return accuracy(p, y)
    classes = [1] if average == "binary" else sorted(set(p.tolist()) | set(y.tolist()))
    if average not in ("binary", "macro"):
        raise ValueError(f"average must be 'binary', 'macro' or 'micro', got {average!r}")
    scores = []
    for c in classes:
        tp = int(((p == c) & (y == c)).sum())
        fp = int(((p == c) & (y != c)).sum())
        fn = int(((p != c) & (y == c)).sum())
        scores.append(_f1(tp, fp, fn))
    return float(np.mean(scores)) if scores else 0.0


def balanced_class_weights(labels: Sequence[int], num_labels: int) -> torch.Tensor:
    """Per-class loss weights ``n_samples / (n_classes * count[c])`` (scikit-learn's ``"balanced"``), float32
    ``[num_labels]``.

    ``n_classes`` counts the classes present in ``labels``, so the weights averaged over the examples are exactly 1
    and the loss keeps its scale. A class absent from ``labels`` gets weight 1.0: no training target carries it, so
    it never enters the loss (scikit-learn raises instead).
    """
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels must be an integer >= 1, got {num_labels!r}")
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence of class ids, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must be integer class ids, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= num_labels:
        raise ValueError(f"labels must lie in [0, {num_labels}), got values from {y.min()} to {y.max()}")
    counts = np.bincount(y, minlength=num_labels)  # [num_labels]
    present = counts > 0
    weights = np.ones(num_labels, dtype=np.float64)
    weights[present] = y.size / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def multilabel_scores(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Micro F1, macro F1 and exact-set accuracy of 0/1 matrices ``[examples, labels]``."""
    p, y = np.asarray(predictions).astype(bool), np.asarray(labels).astype(bool)
    tp, fp, fn = (p & y).sum(0), (p & ~y).sum(0), (~p & y).sum(0)
    macro = (
        float(np.mean([_f1(int(a), int(b), int(c)) for a, b, c in zip(tp, fp, fn, strict=True)])) if p.shape[1] else 0.0
    )
    return {
        "f1_micro": _f1(int(tp.sum()), int(fp.sum()), int(fn.sum())),
        "f1_macro": macro,
        "subset_accuracy": float((p == y).all(1).mean()) if len(y) else 0.0,
    }


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def matthews_corrcoef(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Matthews correlation coefficient (the multi-class form of Gorodkin, 2004); 0 when undefined."""
    p, y = np.asarray(predictions), np.asarray(labels)
    classes = sorted(set(p.tolist()) | set(y.tolist()))
    index = {c: i for i, c in enumerate(classes)}
    cm = np.zeros((len(classes), len(classes)), dtype=np.float64)
    for a, b in zip(y.tolist(), p.tolist(), strict=True):
        cm[index[a], index[b]] += 1
    t, pk, c, s = cm.sum(1), cm.sum(0), np.trace(cm), cm.sum()
    denom = np.sqrt((s * s - (pk * pk).sum()) * (s * s - (t * t).sum()))
    return float((c * s - (t * pk).sum()) / denom) if denom else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; 0 when either input is constant."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson of the tie-averaged ranks)."""
    return pearson(_ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64)))


# --------------------------------------------------------------------------------------------------------------
# Extractive QA (SQuAD v1.1 evaluation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a / an / the, squeeze whitespace (SQuAD's normalisation)."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_exact(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised answer (answers empty: prediction must be empty)."""
    if not answers:
        return float(not normalize_answer(prediction))
    return float(max(normalize_answer(prediction) == normalize_answer(a) for a in answers))


def squad_f1(prediction: str, answers: Sequence[str]) -> float:
    """Best token-overlap F1 of the prediction against the answers."""
    if not answers:
        return float(not normalize_answer(prediction))
    pred_tokens = normalize_answer(prediction).split()
    best = 0.0
    for answer in answers:
        gold = normalize_answer(answer).split()
        if not pred_tokens or not gold:
            best = max(best, float(pred_tokens == gold))
            continue
        common = sum((collections.Counter(pred_tokens) & collections.Counter(gold)).values())
        if common:
            precision, recall = common / len(pred_tokens), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def squad_scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean exact match and F1 in percent, as the official SQuAD v1.1 script reports them."""
    if len(predictions) != len(answers):
        raise ValueError(f"got {len(predictions)} predictions for {len(answers)} questions")
    n = max(1, len(predictions))
    return {
        "exact_match": 100.0 * sum(squad_exact(p, a) for p, a in zip(predictions, answers, strict=True)) / n,
        "f1": 100.0 * sum(squad_f1(p, a) for p, a in zip(predictions, answers, strict=True)) / n,
    }


# --------------------------------------------------------------------------------------------------------------
# Token classification: entity-level scores over BIO tags


def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The ``(type, start, end)`` entities (end exclusive) of an IOB2 / IOB1 / BIOES-ish tag sequence.

    An entity starts at ``B-X`` (or at ``I-X`` after a different type or ``O``), continues over ``I-X`` and ends
    at the next tag that does not continue it; ``E-`` / ``S-`` tags close / are one-token entities.
    """
    spans: set[tuple[str, int, int]] = set()
    current: tuple[str, int] | None = None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, kind = tag.partition("-") if "-" in tag else (tag, "", "")
        continues = current is not None and kind == current[0] and prefix in ("I", "E")
        if not continues and current is not None:
            spans.add((current[0], current[1], i))
            current = None
        if prefix in ("B", "S") or (prefix in ("I", "E") and current is None and kind):
            current = (kind, i)
        if prefix in ("E", "S") and current is not None:
            spans.add((current[0], current[1], i + 1))
            current = None
    return spans


def entity_scores(predictions: Sequence[Sequence[str]], labels: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level (exact span and type) micro precision, recall and F1, plus token accuracy."""
    tp = n_pred = n_gold = 0
    correct_tokens = total_tokens = 0
    for pred, gold in zip(predictions, labels, strict=True):
        if len(pred) != len(gold):
            raise ValueError(f"prediction has {len(pred)} tags for {len(gold)} words")
        p, g = entity_spans(pred), entity_spans(gold)
        tp += len(p & g)
        n_pred += len(p)
        n_gold += len(g)
        correct_tokens += sum(a == b for a, b in zip(pred, gold, strict=True))
        total_tokens += len(gold)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "token_accuracy": correct_tokens / total_tokens if total_tokens else 0.0,
    }
