"""Fine-tuning and pretraining SqueezeBERT: data readers, tasks, metrics, LAMB, the training loop (DDP, resumable
checkpoints), knowledge distillation, and MLM + SOP pretraining.

The command lines ``squeezebert train ...`` and ``squeezebert pretrain ...`` (each usable under ``torchrun``) call
:func:`finetune` and :func:`pretrain` with the dataclasses their flags are generated from.
"""

from .distill import DistillationLoss, init_grouped_from_dense
from .finetune import DistillationArguments, FinetuneModelArguments, TaskArguments, finetune
from .optim import Lamb, build_optimizer, build_schedule
from .pretrain import CorpusArguments, PretrainModelArguments, pretrain
from .strategies import STRATEGIES, StrategyArguments
from .tasks import (
    TRAINING_TASKS,
    MultipleChoiceTask,
    QuestionAnsweringTask,
    SequenceClassificationTask,
    TokenClassificationTask,
    TrainingTask,
)
from .trainer import ListSource, StreamSource, Trainer, TrainerState, TrainingArguments, format_summary

__all__ = [
    "STRATEGIES",
    "TRAINING_TASKS",
    "CorpusArguments",
    "DistillationArguments",
    "DistillationLoss",
    "FinetuneModelArguments",
    "Lamb",
    "ListSource",
    "MultipleChoiceTask",
    "PretrainModelArguments",
    "QuestionAnsweringTask",
    "SequenceClassificationTask",
    "StrategyArguments",
    "StreamSource",
    "TaskArguments",
    "TokenClassificationTask",
    "Trainer",
    "TrainerState",
    "TrainingArguments",
    "TrainingTask",
    "build_optimizer",
    "build_schedule",
    "finetune",
    "format_summary",
    "init_grouped_from_dense",
    "pretrain",
]
