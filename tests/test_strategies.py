"""``squeezebert train --strategy``: the linear probe, SetFit and ``auto`` on a real small set (five chatterbot-corpus
topics, the real MiniLM-L6 converted), the mean-pooling head they save (``classifier_pooling``), and SetFit resumed
after SIGKILL ending with the weights of an uninterrupted run (on the tiny word-level model)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from support.numerics import assert_rounding_close, path_length
from test_training_common import (
    KILL_DRIVER,
    max_weight_difference,
    run_python,
    sentiment_rows,
    train,
    word_config,
    write_csv,
    write_tokenizer,
)

import squeezebert
from squeezebert import SqueezeBertConfig, SqueezeBertForSequenceClassification, pipeline
from squeezebert.tokenization import AutoTokenizer
from squeezebert.training import (
    FinetuneModelArguments,
    StrategyArguments,
    TaskArguments,
    TrainingArguments,
    finetune,
)
from squeezebert.training.data import read_table
from squeezebert.training.metrics import balanced_class_weights
from squeezebert.training.probe import L2_GRID, fit_logistic_regression
from squeezebert.training.setfit import draw_pairs

MAX_LENGTH = "32"


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MiniLM-L6 in SqueezeBERT layout."""
    return squeezebert.convert_bert_checkpoint(minilm_dir, tmp_path_factory.mktemp("minilm") / "squeezebert")


def _argv(data: dict[str, Path], model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--train-file",
        str(data["train"]),
        "--validation-file",
        str(data["valid"]),
        "--model",
        str(model),
        "--output-dir",
        str(out),
        "--max-length",
        MAX_LENGTH,
        *extra,
    ]


def _test_accuracy(folder: Path, test_csv: Path) -> float:
    rows = read_table(test_csv)
    predicted = pipeline("text-classification", model=str(folder))([r["text"] for r in rows])
    return sum(p["label"] == r["label"] for p, r in zip(predicted, rows, strict=True)) / len(rows)


@pytest.fixture(scope="module")
def auto_run(
    minilm: Path, chatterbot: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict, str]:
    """``--strategy auto`` on the chatterbot topics (every candidate fits the budget): the output folder, the summary
    and what was logged."""
    out = tmp_path_factory.mktemp("auto") / "out"
    log = tmp_path_factory.mktemp("auto") / "stderr"
    # setfit and finetune: 8 steps of 16 (pairs of) texts each
    argv = _argv(chatterbot, minilm, out, "--strategy", "auto", "--batch-size", "16", "--max-steps", "8")
    argv += ["--setfit-learning-rate", "1e-4", "--lr", "1e-4"]
    result = run_python(["-m", "squeezebert", *argv, "--no-progress", "--time-budget", "3600"], timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    log.write_text(result.stderr)
    return out, json.loads((out / "training_summary.json").read_text()), result.stderr


def test_auto_picks_the_best_validation_accuracy_and_says_why(auto_run: tuple[Path, dict, str]) -> None:
    out, summary, stderr = auto_run
    candidates = summary["candidates"]
    assert set(candidates) == {"linear-probe", "setfit", "finetune"}
    accuracies = {name: c["validation_accuracy"] for name, c in candidates.items()}
    assert summary["chosen"] == max(accuracies, key=accuracies.get)  # the first (cheapest) on a tie
    line = next(line for line in stderr.splitlines() if "strategy auto: chose" in line)
    for name, c in candidates.items():
        assert f"{name} {c['validation_accuracy']:.4f} in {c['seconds']:.0f}s" in line
    assert max_weight_difference(out, out / "strategies" / summary["chosen"]) == 0.0


def test_the_linear_probe_is_well_above_chance_and_its_folder_reproduces_its_logits(
    auto_run: tuple[Path, dict, str], chatterbot: dict[str, Path]
) -> None:
    folder = auto_run[0] / "strategies" / "linear-probe"
    summary = json.loads((folder / "training_summary.json").read_text())
    assert summary["head"]["l2"] in L2_GRID
    assert summary["validation_accuracy"] == max(summary["head"]["validation_accuracy_by_l2"].values())
    assert _test_accuracy(folder, chatterbot["test"]) >= 0.6  # 5 topics: chance is 0.2 (measured: see README)

    # The classifier reads the embeddings pipeline's vector: logits = W e + b, with e = normalised mean.
    config = json.loads((folder / "config.json").read_text())
    assert config["classifier_pooling"] == "mean" and config["classifier_normalize"] is True
    model = SqueezeBertForSequenceClassification.from_pretrained(folder)
    texts = [r["text"] for r in read_table(chatterbot["test"])]
    vectors = torch.tensor(pipeline("embeddings", model=str(folder))(texts))  # [n, hidden]
    expected = vectors @ model.classifier.weight.T + model.classifier.bias  # [n, labels]
    encoded = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoded).logits
    terms = (vectors.abs() @ model.classifier.weight.abs().T).max().item()
    length = path_length(model.config, encoded["input_ids"].shape[1]) + model.config.hidden_size
    assert_rounding_close(logits, expected, length, magnitude=terms, what="probe logits")


