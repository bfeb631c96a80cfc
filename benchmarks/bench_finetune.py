"""Fine-tuning on the chatterbot-corpus topic task, against Hugging Face's Trainer (issue 15's evidence).

The data: ``benchmarks/chatterbot.py`` (21 topics, train / validation / test 1359 / 155 / 380 with split seed 42),
tokenized once with our tokenizer (MiniLM's vocabulary, ``--max-length`` 64), the same features for every model.

- ``hf``: ``transformers.Trainer`` on ``BertForSequenceClassification`` from the MiniLM-L6 folder
  (``benchmarks/minilm.py`` finds it), Hugging Face's defaults otherwise;
- ``ours``: our :class:`~squeezebert.training.Trainer` on the same checkpoint converted to SqueezeBERT (groups 1),
  starting from HF's classifier initialisation of the same seed. Both train with lr 1e-4, 5 epochs, batch 32,
  warm-up 10%, weight decay 0.01, and keep the final model (no model selection). Their epochs run alternately in
  this process (HF epoch 1, our epoch 1, HF epoch 2, ...), each timed alone, so both see the same machine load;
- ``tfidf``: TF-IDF + logistic regression (``benchmarks/chatterbot_eval.py``; needs the ``bench`` extra,
  scikit-learn), fit on train + validation;
- ``strategies``: ``squeezebert train --strategy S`` for every strategy the command offers (linear-probe, setfit,
  auto, ...), started from the converted checkpoint with the same flags; skipped when the command has none.

Every model is scored on the test split (accuracy and macro-F1), per seed; the table gives the mean, the standard
deviation and the range over ``--seeds``, and the training seconds per epoch. Then the goals, then JSON. The
machine's load counts: say in the notes whether it was quiet.

    python benchmarks/bench_finetune.py                       # everything, seeds 0 1 2
    python benchmarks/bench_finetune.py --parts hf ours --quick  # 1 seed, 1 epoch, 256 training examples
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from bench_deploy import machine
from chatterbot import write_splits  # the one corpus loader
from minilm import find_minilm_model_dir

import squeezebert
from squeezebert.cli import main as squeezebert_main
from squeezebert.tokenization import AutoTokenizer
from squeezebert.training.data import read_table
from squeezebert.training.tasks import SequenceClassificationTask
from squeezebert.training.trainer import ListSource, Trainer, TrainingArguments

PARTS = ("hf", "ours", "tfidf", "strategies")
HYPER = dict(learning_rate=1e-4, num_epochs=5, batch_size=32, warmup_ratio=0.1, weight_decay=0.01)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------
# Data


class Data:
    """The split as rows and as features of one task (labels from train + validation)."""

    def __init__(self, work: Path, max_length: int, tokenizer_dir: Path, train_limit: int | None) -> None:
        self.paths = write_splits(work / "data")
        rows = {name: read_table(path) for name, path in self.paths.items()}
        if train_limit is not None:  # --quick: the first examples of train only
            rows["train"] = rows["train"][:train_limit]
            self.paths["train"] = work / "data" / "train_quick.csv"
            with open(self.paths["train"], "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, ["text", "label"])
                writer.writeheader()
                writer.writerows(rows["train"])
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        self.task = SequenceClassificationTask.from_rows(
            tokenizer, rows["train"] + rows["valid"], "single_label_classification", max_length
        )
        self.rows = rows
        self.features = {name: self.task.encode(r, training=name == "train") for name, r in rows.items()}

    def score(self, model: torch.nn.Module) -> dict[str, float]:
        """Test accuracy and macro-F1 in percent."""
        result = self.task.evaluate(model, self.rows["test"], self.features["test"], batch_size=64)
        return {"accuracy": 100 * result["accuracy"], "f1_macro": 100 * result["f1_macro"]}


# --------------------------------------------------------------------------------------------------------------
# HF's Trainer and ours, epoch by epoch in turn


class Baton:
    """Two training loops in two threads, one running at a time: ``wait(name)`` blocks until ``give(name)``."""

    def __init__(self, first: str) -> None:
        self.turn = first
        self.error: BaseException | None = None
        self.condition = threading.Condition()

    def give(self, name: str) -> None:
        with self.condition:
            self.turn = name
            self.condition.notify_all()

    def wait(self, name: str) -> None:
        with self.condition:
            self.condition.wait_for(lambda: self.turn == name or self.error is not None)
        if self.error is not None:
            raise RuntimeError("the other training loop failed") from self.error

    def fail(self, error: BaseException) -> None:
        with self.condition:
            self.error = error
            self.condition.notify_all()


def train_hf_and_ours(data: Data, minilm: Path, converted: Path, seed: int, epochs: int, work: Path) -> dict[str, Any]:
    """Fine-tune HF's BERT and our converted model with the same hyper-parameters, their epochs alternating; returns
    per side the test scores and the seconds of each epoch."""
    import transformers

    transformers.logging.set_verbosity_error()
    overrides = data.task.config_overrides()
    transformers.set_seed(seed)
    hf_model = transformers.BertForSequenceClassification.from_pretrained(minilm, **overrides)
    ours = squeezebert.SqueezeBertForSequenceClassification.from_pretrained(
        converted, ignore_mismatched_sizes=True, **overrides
    )
    with torch.no_grad():  # the same initial head
        ours.classifier.load_state_dict(hf_model.classifier.state_dict())

    baton = Baton(first="hf")
    seconds: dict[str, list[float]] = {"hf": [], "ours": []}
    started: dict[str, float] = {}

    class HandOver(transformers.TrainerCallback):
        """HF's side: time each epoch, then let our epoch run."""

        def on_epoch_begin(self, args, state, control, **kwargs):
            started["hf"] = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            seconds["hf"].append(time.perf_counter() - started["hf"])
            baton.give("ours")
            baton.wait("hf")

    hf_args = transformers.TrainingArguments(
        output_dir=str(work / f"hf-{seed}"),
        per_device_train_batch_size=HYPER["batch_size"],
        num_train_epochs=epochs,
        learning_rate=HYPER["learning_rate"],
        warmup_steps=HYPER["warmup_ratio"],
        weight_decay=HYPER["weight_decay"],
        seed=seed,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
    )
    hf_trainer = transformers.Trainer(
        model=hf_model,
        args=hf_args,
        train_dataset=data.features["train"],
        data_collator=data.task.collate,
        callbacks=[HandOver()],
    )

    def run_hf() -> None:
        try:
            hf_trainer.train()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            baton.fail(error)

    class OurHandOver:
        """Our side: at the last step of each epoch, time it and let HF's next epoch run."""

        def on_step_end(self, trainer: Trainer) -> None:
            if trainer.state.step_in_epoch == trainer.source.steps_per_epoch(trainer.global_batch_size, 1):
                seconds["ours"].append(time.perf_counter() - started["ours"])
                baton.give("hf")
                if trainer.state.epoch + 1 < epochs:
                    baton.wait("ours")
                started["ours"] = time.perf_counter()

    our_args = TrainingArguments(
        output_dir=str(work / f"ours-{seed}"),
        batch_size=HYPER["batch_size"],
        num_epochs=epochs,
        learning_rate=HYPER["learning_rate"],
        warmup_ratio=HYPER["warmup_ratio"],
        weight_decay=HYPER["weight_decay"],
        seed=seed,
        logging_steps=10_000,
        progress=False,
        overwrite_output_dir=True,
    )
    our_trainer = Trainer(
        ours, our_args, ListSource(data.features["train"], seed), data.task.collate, callbacks=[OurHandOver()]
    )
    hf_thread = threading.Thread(target=run_hf, daemon=True)
    hf_thread.start()
    baton.wait("ours")
    started["ours"] = time.perf_counter()
    our_trainer.train()
    hf_thread.join()
    if baton.error is not None:
        raise RuntimeError("HF's Trainer failed") from baton.error
    return {
        "hf": {**data.score(hf_model), "epoch_seconds": seconds["hf"]},
        "ours": {**data.score(ours), "epoch_seconds": seconds["ours"]},
    }


