"""Fine-tuning aligned with Hugging Face's Trainer: balanced class weights, the weighted classification loss,
macro-F1 in the evaluation, HF's AdamW / warm-up defaults, and the loss curve against the Trainer itself."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from support.configs import tiny_config
from support.oracle import randomize_
from test_training_common import sentiment_workspace, train

from squeezebert import SqueezeBertForSequenceClassification
from squeezebert.training import metrics
from squeezebert.training.data import pad_batch
from squeezebert.training.optim import build_optimizer
from squeezebert.training.tasks import SequenceClassificationTask
from squeezebert.training.trainer import ListSource, Trainer, TrainingArguments, WeightedCrossEntropy

# --------------------------------------------------------------------------------------------------------------
# Balanced class weights (reference values derived by hand)


def test_balanced_class_weights_by_hand() -> None:
    # 6 examples over 3 present classes (counts 3, 2, 1) of 4: n / (k * count) = 6/9, 6/6, 6/3; class 3 absent -> 1
    weights = metrics.balanced_class_weights([0, 0, 0, 1, 1, 2], 4)
    assert weights.dtype == torch.float32 and weights.shape == (4,)
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 1.0, 2.0, 1.0]), rtol=0, atol=0)
    # averaged over the examples, the weights are 1: (3 * 2/3 + 2 * 1 + 1 * 2) / 6
    assert float(weights[[0, 0, 0, 1, 1, 2]].mean()) == pytest.approx(1.0, abs=1e-7)
    # balanced data: every weight 1
    torch.testing.assert_close(metrics.balanced_class_weights([1, 0, 1, 0], 2), torch.ones(2), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("labels", "num_labels", "error", "match"),
    [
        ([0, 1], 0, ValueError, "num_labels"),
        ([0, 1], 2.0, ValueError, "num_labels"),
        ([], 2, ValueError, "non-empty"),
        ([[0, 1]], 2, ValueError, "1-D"),
        ([0, 2], 2, ValueError, r"\[0, 2\)"),
        ([-1, 0], 2, ValueError, r"\[0, 2\)"),
        ([0.0, 1.0], 2, TypeError, "integer"),
    ],
)
def test_balanced_class_weights_rejects(labels, num_labels, error, match) -> None:
    with pytest.raises(error, match=match):
        metrics.balanced_class_weights(labels, num_labels)


# --------------------------------------------------------------------------------------------------------------
# The loss curve of Hugging Face's Trainer


def _collate(features: list[dict]) -> dict[str, torch.Tensor]:
    return pad_batch(features, 0, -100)


class _LossRecorder:
    """Our Trainer's callback: the loss of every step (``logging_steps=1``)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_log(self, trainer, record) -> None:
        self.losses.append(record["loss"])


def _random_features(n: int, seed: int, num_labels: int) -> list[dict]:
    """``n`` examples of random tokens, 5 to 12 long (so batches carry padding), labelled by their first token."""
    gen = torch.Generator().manual_seed(seed)
    features = []
    for _ in range(n):
        length = int(torch.randint(5, 13, (), generator=gen))
        ids = [2, *torch.randint(5, 100, (length - 2,), generator=gen).tolist(), 3]
        mask = [1] * length
        features.append(
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": [0] * length, "labels": ids[1] % num_labels}
        )
    return features


