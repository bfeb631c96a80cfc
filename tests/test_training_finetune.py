"""Fine-tuning end to end through the training command: every task, the saved folder (loadable by
``from_pretrained`` and the pipelines), metrics logs, gradient accumulation, LAMB, bf16, distillation, bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from test_training_common import (
    NEGATIVE,
    POSITIVE,
    max_weight_difference,
    sentiment_workspace,
    train,
    write_config,
    write_conll,
    write_csv,
    write_jsonl,
)

import squeezebert
from squeezebert.pipelines import pipeline


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sentiment_workspace(tmp_path_factory.mktemp("finetune"), train_rows=96, validation_rows=24)


def _common(ws: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--config",
        str(ws["config"]),
        "--tokenizer",
        str(ws["tokenizer"]),
        "--output-dir",
        str(out),
        "--max-length",
        "32",
        *extra,
    ]


@pytest.fixture(scope="module")
def classifier(workspace: dict[str, Path]) -> Path:
    """A sentiment classifier trained from random weights (also the distillation teacher)."""
    out = workspace["root"] / "classifier"
    argv = _common(
        workspace, out, "--train-file", str(workspace["train"]), "--validation-file", str(workspace["valid"])
    )
    assert train([*argv, "--epochs", "8", "--batch-size", "8", "--learning-rate", "3e-3", "--seed", "0"]) == 0
    return out


def test_sequence_classification_learns_and_saves_a_pipeline_ready_folder(classifier: Path) -> None:
    summary = json.loads((classifier / "training_summary.json").read_text())
    assert summary["metric_for_best"] == "accuracy"
    assert summary["best_metric"] >= 0.9, summary
    assert summary["epochs_completed"] == 8

    model = squeezebert.SqueezeBertForSequenceClassification.from_pretrained(classifier)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert model.config.problem_type == "single_label_classification"

    classify = pipeline("text-classification", model=str(classifier))
    assert classify("the movie was great")[0]["label"] == "pos"
    assert classify("the movie was awful")[0]["label"] == "neg"

    records = [json.loads(line) for line in (classifier / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval" in r]
    assert len(evals) == 8 and all({"accuracy", "f1", "matthews_corrcoef", "loss"} <= set(r["eval"]) for r in evals)
    assert any("sequences_per_second" in r for r in records)
    assert (classifier / "best" / "model.safetensors").is_file()
    assert (classifier / "vocab.txt").is_file()


def test_the_final_folder_holds_the_best_model(classifier: Path) -> None:
    assert max_weight_difference(classifier, classifier / "best") == 0.0


def test_pairs_and_regression(workspace: dict[str, Path], tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = []
    for _ in range(48):
        a, b = rng.choice(POSITIVE + NEGATIVE), rng.choice(POSITIVE + NEGATIVE)
        score = float((a in POSITIVE) + (b in POSITIVE))
        rows.append({"first": f"the day was {a}", "second": f"it is {b}", "score": score})
    data = write_csv(tmp_path / "pairs.tsv", rows, delimiter="\t")
    out = tmp_path / "out"
    argv = _common(workspace, out, "--train-file", str(data), "--text", "first", "--text-pair", "second")
    argv += ["--label", "score", "--problem-type", "regression", "--epochs", "2", "--batch-size", "8"]
    assert train(argv) == 0
    summary = json.loads((out / "training_summary.json").read_text())
    assert {"pearson", "spearman", "mse"} <= set(summary["last_eval"])
    config = squeezebert.SqueezeBertConfig.from_pretrained(out)
    assert config.num_labels == 1 and config.problem_type == "regression"


def test_multi_label_from_json_lines(workspace: dict[str, Path], tmp_path: Path) -> None:
    rng = random.Random(4)
    rows = []
    for _ in range(40):
        labels = sorted({rng.choice(["food", "city", "man"]) for _ in range(2)})
        rows.append({"text": " ".join(labels + ["was", "fine"]), "tags": labels})
    data = write_jsonl(tmp_path / "multi.jsonl", rows)
    out = tmp_path / "out"
    argv = _common(workspace, out, "--train-file", str(data), "--label", "tags", "--problem-type", "multi-label")
    assert train([*argv, "--epochs", "2", "--batch-size", "8", "--validation-split", "0.25"]) == 0
    config = squeezebert.SqueezeBertConfig.from_pretrained(out)
    assert config.problem_type == "multi_label_classification"
    assert sorted(config.label2id) == ["city", "food", "man"]
    assert {"f1_micro", "f1_macro", "subset_accuracy"} <= set(
        json.loads((out / "training_summary.json").read_text())["last_eval"]
    )


def test_token_classification_on_conll(workspace: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = _common(
        workspace, out, "--task", "token-classification", "--train-file", str(write_conll(tmp_path / "a.conll", 48, 0))
    )
    argv += ["--validation-file", str(write_conll(tmp_path / "b.conll", 12, 1)), "--epochs", "4", "--batch-size", "8"]
    assert train([*argv, "--learning-rate", "3e-3"]) == 0
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["metric_for_best"] == "f1"
    assert {"precision", "recall", "f1", "token_accuracy"} <= set(summary["last_eval"])
    assert summary["last_eval"]["token_accuracy"] > 0.7
    model = squeezebert.SqueezeBertForTokenClassification.from_pretrained(out)
    assert set(model.config.label2id) == {"O", "B-LOC", "B-PER", "I-PER", "B-ORG"}
    tagged = pipeline("token-classification", model=str(out))("the man went to paris")
    assert isinstance(tagged, list)


def test_question_answering_with_long_contexts(workspace: dict[str, Path], tmp_path: Path) -> None:
    rng = random.Random(5)
    articles = []
    for i in range(16):
        name = rng.choice(["alice", "bob"])
        city = rng.choice(["paris", "london"])
        filler = " ".join(rng.choice(["the", "day", "was", "fine", "and", "it", "is"]) for _ in range(40))
        context = f"{filler} {name} works at acme in {city} . {filler}"
        question = "where " + name + " works ?"
        start = context.index(f"in {city}") + 3
        qas = [{"id": str(i), "question": question, "answers": [{"text": city, "answer_start": start}]}]
        articles.append({"title": str(i), "paragraphs": [{"context": context, "qas": qas}]})
    data = tmp_path / "squad.json"
    data.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    out = tmp_path / "out"
    argv = _common(workspace, out, "--task", "question-answering", "--train-file", str(data))
    argv[argv.index("--max-length") + 1] = "48"  # contexts of ~90 tokens: two or three windows each
    assert train([*argv, "--doc-stride", "16", "--epochs", "1", "--batch-size", "8", "--validation-split", "0.25"]) == 0
    summary = json.loads((out / "training_summary.json").read_text())
    assert {"exact_match", "f1"} <= set(summary["last_eval"])
    assert summary["examples_seen"] > 12  # more windows than the 12 training questions
    answer = pipeline("question-answering", model=str(out))(
        question="where alice works ?", context=articles[0]["paragraphs"][0]["context"]
    )
    assert isinstance(answer, dict) and "answer" in answer


def test_multiple_choice_swag_csv(workspace: dict[str, Path], tmp_path: Path) -> None:
    rng = random.Random(6)
    rows = []
    for _ in range(32):
        word = rng.choice(POSITIVE)
        endings = [rng.choice(NEGATIVE) for _ in range(4)]
        label = rng.randrange(4)
        endings[label] = word
        row = {"sent1": f"the day was {word}", "sent2": "it is"}
        row.update({f"ending{i}": e for i, e in enumerate(endings)})
        row["label"] = label
        rows.append(row)
    data = write_csv(tmp_path / "swag.csv", rows)
    out = tmp_path / "out"
    argv = _common(workspace, out, "--task", "multiple-choice", "--train-file", str(data))
    assert train([*argv, "--epochs", "1", "--batch-size", "4", "--validation-split", "0.25"]) == 0
    assert "accuracy" in json.loads((out / "training_summary.json").read_text())["last_eval"]
    squeezebert.SqueezeBertForMultipleChoice.from_pretrained(out)


def test_gradient_accumulation_matches_a_larger_batch(workspace: dict[str, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    outs = []
    for batch, accumulation in ((8, 1), (2, 4)):
        out = tmp_path / f"b{batch}"
        argv = _common(workspace, out, "--train-file", str(workspace["train"]), "--validation-split", "0")
        argv[argv.index("--config") + 1] = str(config)
        argv += ["--batch-size", str(batch), "--gradient-accumulation-steps", str(accumulation), "--max-steps", "5"]
        assert train(argv) == 0
        outs.append(out)
    assert max_weight_difference(*outs) < 1e-5


def test_lamb_and_bf16_autocast(workspace: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = _common(
        workspace, out, "--train-file", str(workspace["train"]), "--validation-file", str(workspace["valid"])
    )
    argv += ["--optimizer", "lamb", "--bf16", "--learning-rate", "1e-2", "--max-steps", "6", "--batch-size", "8"]
    assert train(argv) == 0
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["global_step"] == 6
    assert torch.isfinite(torch.tensor(summary["final_train_loss"]))


def test_distillation_into_a_grouped_student(workspace: dict[str, Path], classifier: Path, tmp_path: Path) -> None:
    student_config = write_config(tmp_path / "student.json", q_groups=4, k_groups=4, v_groups=4, intermediate_groups=4)
    out = tmp_path / "student"
    argv = _common(
        workspace, out, "--train-file", str(workspace["train"]), "--validation-file", str(workspace["valid"])
    )
    argv[argv.index("--config") + 1] = str(student_config)
    argv += ["--teacher", str(classifier), "--temperature", "2", "--alpha", "0.7", "--init-from-dense", str(classifier)]
    assert train([*argv, "--epochs", "3", "--batch-size", "8", "--learning-rate", "3e-3"]) == 0
    student = squeezebert.SqueezeBertForSequenceClassification.from_pretrained(out)
    assert student.config.q_groups == 4
    assert json.loads((out / "training_summary.json").read_text())["best_metric"] >= 0.75


def test_bad_input_is_a_clear_error(workspace: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = write_csv(tmp_path / "bad.csv", [{"sentence": "good day", "label": "pos"}] * 4)
    assert train(_common(workspace, tmp_path / "o", "--train-file", str(bad))) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "'text'" in err and "sentence" in err

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "good", "label": "pos"}\n{"text": \n', encoding="utf-8")
    assert train(_common(workspace, tmp_path / "o", "--train-file", str(broken))) == 2
    err = capsys.readouterr().err
    assert "broken.jsonl" in err and "line 2" in err

    assert train(_common(workspace, tmp_path / "o", "--train-file", str(tmp_path / "missing.csv"))) == 2
    assert "missing.csv" in capsys.readouterr().err
