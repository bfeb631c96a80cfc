"""The ``train`` and ``pretrain`` subcommands: flags generated from the training dataclasses, then one library call
(:func:`~squeezebert.training.finetune` / :func:`~squeezebert.training.pretrain`). Both work unchanged under
``torchrun --nproc_per_node N``: every process runs the command, the main one logs and prints the summary.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from ..training.finetune import DistillationArguments, FinetuneModelArguments, TaskArguments, finetune
from ..training.pretrain import CorpusArguments, PretrainModelArguments, pretrain
from ..training.strategies import StrategyArguments
from ..training.strategies import format_summary as format_strategy_summary
from ..training.trainer import DistributedInfo, TrainingArguments, format_summary, init_distributed
from .arguments import add_dataclass_arguments, dataclass_from_args
from .command import Command


def _run_in_this_process(
    training_args: TrainingArguments,
    run: Callable[[DistributedInfo], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str] = format_summary,
) -> int:
    """Join the process group (under torchrun), log to stderr (INFO in the main process, warnings only in the
    others), run ``run(dist_info)`` and print its summary (``describe(summary)``) from the main process; returns the
    exit status."""
    info = init_distributed(training_args.no_cuda)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("squeezebert").setLevel(logging.INFO if info.is_main else logging.WARNING)
    summary = run(info)
    if info.is_main:
        print(describe(summary), flush=True)
    return 0


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, TaskArguments, "task and data")
    add_dataclass_arguments(parser, FinetuneModelArguments, "model")
    add_dataclass_arguments(parser, StrategyArguments, "strategy (single-label sequence classification)")
    add_dataclass_arguments(parser, DistillationArguments, "distillation")
    add_dataclass_arguments(parser, TrainingArguments, "training loop and evaluation")


def _run_train(args: argparse.Namespace) -> int:
    task_args = dataclass_from_args(TaskArguments, args)
    model_args = dataclass_from_args(FinetuneModelArguments, args)
    strategy_args = dataclass_from_args(StrategyArguments, args)
    distillation_args = dataclass_from_args(DistillationArguments, args)
    training_args = dataclass_from_args(TrainingArguments, args)
    return _run_in_this_process(
        training_args,
        lambda info: finetune(task_args, model_args, training_args, distillation_args, info, strategy_args),
        format_strategy_summary,
    )


def _add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, CorpusArguments, "corpus and vocabulary")
    add_dataclass_arguments(parser, PretrainModelArguments, "model and objective")
    add_dataclass_arguments(parser, TrainingArguments, "training loop and evaluation", defaults={"learning_rate": 1e-4})


def _run_pretrain(args: argparse.Namespace) -> int:
    corpus_args = dataclass_from_args(CorpusArguments, args)
    model_args = dataclass_from_args(PretrainModelArguments, args)
    training_args = dataclass_from_args(TrainingArguments, args)
    return _run_in_this_process(training_args, lambda info: pretrain(corpus_args, model_args, training_args, info))


COMMANDS: tuple[Command, ...] = (
    Command(
        name="train",
        help="fine-tune on your data (works under torchrun)",
        add_arguments=_add_train_arguments,
        run=_run_train,
        description="Fine-tune a model on a classification, tagging, question-answering or multiple-choice task, "
        "optionally distilling a teacher; a small single-label classification set gets the best of a linear probe, "
        "SetFit and fine-tuning on validation (--strategy auto). Under torchrun --nproc_per_node N every process "
        "runs it (DDP).",
    ),
    Command(
        name="pretrain",
        help="pretrain with MLM + sentence-order prediction (works under torchrun)",
        add_arguments=_add_pretrain_arguments,
        run=_run_pretrain,
        description="Pretrain with masked-LM plus sentence-order prediction on a streamed text corpus, training a "
        "WordPiece vocabulary unless --tokenizer or --model gives one. Works under torchrun --nproc_per_node N.",
    ),
)
