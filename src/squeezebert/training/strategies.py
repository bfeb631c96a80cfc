"""How ``squeezebert train`` learns a sequence classifier: fine-tuning, a linear probe on frozen sentence vectors,
SetFit-style contrastive training then a linear head, or ``auto``, which picks among them by validation accuracy.

On a small labelled set a linear head on the encoder's mean-pooled, normalised vectors beats fine-tuning the whole
network (on the 1.4k-statement chatterbot topics: 82% against 62-69% test accuracy for MiniLM-L6), so ``auto`` (the
default) tries the cheap strategies first there; from ``auto_max_examples`` training examples on, and for every
other task, it fine-tunes. Every strategy saves an ordinary
:class:`~squeezebert.modeling.SqueezeBertForSequenceClassification` folder; the probe and SetFit heads read
``classifier_pooling="mean"`` with ``classifier_normalize=True``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .. import hub
from ..modeling import SqueezeBertForSequenceClassification
from . import probe
from .metrics import balanced_class_weights
from .setfit import CosineSimilarityPairs, draw_pairs, pair_collate
from .tasks import SequenceClassificationTask
from .trainer import DistributedInfo, ListSource, Trainer, TrainingArguments, check_output_dir, clear_run
from .trainer import format_summary as format_training_summary

logger = logging.getLogger("squeezebert.training")

STRATEGIES = ("auto", "finetune", "linear-probe", "setfit")
CANDIDATES_DIR = "strategies"  # auto's runs of each strategy, under the output folder
# Training a sequence costs about this many inference passes (forward + backward, measured 3.8-4.2 for MiniLM-L6 on
# the chatterbot topics): auto's time estimates.
TRAINING_COST = 4.0


@dataclass
class StrategyArguments:
    """Which way to learn a single-label sequence classifier, and the settings of each way."""

    strategy: str = field(
        default="auto",
        metadata={
            "choices": STRATEGIES,
            "help": "finetune: the whole network; linear-probe: a linear head on frozen mean-pooled vectors; setfit: "
            "contrastive training on pairs, then the head; auto: the best on validation within --time-budget when "
            "the training set is small (else finetune)",
        },
    )
    auto_max_examples: int = field(
        default=4000, metadata={"help": "auto fine-tunes from this many training examples on"}
    )
    time_budget: float = field(
        default=900.0, metadata={"help": "seconds auto may spend; a strategy whose estimate does not fit is skipped"}
    )
    setfit_iterations: int = field(
        default=1, metadata={"help": "setfit pairs per example: one with its label, one with another, per iteration"}
    )
    setfit_epochs: int = field(default=1, metadata={"help": "passes of the setfit contrastive stage over its pairs"})
    setfit_learning_rate: float = field(
        default=2e-5, metadata={"help": "peak learning rate of the setfit contrastive stage (SetFit's default)"}
    )

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        for name in ("auto_max_examples", "setfit_iterations", "setfit_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.setfit_learning_rate > 0:
            raise ValueError(f"setfit_learning_rate must be positive, got {self.setfit_learning_rate}")
        if not self.time_budget > 0:
            raise ValueError(f"time_budget must be positive (seconds), got {self.time_budget}")


def choose_strategy(args: StrategyArguments, num_examples: int, blocker: str | None) -> str:
    """The strategy to run: ``args.strategy``, with ``auto`` resolved to ``finetune`` from ``auto_max_examples``
    training examples on or when ``blocker`` (why the small-data strategies do not apply) is given. A small-data
    strategy asked for despite a blocker is a ``ValueError`` naming it."""
    if args.strategy == "auto" and (blocker or num_examples >= args.auto_max_examples):
        why = blocker or f"{num_examples} training examples, at least auto_max_examples={args.auto_max_examples}"
        logger.info("strategy auto: finetune (%s)", why)
        return "finetune"
    if blocker and args.strategy != "finetune":
        raise ValueError(f"strategy {args.strategy!r} does not apply: {blocker}")
    return args.strategy


# ----------------------------------------------------------------------------------------------------------------


@dataclass
class SmallDataRun:
    """What :func:`finetune` has prepared for a small-data strategy: the task, the encoded data, the model."""

    task: SequenceClassificationTask
    tokenizer: Any
    model: SqueezeBertForSequenceClassification
    train_features: list[dict[str, Any]]
    eval_rows: list[Any]
    eval_features: list[dict[str, Any]]
    training_args: TrainingArguments
    strategy_args: StrategyArguments
    dist_info: DistributedInfo


def linear_probe(run: SmallDataRun) -> dict[str, Any]:
    """Fit the linear head on the frozen encoder's vectors and save the model; returns the summary."""
    args = run.training_args
    check_output_dir(args)
    if args.overwrite_output_dir:
        clear_run(args.output_dir)
    return _fit_and_save_head(run, "linear-probe", time.perf_counter(), {})