def test_transformers_reads_the_folder_with_cls_pooling(auto_run: tuple[Path, dict, str]) -> None:
    """The documented difference: transformers keeps the unknown classifier_pooling key and pools [CLS]."""
    transformers = pytest.importorskip("transformers")
    folder = auto_run[0] / "strategies" / "linear-probe"
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert hf.config.classifier_pooling == "mean"
    ours = SqueezeBertForSequenceClassification.from_pretrained(
        folder, classifier_pooling="cls", classifier_normalize=False
    )
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2204, 2154, 2000, 102]])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask).logits
        actual = ours(input_ids=ids, attention_mask=mask).logits
    assert_rounding_close(actual, expected, path_length(ours.config, 5), what="[CLS] logits")


def test_setfit_separates_the_labels_and_stays_above_chance(
    auto_run: tuple[Path, dict, str], minilm: Path, chatterbot: dict[str, Path]
) -> None:
    folder = auto_run[0] / "strategies" / "setfit"
    summary = json.loads((folder / "training_summary.json").read_text())
    assert summary["pairs"] == 2 * len(read_table(chatterbot["train"]))
    assert _test_accuracy(folder, chatterbot["test"]) >= 0.6

    # What the contrastive stage optimises: texts of one label closer than texts of different labels.
    rows = read_table(chatterbot["train"])
    labels = torch.tensor([sorted({r["label"] for r in rows}).index(r["label"]) for r in rows])
    same = labels[:, None] == labels[None, :]

    def margin(model_dir: Path) -> float:
        vectors = torch.tensor(pipeline("embeddings", model=str(model_dir))([r["text"] for r in rows]))
        cosine = vectors @ vectors.T
        return float(cosine[same].mean() - cosine[~same].mean())

    assert margin(folder) > margin(minilm) + 0.05


