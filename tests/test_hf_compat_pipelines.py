"""Pipeline calls written for Hugging Face's ``transformers.pipeline`` run unchanged on ours: feature-extraction's
nesting, ``batch_size`` / ``num_workers`` at call time, and each task's per-call parameters (compared with the
oracle on the same checkpoint, or with hand-derived results where the oracle no longer has the parameter)."""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from support.checkpoints import Checkpoints
from test_pipelines_oracle import assert_same, hf457_python  # noqa: F401  (hf457_python is a fixture)

import squeezebert
from squeezebert.pipelines import Pipeline

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

TEXT = "Feature vectors of a short text."
TEXTS = [TEXT, "A second, rather longer text that needs some padding next to the first one.", "Third."]
LONG_TEXT = "one two three four five six seven eight nine ten " * 80  # > 512 tokens


@functools.cache
def ours(task: str, folder: Path, **kwargs: Any) -> Any:
    return squeezebert.pipeline(task, model=folder, **kwargs)


@functools.cache
def oracle(task: str, folder: Path) -> Any:
    return transformers.pipeline(task, model=str(folder))


# ----------------------------------------------------------------------------------------------------------------
# feature-extraction: Hugging Face's [1][tokens][hidden] nesting and its call options


def test_feature_extraction_nesting_matches_hf(checkpoints: Checkpoints) -> None:
    folder = checkpoints["mlm"]
    pipe, hf = ours("feature-extraction", folder), oracle("feature-extraction", folder)
    one = pipe(TEXT)
    assert len(one) == 1 and len(one[0]) == len(pipe.tokenizer(TEXT)["input_ids"])  # [1][tokens][hidden]
    assert_same(one, hf(TEXT))
    assert_same(pipe(TEXTS), hf(TEXTS))  # a list of those (HF's default batch_size=1: no padding)
    tensor = pipe(TEXT, return_tensors=True)
    expected = hf(TEXT, return_tensors=True)
    assert tensor.shape == expected.shape == (1, len(one[0]), pipe.config.hidden_size)
    torch.testing.assert_close(tensor, expected, atol=1e-4, rtol=0)


def test_feature_extraction_pooled_results_keep_the_batch_level(checkpoints: Checkpoints) -> None:
    pipe = ours("feature-extraction", checkpoints["mlm"])
    tokens = torch.tensor(pipe(TEXT))[0]
    assert_same(pipe(TEXT, pooling="cls"), [tokens[0].tolist()])
    assert_same(pipe(TEXT, pooling="mean"), [tokens.mean(0).tolist()])
    # embeddings is ours, not HF's: one plain vector per text
    embedding = ours("embeddings", checkpoints["mlm"])(TEXT)
    assert_same(embedding, torch.nn.functional.normalize(tokens.mean(0), dim=0).tolist())


@pytest.mark.parametrize(
    "options",
    [
        {"tokenize_kwargs": {"truncation": True, "max_length": 12}},
        {"truncation": True, "tokenize_kwargs": {"max_length": 12}},
        {"tokenize_kwargs": {"padding": "max_length", "max_length": 40}},
        {"tokenize_kwargs": {"add_special_tokens": False}},
    ],
    ids=["truncate", "truncation-param", "pad", "no-special-tokens"],
)
def test_feature_extraction_tokenizer_options_match_hf(checkpoints: Checkpoints, options: dict[str, Any]) -> None:
    folder = checkpoints["mlm"]
    text = TEXTS[1]
    got = ours("feature-extraction", folder)(text, **options)
    assert_same(got, oracle("feature-extraction", folder)(text, **options))
    if "max_length" in options["tokenize_kwargs"]:
        assert len(got[0]) == options["tokenize_kwargs"]["max_length"]


