"""Fine-tuning: its options (task and data, model, distillation) and :func:`finetune`, which reads the data, builds
the task and the model, and runs the :class:`~squeezebert.training.trainer.Trainer`.

``squeezebert train`` generates its flags from these dataclasses and :class:`TrainingArguments`, then calls
:func:`finetune`; under ``torchrun`` every process runs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from .. import hub, modeling
from ..config import SqueezeBertConfig
from . import data, strategies
from .strategies import SmallDataRun, StrategyArguments, choose_strategy
from .tasks import (
    PROBLEM_TYPES,
    TRAINING_TASKS,
    MultipleChoiceTask,
    QuestionAnsweringTask,
    SequenceClassificationTask,
    TokenClassificationTask,
    TrainingTask,
)
from .trainer import (
    DistributedInfo,
    ListSource,
    Trainer,
    TrainingArguments,
    check_output_dir,
    init_distributed,
    set_seed,
)

logger = logging.getLogger("squeezebert.training")

# ``--problem-type`` values: short names and the config's own.
PROBLEM_TYPE_NAMES = {
    "single-label": "single_label_classification",
    "multi-label": "multi_label_classification",
    **{p: p for p in PROBLEM_TYPES},
}


@dataclass
class TaskArguments:
    """What to learn, from which data."""

    train_file: str = field(metadata={"help": "CSV / TSV / JSON lines (CoNLL for tagging, SQuAD JSON for QA)"})
    task: str = field(
        default="sequence-classification", metadata={"choices": tuple(sorted(TRAINING_TASKS)), "help": "what to learn"}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "held-out data; without it --validation-split is used"}
    )
    validation_split: float = field(
        default=0.1, metadata={"help": "fraction held out without a validation file (0: no evaluation)"}
    )
    text: str | None = field(default=None, metadata={"help": "text column ('text'; 'sent1' for multiple choice)"})
    text_pair: str | None = field(
        default=None, metadata={"help": "second-text column of pair tasks ('sent2' for multiple choice)"}
    )
    label: str = field(default="label", metadata={"help": "label column"})
    choices: str = field(
        default="ending0,ending1,ending2,ending3", metadata={"help": "choice columns (multiple choice)"}
    )
    problem_type: str = field(
        default="single-label",
        metadata={"choices": tuple(sorted(PROBLEM_TYPE_NAMES)), "help": "the labels of sequence classification"},
    )
    label_separator: str = field(default=";", metadata={"help": "separator of multi-label cells in CSV / TSV"})
    max_length: int = field(default=128, metadata={"help": "longest sequence in tokens"})
    doc_stride: int = field(default=128, metadata={"help": "tokens shared by consecutive question-answering windows"})
    group_by_length: bool = field(default=False, metadata={"help": "batch examples of similar length (less padding)"})

    def __post_init__(self) -> None:
        if self.task not in TRAINING_TASKS:
            raise ValueError(f"task must be one of {sorted(TRAINING_TASKS)}, got {self.task!r}")
        if self.problem_type not in PROBLEM_TYPE_NAMES:
            raise ValueError(f"problem_type must be one of {sorted(PROBLEM_TYPE_NAMES)}, got {self.problem_type!r}")
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split must lie in [0, 1), got {self.validation_split}")


@dataclass
class FinetuneModelArguments:
    """The model to fine-tune (a checkpoint, or random weights of a config) and its tokenizer."""

    model: str | None = field(default=None, metadata={"help": "start from this checkpoint (folder or hub id)"})
    config: str | None = field(
        default=None, metadata={"help": "start from random weights with this config (folder, .json file or hub id)"}
    )
    tokenizer: str | None = field(default=None, metadata={"help": "tokenizer folder or hub id (default: --model)"})

    def __post_init__(self) -> None:
        if (self.model is None) == (self.config is None):
            raise ValueError("pass exactly one of --model (a checkpoint to fine-tune) or --config (random weights)")
        if self.tokenizer is None and self.model is None:
            raise ValueError("pass --tokenizer (or --model, whose folder holds the tokenizer)")


@dataclass
class DistillationArguments:
    """Knowledge distillation from a teacher, and initialising a grouped student from a dense checkpoint."""

    teacher: str | None = field(
        default=None, metadata={"help": "teacher checkpoint of the same task (fine-tuned, same vocabulary)"}
    )
    temperature: float = field(default=2.0, metadata={"help": "softmax temperature of the distillation loss"})
    alpha: float = field(default=0.5, metadata={"help": "weight of the distillation loss (0..1)"})
    init_from_dense: str | None = field(
        default=None, metadata={"help": "initialise a grouped model (--config) from this groups=1 checkpoint"}
    )


def finetune(
    task_args: TaskArguments,
    model_args: FinetuneModelArguments,
    training_args: TrainingArguments,
    distillation_args: DistillationArguments | None = None,
    dist_info: DistributedInfo | None = None,
    strategy_args: StrategyArguments | None = None,
) -> dict[str, Any]:
    """Fine-tune a model on a task; returns the training summary (see :meth:`Trainer.train`).

    The model, its tokenizer and the summary end up in ``training_args.output_dir``. ``metric_for_best`` defaults to
    the task's main metric. ``dist_info`` defaults to :func:`init_distributed`. ``strategy_args`` (default: ``auto``)
    choose how a single-label sequence classifier is learnt (see :mod:`squeezebert.training.strategies`).
    """
    from ..tokenization import AutoTokenizer

    check_output_dir(training_args)  # before reading the data (the Trainer checks again)
    distillation_args = distillation_args or DistillationArguments()
    info = dist_info or init_distributed(training_args.no_cuda)
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer or model_args.model)

    train_rows = read_rows(task_args, task_args.train_file)
    if task_args.validation_file:
        eval_rows = read_rows(task_args, task_args.validation_file)
    elif task_args.validation_split > 0:
        train_rows, eval_rows = data.train_validation_split(
            train_rows, task_args.validation_split, training_args.seed, _stratify_key(task_args, train_rows)
        )
    else:
        eval_rows = []
    task = build_task(task_args, tokenizer, train_rows + eval_rows)
    strategy_args = strategy_args or StrategyArguments()
    blocker = _small_data_blocker(task, model_args, distillation_args, info)
    strategy = choose_strategy(strategy_args, len(train_rows), blocker)
    train_features = task.encode(train_rows, training=True)
    eval_features = task.encode(eval_rows, training=False) if eval_rows else []

    set_seed(training_args.seed)  # the same initial weights in every process
    model = _build_model(model_args, distillation_args, task, tokenizer)
    if strategy != "finetune":
        run = SmallDataRun(
            task, tokenizer, model, train_features, eval_rows, eval_features, training_args, strategy_args, info
        )
        return _run_small_data_strategy(strategy, run, task_args, model_args, distillation_args)
    loss_fn = None
    if distillation_args.teacher:
        loss_fn = _distillation_loss(distillation_args, task, model, info)

    def save(m: Any, folder: str) -> None:
        m.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    def evaluate(m: Any, autocast: Any) -> dict[str, float]:
        batch_size = training_args.eval_batch_size
        return task.evaluate(m, eval_rows, eval_features, batch_size=batch_size, device=info.device, autocast=autocast)

    lengths = [_length(f) for f in train_features] if task_args.group_by_length else None
    trainer = Trainer(
        model,
        replace(training_args, metric_for_best=training_args.metric_for_best or task.main_metric),
        ListSource(train_features, training_args.seed, lengths=lengths),
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
    return trainer.train()


def _small_data_blocker(
    task: TrainingTask,
    model_args: FinetuneModelArguments,
    distillation_args: DistillationArguments,
    info: DistributedInfo,
) -> str | None:
    """Why the linear-probe / setfit strategies do not apply to this run, or ``None`` when they do."""
    if not isinstance(task, SequenceClassificationTask) or task.problem_type != "single_label_classification":
        return "they learn single-label sequence classification only"
    if model_args.model is None:
        return "the model starts from random weights (--config): its sentence vectors mean nothing yet"
    if distillation_args.teacher:
        return "distillation (--teacher) trains the whole network"
    if info.world_size > 1:
        return "they run in one process (not under torchrun)"
    return None


def _run_small_data_strategy(
    strategy: str,
    run: SmallDataRun,
    task_args: TaskArguments,
    model_args: FinetuneModelArguments,
    distillation_args: DistillationArguments,
) -> dict[str, Any]:
    """linear-probe, setfit, or auto (which runs each candidate through :func:`finetune` into its own folder)."""
    if strategy == "linear-probe":
        return strategies.linear_probe(run)
    if strategy == "setfit":
        return strategies.setfit(run)
    if not run.eval_features:
        logger.info("strategy auto: linear-probe (no validation data to compare strategies on)")
        return strategies.linear_probe(run)

    def run_candidate(name: str, training_args: TrainingArguments) -> dict[str, Any]:
        settings = replace(run.strategy_args, strategy=name)
        return finetune(task_args, model_args, training_args, distillation_args, run.dist_info, settings)

    return strategies.auto(run_candidate, run)


def read_rows(task_args: TaskArguments, path: str) -> list[Any]:
    """The rows of a data file in the form the task's :meth:`~TrainingTask.encode` takes."""
    task = task_args.task
    if task == "token-classification":
        return data.read_conll(path)
    if task == "question-answering":
        return data.read_squad(path)
    table = data.read_table(path)
    if task == "multiple-choice":
        choices = [c.strip() for c in task_args.choices.split(",") if c.strip()]
        context, question = task_args.text or "sent1", task_args.text_pair or "sent2"
        contexts = data.column(table, context, path)
        questions = data.column(table, question, path)
        options = list(zip(*(data.column(table, c, path) for c in choices), strict=True))
        labels = data.column(table, task_args.label, path)
        return [
            {"context": c, "question": q, "choices": list(o), "label": y}
            for c, q, o, y in zip(contexts, questions, options, labels, strict=True)
        ]
    texts = data.column(table, task_args.text or "text", path)
    pairs = data.column(table, task_args.text_pair, path) if task_args.text_pair else [None] * len(table)
    labels = data.column(table, task_args.label, path)
    return [{"text": t, "text_pair": p, "label": y} for t, p, y in zip(texts, pairs, labels, strict=True)]


