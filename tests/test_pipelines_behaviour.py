"""Pipelines without an HF counterpart (multiple choice, embeddings: hand-derived values), batching, streaming,
progress bars, long-input windows, and bad arguments."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from support.checkpoints import Checkpoints

import squeezebert
from squeezebert import AutoTokenizer

TEXTS = [
    "A short one.",
    "This text is quite a bit longer than the first one, so it needs more padding around it.",
    "Medium length text here, [MASK] indeed.",
    "x",
    "Paris is the capital of France and the [MASK] city of the country, with many museums.",
    "Two words",
    "Another sentence of a medium length, no more.",
    "The last one [MASK].",
    "Unbelievably long words: antidisestablishmentarianism, floccinaucinihilipilification.",
]


@functools.cache
def make(task: str, folder: Path, **kwargs: Any) -> Any:
    return squeezebert.pipeline(task, model=folder, **kwargs)


def assert_close_results(a: Any, b: Any, atol: float = 1e-5) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_close_results(a[key], b[key], atol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_close_results(x, y, atol)
    elif isinstance(a, float):
        assert abs(a - b) <= atol, (a, b)
    else:
        assert a == b


# ----------------------------------------------------------------------------------------------------------------
# Batching: the same results, in input order, whatever the batch size; streams for generators

CASES = {
    "fill-mask": ("mlm", [t for t in TEXTS if "[MASK]" in t], {"top_k": 3}),
    "text-classification": ("sentiment", TEXTS + [("premise here", "and a hypothesis")], {"top_k": None}),
    "zero-shot-classification": ("nli", TEXTS, {"candidate_labels": ["a", "b", "c"]}),
    "token-classification": ("ner", TEXTS, {"aggregation_strategy": "simple"}),
    "question-answering": ("qa", [{"question": "Which one?", "context": t} for t in TEXTS[:6]], {"top_k": 2}),
    "multiple-choice": ("choice", [(t, ["yes", "no", "maybe so"]) for t in TEXTS[:5]], {}),
    "embeddings": ("mlm", TEXTS, {}),
    "feature-extraction": ("mlm", TEXTS[:4], {}),
}


@pytest.mark.parametrize("task", list(CASES))
def test_batch_sizes_agree_and_keep_order(checkpoints: Checkpoints, task: str) -> None:
    kind, inputs, params = CASES[task]
    one_by_one = [make(task, checkpoints[kind], batch_size=1)(item, **params) for item in inputs]
    batched = make(task, checkpoints[kind], batch_size=8)(inputs, **params)
    assert_close_results(batched, one_by_one)
    streamed = make(task, checkpoints[kind], batch_size=3)(iter(inputs), **params)
    assert_close_results(list(streamed), one_by_one)


def test_generator_input_streams(checkpoints: Checkpoints) -> None:
    pipe = make("text-classification", checkpoints["sentiment"], batch_size=2)
    pulled = []

    def texts():
        for text in TEXTS:
            pulled.append(text)
            yield text

    stream = pipe(texts())
    assert not isinstance(stream, list) and not pulled  # nothing runs before the first result is asked for
    first = next(stream)
    assert len(pulled) <= 2  # only the first sub-batch was read
    rest = list(stream)
    assert_close_results([first, *rest], [pipe(text)[0] for text in TEXTS])


def test_dataset_like_input_streams(checkpoints: Checkpoints) -> None:
    class Dataset:  # has __len__ and __iter__ but is not a list
        def __len__(self) -> int:
            return len(TEXTS)

        def __iter__(self):
            return iter(TEXTS)

    pipe = make("embeddings", checkpoints["mlm"])
    results = pipe(Dataset())
    assert not isinstance(results, list)
    assert_close_results(list(results), pipe(TEXTS))


def test_progress_bar(checkpoints: Checkpoints, capsys: pytest.CaptureFixture) -> None:
    pipe = make("embeddings", checkpoints["mlm"])
    pipe(TEXTS)  # stderr is not a terminal: no bar
    assert "embeddings" not in capsys.readouterr().err
    shown = squeezebert.pipeline("embeddings", model=checkpoints["mlm"], progress=True)
    shown(TEXTS)
    err = capsys.readouterr().err
    assert "embeddings" in err and f"{len(TEXTS)}/{len(TEXTS)}" in err


def test_sorting_cuts_padding(checkpoints: Checkpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = squeezebert.pipeline("embeddings", model=checkpoints["mlm"], batch_size=3)
    widths = []
    forward = pipe.forward
    monkeypatch.setattr(pipe, "forward", lambda inputs: widths.append(inputs["input_ids"].shape) or forward(inputs))
    pipe(TEXTS)
    lengths = sorted(len(pipe.tokenizer(t)["input_ids"]) for t in TEXTS)
    assert [w[1] for w in widths] == [max(lengths[i : i + 3]) for i in range(0, len(lengths), 3)]


# ----------------------------------------------------------------------------------------------------------------
# Multiple choice and embeddings: hand-derived expectations


def test_multiple_choice_matches_the_model(checkpoints: Checkpoints) -> None:
    folder = checkpoints["choice"]
    model = squeezebert.SqueezeBertForMultipleChoice.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt, choices = "The chef tasted the soup and", ["added salt.", "flew to the moon on a spoon.", "smiled."]
    logits = []
    with torch.no_grad():
        for choice in choices:  # each choice alone, as a [1, 1, seq] batch
            encoded = tokenizer(prompt, choice, return_tensors="pt")
            logits.append(model(**{k: v[None] for k, v in encoded.items()}).logits[0, 0])
    expected = torch.stack(logits).softmax(0)
    pipe = make("multiple-choice", folder)
    for item in ({"prompt": prompt, "choices": choices}, (prompt, choices)):
        result = pipe(item)
        assert result["choices"] == choices
        torch.testing.assert_close(torch.tensor(result["scores"]), expected, atol=1e-5, rtol=1e-5)
        assert result["answer"] == choices[int(expected.argmax())]
    # inputs with different numbers of choices in one batch
    mixed = pipe([(prompt, choices), (prompt, choices[:2]), {"prompt": "Then", "choices": ["one"]}])
    assert_close_results(mixed[0], pipe((prompt, choices)))
    assert len(mixed[1]["scores"]) == 2 and mixed[2]["scores"] == [1.0]


def test_embeddings_match_the_encoder(checkpoints: Checkpoints) -> None:
    folder = checkpoints["mlm"]
    encoder = squeezebert.SqueezeBertModel.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = "Embeddings are vectors."
    with torch.no_grad():
        hidden = encoder(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
    features = make("feature-extraction", folder)
    embeddings = make("embeddings", folder)

    # feature-extraction keeps Hugging Face's batch level of 1 on each result; embeddings does not
    torch.testing.assert_close(torch.tensor(features(text)), hidden[None], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features(text, return_tensors=True), hidden[None], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features(text, pooling="cls"), [hidden[0].tolist()], atol=1e-5, rtol=1e-5)
    mean = hidden.mean(0)
    torch.testing.assert_close(features(text, pooling="mean"), [mean.tolist()], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(embeddings(text), F.normalize(mean, dim=0).tolist(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        embeddings(text, pooling="cls"), F.normalize(hidden[0], dim=0).tolist(), atol=1e-5, rtol=1e-5
    )
    assert abs(float(torch.tensor(embeddings(text)).norm()) - 1.0) < 1e-5
    # the mean ignores padding: batched with a longer text it is unchanged
    batched = embeddings([text, TEXTS[1]], normalize=False)
    torch.testing.assert_close(batched[0], mean.tolist(), atol=1e-5, rtol=1e-5)


def test_embeddings_accept_a_head_model_object(checkpoints: Checkpoints) -> None:
    model = squeezebert.SqueezeBertForMaskedLM.from_pretrained(checkpoints["mlm"])
    pipe = squeezebert.pipeline("embeddings", model=model, tokenizer=checkpoints["mlm"])
    assert_close_results(pipe(TEXTS[:3]), make("embeddings", checkpoints["mlm"])(TEXTS[:3]))


def test_int8(checkpoints: Checkpoints) -> None:
    float_pipe = make("embeddings", checkpoints["mlm"])
    int8_pipe = squeezebert.pipeline("embeddings", model=checkpoints["mlm"], int8=True)
    assert int8_pipe.model is not float_pipe.model
    for a, b in zip(int8_pipe(TEXTS), float_pipe(TEXTS), strict=True):
        assert float(torch.tensor(a) @ torch.tensor(b)) > 0.98  # unit vectors: cosine similarity
    with pytest.raises(ValueError, match="CPU"):
        squeezebert.pipeline("embeddings", model=checkpoints["mlm"], int8=True, device="meta")


# ----------------------------------------------------------------------------------------------------------------
# Long inputs


def test_token_classification_windows_without_aggregation(checkpoints: Checkpoints) -> None:
    folder = checkpoints["ner"]
    pipe = make("ner", folder)
    text = " ".join(TEXTS)
    tokens = pipe(text, ignore_labels=[], stride=5)
    encoded = pipe.tokenizer(text, return_offsets_mapping=True)
    assert len(encoded["input_ids"]) > 3 * pipe.max_length  # several windows
    # one entry per token of the whole text, with its index and offsets in the full encoding
    assert [t["index"] for t in tokens] == list(range(1, len(encoded["input_ids"]) - 1))
    for token in tokens:
        assert (token["start"], token["end"]) == tuple(encoded["offset_mapping"][token["index"]])
        assert token["word"] == pipe.tokenizer.convert_ids_to_tokens(encoded["input_ids"][token["index"]])


def test_fill_mask_beyond_the_window(checkpoints: Checkpoints) -> None:
    pipe = squeezebert.pipeline("fill-mask", model=checkpoints["mlm"], max_length=16)
    with pytest.raises(ValueError, match=r"no \[MASK\]"):
        pipe("word " * 40 + "[MASK].")


# ----------------------------------------------------------------------------------------------------------------
# Bad arguments


def test_bad_arguments(checkpoints: Checkpoints) -> None:
    with pytest.raises(ValueError, match="unknown task"):
        squeezebert.pipeline("translation", model=checkpoints["mlm"])
    with pytest.raises(ValueError, match="no default"):
        squeezebert.pipeline("question-answering")
    with pytest.raises(ValueError, match="batch_size"):
        squeezebert.pipeline("fill-mask", model=checkpoints["mlm"], batch_size=0)
    with pytest.raises(TypeError, match="SqueezeBertForMaskedLM"):
        squeezebert.pipeline(
            "fill-mask",
            model=squeezebert.SqueezeBertModel.from_pretrained(checkpoints["mlm"]),
            tokenizer=checkpoints["mlm"],
        )
    with pytest.raises(ValueError, match="tokenizer is required"):
        squeezebert.pipeline("fill-mask", model=squeezebert.SqueezeBertForMaskedLM.from_pretrained(checkpoints["mlm"]))
    fill = make("fill-mask", checkpoints["mlm"])
    with pytest.raises(ValueError, match=r"no \[MASK\]"):
        fill("no mask here")
    with pytest.raises(TypeError, match="unknown parameter"):
        fill("a [MASK]", topk=3)
    with pytest.raises(ValueError, match="top_k"):
        fill("a [MASK]", top_k=0)
    with pytest.raises(TypeError, match="fill-mask input must be a string"):
        fill([3])
    zero = make("zero-shot-classification", checkpoints["nli"])
    with pytest.raises(ValueError, match="candidate_labels"):
        zero("text")
    with pytest.raises(ValueError, match="hypothesis_template"):
        zero("text", candidate_labels=["a"], hypothesis_template="no slot")
    with pytest.raises(ValueError, match="entailment"):
        squeezebert.pipeline("zero-shot-classification", model=checkpoints["sentiment"])
    with pytest.raises(ValueError, match="aggregation_strategy"):
        make("ner", checkpoints["ner"])("text", aggregation_strategy="best")
    qa = make("question-answering", checkpoints["qa"])
    with pytest.raises(ValueError, match="'question' and 'context'"):
        qa({"question": "q"})
    with pytest.raises(ValueError, match="doc_stride"):
        qa(question="q", context="c", doc_stride=1000)
    with pytest.raises(ValueError, match="choices"):
        make("multiple-choice", checkpoints["choice"])(("prompt", []))
    with pytest.raises(ValueError, match="pooling"):
        make("embeddings", checkpoints["mlm"])("text", pooling="max")