def test_feature_extraction_bad_tokenizer_options(checkpoints: Checkpoints) -> None:
    pipe = ours("feature-extraction", checkpoints["mlm"])
    with pytest.raises(ValueError, match="truncation is given twice"):
        pipe(TEXT, truncation=True, tokenize_kwargs={"truncation": False})
    with pytest.raises(ValueError, match="twice"):  # the oracle refuses it too
        oracle("feature-extraction", checkpoints["mlm"])(TEXT, truncation=True, tokenize_kwargs={"truncation": False})
    with pytest.raises(ValueError, match=r"max_position_embeddings \(512\)"):
        pipe(LONG_TEXT, truncation=False)
    assert len(pipe(LONG_TEXT)[0]) == 512  # truncated to the window by default
    with pytest.raises(ValueError, match="return_tensors"):
        pipe(TEXT, tokenize_kwargs={"return_tensors": "np"})
    with pytest.raises(TypeError, match="tokenize_kwargs must be a dict"):
        pipe(TEXT, tokenize_kwargs=["truncation"])
    with pytest.raises(ValueError, match="return_overflowing_tokens"):
        pipe(TEXT, tokenize_kwargs={"max_length": 6, "return_overflowing_tokens": True})


# ----------------------------------------------------------------------------------------------------------------
# batch_size and num_workers at call time, for every task

CALLS = {
    "fill-mask": ("mlm", ["Paris is the [MASK] of France.", "I [MASK] it.", "[MASK]!"], {"top_k": 2}),
    "text-classification": ("sentiment", TEXTS, {"top_k": None}),
    "zero-shot-classification": ("nli", TEXTS, {"candidate_labels": ["x", "y"]}),
    "token-classification": ("ner", TEXTS, {"aggregation_strategy": "simple"}),
    "question-answering": ("qa", [{"question": "Which?", "context": t} for t in TEXTS], {}),
    "multiple-choice": ("choice", [(t, ["a", "b"]) for t in TEXTS], {}),
    "feature-extraction": ("mlm", TEXTS, {}),
    "embeddings": ("mlm", TEXTS, {}),
}


@pytest.mark.parametrize("task", list(CALLS))
def test_batch_size_and_num_workers_at_call_time(checkpoints: Checkpoints, task: str) -> None:
    kind, inputs, params = CALLS[task]
    pipe = squeezebert.pipeline(task, model=checkpoints[kind], batch_size=1, num_workers=0)
    sizes: list[int] = []
    forward = pipe.forward
    pipe.forward = lambda batch: sizes.append(len(batch["input_ids"])) or forward(batch)
    expected = pipe(inputs, **params)
    rows = len(sizes)
    assert sizes == [1] * rows
    sizes.clear()
    assert_same(pipe(inputs, batch_size=2, num_workers=4, **params), expected)
    assert sizes == [2] * (rows // 2) + [1] * (rows % 2)  # this call's batch size, the pipeline's unchanged
    sizes.clear()
    assert_same(list(pipe(iter(inputs), batch_size=3, **params)), expected)
    assert max(sizes) <= 3
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        pipe(inputs, batch_size=0, **params)
    with pytest.raises(ValueError, match="num_workers must be an int >= 0"):
        pipe(inputs, num_workers=-1, **params)


# ----------------------------------------------------------------------------------------------------------------
# The per-call parameters: ours cover Hugging Face's


def accepted(pipe: Pipeline) -> set[str]:
    """The keyword arguments a call of ``pipe`` accepts."""
    names = set(pipe.params)
    for method in (type(pipe).__call__, Pipeline.__call__):
        for name, parameter in inspect.signature(method).parameters.items():
            if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD) and name != "self":
                names.add(name)
    return names


def hf_parameters(pipeline_class: type) -> set[str]:
    """The call parameters of a Hugging Face pipeline class: its ``_sanitize_parameters`` arguments, or the
    ``kwargs["..."]`` it reads, and the base class's ``batch_size`` / ``num_workers``."""
    method = pipeline_class._sanitize_parameters
    names = {
        name
        for name, parameter in inspect.signature(method).parameters.items()
        if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD) and name != "self"
    }
    names |= set(re.findall(r"kwargs\[\"(\w+)\"\]", inspect.getsource(method)))
    return names | {"batch_size", "num_workers"}


# what HF 5.x accepts and we do not (yet): pre-split words for token-classification
HF_CLASSES = {
    "feature-extraction": ("mlm", "FeatureExtractionPipeline"),
    "fill-mask": ("mlm", "FillMaskPipeline"),
    "text-classification": ("sentiment", "TextClassificationPipeline"),
    "zero-shot-classification": ("nli", "ZeroShotClassificationPipeline"),
    "token-classification": ("ner", "TokenClassificationPipeline"),
}