def test_loss_curve_matches_hugging_face_trainer(tmp_path, single_thread) -> None:
    """Dropout off, the same initial weights, batches and hyper-parameters: 30 steps of our Trainer and of
    ``transformers.Trainer`` (AdamW eps 1e-8, betas (0.9, 0.999), warm-up ceil(0.1 * 30) = 3 steps at s / 3, linear
    decay, weight decay 0.01 off biases and LayerNorms, clipping at 1.0) give the same loss at every step.

    Tolerance: both sides compute in float32 and differ only in the order of their sums (unit roundoff u = 2^-24
    ~ 6e-8). A step's loss (~1.1, ln 3 at the start) carries forward-pass rounding of a few u relative, i.e. a few
    ulps (ulp(1.1) = 2^-23 ~ 1.2e-7). The update that follows is lr * m / (sqrt(v) + eps) with |m / sqrt(v)| <= ~1,
    and rounding perturbs m and sqrt(v) by a few u relative, so each weight drifts by ~lr * few u ~ 1e-9 per step
    (lr 5e-3), ~3e-8 after 30 steps, which moves the loss by less than one ulp. So the bound is the forward
    rounding: 5e-7 is 4 ulps of the loss (measured: at most 1 ulp).
    """
    import transformers
    from support.configs import tiny

    transformers.logging.set_verbosity_error()
    fields = tiny(num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    hf_model = transformers.SqueezeBertForSequenceClassification(transformers.SqueezeBertConfig(**fields))
    hf_model.save_pretrained(tmp_path / "init")
    ours = SqueezeBertForSequenceClassification.from_pretrained(tmp_path / "init")

    features = _random_features(24, seed=1, num_labels=3)  # batch 8: 3 steps per epoch, 10 epochs = 30 steps
    hyper = dict(learning_rate=5e-3, weight_decay=0.01, max_grad_norm=1.0, seed=0)

    class Recorder(transformers.TrainerCallback):
        losses: list[float] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    hf_args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        per_device_train_batch_size=8,
        num_train_epochs=10,
        warmup_steps=0.1,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        train_sampling_strategy="sequential",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        **hyper,
    )
    hf_recorder = Recorder()
    transformers.Trainer(
        model=hf_model, args=hf_args, train_dataset=features, data_collator=_collate, callbacks=[hf_recorder]
    ).train()

    our_args = TrainingArguments(
        output_dir=str(tmp_path / "ours"),
        batch_size=8,
        num_epochs=10,
        warmup_ratio=0.1,
        logging_steps=1,
        progress=False,
        **hyper,
    )
    recorder = _LossRecorder()
    Trainer(ours, our_args, ListSource(features, shuffle=False), _collate, callbacks=[recorder]).train()

    assert len(recorder.losses) == len(hf_recorder.losses) == 30
    expected, actual = torch.tensor(hf_recorder.losses), torch.tensor(recorder.losses)
    assert expected[-3:].mean() < expected[:3].mean() - 0.1  # it learned: the comparison is not of a flat curve
    torch.testing.assert_close(actual, expected, rtol=0, atol=5e-7)


# --------------------------------------------------------------------------------------------------------------
# Class-weighted loss


