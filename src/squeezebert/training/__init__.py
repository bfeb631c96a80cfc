"""Fine-tuning and pretraining SqueezeBERT: data readers, tasks, metrics, LAMB, the training loop (DDP, resumable
checkpoints), knowledge distillation, and MLM + SOP pretraining.

Command lines: ``python -m squeezebert.training train ...`` and ``... pretrain ...`` (also ``squeezebert train`` /
``squeezebert pretrain``), each usable under ``torchrun``.
"""

from .cli import add_pretrain_arguments, add_train_arguments, run_pretrain, run_train
from .distill import DistillationLoss, init_grouped_from_dense
from .optim import Lamb, build_optimizer, build_schedule
from .tasks import MultipleChoiceTask, QuestionAnsweringTask, SequenceClassificationTask, Task, TokenClassificationTask
from .trainer import ListSource, StreamSource, Trainer, TrainerState, TrainingArguments

__all__ = [
    "DistillationLoss",
    "Lamb",
    "ListSource",
    "MultipleChoiceTask",
    "QuestionAnsweringTask",
    "SequenceClassificationTask",
    "StreamSource",
    "Task",
    "TokenClassificationTask",
    "Trainer",
    "TrainerState",
    "TrainingArguments",
    "add_pretrain_arguments",
    "add_train_arguments",
    "build_optimizer",
    "build_schedule",
    "init_grouped_from_dense",
    "run_pretrain",
    "run_train",
]