@pytest.mark.parametrize("task", list(HF_CLASSES))
def test_call_parameters_cover_hf(checkpoints: Checkpoints, task: str) -> None:
    kind, class_name = HF_CLASSES[task]
    theirs = hf_parameters(getattr(transformers, class_name))
    assert len(theirs) > 2  # the inspection found the task's own parameters
    missing = theirs - accepted(ours(task, checkpoints[kind]))
    assert not missing, f"{task}: HF accepts {sorted(missing)}, we do not"


@pytest.mark.parametrize("task", list(CALLS))
def test_unknown_call_parameters_are_named(checkpoints: Checkpoints, task: str) -> None:
    kind, inputs, params = CALLS[task]
    with pytest.raises(TypeError, match="unknown parameter.*no_such_option"):
        ours(task, checkpoints[kind])(inputs[0], no_such_option=1, **params)


# ----------------------------------------------------------------------------------------------------------------
# fill-mask: tokenizer_kwargs


def test_fill_mask_tokenizer_kwargs_match_hf(checkpoints: Checkpoints) -> None:
    folder = checkpoints["mlm"]
    text = "The [MASK] of the story is " + "very " * 30 + "long."
    options = {"tokenizer_kwargs": {"truncation": True, "max_length": 10}, "top_k": 3}
    assert_same(ours("fill-mask", folder)(text, **options), oracle("fill-mask", folder)(text, **options))
    with pytest.raises(ValueError, match=r"no \[MASK\]"):  # the mask was cut off
        ours("fill-mask", folder)("word " * 20 + "[MASK]", tokenizer_kwargs={"max_length": 8})


# ----------------------------------------------------------------------------------------------------------------
# text-classification: tokenizer options, and transformers 4.x's return_all_scores


@pytest.mark.parametrize(
    "options",
    [{"truncation": True, "max_length": 6}, {"padding": "max_length", "max_length": 32}, {"max_length": 5}],
    ids=["truncate", "pad", "max-length-only"],
)
def test_text_classification_tokenizer_options_match_hf(checkpoints: Checkpoints, options: dict[str, Any]) -> None:
    folder = checkpoints["sentiment"]
    for call in ({}, {"top_k": None}):
        expected = [oracle("text-classification", folder)(text, **options, **call) for text in TEXTS]
        assert_same(ours("text-classification", folder)(TEXTS, **options, **call), [*map(_unwrap, expected)])


def _unwrap(result: Any) -> Any:
    """HF gives ``[best]`` for one string without top_k, as we do; a list call gives the bare ``best``."""
    return result[0] if isinstance(result, list) and len(result) == 1 else result


def test_text_classification_return_all_scores(checkpoints: Checkpoints) -> None:
    pipe = ours("text-classification", checkpoints["sentiment"])
    ranked = pipe(TEXTS, top_k=None)
    labels = list(pipe.config.id2label.values())
    in_label_order = [sorted(result, key=lambda d: labels.index(d["label"])) for result in ranked]
    assert [d["label"] for d in ranked[0]] != labels or [d["label"] for d in ranked[1]] != labels  # order matters
    with pytest.warns(FutureWarning, match="top_k=None"):
        assert_same(pipe(TEXTS, return_all_scores=True), in_label_order)
    with pytest.warns(FutureWarning):
        assert_same(pipe(TEXTS[0], return_all_scores=True), [in_label_order[0]])  # 4.x: [[...]] for one string
    with pytest.warns(FutureWarning):
        assert_same(pipe(TEXTS[0], return_all_scores=False), pipe(TEXTS[0]))
    assert_same(pipe(TEXTS, return_all_scores=True, top_k=2), [r[:2] for r in ranked])  # top_k wins


# ----------------------------------------------------------------------------------------------------------------
# token-classification: offset_mapping


