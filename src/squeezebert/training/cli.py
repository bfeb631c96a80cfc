"""Command lines ``train`` and ``pretrain``: argument definitions and the functions that run them.

The main ``squeezebert`` command wires its ``train`` / ``pretrain`` subcommands to :func:`add_train_arguments` /
:func:`run_train` and :func:`add_pretrain_arguments` / :func:`run_pretrain`; ``python -m squeezebert.training`` runs
them directly. Both work unchanged under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from .. import hub, modeling
from ..config import SqueezeBertConfig
from . import data
from .tasks import (
    PROBLEM_TYPES,
    TASKS,
    MultipleChoiceTask,
    QuestionAnsweringTask,
    SequenceClassificationTask,
    Task,
    TokenClassificationTask,
)
from .trainer import ListSource, Trainer, TrainingArguments, format_summary, init_distributed, set_seed

logger = logging.getLogger("squeezebert.training")

_PROBLEM_ALIASES = {
    "single-label": "single_label_classification",
    "multi-label": "multi_label_classification",
    "regression": "regression",
    **{p: p for p in PROBLEM_TYPES},
}


def _add_loop_arguments(parser: argparse.ArgumentParser, lr: float, batch: int) -> None:
    g = parser.add_argument_group("optimisation")
    g.add_argument("--output-dir", required=True, help="folder for checkpoints, logs and the final model")
    g.add_argument("--epochs", type=int, default=3, help="passes over the training set (default 3)")
    g.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    g.add_argument("--batch-size", type=int, default=batch, help=f"examples per process per micro-batch ({batch})")
    g.add_argument("--eval-batch-size", type=int, default=64)
    g.add_argument("--gradient-accumulation-steps", type=int, default=1)
    g.add_argument("--learning-rate", "--lr", type=float, default=lr, help=f"peak learning rate ({lr})")
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--optimizer", choices=("adamw", "lamb"), default="adamw", help="AdamW or LAMB (the paper's)")
    g.add_argument("--schedule", choices=("linear", "cosine", "constant"), default="linear")
    g.add_argument("--warmup-ratio", type=float, default=0.1, help="fraction of the steps spent warming up")
    g.add_argument("--warmup-steps", type=int, default=None, help="warm-up steps (overrides --warmup-ratio)")
    g.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping norm (0: off)")
    g.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU or GPU)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--logging-steps", type=int, default=10)
    g.add_argument("--save-steps", type=int, default=None, help="write a resumable checkpoint every N steps")
    g.add_argument("--save-total-limit", type=int, default=2, help="resumable checkpoints kept (default 2)")
    g.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-cuda", action="store_true", help="train on the CPU even if a GPU is present")


def loop_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`TrainingArguments` fields that the options of :func:`_add_loop_arguments` set."""
    return dict(
        output_dir=args.output_dir,
        num_epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        schedule=args.schedule,
        warmup_ratio=args.warmup_ratio,
        warmup_steps=args.warmup_steps,
        max_grad_norm=args.max_grad_norm or None,
        bf16=args.bf16,
        seed=args.seed,
        eval_steps=args.eval_steps,
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        logging_steps=args.logging_steps,
        resume=args.resume,
        progress=not args.no_progress,
        no_cuda=args.no_cuda,
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``train`` (fine-tuning) options to ``parser``."""
    g = parser.add_argument_group("task and data")
    g.add_argument("--task", choices=sorted(TASKS), default="sequence-classification")
    g.add_argument("--train-file", required=True, help="CSV / TSV / JSON lines (CoNLL for tagging, SQuAD JSON for QA)")
    g.add_argument("--validation-file", default=None, help="held-out data; without it --validation-split is used")
    g.add_argument("--validation-split", type=float, default=0.1, help="fraction held out without a validation file")
    g.add_argument("--text", default=None, help="text column (default 'text'; 'sent1' for multiple choice)")
    g.add_argument("--text-pair", default=None, help="second-text column for pair tasks ('sent2' for multiple choice)")
    g.add_argument("--label", default="label", help="label column (default 'label')")
    g.add_argument("--choices", default="ending0,ending1,ending2,ending3", help="choice columns (multiple choice)")
    g.add_argument("--problem-type", choices=sorted(_PROBLEM_ALIASES), default="single-label")
    g.add_argument("--label-separator", default=";", help="separator of multi-label cells in CSV / TSV (';')")
    g.add_argument("--max-length", type=int, default=128, help="longest sequence in tokens (default 128)")
    g.add_argument("--doc-stride", type=int, default=128, help="tokens shared by consecutive QA windows")
    g.add_argument("--group-by-length", action="store_true", help="batch examples of similar length (less padding)")
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=None, help="start from this checkpoint (folder or hub id)")
    g.add_argument("--config", default=None, help="start from random weights with this config (folder or .json)")
    g.add_argument("--tokenizer", default=None, help="tokenizer folder (default: --model)")
    g = parser.add_argument_group("evaluation")
    g.add_argument("--eval-steps", type=int, default=None, help="also evaluate every N steps")
    g.add_argument("--no-eval-each-epoch", action="store_true", help="do not evaluate after every epoch")
    g.add_argument("--metric-for-best", default=None, help="metric that picks the best model (task default)")
    g.add_argument("--early-stopping-patience", type=int, default=None, help="evaluations without improvement")
    g = parser.add_argument_group("distillation")
    g.add_argument("--teacher", default=None, help="teacher checkpoint of the same task (fine-tuned, same vocab)")
    g.add_argument("--temperature", type=float, default=2.0)
    g.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation loss (0..1)")
    g.add_argument(
        "--init-from-dense",
        default=None,
        help="initialise a grouped model (--config) from this groups=1 checkpoint's diagonal blocks",
    )
    _add_loop_arguments(parser, lr=5e-5, batch=32)
    return parser


# --------------------------------------------------------------------------------------------------------------


def _load_config(path: str) -> SqueezeBertConfig:
    if os.path.isfile(path):
        return SqueezeBertConfig.from_dict(hub.read_json(path))
    return SqueezeBertConfig.from_pretrained(path)


def _rows_for(args: argparse.Namespace, path: str) -> list[Any]:
    task = args.task
    if task == "token-classification":
        return data.read_conll(path)
    if task == "question-answering":
        return data.read_squad(path)
    table = data.read_table(path)
    if task == "multiple-choice":
        choices = [c.strip() for c in args.choices.split(",") if c.strip()]
        context, question = args.text or "sent1", args.text_pair or "sent2"
        contexts = data.column(table, context, path)
        questions = data.column(table, question, path) if question else [""] * len(table)
        options = list(zip(*(data.column(table, c, path) for c in choices), strict=True))
        labels = data.column(table, args.label, path)
        return [
            {"context": c, "question": q, "choices": list(o), "label": y}
            for c, q, o, y in zip(contexts, questions, options, labels, strict=True)
        ]
    texts = data.column(table, args.text or "text", path)
    pairs = data.column(table, args.text_pair, path) if args.text_pair else [None] * len(table)
    labels = data.column(table, args.label, path)
    return [{"text": t, "text_pair": p, "label": y} for t, p, y in zip(texts, pairs, labels, strict=True)]


def _stratify_key(args: argparse.Namespace, rows: list[Any]) -> list[Any] | None:
    if args.task == "sequence-classification" and _PROBLEM_ALIASES[args.problem_type] == "single_label_classification":
        return [r["label"] for r in rows]
    return None


def build_task(args: argparse.Namespace, tokenizer: Any, rows: list[Any]) -> Task:
    """The task object for ``args`` (labels discovered from ``rows``)."""
    if args.task == "sequence-classification":
        problem = _PROBLEM_ALIASES[args.problem_type]
        return SequenceClassificationTask.from_rows(tokenizer, rows, problem, args.max_length, args.label_separator)
    if args.task == "token-classification":
        return TokenClassificationTask.from_rows(tokenizer, rows, args.max_length)
    if args.task == "question-answering":
        return QuestionAnsweringTask(tokenizer, args.max_length, min(args.doc_stride, args.max_length // 2 - 1))
    return MultipleChoiceTask(tokenizer, args.max_length)


def _build_model(args: argparse.Namespace, task: Task, tokenizer: Any) -> modeling.SqueezeBertPreTrainedModel:
    overrides = task.config_overrides()
    if (args.model is None) == (args.config is None):
        raise ValueError("pass exactly one of --model (a checkpoint to fine-tune) or --config (random weights)")
    if args.model is not None:
        model = task.model_class.from_pretrained(args.model, ignore_mismatched_sizes=True, **overrides)
    else:
        config = SqueezeBertConfig.from_dict(_load_config(args.config).to_dict(), **overrides)
        model = task.model_class(config)
        if args.init_from_dense:
            from .distill import init_grouped_from_dense

            state = hub.load_state_dict(args.init_from_dense)
            prefix = model.base_model_prefix + "."
            if not any(k.startswith(prefix) for k in state):
                state = {prefix + k: v for k, v in state.items()}
            init_grouped_from_dense(model, state)
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {model.config.vocab_size}"
        )
    return model


def _length(feature: dict[str, Any]) -> int:
    ids = feature["input_ids"]
    return max(len(seq) for seq in ids) if ids and isinstance(ids[0], list) else len(ids)


def run_train(args: argparse.Namespace) -> int:
    """Fine-tune a model as ``args`` (from :func:`add_train_arguments`) says; returns the exit status."""
    from ..tokenization import AutoTokenizer

    info = init_distributed(args.no_cuda)
    _setup_logging(info.is_main)
    tokenizer_source = args.tokenizer or args.model
    if tokenizer_source is None:
        raise ValueError("pass --tokenizer (or --model, whose folder holds the tokenizer)")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)

    train_rows = _rows_for(args, args.train_file)
    if args.validation_file:
        eval_rows = _rows_for(args, args.validation_file)
    elif args.validation_split > 0:
        train_rows, eval_rows = data.train_validation_split(
            train_rows, args.validation_split, args.seed, _stratify_key(args, train_rows)
        )
    else:
        eval_rows = []
    task = build_task(args, tokenizer, train_rows + eval_rows)
    train_features = task.encode(train_rows, training=True)
    eval_features = task.encode(eval_rows, training=False) if eval_rows else []

    set_seed(args.seed)  # the same initial weights in every process
    model = _build_model(args, task, tokenizer)
    loss_fn = None
    if args.teacher:
        from .distill import DistillationLoss

        teacher = task.model_class.from_pretrained(args.teacher).to(info.device)
        if getattr(teacher.config, "num_labels", None) != model.config.num_labels and task.name != "multiple-choice":
            raise ValueError(
                f"the teacher {args.teacher!r} has {teacher.config.num_labels} labels, "
                f"the task {model.config.num_labels}"
            )
        loss_fn = DistillationLoss(teacher, args.temperature, args.alpha, model.config.problem_type)

    metric = args.metric_for_best or task.main_metric
    training_args = TrainingArguments(
        **loop_arguments(args),
        eval_each_epoch=not args.no_eval_each_epoch,
        early_stopping_patience=args.early_stopping_patience,
        metric_for_best=metric,
        greater_is_better=not any(word in metric for word in ("loss", "mse")),
    )

    def save(m: Any, folder: str) -> None:
        m.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    def evaluate(m: Any, autocast: Any) -> dict[str, float]:
        return task.evaluate(
            m, eval_rows, eval_features, batch_size=args.eval_batch_size, device=info.device, autocast=autocast
        )

    trainer = Trainer(
        model,
        training_args,
        ListSource(
            train_features, args.seed, lengths=[_length(f) for f in train_features] if args.group_by_length else None
        ),
        task.collate,
        evaluate=evaluate if eval_features else None,
        loss_fn=loss_fn,
        save_model=save,
        dist_info=info,
    )
    if info.is_main:
        logger.info(
            "%s: %d training and %d validation examples, %d labels",
            task.name,
            len(train_rows),
            len(eval_rows),
            model.config.num_labels,
        )
    summary = trainer.train()
    if info.is_main:
        print(format_summary(summary), flush=True)
    return 0


def _setup_logging(main: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if main else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# --------------------------------------------------------------------------------------------------------------


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``pretrain`` (MLM + SOP) options to ``parser``."""
    from .pretrain import add_corpus_arguments

    add_corpus_arguments(parser)
    _add_loop_arguments(parser, lr=1e-4, batch=32)
    return parser


def run_pretrain(args: argparse.Namespace) -> int:
    """Pretrain a model as ``args`` (from :func:`add_pretrain_arguments`) says; returns the exit status."""
    from .pretrain import pretrain_from_args

    info = init_distributed(args.no_cuda)
    _setup_logging(info.is_main)
    summary = pretrain_from_args(args, info)
    if info.is_main:
        print(format_summary(summary), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m squeezebert.training {train,pretrain} ...``."""
    parser = argparse.ArgumentParser(prog="python -m squeezebert.training", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train", help="fine-tune on a task"))
    add_pretrain_arguments(sub.add_parser("pretrain", help="pretrain with MLM + sentence-order prediction"))
    args = parser.parse_args(argv)
    try:
        return run_train(args) if args.command == "train" else run_pretrain(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