def setfit(run: SmallDataRun) -> dict[str, Any]:
    """Contrastive training of the encoder on pairs (in the resumable :class:`Trainer`), then the linear head."""
    started = time.perf_counter()
    args, settings = run.training_args, run.strategy_args
    labels = [f["labels"] for f in run.train_features]
    pairs = draw_pairs(labels, settings.setfit_iterations, args.seed)
    pair_model = CosineSimilarityPairs(run.model).train()
    trainer = Trainer(
        pair_model,
        replace(
            args,
            num_epochs=settings.setfit_epochs,
            learning_rate=settings.setfit_learning_rate,
            metric_for_best=None,
            early_stopping_patience=None,
        ),
        ListSource(pairs, args.seed),
        pair_collate(run.train_features, run.task.collate),
        save_model=lambda model, folder: None,  # the classifier is saved once its head is fitted
        dist_info=run.dist_info,
    )
    encoder_summary = trainer.train()
    logger.info("setfit: %d pairs, contrastive loss %.4f; fitting the head", len(pairs), trainer.last_loss)
    return _fit_and_save_head(run, "setfit", started, {"pairs": len(pairs), "encoder_training": encoder_summary})


def _fit_and_save_head(run: SmallDataRun, name: str, started: float, extra: dict[str, Any]) -> dict[str, Any]:
    """Embed the data with the (frozen) encoder, fit the head, evaluate on validation, save model and summary."""
    args, model, task, device = run.training_args, run.model, run.task, run.dist_info.device
    probe.use_mean_pooling(model)
    model.to(device)
    embedding_start = time.perf_counter()
    train_x = probe.embed(model, run.train_features, task.collate, args.eval_batch_size, device)
    eval_x = (
        probe.embed(model, run.eval_features, task.collate, args.eval_batch_size, device) if run.eval_features else None
    )
    speed = (len(run.train_features) + len(run.eval_features)) / (time.perf_counter() - embedding_start)
    train_y = torch.tensor([f["labels"] for f in run.train_features])
    validation = None if eval_x is None else (eval_x, torch.tensor([f["labels"] for f in run.eval_features]))
    weights = balanced_class_weights(train_y.tolist(), model.config.num_labels) if args.class_weights else None
    head = probe.fit_head(model, (train_x, train_y), validation, weights)
    last_eval = {}
    if run.eval_features:
        last_eval = task.evaluate(
            model, run.eval_rows, run.eval_features, batch_size=args.eval_batch_size, device=device
        )
    summary = {
        "strategy": name,
        **extra,
        "head": head,
        "last_eval": last_eval,
        "validation_accuracy": last_eval.get("accuracy"),
        "embedding_sequences_per_second": speed,
        "train_seconds": time.perf_counter() - started,
        "training_examples": len(run.train_features),
        "output_dir": str(args.output_dir),
    }
    if run.dist_info.is_main:
        model.save_pretrained(args.output_dir)
        run.tokenizer.save_pretrained(args.output_dir)
        hub.write_json(Path(args.output_dir) / "training_summary.json", summary)
    return summary


# ----------------------------------------------------------------------------------------------------------------


