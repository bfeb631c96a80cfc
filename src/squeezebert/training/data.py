"""Reading training data: CSV / TSV / JSON lines tables, CoNLL tag files, SQuAD JSON, SWAG-style CSV; label
discovery; train / validation splits; padding collators.

Every reader raises a ``ValueError`` naming the file (and line, where there is one) on malformed input.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import hub

TABLE_FORMATS = ("csv", "tsv", "jsonl", "json")


def _check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file not found: {os.fspath(path)!r}")
    return path


def table_format(path: str | os.PathLike) -> str:
    """``csv``, ``tsv``, ``jsonl`` or ``json`` from the file name (``.txt`` counts as TSV, ``.ndjson`` as JSONL)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = {"ndjson": "jsonl", "txt": "tsv"}.get(suffix, suffix)
    if fmt not in TABLE_FORMATS:
        raise ValueError(f"cannot tell the format of {os.fspath(path)!r}: use a .csv, .tsv, .jsonl or .json file")
    return fmt


def read_table(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a CSV / TSV file (with a header line) or a JSON-lines / JSON file (a list of objects, or an
    object whose ``"data"`` is one), as dicts."""
    path = _check_file(path)
    fmt = table_format(path)
    if fmt in ("csv", "tsv"):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="," if fmt == "csv" else "\t")
            if not reader.fieldnames:
                raise ValueError(f"{os.fspath(path)!r} is empty: a header line is needed")
            rows = []
            for row in reader:
                if None in row:
                    raise ValueError(
                        f"{os.fspath(path)!r} line {reader.line_num}: more fields than the header's "
                        f"{len(reader.fieldnames)}"
                    )
                rows.append(row)
            return rows
    if fmt == "jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                rows.append(hub.parse_json_object(line, f"{os.fspath(path)!r} line {number}"))
        return rows
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{os.fspath(path)!r} line {err.lineno}: invalid JSON ({err.msg})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{os.fspath(path)!r}: expected a list of JSON objects (or {{'data': [...]}})")
    return data


def column(rows: Sequence[dict[str, Any]], name: str, path: str | os.PathLike = "data") -> list[Any]:
    """The values of column ``name``; a ``ValueError`` naming the file, the row and the columns there are."""
    values = []
    for i, row in enumerate(rows):
        if name not in row:
            raise ValueError(
                f"{os.fspath(path)!r} row {i + 1}: no column {name!r} (columns: {', '.join(map(str, row))})"
            )
        values.append(row[name])
    return values


def split_labels(value: Any, separator: str) -> list[str]:
    """The labels of one multi-label cell: a JSON list, or a string split on ``separator`` (blank: none)."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(separator) if part.strip()]


def discover_labels(values: Iterable[Any]) -> list[str]:
    """The sorted set of label names (numbers sort numerically when every label is an integer)."""
    names = {str(v) for v in values}
    if all(_is_int(n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def train_validation_split(
    rows: Sequence[Any], fraction: float, seed: int, stratify: Sequence[Any] | None = None
) -> tuple[list[Any], list[Any]]:
    """Shuffle with ``seed`` and hold out ``fraction`` of the rows (at least one; per label when ``stratify``)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must lie in (0, 1), got {fraction}")
    if len(rows) < 2:
        raise ValueError(f"need at least 2 examples to hold some out for validation, got {len(rows)}")
    rng = random.Random(seed)
    groups: dict[Any, list[int]] = {}
    for i in range(len(rows)):
        groups.setdefault(None if stratify is None else str(stratify[i]), []).append(i)
    held: set[int] = set()
    for key in sorted(groups, key=str):
        indices = groups[key]
        rng.shuffle(indices)
        take = round(len(indices) * fraction)
        if stratify is None:
            take = max(1, take)
        held.update(indices[:take])
    if len(held) == len(rows):
        held.discard(min(held))
    train = [rows[i] for i in range(len(rows)) if i not in held]
    validation = [rows[i] for i in sorted(held)]
    rng.shuffle(train)
    return train, validation


# --------------------------------------------------------------------------------------------------------------
# Token classification, extractive QA, multiple choice


def read_conll(path: str | os.PathLike, tag_column: int = -1) -> list[tuple[list[str], list[str]]]:
    """Sentences of a CoNLL file: one token per line (whitespace-separated columns, the token first and the tag in
    ``tag_column``), blank lines between sentences, ``-DOCSTART-`` lines skipped."""
    path = _check_file(path)
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if tokens:
                    sentences.append((tokens, tags))
                    tokens, tags = [], []
                continue
            if len(parts) < 2:
                raise ValueError(f"{os.fspath(path)!r} line {number}: expected a token and a tag, got {line.strip()!r}")
            try:
                tags.append(parts[tag_column])
            except IndexError:
                raise ValueError(f"{os.fspath(path)!r} line {number}: no column {tag_column}") from None
            tokens.append(parts[0])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise ValueError(f"{os.fspath(path)!r} holds no sentences")
    return sentences


def read_squad(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Questions of a SQuAD-format JSON file (``data[].paragraphs[].qas[]``) or of a JSON-lines file of flat rows
    (``id``, ``question``, ``context``, ``answers: {"text": [...], "answer_start": [...]}``), as flat rows."""
    path = _check_file(path)
    if table_format(path) == "json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{os.fspath(path)!r} line {err.lineno}: invalid JSON ({err.msg})") from None
        if (
            isinstance(data, dict)
            and isinstance(data.get("data"), list)
            and data["data"]
            and "paragraphs" in data["data"][0]
        ):
            rows = []
            for article in data["data"]:
                for paragraph in article.get("paragraphs", []):
                    for qa in paragraph.get("qas", []):
                        answers = qa.get("answers", [])
                        rows.append(
                            {
                                "id": str(qa.get("id", len(rows))),
                                "question": qa["question"],
                                "context": paragraph["context"],
                                "answers": {
                                    "text": [a["text"] for a in answers],
                                    "answer_start": [int(a["answer_start"]) for a in answers],
                                },
                            }
                        )
            return _check_squad_rows(rows, path)
    return _check_squad_rows(read_table(path), path)


def _check_squad_rows(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    for i, row in enumerate(rows):
        for key in ("question", "context", "answers"):
            if key not in row:
                raise ValueError(f"{os.fspath(path)!r} question {i + 1}: missing {key!r}")
        row.setdefault("id", str(i))
        answers = row["answers"]
        if not isinstance(answers, dict) or len(answers.get("text", [])) != len(answers.get("answer_start", [])):
            raise ValueError(f"{os.fspath(path)!r} question {i + 1}: answers need matching 'text' and 'answer_start'")
        for text, start in zip(answers["text"], answers["answer_start"], strict=True):
            if row["context"][start : start + len(text)] != text:
                raise ValueError(
                    f"{os.fspath(path)!r} question {i + 1} (id {row['id']}): answer {text!r} is not at character "
                    f"{start} of the context"
                )
    return rows


# --------------------------------------------------------------------------------------------------------------
# Collation


def pad_batch(features: Sequence[dict[str, Any]], pad_token_id: int, label_pad: int = -100) -> dict[str, torch.Tensor]:
    """Stack features (dicts of lists / numbers) into tensors, right-padding the sequence fields to the longest.

    ``input_ids`` pad with ``pad_token_id``, ``attention_mask`` / ``token_type_ids`` with 0, a list-valued ``labels``
    with ``label_pad``. Sequence fields of multiple-choice features (a list of lists per feature) pad to the longest
    choice. Keys starting with ``_`` are bookkeeping and are skipped.
    """
    if not features:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, torch.Tensor] = {}
    for key in features[0]:
        if key.startswith("_"):
            continue
        values = [f[key] for f in features]
        first = values[0]
        if isinstance(first, (list, tuple)) and first and isinstance(first[0], (list, tuple)):
            longest = max(len(seq) for v in values for seq in v)
            pad = _pad_value(key, pad_token_id, label_pad)
            batch[key] = torch.tensor([[list(seq) + [pad] * (longest - len(seq)) for seq in v] for v in values])
        elif isinstance(first, (list, tuple)) and key in ("input_ids", "attention_mask", "token_type_ids", "labels"):
            longest = max(len(v) for v in values)
            pad = _pad_value(key, pad_token_id, label_pad)
            if key == "labels" and isinstance(first[0], float):  # multi-label targets: fixed width, no padding
                batch[key] = torch.tensor(values, dtype=torch.float32)
            else:
                batch[key] = torch.tensor([list(v) + [pad] * (longest - len(v)) for v in values])
        else:
            batch[key] = torch.tensor(values)
    return batch


def _pad_value(key: str, pad_token_id: int, label_pad: int) -> int:
    return {"input_ids": pad_token_id, "labels": label_pad}.get(key, 0)
