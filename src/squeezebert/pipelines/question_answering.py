"""``question-answering``: extract the answer to a question from a context of any length.

A context that does not fit the window beside the question is read as overlapping windows (``doc_stride`` tokens
shared by neighbours). In each window the start and end probabilities are normalised over the context tokens
(and ``[CLS]``, whose score is the "no answer" score), spans are scored as start x end probability, widened to
whole words, and spans with the same text are merged by adding their scores.
"""

from __future__ import annotations

from typing import Any

import torch

from ..modeling import SqueezeBertForQuestionAnswering
from .base import Pipeline, Row, check_text, check_top_k

MASKED = -10000.0  # logit given to tokens that cannot be part of an answer


def as_question_context(item: Any) -> tuple[str, str]:
    """A ``{"question", "context"}`` dict or a ``(question, context)`` tuple as ``(question, context)``."""
    if isinstance(item, dict):
        if set(item) != {"question", "context"}:
            raise ValueError(f"a question-answering input needs the keys 'question' and 'context', got {sorted(item)}")
        return check_text(item["question"], "question"), check_text(item["context"], "context")
    if isinstance(item, tuple) and len(item) == 2:
        return check_text(item[0], "question"), check_text(item[1], "context")
    raise TypeError(
        f"a question-answering input is a {{'question': ..., 'context': ...}} dict or a (question, context) tuple, "
        f"not {type(item).__name__}"
    )


