"""Each pipeline against Hugging Face's on the same checkpoint: same labels, spans and offsets, scores within 1e-4.

The question-answering oracle is transformers 4.57 (5.x dropped that pipeline), run in its own virtual
environment (``.cache/hf457-venv``, built on first use) through a small script.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import transformers
from support.checkpoints import Checkpoints
from support.venvs import oracle_python

import squeezebert

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

ATOL = 1e-4

LONG_TEXT = (
    "John Smith flew from Washington to Paris with Mary Jones. Later, Acme Corporation hired Peter Parker, "
    "who unbelievably moved to Berlin; the Globex company in Springfield then asked Smith to visit London again."
)


def assert_same(ours: Any, theirs: Any, where: str = "result") -> None:
    """Same structure, keys, strings and ints; floats within ATOL."""
    if hasattr(theirs, "item"):  # numpy scalars
        theirs = theirs.item()
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: {ours!r} is not a dict"
        assert set(ours) == set(theirs), f"{where}: keys {sorted(ours)} != {sorted(theirs)}"
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, (list, tuple)), f"{where}: {ours!r} is not a list"
        assert len(ours) == len(theirs), f"{where}: {len(ours)} items != {len(theirs)}\n{ours}\n{theirs}"
        for n, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{n}]")
    elif isinstance(theirs, float):
        assert isinstance(ours, float), f"{where}: {ours!r} is not a float"
        assert abs(ours - theirs) <= ATOL, f"{where}: {ours} != {theirs}"
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


@functools.cache
def both(task: str, folder: Path) -> tuple[Any, Any]:
    """Our pipeline and Hugging Face's on ``folder`` (built once per module)."""
    return squeezebert.pipeline(task, model=folder), transformers.pipeline(task, model=str(folder))


# ----------------------------------------------------------------------------------------------------------------
# fill-mask


@pytest.mark.parametrize(
    "params",
    [{}, {"top_k": 3}, {"targets": ["paris", "london", "city"]}, {"targets": "berlin", "top_k": 2}],
    ids=["default", "top3", "targets", "one-target"],
)
def test_fill_mask(checkpoints: Checkpoints, params: dict[str, Any]) -> None:
    ours, oracle = both("fill-mask", checkpoints["mlm"])
    texts = ["The capital of France is [MASK].", "[MASK] went to the [MASK] yesterday, didn't he?"]
    assert_same(ours(texts, **params), oracle(texts, **params))
    assert_same(ours(texts[0], **params), oracle(texts[0], **params))


def test_fill_mask_target_outside_vocabulary(checkpoints: Checkpoints) -> None:
    ours, oracle = both("fill-mask", checkpoints["mlm"])
    text = "I like [MASK] a lot."
    targets = ["tennis", "zzyzxq"]  # the second one is replaced by its first word piece
    assert_same(ours(text, targets=targets), oracle(text, targets=targets))


# ----------------------------------------------------------------------------------------------------------------
# text-classification

TEXTS = ["I loved this film.", "Terrible, just terrible!", "It was fine, I guess, though a bit long and loud."]


@pytest.mark.parametrize("kind", ["sentiment", "multi-label", "regression"])
@pytest.mark.parametrize("params", [{}, {"top_k": None}, {"top_k": 2}], ids=["default", "all", "top2"])
def test_text_classification(checkpoints: Checkpoints, kind: str, params: dict[str, Any]) -> None:
    ours, oracle = both("text-classification", checkpoints[kind])
    assert_same(ours(TEXTS, **params), oracle(TEXTS, **params))
    assert_same(ours(TEXTS[0], **params), oracle(TEXTS[0], **params))


@pytest.mark.parametrize("function", ["softmax", "sigmoid", "none"])
def test_text_classification_function_to_apply(checkpoints: Checkpoints, function: str) -> None:
    ours, oracle = both("text-classification", checkpoints["sentiment"])
    assert_same(
        ours(TEXTS, function_to_apply=function, top_k=None), oracle(TEXTS, function_to_apply=function, top_k=None)
    )


def test_text_classification_pairs(checkpoints: Checkpoints) -> None:
    ours, oracle = both("text-classification", checkpoints["nli"])
    pairs = [("A man plays a guitar.", "A person makes music."), ("The cat sleeps.", "The dog barks loudly.")]
    expected = oracle([{"text": a, "text_pair": b} for a, b in pairs], top_k=None)
    assert_same(ours(pairs, top_k=None), expected)
    assert_same(ours([{"text": a, "text_pair": b} for a, b in pairs], top_k=None), expected)
    assert_same(ours(pairs[0]), oracle({"text": pairs[0][0], "text_pair": pairs[0][1]}))


# ----------------------------------------------------------------------------------------------------------------
# zero-shot-classification


@pytest.mark.parametrize("kind", ["nli", "nli-reversed"])
@pytest.mark.parametrize(
    "params",
    [
        {"candidate_labels": ["sports", "politics", "cooking"]},
        {"candidate_labels": "sports, politics, cooking, travel", "multi_label": True},
        {"candidate_labels": ["travel"]},
        {"candidate_labels": ["happy", "sad"], "hypothesis_template": "The writer feels {}."},
    ],
    ids=["single-label", "multi-label", "one-label", "template"],
)
def test_zero_shot(checkpoints: Checkpoints, kind: str, params: dict[str, Any]) -> None:
    ours, oracle = both("zero-shot-classification", checkpoints[kind])
    assert_same(ours(TEXTS, **params), oracle(TEXTS, **params))
    assert_same(ours(TEXTS[1], **params), oracle(TEXTS[1], **params))