def auto(run_strategy: Callable[[str, TrainingArguments], dict[str, Any]], run: SmallDataRun) -> dict[str, Any]:
    """Run linear-probe, then setfit and finetune where their estimated time fits in what is left of
    ``--time-budget``, each into ``output_dir/strategies/<name>`` (``run_strategy(name, training_args)`` runs one),
    and save the one with the best validation accuracy (the cheaper on a tie) as the output model."""
    training_args, settings = run.training_args, run.strategy_args
    check_output_dir(training_args)
    output_dir = Path(training_args.output_dir)
    if training_args.overwrite_output_dir:
        clear_run(output_dir)
    started = time.perf_counter()
    candidates: dict[str, dict[str, Any]] = {}  # what the summary and the log line report
    summaries: dict[str, dict[str, Any]] = {}
    for name in ("linear-probe", "setfit", "finetune"):
        spent = time.perf_counter() - started
        if summaries:  # the probe always runs, and its speed gives the estimates of the others
            estimate = _estimate_seconds(name, summaries["linear-probe"], training_args, settings)
            if spent + estimate > settings.time_budget:
                candidates[name] = {"skipped": f"estimated {estimate:.0f}s, {settings.time_budget - spent:.0f}s left"}
                continue
        folder = output_dir / CANDIDATES_DIR / name
        if not training_args.resume:
            clear_run(folder)
        args = replace(training_args, output_dir=str(folder), metric_for_best="accuracy", overwrite_output_dir=False)
        summaries[name] = run_strategy(name, args)
        accuracy = summaries[name].get("validation_accuracy", summaries[name].get("best_metric"))
        candidates[name] = {"validation_accuracy": accuracy, "seconds": time.perf_counter() - started - spent}
    ran = [name for name, c in candidates.items() if "skipped" not in c]
    chosen = max(ran, key=lambda name: candidates[name]["validation_accuracy"])
    reason = "; ".join(
        f"{name} skipped ({c['skipped']})"
        if "skipped" in c
        else f"{name} {c['validation_accuracy']:.4f} in {c['seconds']:.0f}s"
        for name, c in candidates.items()
    )
    logger.info("strategy auto: chose %s by validation accuracy: %s", chosen, reason)
    SqueezeBertForSequenceClassification.from_pretrained(output_dir / CANDIDATES_DIR / chosen).save_pretrained(
        output_dir
    )
    run.tokenizer.save_pretrained(output_dir)
    summary = {
        **summaries[chosen],
        "strategy": "auto",
        "chosen": chosen,
        "candidates": candidates,
        "reason": f"chose {chosen} by validation accuracy: {reason}",
        "output_dir": str(output_dir),
    }
    hub.write_json(output_dir / "training_summary.json", summary)
    return summary


def _estimate_seconds(
    name: str, probe_summary: dict[str, Any], args: TrainingArguments, settings: StrategyArguments
) -> float:
    """Seconds ``name`` should take: its training sequences at :data:`TRAINING_COST` inference passes each, at the
    inference speed the probe measured."""
    examples = probe_summary["training_examples"]
    if name == "setfit":
        sequences = 4 * examples * settings.setfit_iterations * settings.setfit_epochs  # 2 pairs x 2 texts
    else:
        sequences = examples * args.num_epochs
    return TRAINING_COST * sequences / probe_summary["embedding_sequences_per_second"]


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines about a finished run of any strategy."""
    strategy = summary.get("strategy", "finetune")
    if strategy == "finetune":
        return format_training_summary(summary)
    lines = []
    if strategy == "auto":
        lines.append(f"strategy auto: {summary['reason']}")
        strategy = summary["chosen"]
        if strategy == "finetune":
            return "\n".join([*lines, format_training_summary(summary)])
    if "encoder_training" in summary:  # setfit's contrastive stage, without its "model saved" line
        lines += format_training_summary(summary["encoder_training"]).splitlines()[:-1]
    head = summary["head"]
    lines.append(
        f"{strategy}: linear head on {summary['training_examples']} examples (L2 {head['l2']:g}) in "
        f"{summary['train_seconds']:.1f}s"
    )
    if summary.get("last_eval"):
        lines.append("validation: " + ", ".join(f"{k}={v:.4f}" for k, v in summary["last_eval"].items()))
    lines.append(f"model saved to {summary['output_dir']}")
    return "\n".join(lines)
