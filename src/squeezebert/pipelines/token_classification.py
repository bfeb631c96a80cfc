"""``token-classification`` (``ner``): a label per token, optionally grouped into words and entities.

A text longer than the model window is read as overlapping windows (``stride`` tokens shared by neighbours);
the entities found in each window are merged, keeping the longer (then the more confident) of two overlapping
ones. Character offsets always point into the original text; for pre-split words, into the words joined by the
delimiter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import torch

from ..modeling import SqueezeBertForTokenClassification
from .base import Pipeline, Row, check_text

STRATEGIES = ("none", "simple", "first", "average", "max")
Offsets = list[tuple[int, int]]


class TextWithOffsets(NamedTuple):
    """One input with the ``offset_mapping`` given for it at call time."""

    text: str
    offsets: Offsets


class SplitWords(NamedTuple):
    """One pre-split input: its words, the text they make joined by the delimiter, and where each word starts in
    that text."""

    words: list[str]
    text: str
    starts: list[int]


def split_words(words: Any, delimiter: str) -> SplitWords:
    """``words`` (a list of strings) as a :class:`SplitWords`, else a TypeError."""
    if not isinstance(words, (list, tuple)) or not all(isinstance(word, str) for word in words):
        raise TypeError("with is_split_into_words=True each input must be a list of word strings")
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + len(delimiter)
    return SplitWords(list(words), delimiter.join(words), starts)


def check_offsets(offsets: Any) -> Offsets:
    """``offsets`` as a list of ``(start, end)`` int pairs, else a TypeError."""
    if not isinstance(offsets, (list, tuple)) or not all(
        isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(n, int) for n in pair) for pair in offsets
    ):
        raise TypeError("offset_mapping must be a list of (start, end) character pairs, one per token")
    return [(start, end) for start, end in offsets]


def split_tag(label: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"I-PER"`` -> ``("I", "PER")``; other labels continue: ``("I", label)``."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def merge_overlapping(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of entities (from overlapping windows) that overlap, keep the longest, then the highest scoring."""
    merged: list[dict[str, Any]] = []
    for entity in sorted(entities, key=lambda e: e["start"]):
        last = merged[-1] if merged else None
        if last is None or not last["start"] <= entity["start"] < last["end"]:
            merged.append(entity)
            continue
        length, last_length = entity["end"] - entity["start"], last["end"] - last["start"]
        if length > last_length or (length == last_length and entity["score"] > last["score"]):
            merged[-1] = entity
    return merged


