"""The training loop: gradient accumulation, clipping, bf16 autocast, evaluation, early stopping, the best model kept,
``DistributedDataParallel`` under ``torchrun``, and atomic resumable checkpoints.

Data arrive as *global batches*: every optimizer step consumes ``batch_size * world_size * accumulation`` examples,
the same ones whatever the number of processes. Each process takes its share of a global batch and splits it into
micro-batches, and every micro-batch loss is weighted by its share of the global batch, so 1 process and N processes
(or N accumulation steps) compute the same update. The order of the examples depends only on the seed and the
epoch, so a run resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .. import hub
from . import checkpoint as ckpt
from .callbacks import display_callback
from .metrics import balanced_class_weights
from .optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_schedule, warmup_steps_for

logger = logging.getLogger("squeezebert.training")

Batch = dict[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]
CLASS_WEIGHTS = ("balanced",)


@dataclass
class TrainingArguments:
    """Options of :class:`Trainer`; the ``squeezebert train`` / ``pretrain`` flags are generated from these fields.

    ``batch_size`` is per process and per micro-batch; one optimizer step sees ``batch_size * world_size *
    gradient_accumulation_steps`` examples. ``eval_steps`` / ``save_steps`` count optimizer steps. The optimizer and
    warm-up follow Hugging Face's ``TrainingArguments``: ``ceil(warmup_ratio * total_steps)`` warm-up steps, AdamW
    with ``adam_epsilon`` 1e-8 and betas (0.9, 0.999).
    """

    output_dir: str = field(metadata={"help": "folder for checkpoints, logs and the final model"})
    num_epochs: int = field(default=3, metadata={"flag": "--epochs", "help": "passes over the training set"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "examples per process per micro-batch"})
    eval_batch_size: int = field(default=64, metadata={"help": "examples per evaluation batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=5e-5, metadata={"aliases": ("--lr",), "help": "peak learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW / LAMB weight decay"})
    optimizer: str = field(default="adamw", metadata={"choices": OPTIMIZERS, "help": "AdamW or LAMB (the paper's)"})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW / LAMB epsilon (Hugging Face's default)"})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW / LAMB decay of the gradient's running mean"})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW / LAMB decay of the squared gradient's mean"})
    schedule: str = field(default="linear", metadata={"choices": SCHEDULES, "help": "decay after the warm-up"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of the steps spent warming up"})
    warmup_steps: int | None = field(default=None, metadata={"help": "warm-up steps (overrides --warmup-ratio)"})
    class_weights: str | None = field(
        default=None,
        metadata={
            "choices": CLASS_WEIGHTS,
            "help": "weight the training loss of single-label classification by class: 'balanced' = n_examples / "
            "(n_classes * count), from the training labels",
        },
    )
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "gradient clipping norm (0: off)"})
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast of the training steps (CPU or GPU)"})
    bf16_eval: bool = field(default=False, metadata={"help": "bf16 autocast of evaluation too (float32 otherwise)"})
    seed: int = field(default=42, metadata={"help": "seed of the data order, dropout and initial weights"})
    eval_steps: int | None = field(default=None, metadata={"help": "also evaluate every N steps"})
    eval_each_epoch: bool = field(default=True, metadata={"help": "evaluate after every epoch"})
    metric_for_best: str | None = field(
        default=None,
        metadata={
            "help": "metric that picks the best model and drives early stopping (train: the task's main one; "
            "pretrain: loss)"
        },
    )
    greater_is_better: bool | None = field(
        default=None,
        metadata={"cli": False, "help": "None: lower is better for metrics named like a loss or mse, else higher"},
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "stop after this many evaluations without improvement"}
    )
    save_steps: int | None = field(default=None, metadata={"help": "write a resumable checkpoint every N steps"})
    save_total_limit: int | None = field(default=2, metadata={"help": "resumable checkpoints kept"})
    logging_steps: int = field(default=10, metadata={"help": "log loss, learning rate and throughput every N steps"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in --output-dir"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "replace an earlier run in --output-dir (its checkpoints, metrics, model)"}
    )
    progress: bool = field(
        default=True, metadata={"help": "progress bar on a terminal (log lines instead when off or not a terminal)"}
    )
    no_cuda: bool = field(default=False, metadata={"help": "train on the CPU even if a GPU is present"})
    find_unused_parameters: bool | None = field(
        default=None,
        metadata={
            "cli": False,
            "help": "DDP's find_unused_parameters; None: true when a first backward pass leaves a parameter without "
            "a gradient (e.g. the pooler of a token-classification head)",
        },
    )

    def __post_init__(self) -> None:
        positive = ("num_epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps", "logging_steps")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("max_steps", "eval_steps", "save_steps", "early_stopping_patience", "warmup_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
        if not self.adam_epsilon > 0:
            raise ValueError(f"adam_epsilon must be > 0, got {self.adam_epsilon}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.class_weights is not None and self.class_weights not in CLASS_WEIGHTS:
            raise ValueError(f"class_weights must be one of {CLASS_WEIGHTS} or None, got {self.class_weights!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.resume and self.overwrite_output_dir:
            raise ValueError("resume continues the run in output_dir, overwrite_output_dir replaces it: pass one")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            self.max_grad_norm = None

    def best_is_greater(self) -> bool:
        """Whether a higher ``metric_for_best`` (default ``loss``) is better."""
        if self.greater_is_better is not None:
            return self.greater_is_better
        metric = self.metric_for_best or "loss"
        return not any(word in metric for word in ("loss", "mse"))


# Files and folders a training run writes into its output folder (the final model and tokenizer files aside).
RUN_FILES = ("checkpoints", "best", "metrics.jsonl", "training_summary.json", hub.CONFIG_NAME, hub.SAFE_WEIGHTS_NAME)


def check_output_dir(args: TrainingArguments) -> None:
    """Refuse (``ValueError``) to train into a folder that holds an earlier run, unless ``args.resume`` continues it
    or ``args.overwrite_output_dir`` replaces it."""
    found = [name for name in RUN_FILES if (Path(args.output_dir) / name).exists()]
    if found and not (args.resume or args.overwrite_output_dir):
        raise ValueError(
            f"output_dir {args.output_dir!r} already holds a training run ({', '.join(found)}): pass --resume to "
            "continue it or --overwrite-output-dir to replace it"
        )


def clear_run(output_dir: str | os.PathLike) -> None:
    """Delete an earlier run's :data:`RUN_FILES` from ``output_dir``, so that a new run never mixes with them."""
    for name in RUN_FILES:
        path = Path(output_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@dataclass
class TrainerState:
    """Where training stands; saved in every checkpoint (``trainer_state.json``)."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    examples_seen: int = 0
    total_steps: int = 0
    global_batch_size: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    last_eval: dict[str, float] = field(default_factory=dict)
    last_eval_step: int | None = None
    train_seconds: float = 0.0  # training time of the whole run, as of the last checkpoint or the end


# --------------------------------------------------------------------------------------------------------------
# Data sources: ordered global batches, resumable by position


class ListSource:
    """A list of features, reshuffled every epoch with a generator seeded by ``(seed, epoch)``.

    With ``lengths`` (one per feature), batches group examples of similar length, so they need less padding: each
    run of 50 shuffled global batches is sorted by length and cut into batches, and the batches are shuffled. The
    last, smaller global batch is kept when every process gets at least one example of it.
    """

    def __init__(
        self, features: Sequence[Any], seed: int = 42, shuffle: bool = True, lengths: Sequence[int] | None = None
    ) -> None:
        if not features:
            raise ValueError("the training set is empty")
        if lengths is not None and len(lengths) != len(features):
            raise ValueError(f"got {len(lengths)} lengths for {len(features)} features")
        self.features = features
        self.seed = seed
        self.shuffle = shuffle
        self.lengths = lengths

    def steps_per_epoch(self, global_batch: int, world_size: int) -> int:
        full, rest = divmod(len(self.features), global_batch)
        return full + (1 if rest >= world_size else 0)

    def order(self, epoch: int, global_batch: int) -> list[int]:
        """The feature indices of ``epoch`` in training order."""
        n = len(self.features)
        if not self.shuffle:
            return list(range(n))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator).tolist()
        if self.lengths is None:
            return order
        span = 50 * global_batch
        batches = []
        for start in range(0, n, span):
            group = sorted(order[start : start + span], key=lambda i: -self.lengths[i])
            batches += [group[k : k + global_batch] for k in range(0, len(group), global_batch)]
        tail = [batches.pop()] if len(batches[-1]) < global_batch else []
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return [i for batch in shuffled + tail for i in batch]

    def chunks(self, epoch: int, global_batch: int, skip: int, world_size: int) -> Iterator[list[Any]]:
        order = self.order(epoch, global_batch)
        for step in range(skip, self.steps_per_epoch(global_batch, world_size)):
            yield [self.features[i] for i in order[step * global_batch : (step + 1) * global_batch]]


class StreamSource:
    """Features produced on the fly by ``factory(epoch)`` (e.g. a corpus larger than memory, tokenized and packed
    lazily). A resumed run re-reads the stream and skips the global batches it has already trained on.

    ``num_examples`` (examples per epoch), when known, lets training run for a number of epochs instead of
    ``max_steps``.
    """

    def __init__(self, factory: Callable[[int], Iterable[Any]], num_examples: int | None = None) -> None:
        self.factory = factory
        self.num_examples = num_examples

    def steps_per_epoch(self, global_batch: int, world_size: int) -> int | None:
        if self.num_examples is None:
            return None
        full, rest = divmod(self.num_examples, global_batch)
        return full + (1 if rest >= world_size else 0)

    def chunks(self, epoch: int, global_batch: int, skip: int, world_size: int) -> Iterator[list[Any]]:
        buffer: list[Any] = []
        index = 0
        for feature in self.factory(epoch):
            buffer.append(feature)
            if len(buffer) == global_batch:
                if index >= skip:
                    yield buffer
                buffer = []
                index += 1
        if len(buffer) >= world_size and index >= skip:
            yield buffer


# --------------------------------------------------------------------------------------------------------------
# Distributed setup


@dataclass
class DistributedInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(no_cuda: bool = False) -> DistributedInfo:
    """Read ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and join the process group
    (NCCL on GPU, gloo on CPU) if there is more than one process; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and not no_cuda
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
    return DistributedInfo(rank, world, local_rank, device)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------------------------


def default_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The model's own loss (the batch carries the labels)."""
    return model(**batch)["loss"]


class WeightedCrossEntropy:
    """Class-weighted cross-entropy of a single-label classifier: ``sum_i w[y_i] * ce_i / sum_i w[y_i]`` over the
    batch (``torch.nn.functional.cross_entropy`` with ``weight``). The model's own ``loss`` output stays unweighted.
    """

    def __init__(self, weights: torch.Tensor) -> None:
        self.weights = weights  # [num_labels]

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs)["logits"]  # [batch, num_labels]
        weights = self.weights.to(logits.device)
        return nn.functional.cross_entropy(logits.float(), batch["labels"].view(-1), weight=weights)