def test_linear_probe_from_the_command_line(
    minilm: Path, chatterbot: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "probe"
    assert train(_argv(chatterbot, minilm, out, "--strategy", "linear-probe")) == 0
    printed = capsys.readouterr().out
    assert "linear-probe: linear head on 135 examples" in printed and f"model saved to {out}" in printed
    assert json.loads((out / "training_summary.json").read_text())["strategy"] == "linear-probe"
    assert train(_argv(chatterbot, minilm, out, "--strategy", "linear-probe")) == 2  # an earlier run is kept
    assert "already holds a training run" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# The tiny word-level model: choices, errors, and SetFit resumed after SIGKILL


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random tiny checkpoint with its tokenizer (a --model folder), 40 sentiment rows and the kill driver."""
    root = tmp_path_factory.mktemp("strategies-tiny")
    model_dir = write_tokenizer(root / "model")
    torch.manual_seed(0)
    SqueezeBertForSequenceClassification(word_config()).save_pretrained(model_dir)
    driver = root / "driver.py"
    driver.write_text(KILL_DRIVER, encoding="utf-8")
    return {
        "root": root,
        "model": model_dir,
        "train": write_csv(root / "train.csv", sentiment_rows(40, 0)),
        "driver": driver,
    }


def _tiny_argv(tiny: dict[str, Path], out: Path, *extra: str) -> list[str]:
    # 32 training examples (20% held out) -> 64 pairs, batch 4: 16 steps; checkpoints every 3 steps.
    return [
        "train",
        "--train-file",
        str(tiny["train"]),
        "--validation-split",
        "0.2",
        "--model",
        str(tiny["model"]),
        "--output-dir",
        str(out),
        "--max-length",
        "16",
        "--batch-size",
        "4",
        "--setfit-learning-rate",
        "2e-3",
        "--save-steps",
        "3",
        "--strategy",
        "setfit",
        "--no-progress",
        *extra,
    ]


def test_setfit_killed_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tiny["root"] / "whole"
    result = run_python([str(tiny["driver"]), *_tiny_argv(tiny, whole)])
    assert result.returncode == 0, result.stderr[-2000:]

    killed = tiny["root"] / "killed"
    monkeypatch.setenv("KILL_STEP", "10")
    result = run_python([str(tiny["driver"]), *_tiny_argv(tiny, killed)])
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert not (killed / "model.safetensors").exists()
    monkeypatch.delenv("KILL_STEP")
    result = run_python([str(tiny["driver"]), *_tiny_argv(tiny, killed, "--resume")])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed from" in result.stderr and "checkpoint-9" in result.stderr
    assert max_weight_difference(killed, whole) == 0.0
    assert max_weight_difference(whole, tiny["model"]) > 0  # the encoder did train


def test_auto_fine_tunes_large_sets_random_weights_and_other_tasks(tiny: dict[str, Path], tmp_path: Path) -> None:
    common = dict(train_file=str(tiny["train"]), max_length=16)
    training = TrainingArguments(output_dir=str(tmp_path / "large"), num_epochs=1, batch_size=8, progress=False)
    summary = finetune(
        TaskArguments(**common),
        FinetuneModelArguments(model=str(tiny["model"])),
        training,
        strategy_args=StrategyArguments(auto_max_examples=10),  # 36 examples are "large" here
    )
    assert "strategy" not in summary and summary["global_step"] == 5  # a plain fine-tuning run: 36 / 8 steps

    with pytest.raises(ValueError, match="random weights"):
        finetune(
            TaskArguments(**common),
            FinetuneModelArguments(config=str(tiny["model"]), tokenizer=str(tiny["model"])),
            TrainingArguments(output_dir=str(tmp_path / "random"), progress=False),
            strategy_args=StrategyArguments(strategy="linear-probe"),
        )
    with pytest.raises(ValueError, match="single-label"):
        finetune(
            TaskArguments(**common, problem_type="regression"),
            FinetuneModelArguments(model=str(tiny["model"])),
            TrainingArguments(output_dir=str(tmp_path / "regression"), progress=False),
            strategy_args=StrategyArguments(strategy="setfit"),
        )


def test_auto_skips_the_strategies_whose_estimate_exceeds_the_budget(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "auto"
    summary = finetune(
        TaskArguments(train_file=str(tiny["train"]), max_length=16),
        FinetuneModelArguments(model=str(tiny["model"])),
        TrainingArguments(output_dir=str(out), progress=False),
        strategy_args=StrategyArguments(time_budget=1e-3),  # the probe always runs; nothing else fits
    )
    assert summary["chosen"] == "linear-probe"
    assert [name for name, c in summary["candidates"].items() if "skipped" in c] == ["setfit", "finetune"]
    assert "setfit skipped (estimated" in summary["reason"]
    assert max_weight_difference(out, out / "strategies" / "linear-probe") == 0.0


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("strategy", "zero-shot", "strategy must be one of"),
        ("auto_max_examples", 0, "auto_max_examples must be a positive integer"),
        ("setfit_iterations", 1.5, "setfit_iterations must be a positive integer"),
        ("time_budget", 0, "time_budget must be positive"),
    ],
)
def test_strategy_arguments_are_checked(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StrategyArguments(**{field: value})


def test_pairs_are_one_positive_and_one_negative_per_example_and_iteration() -> None:
    labels = [0, 0, 1, 1, 1, 2]
    pairs = draw_pairs(labels, 2, seed=3)
    assert len(pairs) == 2 * 2 * len(labels) and pairs == draw_pairs(labels, 2, seed=3)
    for k, (i, j, similarity) in enumerate(pairs):
        assert i == (k // 2) % len(labels)
        assert similarity == (1.0 if k % 2 == 0 else 0.0)
        assert (labels[i] == labels[j]) == (similarity == 1.0)
        assert similarity == 0.0 or i != j or labels.count(labels[i]) == 1  # alone in its label: paired with itself
    with pytest.raises(ValueError, match="at least 2 labels"):
        draw_pairs([1, 1], 1, seed=0)


def test_logistic_regression_reaches_its_optimum_with_and_without_class_weights() -> None:
    generator = torch.Generator().manual_seed(0)
    y = torch.tensor([0] * 60 + [1] * 20)
    x = torch.randn(80, 6, generator=generator) * torch.tensor([1.0, 10.0, 0.1, 1.0, 1.0, 1.0]) + y[:, None] * 0.5
    weight, bias = fit_logistic_regression(x, y, 2, l2=1e-2)
    # The optimum of the objective over standardised features: its gradient vanishes there.
    mean, std = x.double().mean(0), x.double().std(0, correction=0)
    w = (weight.double() * std).requires_grad_()  # the weights of the standardised features
    b = (bias.double() + weight.double() @ mean).requires_grad_()
    loss = torch.nn.functional.cross_entropy(((x.double() - mean) / std) @ w.T + b, y) + 0.5 * 1e-2 * w.pow(2).sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-6 and b.grad.abs().max() < 1e-6
    # The bias is not penalised, so at the optimum the (weighted) mean predicted probability of each class equals its
    # (weighted) frequency: 20 / 80 unweighted, 1 / 2 with balanced weights.
    balanced = balanced_class_weights(y.tolist(), 2)  # [2]
    for class_weights, expected in ((None, 0.25), (balanced, 0.5)):
        weight, bias = fit_logistic_regression(x, y, 2, l2=1e-2, class_weights=class_weights)
        p_rare = torch.softmax(x.double() @ weight.double().T + bias.double(), -1)[:, 1]  # [80]
        w_i = torch.ones(80) if class_weights is None else class_weights[y]
        assert abs(float((w_i * p_rare).sum() / w_i.sum()) - expected) < 1e-5


# ----------------------------------------------------------------------------------------------------------------
# classifier_pooling


def test_classifier_pooling_is_saved_only_when_set_and_validated(tmp_path: Path) -> None:
    SqueezeBertConfig().save_pretrained(tmp_path / "cls")
    raw = json.loads((tmp_path / "cls" / "config.json").read_text())
    assert "classifier_pooling" not in raw and "classifier_normalize" not in raw  # files of HF's behaviour unchanged
    SqueezeBertConfig(classifier_pooling="mean", classifier_normalize=True).save_pretrained(tmp_path / "mean")
    loaded = SqueezeBertConfig.from_pretrained(tmp_path / "mean")
    assert (loaded.classifier_pooling, loaded.classifier_normalize) == ("mean", True)
    with pytest.raises(ValueError, match="classifier_pooling must be one of cls, mean"):
        SqueezeBertConfig(classifier_pooling="max")
    with pytest.raises(ValueError, match="classifier_normalize needs classifier_pooling 'mean'"):
        SqueezeBertConfig(classifier_normalize=True)


def test_mean_pooling_ignores_padding(single_thread: None) -> None:
    torch.manual_seed(0)
    model = SqueezeBertForSequenceClassification(word_config(classifier_pooling="mean", classifier_normalize=True))
    model.eval()
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    padded = torch.tensor([[2, 7, 8, 9, 3, 0, 0]])
    with torch.no_grad():
        alone = model(input_ids=ids).logits  # no mask: every token counts
        with_padding = model(input_ids=padded, attention_mask=(padded != 0).long()).logits
        hidden = model.transformer(input_ids=ids).last_hidden_state  # [1, 5, hidden]
        expected = model.classifier(torch.nn.functional.normalize(hidden.mean(1), dim=-1))
    length = path_length(model.config, 7) + model.config.hidden_size
    assert_rounding_close(with_padding, alone, length, what="padded")
    assert_rounding_close(alone, expected, length, what="by hand")