class QuestionAnsweringPipeline(Pipeline):
    """Find the answer to a question in a context with an extractive question-answering model.

    An input is ``{"question": ..., "context": ...}`` or ``(question, context)``; ``qa(question=..., context=...)``
    works too.

    Call parameters:
        top_k: how many answers (default 1: a single dict; more: a list, best first).
        max_answer_len: the longest answer in tokens (default 15).
        max_seq_len: tokens per window, question included (default: the model window, at most 384).
        doc_stride: context tokens shared by consecutive windows (default: half a window, at most 128).
        max_question_len: the longest question in tokens (default 64); a longer one is cut after its last whole
            word that fits (as Hugging Face documents; its fast-tokenizer code does not cut).
        handle_impossible_answer: also consider "no answer" (``{"answer": "", "start": 0, "end": 0}``), scored
            by ``[CLS]``.
        align_to_words: widen answers to whole words (default ``True``).

    Each answer is ``{"score", "start", "end", "answer"}`` with ``context[start:end] == answer``.
    """

    task = "question-answering"
    model_class = SqueezeBertForQuestionAnswering
    params = (
        "top_k",
        "max_answer_len",
        "max_seq_len",
        "max_question_len",
        "doc_stride",
        "handle_impossible_answer",
        "align_to_words",
    )

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (dict, tuple))

    def __call__(self, inputs: Any = None, *, question: Any = None, context: Any = None, **params: Any) -> Any:
        """Answer ``inputs`` (one input or many), or ``question`` about ``context``."""
        if inputs is None:
            if question is None or context is None:
                raise TypeError("pass inputs, or both question= and context=")
            inputs = {"question": question, "context": context}
        elif question is not None or context is not None:
            raise TypeError("pass either inputs or question= and context=, not both")
        return super().__call__(inputs, **params)

    def prepare(self, params: dict[str, Any]) -> dict[str, Any]:
        top_k = check_top_k(params.get("top_k", 1))
        max_answer_len = check_top_k(params.get("max_answer_len", 15), "max_answer_len")
        max_seq_len = params.get("max_seq_len") or min(self.max_length, 384)
        if isinstance(max_seq_len, bool) or not isinstance(max_seq_len, int) or not 4 <= max_seq_len <= self.max_length:
            raise ValueError(f"max_seq_len must be an int in [4, {self.max_length}], got {max_seq_len!r}")
        doc_stride = params.get("doc_stride")
        doc_stride = min(max_seq_len // 2, 128) if doc_stride is None else doc_stride
        if isinstance(doc_stride, bool) or not isinstance(doc_stride, int) or not 0 <= doc_stride < max_seq_len:
            raise ValueError(f"doc_stride must be an int in [0, max_seq_len={max_seq_len}), got {doc_stride!r}")
        return {
            "top_k": top_k,
            "max_answer_len": max_answer_len,
            "max_seq_len": max_seq_len,
            "max_question_len": check_top_k(params.get("max_question_len", 64), "max_question_len"),
            "doc_stride": doc_stride,
            "handle_impossible_answer": bool(params.get("handle_impossible_answer", False)),
            "align_to_words": bool(params.get("align_to_words", True)),
        }

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Row]:
        if not self.tokenizer.is_fast:
            raise ValueError("question-answering needs character offsets: use a fast tokenizer")
        question, context = as_question_context(item)
        if not question.strip() or not context.strip():
            raise ValueError("question-answering needs a non-empty question and a non-empty context")
        encoding = self.encode(
            self._cut_question(question, params["max_question_len"]),
            context,
            truncation="only_second",
            max_length=params["max_seq_len"],
            stride=params["doc_stride"],
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        rows = self.rows_of(encoding)
        for n, row in enumerate(rows):
            special = encoding["special_tokens_mask"][n]
            row["in_context"] = [t == 1 and not s for t, s in zip(row["token_type_ids"], special, strict=True)]
            row["offsets"] = encoding["offset_mapping"][n]
            row["word_ids"] = encoding.word_ids(n)
        return rows

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.runner(inputs)
        return {"start": out["start_logits"], "end": out["end_logits"]}

    def postprocess(self, item: Any, rows: list[Row], outputs: list[dict], params: dict[str, Any]) -> Any:
        _, context = as_question_context(item)
        answers: dict[str, dict[str, Any]] = {}  # by lower-cased text: the same answer found twice adds up
        null_score = 1.0
        # word alignment can fold several token spans into one answer: look at more candidates then
        candidates_per_window = params["top_k"] * 2 + 10 if params["align_to_words"] else params["top_k"]
        for row, output in zip(rows, outputs, strict=True):
            length = len(row["input_ids"])
            allowed = torch.tensor(row["in_context"])
            allowed[0] = True  # [CLS]: the "no answer" position takes part in the normalisation
            start = output["start"][:length].masked_fill(~allowed, MASKED).softmax(-1)
            end = output["end"][:length].masked_fill(~allowed, MASKED).softmax(-1)
            null_score = min(null_score, float(start[0] * end[0]))
            start[0] = end[0] = 0.0

            # span scores, kept for end >= start, spans of at most max_answer_len tokens, inside the context
            spans = torch.triu(start[:, None] * end[None, :])
            spans = torch.tril(spans, params["max_answer_len"] - 1)
            valid = allowed[:, None] & allowed[None, :] & (spans > 0)
            spans = spans.masked_fill(~valid, -1.0).flatten()
            count = min(candidates_per_window, int(valid.sum()))
            scores, flat = spans.topk(count)
            for score, index in zip(scores.tolist(), flat.tolist(), strict=True):
                s, e = divmod(index, length)
                begin, stop = self._characters(row, s, e, params["align_to_words"])
                text = context[begin:stop]
                seen = answers.get(text.lower())
                if seen is not None:
                    seen["score"] += score
                else:
                    answers[text.lower()] = {"score": score, "start": begin, "end": stop, "answer": text}
        ranked = list(answers.values())
        if params["handle_impossible_answer"]:
            ranked.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        ranked = sorted(ranked, key=lambda a: -a["score"])[: params["top_k"]]
        if params["top_k"] == 1:
            return ranked[0] if ranked else {"score": 0.0, "start": 0, "end": 0, "answer": ""}
        return ranked

    def _cut_question(self, question: str, max_question_len: int) -> str:
        """``question`` cut to at most ``max_question_len`` tokens, after a whole word when one fits."""
        encoding = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoding["input_ids"]) <= max_question_len:
            return question
        word_ids = encoding.word_ids()
        keep = max_question_len
        while keep > 1 and word_ids[keep] == word_ids[keep - 1]:  # token `keep` continues the word: drop it all
            keep -= 1
        if word_ids[keep] == word_ids[keep - 1]:  # one word longer than the limit: cut between its tokens
            keep = max_question_len
        return question[: encoding["offset_mapping"][keep - 1][1]]

    @staticmethod
    def _characters(row: Row, s: int, e: int, align_to_words: bool) -> tuple[int, int]:
        """The characters of the context covered by tokens ``s..e``, widened to whole words when asked."""
        offsets = row["offsets"]
        if not align_to_words:
            return offsets[s][0], offsets[e][1]
        word_ids, in_context = row["word_ids"], row["in_context"]
        first = s
        while first > 0 and in_context[first - 1] and word_ids[first - 1] == word_ids[s]:
            first -= 1
        last = e
        while last + 1 < len(offsets) and in_context[last + 1] and word_ids[last + 1] == word_ids[e]:
            last += 1
        return offsets[first][0], offsets[last][1]