def test_token_classification_offset_mapping_matches_hf(checkpoints: Checkpoints) -> None:
    folder = checkpoints["ner"]
    texts = ["John Smithson visited Washington.", "Mary works at Acme in Paris."]
    hf = oracle("token-classification", folder)
    pipe = ours("token-classification", folder)
    lengths = [len(pipe.tokenizer(text)["input_ids"]) for text in texts]
    # made-up offsets: token i covers character i (HF reads them for start, end and unknown words)
    made_up = [[(0, 0)] + [(i, i + 1) for i in range(n - 2)] + [(0, 0)] for n in lengths]
    for strategy in ("none", "simple"):
        options = {"aggregation_strategy": strategy, "ignore_labels": []}
        # HF 5.24 takes one text's offsets (its batch form, one list per text, fails with an IndexError)
        expected = [hf(text, offset_mapping=offsets, **options) for text, offsets in zip(texts, made_up, strict=True)]
        assert_same(pipe(texts, offset_mapping=made_up, **options), expected)
        assert_same(pipe(texts[0], offset_mapping=made_up[0], **options), expected[0])
        assert (expected[0][0]["start"], expected[0][0]["end"]) == (0, 1)  # the made-up offsets, not the real ones
    # a slow tokenizer has no offsets of its own: given them, it gives the fast tokenizer's results
    slow = squeezebert.pipeline(
        "token-classification", model=folder, tokenizer=squeezebert.SqueezeBertTokenizer.from_pretrained(folder)
    )
    real = [pipe.tokenizer(text, return_offsets_mapping=True)["offset_mapping"] for text in texts]
    for strategy in ("none", "simple"):
        assert_same(
            slow(texts, offset_mapping=real, aggregation_strategy=strategy), pipe(texts, aggregation_strategy=strategy)
        )
    with pytest.raises(ValueError, match="offset_mapping has 3 pairs"):
        pipe(texts[0], offset_mapping=[(0, 0), (0, 4), (0, 0)])
    with pytest.raises(ValueError, match="one list of offsets per input"):
        pipe(texts, offset_mapping=made_up[:1])
    with pytest.raises(TypeError, match="offset_mapping must be a list"):
        pipe(texts[0], offset_mapping="0-4")


# ----------------------------------------------------------------------------------------------------------------
# question-answering: max_question_len, and the 4.57 oracle's parameters

QA_PARAMETERS_SCRIPT = """
import inspect, json
from transformers import QuestionAnsweringPipeline
signature = inspect.signature(QuestionAnsweringPipeline._sanitize_parameters)
print(json.dumps(sorted(n for n, p in signature.parameters.items() if n not in ("self", "kwargs"))))
"""
QA_NOT_SUPPORTED = {"padding", "topk"}  # padding changes no result; topk is 4.x's deprecated spelling of top_k


def test_question_answering_parameters_cover_hf457(checkpoints: Checkpoints, hf457_python: Path) -> None:  # noqa: F811
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(hf457_python), "-c", QA_PARAMETERS_SCRIPT], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = set(json.loads(done.stdout)) | {"batch_size", "num_workers"}
    assert "max_question_len" in theirs
    assert not theirs - accepted(ours("question-answering", checkpoints["qa"])) - QA_NOT_SUPPORTED


def test_question_answering_max_question_len(checkpoints: Checkpoints) -> None:
    qa = ours("question-answering", checkpoints["qa"])
    context = "The Eiffel Tower was completed in 1889 by the company of Gustave Eiffel in Paris."
    question = "Who unbelievably designed the tower in Paris?"  # who / un ##bel ##ie ##va ##bly / designed ...
    pieces = qa.tokenizer.tokenize(question)
    assert pieces[1:3] == ["un", "##bel"]
    # 3 tokens would split "unbelievably": the question is cut after "Who"; 7 tokens end after "designed"
    assert_same(qa(question=question, context=context, max_question_len=3), qa(question="Who", context=context))
    cut = qa(question="Who unbelievably designed", context=context)
    assert_same(qa(question=question, context=context, max_question_len=7), cut)
    assert_same(
        qa(question=question, context=context, max_question_len=len(pieces)), qa(question=question, context=context)
    )
    # one word longer than the limit is cut between its tokens
    assert qa._cut_question("unbelievably", 2) == "unbel"
    with pytest.raises(ValueError, match="max_question_len"):
        qa(question=question, context=context, max_question_len=0)