# --------------------------------------------------------------------------------------------------------------
# The strategies of ``squeezebert train``


def offered_strategies() -> list[str]:
    """The ``--strategy`` choices of ``squeezebert train`` (none before that flag exists)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        squeezebert_main(["train", "--help"])
    text = " ".join(out.getvalue().split())
    marker = "--strategy {"
    if marker not in text:
        return []
    return text.split(marker, 1)[1].split("}", 1)[0].split(",")


def train_strategy(data: Data, converted: Path, strategy: str, seed: int, epochs: int, work: Path) -> dict[str, Any]:
    """``squeezebert train --strategy STRATEGY`` from the converted checkpoint; test scores, seconds, and the
    strategy that trained the model (``auto``'s choice)."""
    out = work / f"{strategy}-{seed}"
    argv = ["train", "--train-file", str(data.paths["train"]), "--validation-file", str(data.paths["valid"])]
    argv += ["--model", str(converted), "--output-dir", str(out), "--overwrite-output-dir", "--no-progress"]
    argv += ["--max-length", str(data.task.max_length), "--batch-size", str(HYPER["batch_size"])]
    argv += ["--lr", str(HYPER["learning_rate"]), "--epochs", str(epochs), "--seed", str(seed)]
    argv += ["--warmup-ratio", str(HYPER["warmup_ratio"]), "--weight-decay", str(HYPER["weight_decay"])]
    argv += ["--strategy", strategy]
    start = time.perf_counter()
    if squeezebert_main(argv) != 0:
        raise RuntimeError(f"squeezebert {' '.join(argv)} failed")
    seconds = time.perf_counter() - start
    summary = json.loads((out / "training_summary.json").read_text(encoding="utf-8"))
    model = squeezebert.SqueezeBertForSequenceClassification.from_pretrained(out)
    return {**data.score(model), "seconds": seconds, "chosen": summary.get("chosen") or summary.get("strategy")}


# --------------------------------------------------------------------------------------------------------------
# The report


def spread(values: list[float]) -> str:
    """``mean ± std (min-max)``, or the value alone."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| model | seeds | test accuracy % | test macro-F1 % | train s / epoch | train s |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        per_epoch = [s for r in runs for s in r.get("epoch_seconds", [])]
        epoch_cell = f"{statistics.median(per_epoch):.1f}" if per_epoch else "-"
        total = [r.get("seconds", sum(r.get("epoch_seconds", []))) for r in runs]
        chosen = sorted({r["chosen"] for r in runs if r.get("chosen")})
        label = f"{name} (chose {', '.join(chosen)})" if name.endswith("auto") and chosen else name
        lines.append(
            f"| {label} | {len(runs)} | {spread([r['accuracy'] for r in runs])} | "
            f"{spread([r['f1_macro'] for r in runs])} | {epoch_cell} | {statistics.mean(total):.0f} |"
        )
    return "\n".join(lines)


def goals(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The issue's goals that the measured parts can decide, each ``met`` or ``NOT met``."""

    def mean(name: str, key: str) -> float:
        return statistics.mean(r[key] for r in results[name])

    lines = []
    if "hf" in results and "ours" in results:
        gap = mean("ours", "accuracy") - mean("hf", "accuracy")
        lines.append(
            f"full fine-tuning within 1 point of HF's mean accuracy: {gap:+.1f} points, "
            f"{'met' if gap >= -1 else 'NOT met'}"
        )
        ratios = [  # per seed (each seed's epochs alternated under the same load), then the median over seeds
            statistics.median(hf["epoch_seconds"]) / statistics.median(ours["epoch_seconds"])
            for hf, ours in zip(results["hf"], results["ours"], strict=True)
        ]
        ratio = statistics.median(ratios)
        lines.append(
            f"ours at least 1.2x faster per epoch (per seed: median HF epoch / median our epoch; median over seeds): "
            f"{ratio:.2f}x, {'met' if ratio >= 1.2 else 'NOT met'}"
        )
    if "strategy auto" in results:
        accuracy = mean("strategy auto", "accuracy")
        lines.append(
            f"the default strategy (auto) at least 80% test accuracy: {accuracy:.1f}%, "
            f"{'met' if accuracy >= 80 else 'NOT met'}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    parser.add_argument("--strategies", nargs="+", default=None, help="these strategies only (default: all offered)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 256 training examples (a smoke run)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--minilm-dir", default=None, help="the MiniLM BERT folder (default: benchmarks/minilm.py)")
    parser.add_argument("--work-dir", default="bench_finetune_work", help="data splits and trained models")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    seeds, epochs = (args.seeds[:1], 1) if args.quick else (args.seeds, HYPER["num_epochs"])

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    minilm = Path(args.minilm_dir) if args.minilm_dir else find_minilm_model_dir()
    converted = work / "minilm_squeezebert"
    if not (converted / "config.json").is_file():
        squeezebert.convert_bert_checkpoint(minilm, converted)
    data = Data(work, args.max_length, converted, 256 if args.quick else None)
    log(f"{machine()}; train / valid / test {', '.join(str(len(r)) for r in data.rows.values())}")

    results: dict[str, list[dict[str, Any]]] = {}
    if "tfidf" in args.parts:
        from chatterbot_eval import tfidf_baseline

        start = time.perf_counter()
        scores = tfidf_baseline(data.paths)
        run = {"accuracy": 100 * scores["accuracy"], "f1_macro": 100 * scores["f1_macro"]}
        results["tfidf + logistic regression"] = [{**run, "seconds": time.perf_counter() - start}]
        log(f"  tfidf: {json.dumps(results['tfidf + logistic regression'][0])}")
    for seed in seeds if {"hf", "ours"} & set(args.parts) else []:
        log(f"HF's Trainer and ours, seed {seed}")
        pair = train_hf_and_ours(data, minilm, converted, seed, epochs, work)
        results.setdefault("hf", []).append(pair["hf"])
        results.setdefault("ours", []).append(pair["ours"])
        log(f"  {json.dumps(pair)}")
    if "strategies" in args.parts:
        offered = offered_strategies()
        if not offered:
            log("squeezebert train has no --strategy yet: strategies skipped")
        for strategy in args.strategies or offered:
            for seed in seeds:
                log(f"strategy {strategy}, seed {seed}")
                run = train_strategy(data, converted, strategy, seed, epochs, work)
                results.setdefault(f"strategy {strategy}", []).append(run)
                log(f"  {json.dumps(run)}")

    report = {"machine": machine(), "epochs": epochs, "seeds": seeds, "hyper_parameters": HYPER, "results": results}
    print(f"Machine: {report['machine']}\n")
    print(table(results))
    print()
    for line in goals(results):
        print(f"- {line}")
    print()
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