# ----------------------------------------------------------------------------------------------------------------
# token-classification


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_short(checkpoints: Checkpoints, strategy: str) -> None:
    ours, oracle = both("token-classification", checkpoints["ner"])
    texts = ["John Smithson visited Washington.", "Mary works at Acme in Paris, unbelievably."]
    assert_same(ours(texts, aggregation_strategy=strategy), oracle(texts, aggregation_strategy=strategy))


@pytest.mark.parametrize("strategy", ["simple", "first", "average", "max"])
@pytest.mark.parametrize("stride", [4, 9])
def test_token_classification_long_windows(checkpoints: Checkpoints, strategy: str, stride: int) -> None:
    ours, oracle = both("token-classification", checkpoints["ner"])
    expected = oracle(LONG_TEXT, aggregation_strategy=strategy, stride=stride)
    got = ours(LONG_TEXT, aggregation_strategy=strategy, stride=stride)
    assert_same(got, expected)
    assert got[-1]["end"] > len(LONG_TEXT) - 10  # the windows cover the whole text
    for entity in got:
        assert LONG_TEXT[entity["start"] : entity["end"]].lower().replace(" ", "") == entity["word"].replace(
            " ", ""
        ).replace("##", "")


def test_token_classification_ignore_labels(checkpoints: Checkpoints) -> None:
    ours, oracle = both("token-classification", checkpoints["ner"])
    text = "John Smith visited Washington."
    for ignore in ([], ["O", "B-PER", "I-PER"]):
        assert_same(ours(text, ignore_labels=ignore), oracle(text, ignore_labels=ignore))
        assert_same(
            ours(text, ignore_labels=ignore, aggregation_strategy="simple"),
            oracle(text, ignore_labels=ignore, aggregation_strategy="simple"),
        )


def test_ner_alias(checkpoints: Checkpoints) -> None:
    ours = squeezebert.pipeline("ner", model=checkpoints["ner"])
    oracle = transformers.pipeline("ner", model=str(checkpoints["ner"]))
    assert_same(ours("Peter Parker lives in Berlin."), oracle("Peter Parker lives in Berlin."))


# ----------------------------------------------------------------------------------------------------------------
# question-answering: transformers 4.57 in its own environment

QA_CONTEXT = (
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris. It was designed by the engineering "
    "company of Gustave Eiffel, and for four decades it remained the tallest man-made structure in the world. "
    "Unbelievably, millions of people still visit it every year, most of them in the summer."
)
QA_CASES = [
    ("Who designed the tower?", QA_CONTEXT, {}),
    ("Who designed the tower?", QA_CONTEXT, {"top_k": 3}),
    ("When was it completed?", QA_CONTEXT, {"top_k": 3, "max_seq_len": 32, "doc_stride": 8}),
    ("Where is it?", QA_CONTEXT, {"top_k": 2, "max_seq_len": 40, "doc_stride": 12, "max_answer_len": 3}),
    ("Is it tall?", QA_CONTEXT, {"top_k": 3, "handle_impossible_answer": True, "max_seq_len": 48, "doc_stride": 16}),
    ("Is it tall?", QA_CONTEXT, {"top_k": 2, "align_to_words": False, "max_seq_len": 36, "doc_stride": 10}),
    ("What?", "Gustave Eiffel.", {"top_k": 2}),
]

ORACLE_SCRIPT = """
import json, sys
import transformers
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
job = json.load(sys.stdin)
qa = transformers.pipeline("question-answering", model=job["model"])
out = [qa(question=q, context=c, **kw) for q, c, kw in job["cases"]]
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="session")
def hf457_python() -> Path:
    """The Python of a virtual environment with transformers 4.57.6 (built once into .cache/hf457-venv)."""
    return oracle_python("hf457-venv", ("transformers==4.57.6",))


def test_question_answering(checkpoints: Checkpoints, hf457_python: Path) -> None:
    folder = checkpoints["qa"]
    job = json.dumps({"model": str(folder), "cases": QA_CASES})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [str(hf457_python), "-c", ORACLE_SCRIPT], input=job, capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    expected = json.loads(done.stdout)

    qa = squeezebert.pipeline("question-answering", model=folder)
    for (question, context, params), want in zip(QA_CASES, expected, strict=True):
        got = qa(question=question, context=context, **params)
        assert_same(got, want, f"{question!r} {params}")
        for answer in got if isinstance(got, list) else [got]:
            assert context[answer["start"] : answer["end"]] == answer["answer"]
    # batched, with the inputs as dicts and tuples, and several windows per input
    batch = [{"question": q, "context": c} for q, c, _ in QA_CASES[:3]] + [(QA_CASES[3][0], QA_CASES[3][1])]
    answers = qa(batch, max_seq_len=32, doc_stride=8, top_k=3)
    assert_same(answers[0], qa(batch[0], max_seq_len=32, doc_stride=8, top_k=3))
    assert_same(answers[2], expected[2])