class _FixedLogits(torch.nn.Module):
    """A stand-in classifier: row ``i`` of ``logits`` for the example whose ``input_ids[0]`` is ``i``."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, input_ids: torch.Tensor, **kw) -> dict[str, torch.Tensor]:
        return {"logits": self.logits[input_ids[:, 0]]}


def test_weighted_cross_entropy_by_hand() -> None:
    # labels 0, 0, 1 -> balanced weights 3 / (2 * 2) = 0.75 and 3 / (2 * 1) = 1.5
    weights = metrics.balanced_class_weights([0, 0, 1], 2)
    torch.testing.assert_close(weights, torch.tensor([0.75, 1.5]), rtol=0, atol=0)
    # rows: logits (0, 0) label 0 -> ln 2; (ln 3, 0) label 0 -> ln(4/3); (ln 3, 0) label 1 -> ln 4
    model = _FixedLogits(torch.tensor([[0.0, 0.0], [math.log(3), 0.0]]))
    batch = {"input_ids": torch.tensor([[0], [1], [1]]), "labels": torch.tensor([0, 0, 1])}
    expected = (0.75 * math.log(2) + 0.75 * math.log(4 / 3) + 1.5 * math.log(4)) / (0.75 + 0.75 + 1.5)
    with torch.no_grad():
        assert float(WeightedCrossEntropy(weights)(model, batch)) == pytest.approx(expected, rel=1e-6)


def test_trainer_trains_on_the_balanced_loss(tmp_path: Path) -> None:
    """The first step (warm-up: rate 0, weights unchanged) logs the weighted loss of the first batch, computed here
    in float64 from the model's logits; the model's own loss output stays unweighted."""
    config = tiny_config(
        num_labels=3, problem_type="single_label_classification", hidden_dropout_prob=0, attention_probs_dropout_prob=0
    )
    model = randomize_(SqueezeBertForSequenceClassification(config))  # logits far from uniform
    features = _random_features(12, seed=2, num_labels=3)
    labels = [f["labels"] for f in features]
    args = TrainingArguments(
        output_dir=str(tmp_path), batch_size=12, max_steps=1, logging_steps=1, class_weights="balanced", progress=False
    )
    batch = _collate(features)
    with torch.no_grad():
        out = model(**batch)
    ce = -torch.log_softmax(out["logits"].double(), -1)[torch.arange(12), batch["labels"]]  # [12]
    counts = torch.bincount(torch.tensor(labels), minlength=3).double()  # [3]
    w = (12 / ((counts > 0).sum() * counts))[batch["labels"]]  # [12]
    expected = float((w * ce).sum() / w.sum())
    assert abs(expected - float(out["loss"])) > 1e-3  # the weighting matters on this batch

    recorder = _LossRecorder()
    trainer = Trainer(model, args, ListSource(features, shuffle=False), _collate, callbacks=[recorder])
    torch.testing.assert_close(trainer.loss_fn.weights, metrics.balanced_class_weights(labels, 3), rtol=0, atol=0)
    trainer.train()
    assert recorder.losses == [pytest.approx(expected, rel=1e-6)]


def test_class_weights_refuses_what_it_cannot_weight(tmp_path: Path) -> None:
    features = _random_features(4, seed=0, num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path), class_weights="balanced", progress=False)
    multi = SqueezeBertForSequenceClassification(tiny_config(num_labels=2, problem_type="multi_label_classification"))
    with pytest.raises(ValueError, match="single-label classification"):
        Trainer(multi, args, ListSource(features), _collate)
    single = SqueezeBertForSequenceClassification(tiny_config(num_labels=2))
    with pytest.raises(ValueError, match="custom loss_fn"):
        Trainer(single, args, ListSource(features), _collate, loss_fn=lambda m, b: m(**b)["loss"])
    with pytest.raises(ValueError, match="class_weights must be one of"):
        TrainingArguments(output_dir=str(tmp_path), class_weights="inverse")


# --------------------------------------------------------------------------------------------------------------
# Optimizer defaults and arguments


def test_optimizer_takes_hugging_face_defaults_and_the_flags() -> None:
    model = SqueezeBertForSequenceClassification(tiny_config(num_labels=2))
    args = TrainingArguments(output_dir="unused")
    assert (args.adam_epsilon, args.adam_beta1, args.adam_beta2) == (1e-8, 0.9, 0.999)
    for name in ("adamw", "lamb"):
        group = build_optimizer(model, name, eps=1e-7, betas=(0.8, 0.99)).param_groups[0]
        assert (group["eps"], group["betas"]) == (1e-7, (0.8, 0.99))
    for bad, match in (({"adam_epsilon": 0.0}, "adam_epsilon"), ({"adam_beta2": 1.0}, "adam_beta2")):
        with pytest.raises(ValueError, match=match):
            TrainingArguments(output_dir="unused", **bad)
    with pytest.raises(ValueError, match="adam_beta1"):
        build_optimizer(model, betas=(-0.1, 0.999))


def test_warm_up_rounds_up_and_starts_at_zero(tmp_path: Path) -> None:
    """10 steps at warmup_ratio 0.25: ceil(2.5) = 3 warm-up steps at 0, 1/3, 2/3 of the rate, then linear decay
    (10 - s) / 7, as transformers' get_linear_schedule_with_warmup."""
    features = _random_features(10, seed=0, num_labels=2)
    model = SqueezeBertForSequenceClassification(tiny_config(num_labels=2))
    args = TrainingArguments(output_dir=str(tmp_path), batch_size=1, num_epochs=1, warmup_ratio=0.25, progress=False)
    trainer = Trainer(model, args, ListSource(features), _collate)
    rates = []
    for _ in range(10):
        rates.append(trainer.learning_rate / args.learning_rate)
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert rates == pytest.approx([0, 1 / 3, 2 / 3] + [(10 - s) / 7 for s in range(3, 10)])


# --------------------------------------------------------------------------------------------------------------
# Macro-F1 in the evaluation