class TokenClassificationPipeline(Pipeline):
    """Label tokens (e.g. named entities) with a token-classification model.

    Call parameters:
        aggregation_strategy: ``"none"`` gives one ``{"entity", "score", "index", "word", "start", "end"}`` per
            token (``index`` counts tokens from ``[CLS]`` = 0 over the whole text). The others give entities
            ``{"entity_group", "score", "word", "start", "end"}``: ``"simple"`` groups adjacent tokens with the same
            tag (``B-`` starts a new entity); ``"first"``, ``"average"`` and ``"max"`` first give each word one
            label, from its first token, its tokens' average scores, or its most confident token.
        ignore_labels: labels left out of the result (default ``["O"]``).
        stride: tokens shared by consecutive windows of a long text (default: a quarter of a window).
        offset_mapping: the ``(start, end)`` characters of each token of the text, special tokens included (one
            list for a single text, one per text for a list of texts); it replaces the tokenizer's offsets and
            lets a slow tokenizer run the ``"none"`` and ``"simple"`` strategies.
        is_split_into_words: the input is already split into words: a list of strings is one input (its result
            comes in a list of one, as in ``transformers``), a list of such lists (or any other iterable of them)
            several. Needs a fast tokenizer. ``start`` / ``end`` then point
            into the words joined by ``delimiter``, and a word the tokenizer splits further (``"New-York"``) gives
            several words to the aggregation strategies, as for a text.
        delimiter: what joins the words into that text (default ``" "``); only read with ``is_split_into_words``.
    """

    task = "token-classification"
    model_class = SqueezeBertForTokenClassification
    params = ("aggregation_strategy", "ignore_labels", "stride")

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, TextWithOffsets))

    def __call__(
        self,
        inputs: Any,
        *,
        offset_mapping: Any = None,
        is_split_into_words: bool = False,
        delimiter: str | None = None,
        **params: Any,
    ) -> Any:
        """Label the tokens of ``inputs`` (a text or a list of texts; pre-split words with
        ``is_split_into_words``)."""
        if is_split_into_words:
            if offset_mapping is not None:
                raise ValueError("offset_mapping cannot be given with is_split_into_words=True")
            delimiter = " " if delimiter is None else delimiter
            if not isinstance(delimiter, str):
                raise TypeError(f"delimiter must be a string, not {type(delimiter).__name__}")
            if isinstance(inputs, (list, tuple)) and all(isinstance(word, str) for word in inputs):
                return super().__call__([split_words(inputs, delimiter)], **params)  # a list of one result, as HF
            if isinstance(inputs, (list, tuple)):
                return super().__call__([split_words(words, delimiter) for words in inputs], **params)
            if isinstance(inputs, str) or not isinstance(inputs, Iterable):
                raise TypeError("with is_split_into_words=True the input must be a list of words or of word lists")
            return super().__call__((split_words(words, delimiter) for words in inputs), **params)
        if offset_mapping is None:
            return super().__call__(inputs, **params)
        if isinstance(inputs, str):
            if isinstance(offset_mapping, list) and len(offset_mapping) == 1 and isinstance(offset_mapping[0], list):
                offset_mapping = offset_mapping[0]  # the one-input batch form
            return super().__call__(TextWithOffsets(inputs, check_offsets(offset_mapping)), **params)
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"offset_mapping needs a text or a list of texts, not {type(inputs).__name__}")
        if not isinstance(offset_mapping, (list, tuple)) or len(offset_mapping) != len(inputs):
            raise ValueError(f"offset_mapping must hold one list of offsets per input ({len(inputs)})")
        pairs = [
            TextWithOffsets(text, check_offsets(offsets)) for text, offsets in zip(inputs, offset_mapping, strict=True)
        ]
        return super().__call__(pairs, **params)

    def prepare(self, params: dict[str, Any]) -> dict[str, Any]:
        strategy = params.get("aggregation_strategy") or "none"
        strategy = strategy.lower() if isinstance(strategy, str) else strategy
        if strategy not in STRATEGIES:
            raise ValueError(f"aggregation_strategy must be one of {STRATEGIES}, got {strategy!r}")
        if strategy in ("first", "average", "max") and not self.tokenizer.is_fast:
            raise ValueError(f"aggregation_strategy={strategy!r} needs word boundaries: use a fast tokenizer")
        ignore = params.get("ignore_labels")
        ignore = ["O"] if ignore is None else ignore
        if isinstance(ignore, str) or not all(isinstance(label, str) for label in ignore):
            raise TypeError("ignore_labels must be a list of label strings")
        keep = self.max_length - 2  # tokens of text per window
        stride = params.get("stride")
        stride = keep // 4 if stride is None else stride
        if isinstance(stride, bool) or not isinstance(stride, int) or not 0 <= stride < keep:
            raise ValueError(f"stride must be an int in [0, {keep}) (the text tokens of a window), got {stride!r}")
        return {"strategy": strategy, "ignore": set(ignore), "stride": stride}

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Row]:
        if isinstance(item, SplitWords):
            return self._preprocess_words(item, params)
        text, offsets = item if isinstance(item, TextWithOffsets) else (item, None)
        if offsets is None and not self.tokenizer.is_fast:
            raise ValueError("token-classification needs character offsets: use a fast tokenizer or offset_mapping")
        text = check_text(text, "token-classification input")
        encoding = self.encode(
            text,
            stride=params["stride"],
            return_overflowing_tokens=True,
            return_offsets_mapping=self.tokenizer.is_fast,
            return_special_tokens_mask=True,
        )
        rows = self._windows(encoding, params)
        if offsets is None:
            for n, row in enumerate(rows):
                row["offsets"] = encoding["offset_mapping"][n]
                row["word_ids"] = encoding.word_ids(n)
        else:
            tokens = rows[-1]["first_index"] + len(rows[-1]["input_ids"])  # of the whole text, special ones included
            if len(offsets) != tokens:
                raise ValueError(f"offset_mapping has {len(offsets)} pairs for a text of {tokens} tokens")
            for row in rows:
                row["offsets"] = offsets[row["first_index"] : row["first_index"] + len(row["input_ids"])]
        return rows

    def _windows(self, encoding: Any, params: dict[str, Any]) -> list[Row]:
        """The rows of an encoding's overlapping windows, with their special-token masks and ``first_index``: the
        index (over the whole input) of the token before the window's first."""
        step = self.max_length - 2 - params["stride"]
        rows = self.rows_of(encoding)
        for n, row in enumerate(rows):
            row["special"] = encoding["special_tokens_mask"][n]
            row["first_index"] = n * step
        return rows

    def _preprocess_words(self, item: SplitWords, params: dict[str, Any]) -> list[Row]:
        """The rows of pre-split words, their token offsets moved from within each word into ``item.text``.

        The rows carry no word ids: a token continues a word when it has the word-piece ``##`` prefix, so that
        punctuation inside a given word still makes words of its own, as for a text."""
        if not self.tokenizer.is_fast:
            raise ValueError("is_split_into_words=True needs a fast tokenizer (for the character offsets)")
        encoding = self.encode(
            item.words,
            is_split_into_words=True,
            stride=params["stride"],
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        rows = self._windows(encoding, params)
        for n, row in enumerate(rows):
            row["offsets"] = [
                (start, end) if word is None else (item.starts[word] + start, item.starts[word] + end)
                for word, (start, end) in zip(encoding.word_ids(n), encoding["offset_mapping"][n], strict=True)
            ]
        return rows

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.runner(inputs)["logits"]}

    def postprocess(self, item: Any, rows: list[Row], outputs: list[dict], params: dict[str, Any]) -> Any:
        strategy, ignore = params["strategy"], params["ignore"]
        text = item.text if isinstance(item, (TextWithOffsets, SplitWords)) else item
        entities = []
        for row, output in zip(rows, outputs, strict=True):
            scores = output["logits"][: len(row["input_ids"])].softmax(-1)
            tokens = self._tokens(text, row, scores)
            if strategy == "none":
                found = [self._token_entity(token) for token in tokens]
            else:
                if strategy == "simple":
                    words = [self._token_entity(token) for token in tokens]
                else:
                    words = self._words(tokens, strategy)
                found = self._group(words)
            entities += [e for e in found if e.get("entity", e.get("entity_group")) not in ignore]
        return merge_overlapping(entities) if len(rows) > 1 else entities

    def _tokens(self, text: str, row: Row, scores: torch.Tensor) -> list[dict[str, Any]]:
        """The text tokens of a window with their scores, characters and whether they continue a word (from the
        fast tokenizer's word ids, else from the word-piece ``##`` prefix)."""
        tokens = []
        word_ids = row.get("word_ids")
        for i, token_id in enumerate(row["input_ids"]):
            if row["special"][i]:
                continue
            start, end = row["offsets"][i]
            word = self.tokenizer.convert_ids_to_tokens(token_id)
            if token_id == self.tokenizer.unk_token_id:
                word = text[start:end]
            tokens.append(
                {
                    "word": word,
                    "scores": scores[i],
                    "start": start,
                    "end": end,
                    "index": row["first_index"] + i,
                    "is_subword": word.startswith("##")
                    if word_ids is None
                    else i > 0 and word_ids[i] is not None and word_ids[i - 1] == word_ids[i],
                }
            )
        return tokens

    def _token_entity(self, token: dict[str, Any]) -> dict[str, Any]:
        best = int(token["scores"].argmax())
        return {
            "entity": self.config.id2label[best],
            "score": float(token["scores"][best]),
            "index": token["index"],
            "word": token["word"],
            "start": token["start"],
            "end": token["end"],
        }

    def _words(self, tokens: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
        """Tokens grouped into words, each word labelled by ``strategy`` (first / average / max)."""
        groups: list[list[dict[str, Any]]] = []
        for token in tokens:
            if groups and token["is_subword"]:
                groups[-1].append(token)
            else:
                groups.append([token])
        words = []
        for group in groups:
            if strategy == "first":
                scores = group[0]["scores"]
            elif strategy == "max":
                scores = max(group, key=lambda t: float(t["scores"].max()))["scores"]
            else:
                scores = torch.stack([t["scores"] for t in group]).mean(0)
            best = int(scores.argmax())
            words.append(
                {
                    "entity": self.config.id2label[best],
                    "score": float(scores[best]),
                    "word": self.tokenizer.convert_tokens_to_string([t["word"] for t in group]),
                    "start": group[0]["start"],
                    "end": group[-1]["end"],
                }
            )
        return words

    def _group(self, words: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Adjacent words with the same tag (not starting with ``B-``) as one entity with their mean score."""
        groups: list[list[dict[str, Any]]] = []
        for word in words:
            bi, tag = split_tag(word["entity"])
            if groups and bi != "B" and split_tag(groups[-1][-1]["entity"])[1] == tag:
                groups[-1].append(word)
            else:
                groups.append([word])
        return [
            {
                "entity_group": group[0]["entity"].split("-", 1)[-1],
                "score": sum(w["score"] for w in group) / len(group),
                "word": self.tokenizer.convert_tokens_to_string([w["word"] for w in group]),
                "start": group[0]["start"],
                "end": group[-1]["end"],
            }
            for group in groups
        ]