class Trainer:
    """Trains ``model`` on ``source`` (a :class:`ListSource` / :class:`StreamSource`).

    Constructing it sets training up: the output folder is claimed (:func:`check_output_dir`; an earlier run is
    cleared with ``args.overwrite_output_dir``), the model moves to its device, and the optimizer and learning-rate
    schedule are built, so :meth:`evaluate` and :meth:`save_checkpoint` work before (or without) :meth:`train`.

    Args:
        model: a SqueezeBERT head model (or any module whose forward takes the collated batch).
        args: the options.
        source: the training features in order.
        collate: features -> batch of tensors.
        evaluate: ``evaluate(model, autocast) -> metrics``; run by the main process only, in eval mode.
        loss_fn: ``loss_fn(model, batch) -> scalar`` (the mean over the batch); defaults to the model's loss.
        save_model: ``save_model(model, folder)`` writes a loadable model folder (default ``model.save_pretrained``);
            used for the best model (``output_dir/best``) and the final one (``output_dir``).
        callbacks: objects with any of the methods listed in :mod:`squeezebert.training.callbacks`. The main process
            adds a progress bar (on a terminal) or log lines.
        dist_info: the process group (default: :func:`init_distributed`).
    """

    def __init__(
        self,
        model: nn.Module,
        args: TrainingArguments,
        source: ListSource | StreamSource,
        collate: Callable[[Sequence[Any]], Batch],
        evaluate: Callable[..., dict[str, float]] | None = None,
        loss_fn: LossFn | None = None,
        save_model: Callable[[nn.Module, str], None] | None = None,
        callbacks: Sequence[Any] = (),
        dist_info: DistributedInfo | None = None,
    ) -> None:
        self.args = args
        self.dist = dist_info or init_distributed(args.no_cuda)
        check_output_dir(args)
        if args.overwrite_output_dir and self.dist.is_main:
            clear_run(args.output_dir)
        self.model = model.to(self.dist.device)
        self.source = source
        self.collate = collate
        self.evaluate_fn = evaluate
        self.loss_fn = loss_fn or default_loss
        if args.class_weights is not None:
            if loss_fn is not None:
                raise ValueError("class_weights weights the Trainer's own classification loss, not a custom loss_fn")
            self.loss_fn = WeightedCrossEntropy(self._balanced_class_weights())
        self.save_model = save_model or (lambda m, path: m.save_pretrained(path))
        self.callbacks = [*callbacks, display_callback(args.progress)] if self.dist.is_main else list(callbacks)
        self.output_dir = Path(args.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.best_dir = self.output_dir / "best"
        self.metrics_path = self.output_dir / "metrics.jsonl"

        total = self._total_steps()
        warmup = args.warmup_steps if args.warmup_steps is not None else warmup_steps_for(total, args.warmup_ratio)
        betas = (args.adam_beta1, args.adam_beta2)
        self.optimizer = build_optimizer(
            self.model, args.optimizer, args.learning_rate, args.weight_decay, args.adam_epsilon, betas
        )
        self.scheduler = build_schedule(self.optimizer, total, warmup, args.schedule)
        self.state = TrainerState(total_steps=total, global_batch_size=self.global_batch_size)
        self.should_stop = False
        self.last_loss = float("nan")
        self.resumed_from: Path | None = None
        self._started_at: float | None = None  # when this process's train() began (perf_counter)
        self._state_at_start = TrainerState()
        self._loss_sum, self._loss_count = 0.0, 0  # the training losses since the last log record

    def _balanced_class_weights(self) -> torch.Tensor:
        """``args.class_weights == "balanced"``: the weights of the training labels (single-label classification of a
        :class:`ListSource`)."""
        config = getattr(self.model, "config", None)
        problem = getattr(config, "problem_type", None)
        num_labels = getattr(config, "num_labels", 0)
        single_label = problem == "single_label_classification" or (problem is None and num_labels > 1)
        if not isinstance(self.source, ListSource) or not single_label:
            raise ValueError(
                "class_weights needs single-label classification on an in-memory training set, got problem_type "
                f"{problem!r} and a {type(self.source).__name__}"
            )
        labels = [feature["labels"] for feature in self.source.features]
        weights = balanced_class_weights(labels, num_labels)
        if self.dist.is_main:
            logger.info("class weights: %s", ", ".join(f"{w:.3f}" for w in weights.tolist()))
        return weights

    # ------------------------------------------------------------------------------------------------------------

    @property
    def global_batch_size(self) -> int:
        return self.args.batch_size * self.dist.world_size * self.args.gradient_accumulation_steps

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step."""
        return self.scheduler.get_last_lr()[0]

    def seconds_this_process(self) -> float:
        """Seconds since this process's :meth:`train` began (0 before)."""
        return 0.0 if self._started_at is None else time.perf_counter() - self._started_at

    def sequences_per_second(self) -> float:
        """Training throughput of this process's :meth:`train` so far (all processes' examples)."""
        examples = self.state.examples_seen - self._state_at_start.examples_seen
        return examples / max(self.seconds_this_process(), 1e-9)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when ``args.bf16`` (CPU or CUDA), else a no-op."""
        if not self.args.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16)

    def _steps_per_epoch(self) -> int | None:
        return self.source.steps_per_epoch(self.global_batch_size, self.dist.world_size)

    def _total_steps(self) -> int:
        per_epoch = self._steps_per_epoch()
        if per_epoch is None:
            if not self.args.max_steps:
                raise ValueError("a streamed training set of unknown length needs max_steps")
            return self.args.max_steps
        total = per_epoch * self.args.num_epochs
        return min(total, self.args.max_steps) if self.args.max_steps else total

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def _fire(self, event: str, *payload: Any) -> None:
        for callback in self.callbacks:
            handler = getattr(callback, event, None)
            if handler is not None:
                handler(self, *payload)

    def _barrier(self) -> None:
        if self.dist.world_size > 1:
            dist.barrier()

    # ------------------------------------------------------------------------------------------------------------
    # The loop

    def train(self) -> dict[str, Any]:
        """Run training to the end (or early stop); return the summary (also written to
        ``output_dir/training_summary.json``)."""
        self._start_run()
        wrapped = self._wrap_for_ddp()
        self._fire("on_train_begin")
        try:
            while not self._stopping() and not self._epochs_done():
                self._train_epoch(wrapped)
            if self.evaluate_fn is not None and self.state.last_eval_step != self.state.global_step:
                self.evaluate()  # the final model is always evaluated
        finally:
            self._fire("on_train_end")
        return self._finish()

    def _start_run(self) -> None:
        """Resume from the latest checkpoint (``args.resume``) or start afresh."""
        self.resumed_from = self._resume() if self.args.resume else None
        if self.resumed_from is None:
            self._drop_log_records_after(self.state.global_step)  # of an earlier attempt that saved no checkpoint
            set_seed(self.args.seed + self.dist.rank)  # one dropout stream per process
        self._state_at_start = TrainerState(**asdict(self.state))
        self._started_at = time.perf_counter()
        if self.dist.is_main:
            logger.info(
                "training %d steps, global batch %d (%s x %d x %d accumulation)%s",
                self.state.total_steps,
                self.global_batch_size,
                plural(self.dist.world_size, "process", "processes"),
                self.args.batch_size,
                self.args.gradient_accumulation_steps,
                f", resumed from {self.resumed_from}" if self.resumed_from else "",
            )

    def _stopping(self) -> bool:
        """Early stopping was decided or the last step is done."""
        return self.should_stop or self.state.global_step >= self.state.total_steps

    def _epochs_done(self) -> bool:
        return self._steps_per_epoch() is not None and self.state.epoch >= self.args.num_epochs

    def _train_epoch(self, wrapped: nn.Module) -> None:
        """Train on the rest of the current epoch, evaluating and checkpointing on schedule. The epoch ends (see
        :meth:`_end_epoch`) unless training stops before its last batch."""
        args, state = self.args, self.state
        chunks = self.source.chunks(state.epoch, self.global_batch_size, state.step_in_epoch, self.dist.world_size)
        for chunk in chunks:
            self._after_step(self._train_step(wrapped, chunk))
            if args.eval_steps and state.global_step % args.eval_steps == 0:
                self.evaluate()
            if self._stopping():
                break
            if args.save_steps and state.global_step % args.save_steps == 0:
                self.save_checkpoint()
        if state.step_in_epoch == 0:
            raise ValueError(f"epoch {state.epoch} of the training data holds no batch")
        batches_ran_out = not self._stopping()  # rather than training stopping the loop
        if batches_ran_out or state.step_in_epoch == self._steps_per_epoch():
            self._end_epoch()

    def _after_step(self, loss: float) -> None:
        """Every ``logging_steps`` steps, log the mean loss since the last record with the learning rate and the
        throughput; tell the callbacks."""
        self.last_loss = loss
        self._loss_sum += loss
        self._loss_count += 1
        if self.state.global_step % self.args.logging_steps == 0:
            record = {
                "step": self.state.global_step,
                "epoch": self.state.epoch,
                "loss": self._loss_sum / self._loss_count,
                "learning_rate": self.learning_rate,
                "sequences_per_second": self.sequences_per_second(),
            }
            self._log(record)
            self._fire("on_log", record)
            self._loss_sum, self._loss_count = 0.0, 0
        self._fire("on_step_end")

    def _end_epoch(self) -> None:
        self.state.epoch += 1
        self.state.step_in_epoch = 0
        evaluated = self.state.last_eval_step == self.state.global_step
        if self.evaluate_fn is not None and self.args.eval_each_epoch and not evaluated:
            self.evaluate(epoch_end=True)
        if self.args.save_steps and not self._stopping():
            self.save_checkpoint()

    def _train_step(self, wrapped: nn.Module, chunk: list[Any]) -> float:
        """One optimizer step on a global batch, in training mode (dropout on, whatever mode the model came in or an
        evaluation left it in); returns its mean loss (over all processes)."""
        info, args = self.dist, self.args
        wrapped.train()
        share = [part.tolist() for part in np.array_split(np.arange(len(chunk)), info.world_size)][info.rank]
        micro = [m.tolist() for m in np.array_split(share, min(args.gradient_accumulation_steps, len(share)))]
        local_loss = 0.0
        for i, indices in enumerate(micro):
            batch = {k: v.to(info.device) for k, v in self.collate([chunk[j] for j in indices]).items()}
            weight = len(indices) * info.world_size / len(chunk)
            last = i == len(micro) - 1
            sync = contextlib.nullcontext() if last or info.world_size == 1 else wrapped.no_sync()
            with sync:
                with self.autocast():
                    loss = self.loss_fn(wrapped, batch)
                (loss.float() * weight).backward()
            local_loss += float(loss.detach()) * len(indices)
        if args.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if info.world_size > 1:
            total = torch.tensor([local_loss], dtype=torch.float64, device=info.device)
            dist.all_reduce(total)
            local_loss = float(total)
        self.state.global_step += 1
        self.state.step_in_epoch += 1
        self.state.examples_seen += len(chunk)
        return local_loss / len(chunk)

    # ------------------------------------------------------------------------------------------------------------
    # Several processes

    def _wrap_for_ddp(self) -> nn.Module:
        """The model in ``DistributedDataParallel`` when there are several processes (the model itself otherwise)."""
        info = self.dist
        if info.world_size == 1:
            return self.model
        find_unused = self.args.find_unused_parameters
        if find_unused is None:
            flag = torch.tensor([float(bool(self.parameters_without_gradient()))], device=info.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            find_unused = bool(flag.item())
        return nn.parallel.DistributedDataParallel(
            self.model,
            device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=find_unused,
        )

    def parameters_without_gradient(self) -> list[str]:
        """The trainable parameters that a forward and backward pass on the first training micro-batch leaves
        without a gradient (e.g. the pooler of a token-classification head). Weights and random states are left as
        they were."""
        chunk = next(iter(self.source.chunks(0, self.global_batch_size, 0, self.dist.world_size)), None)
        if chunk is None:
            return []
        random_states = ckpt.rng_state()
        self.model.zero_grad(set_to_none=True)
        batch = {k: v.to(self.dist.device) for k, v in self.collate(chunk[: self.args.batch_size]).items()}
        with self.autocast():
            loss = self.loss_fn(self.model, batch)
        loss.float().backward()
        unused = [name for name, p in self.model.named_parameters() if p.requires_grad and p.grad is None]
        self.model.zero_grad(set_to_none=True)
        ckpt.set_rng_state(random_states)
        return unused

    # ------------------------------------------------------------------------------------------------------------

    def evaluate(self, epoch_end: bool = False) -> dict[str, float]:
        """Evaluate (main process), share the metrics with every process, keep the best model, count patience."""
        if self.evaluate_fn is None:
            return {}
        info, args = self.dist, self.args
        result: dict[str, float] | None = None
        if info.is_main:
            autocast = self.autocast if self.args.bf16_eval else contextlib.nullcontext
            result = {k: float(v) for k, v in self.evaluate_fn(self.model, autocast).items()}
        if info.world_size > 1:
            box = [result]
            dist.broadcast_object_list(box, src=0)
            result = box[0]
        assert result is not None
        self.state.last_eval = result
        self.state.last_eval_step = self.state.global_step
        key = args.metric_for_best or "loss"
        if key not in result:
            raise ValueError(f"metric_for_best {key!r} is not among the metrics {sorted(result)}")
        value, best = result[key], self.state.best_metric
        improved = best is None or (value > best if args.best_is_greater() else value < best)
        if improved:
            self.state.best_metric, self.state.best_step = value, self.state.global_step
            self.state.evaluations_without_improvement = 0
            if info.is_main:
                self.save_model(self.model, str(self.best_dir))
        else:
            self.state.evaluations_without_improvement += 1
            patience = args.early_stopping_patience
            if patience and self.state.evaluations_without_improvement >= patience:
                self.should_stop = True
                if info.is_main:
                    logger.info("early stopping: %s has not improved for %d evaluations", key, patience)
        self._log({"step": self.state.global_step, "epoch": self.state.epoch, "eval": result, "epoch_end": epoch_end})
        self._fire("on_evaluate", result)
        self._barrier()
        return result

    # ------------------------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path | None:
        """Write a resumable checkpoint (model, optimizer, scheduler, every process's RNG state, data position);
        returns its folder in the main process."""
        info = self.dist
        rng = [ckpt.rng_state()]
        if info.world_size > 1:
            gathered: list[Any] = [None] * info.world_size
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        self.state.train_seconds = self._state_at_start.train_seconds + self.seconds_this_process()
        path = None
        if info.is_main:
            path = ckpt.save_checkpoint(
                self.checkpoint_dir,
                self.state.global_step,
                model_state=self.model.state_dict(),
                training_state={
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": rng,
                },
                trainer_state=asdict(self.state),
                keep=self.args.save_total_limit,
            )
            self._fire("on_save", path)
        self._barrier()
        return path

    def _resume(self) -> Path | None:
        """Load the latest checkpoint under ``output_dir/checkpoints``; returns it (``None``: there is none)."""
        path = ckpt.latest_checkpoint(self.checkpoint_dir)
        if path is None:
            if self.dist.is_main:
                logger.warning("--resume: no checkpoint under %s, starting from scratch", self.checkpoint_dir)
            return None
        model_state, training_state, trainer_state = ckpt.load_checkpoint(path)
        if trainer_state.get("global_batch_size") != self.global_batch_size:
            raise ValueError(
                f"{path} was trained with a global batch of {trainer_state.get('global_batch_size')} examples, this "
                f"run uses {self.global_batch_size} (batch_size x processes x accumulation): the data position would "
                "not match"
            )
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(training_state["optimizer"])
        self.scheduler.load_state_dict(training_state["scheduler"])
        rng = training_state["rng"]
        ckpt.set_rng_state(rng[self.dist.rank] if len(rng) == self.dist.world_size else rng[0])
        known = set(TrainerState.__dataclass_fields__)
        self.state = TrainerState(**{k: v for k, v in trainer_state.items() if k in known})
        self.state.total_steps = self._total_steps()
        self._drop_log_records_after(self.state.global_step)
        return path

    def _drop_log_records_after(self, step: int) -> None:
        """Remove the ``metrics.jsonl`` records of the steps after ``step``, which this run is about to redo."""
        if not (self.dist.is_main and self.metrics_path.exists()):
            return
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
        with hub.atomic_write(self.metrics_path) as f:
            f.write("".join(line + "\n" for line in kept))

    # ------------------------------------------------------------------------------------------------------------

    def _finish(self) -> dict[str, Any]:
        """Load the best model (if evaluation picked one), save the final model and the summary."""
        info, state, start = self.dist, self.state, self._state_at_start
        if state.best_step is not None and self.best_dir.is_dir():
            weights = hub.load_state_dict(self.best_dir)
            result = self.model.load_state_dict(weights, strict=False)
            tied = set(getattr(self.model, "tied_keys", {}))
            if set(result.missing_keys) - tied or result.unexpected_keys:
                raise RuntimeError(f"the best model in {self.best_dir} does not match the model: {result}")
            if hasattr(self.model, "tie_weights"):
                self.model.tie_weights()
        seconds = self.seconds_this_process()
        state.train_seconds = start.train_seconds + seconds
        summary = {
            "global_step": state.global_step,
            "epochs_completed": state.epoch,
            "examples_seen": state.examples_seen,
            "total_train_seconds": state.train_seconds,
            "resumed_from_step": start.global_step if self.resumed_from else None,
            "steps_this_process": state.global_step - start.global_step,
            "examples_this_process": state.examples_seen - start.examples_seen,
            "train_seconds": seconds,
            "train_sequences_per_second": self.sequences_per_second(),
            "final_train_loss": self.last_loss,
            "best_metric": state.best_metric,
            "best_step": state.best_step,
            "metric_for_best": self.args.metric_for_best,
            "last_eval": state.last_eval,
            "early_stopped": self.should_stop,
            "world_size": info.world_size,
            "output_dir": str(self.output_dir),
        }
        if info.is_main:
            self.save_model(self.model, str(self.output_dir))
            hub.write_json(self.output_dir / "training_summary.json", summary)
            self._log({"step": state.global_step, "summary": summary})
        self._barrier()
        return summary


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``"1 full epoch"``, ``"2 full epochs"``."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines about a finished run: what this process did, and the run's totals after a
    resume."""
    processes = plural(summary["world_size"], "process", "processes")
    steps, examples = summary["steps_this_process"], summary["examples_this_process"]
    speed = f"in {summary['train_seconds']:.1f}s, {summary['train_sequences_per_second']:.1f} sequences/s"
    epochs = plural(summary["epochs_completed"], "full epoch")
    if summary.get("resumed_from_step") is None:
        lines = [f"trained {plural(steps, 'step')} ({plural(examples, 'sequence')}, {epochs}) {speed} on {processes}"]
    else:
        lines = [
            f"resumed at step {summary['resumed_from_step']} and trained {plural(steps, 'step')} "
            f"({plural(examples, 'sequence')}) {speed} on {processes}",
            f"the whole run: {plural(summary['global_step'], 'step')} ({plural(summary['examples_seen'], 'sequence')}"
            f", {epochs}), {summary['total_train_seconds']:.1f}s of training",
        ]
    lines.append(f"final training loss {summary['final_train_loss']:.4f}")
    if summary.get("best_metric") is not None:
        name = summary.get("metric_for_best") or "metric"
        lines.append(f"best {name} {summary['best_metric']:.4f} at step {summary['best_step']}")
    if summary.get("last_eval"):
        lines.append("last evaluation: " + ", ".join(f"{k}={v:.4f}" for k, v in summary["last_eval"].items()))
    if summary.get("early_stopped"):
        lines.append("stopped early (no improvement)")
    lines.append(f"model saved to {summary['output_dir']}")
    return "\n".join(lines)