def test_single_label_evaluation_reports_macro_f1() -> None:
    # predictions 1, 0, 1, 1 for labels 1, 0, 0, 1: binary F1 (class 1) 0.8; class 0 tp 1 fn 1 -> 2/3; macro 11/15
    task = SequenceClassificationTask(SimpleNamespace(pad_token_id=0), ["neg", "pos"])
    model = _FixedLogits(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    predicted, labels = [1, 0, 1, 1], [1, 0, 0, 1]
    features = [{"input_ids": [p], "attention_mask": [1], "labels": y} for p, y in zip(predicted, labels, strict=True)]
    result = task.evaluate(model, [], features)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["f1"] == pytest.approx(0.8)
    assert result["f1_macro"] == pytest.approx(11 / 15)


def test_train_command_with_balanced_class_weights_reports_macro_f1(tmp_path: Path) -> None:
    ws = sentiment_workspace(tmp_path, train_rows=24)
    out = tmp_path / "run"
    argv = ["train", "--train-file", str(ws["train"]), "--validation-split", "0.25", "--config", str(ws["config"])]
    argv += ["--tokenizer", str(ws["tokenizer"]), "--output-dir", str(out), "--max-length", "16", "--batch-size", "6"]
    argv += ["--epochs", "1", "--class-weights", "balanced", "--adam-epsilon", "1e-7", "--adam-beta2", "0.99"]
    assert train(argv) == 0
    summary = json.loads((out / "training_summary.json").read_text(encoding="utf-8"))
    assert {"accuracy", "f1", "f1_macro"} <= set(summary["last_eval"])
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all("f1_macro" in r["eval"] for r in evals if "eval" in r)
    assert train([*argv, "--overwrite-output-dir", "--adam-epsilon", "0"]) == 2


# --------------------------------------------------------------------------------------------------------------
# benchmarks/bench_finetune.py's bookkeeping (the benchmark itself needs the corpus and minutes of training)


def test_bench_finetune_alternates_the_loops_and_judges_the_goals() -> None:
    import threading

    import bench_finetune  # benchmarks/ is on sys.path (tests/conftest.py)

    baton, order = bench_finetune.Baton(first="hf"), []

    def loop(name: str, other: str, last_waits: bool) -> None:
        baton.wait(name)
        for epoch in range(3):
            order.append((name, epoch))
            baton.give(other)
            if epoch < 2 or last_waits:
                baton.wait(name)

    hf = threading.Thread(target=loop, args=("hf", "ours", True), daemon=True)
    hf.start()
    loop("ours", "hf", False)
    hf.join(timeout=10)
    assert order == [(name, epoch) for epoch in range(3) for name in ("hf", "ours")]

    results = {
        "hf": [{"accuracy": 66.0, "f1_macro": 50.0, "epoch_seconds": [30.0, 30.0]}],
        "ours": [{"accuracy": 65.5, "f1_macro": 51.0, "epoch_seconds": [24.0, 26.0]}],
        "strategy auto": [{"accuracy": 79.0, "f1_macro": 70.0, "seconds": 9.0, "chosen": "linear-probe"}],
    }
    lines = bench_finetune.goals(results)
    assert lines[0].endswith("-0.5 points, met")  # within 1 point
    assert lines[1].endswith("1.20x, met")  # 30 / median(24, 26)
    assert lines[2].endswith("79.0%, NOT met")
    assert "| strategy auto (chose linear-probe) | 1 | 79.0 | 70.0 | - | 9 |" in bench_finetune.table(results)


def test_trainer_trains_in_training_mode_even_after_from_pretrained(tmp_path: Path) -> None:
    """``from_pretrained`` returns a model in eval mode (as HF's); the training steps still run with dropout on,
    as HF's Trainer does (``model.train()`` in every step)."""
    model = SqueezeBertForSequenceClassification(tiny_config(num_labels=2)).eval()
    modes = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    args = TrainingArguments(output_dir=str(tmp_path), batch_size=4, max_steps=2, progress=False)
    Trainer(model, args, ListSource(_random_features(8, seed=0, num_labels=2)), _collate).train()
    assert modes == [True, True]