def _stratify_key(task_args: TaskArguments, rows: list[Any]) -> list[Any] | None:
    """The labels to stratify the validation split by (single-label classification), else ``None``."""
    problem = PROBLEM_TYPE_NAMES[task_args.problem_type]
    if task_args.task == "sequence-classification" and problem == "single_label_classification":
        return [r["label"] for r in rows]
    return None


def build_task(task_args: TaskArguments, tokenizer: Any, rows: list[Any]) -> TrainingTask:
    """The task object for ``task_args`` (labels discovered from ``rows``)."""
    if task_args.task == "sequence-classification":
        problem = PROBLEM_TYPE_NAMES[task_args.problem_type]
        return SequenceClassificationTask.from_rows(
            tokenizer, rows, problem, task_args.max_length, task_args.label_separator
        )
    if task_args.task == "token-classification":
        return TokenClassificationTask.from_rows(tokenizer, rows, task_args.max_length)
    if task_args.task == "question-answering":
        stride = min(task_args.doc_stride, task_args.max_length // 2 - 1)
        return QuestionAnsweringTask(tokenizer, task_args.max_length, stride)
    return MultipleChoiceTask(tokenizer, task_args.max_length)


def _build_model(
    model_args: FinetuneModelArguments,
    distillation_args: DistillationArguments,
    task: TrainingTask,
    tokenizer: Any,
) -> modeling.SqueezeBertPreTrainedModel:
    overrides = task.config_overrides()
    if model_args.model is not None:
        if distillation_args.init_from_dense:
            raise ValueError("--init-from-dense initialises a model built from --config; it cannot start from --model")
        model = task.model_class.from_pretrained(model_args.model, ignore_mismatched_sizes=True, **overrides)
    else:
        model = task.model_class(SqueezeBertConfig.from_pretrained(model_args.config, **overrides))
        if distillation_args.init_from_dense:
            from .distill import init_grouped_from_dense

            state = hub.load_state_dict(distillation_args.init_from_dense)
            prefix = model.base_model_prefix + "."
            if not any(k.startswith(prefix) for k in state):
                state = {prefix + k: v for k, v in state.items()}
            init_grouped_from_dense(model, state)
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {model.config.vocab_size}"
        )
    return model


def _distillation_loss(
    distillation_args: DistillationArguments, task: TrainingTask, model: Any, info: DistributedInfo
) -> Any:
    """The loss that mixes the task loss with the teacher's softened predictions."""
    from .distill import DistillationLoss

    teacher = task.model_class.from_pretrained(distillation_args.teacher).to(info.device)
    if getattr(teacher.config, "num_labels", None) != model.config.num_labels and task.name != "multiple-choice":
        raise ValueError(
            f"the teacher {distillation_args.teacher!r} has {teacher.config.num_labels} labels, "
            f"the task {model.config.num_labels}"
        )
    return DistillationLoss(teacher, distillation_args.temperature, distillation_args.alpha, model.config.problem_type)


def _length(feature: dict[str, Any]) -> int:
    ids = feature["input_ids"]
    return max(len(seq) for seq in ids) if ids and isinstance(ids[0], list) else len(ids)
