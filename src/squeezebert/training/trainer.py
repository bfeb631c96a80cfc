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
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .. import hub, modeling
from . import checkpoint as ckpt
from .optim import build_optimizer, build_schedule

logger = logging.getLogger("squeezebert.training")

Batch = dict[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass
class TrainingArguments:
    """Options of :class:`Trainer` (the ``squeezebert train`` flags of the same names).

    ``batch_size`` is per process and per micro-batch; one optimizer step sees ``batch_size * world_size *
    gradient_accumulation_steps`` examples. ``eval_steps`` / ``save_steps`` count optimizer steps; evaluation also
    runs after every epoch when ``eval_each_epoch``. ``early_stopping_patience`` counts evaluations without
    improvement of ``metric_for_best``. ``bf16`` autocasts the training steps; evaluation runs in float32 unless
    ``bf16_eval``.
    """

    output_dir: str
    num_epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    schedule: str = "linear"
    warmup_ratio: float = 0.0
    warmup_steps: int | None = None
    max_grad_norm: float | None = 1.0
    bf16: bool = False
    bf16_eval: bool = False
    seed: int = 42
    eval_steps: int | None = None
    eval_each_epoch: bool = True
    save_steps: int | None = None
    save_total_limit: int | None = 2
    early_stopping_patience: int | None = None
    metric_for_best: str | None = None
    greater_is_better: bool = True
    logging_steps: int = 10
    resume: bool = False
    progress: bool = True
    no_cuda: bool = False

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
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            self.max_grad_norm = None


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


# Heads that use the pooler (every parameter gets a gradient); the others leave it unused, which DDP must be told.
_USES_EVERY_PARAMETER = (
    modeling.SqueezeBertForSequenceClassification,
    modeling.SqueezeBertForMultipleChoice,
    modeling.SqueezeBertForPreTraining,
)


def default_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The model's own loss (the batch carries the labels)."""
    return model(**batch)["loss"]


class Trainer:
    """Trains ``model`` on ``source`` (a :class:`ListSource` / :class:`StreamSource`).

    Args:
        model: a SqueezeBERT head model (or any module whose forward takes the collated batch).
        args: the options.
        source: the training features in order.
        collate: features -> batch of tensors.
        evaluate: ``evaluate(model, autocast) -> metrics``; run by the main process only, in eval mode.
        loss_fn: ``loss_fn(model, batch) -> scalar`` (the mean over the batch); defaults to the model's loss.
        save_model: ``save_model(model, folder)`` writes a loadable model folder (default ``model.save_pretrained``);
            used for the best model (``output_dir/best``) and the final one (``output_dir``).
        callbacks: objects with any of ``on_step_end(trainer)``, ``on_evaluate(trainer, metrics)``,
            ``on_save(trainer, path)``.
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
        self.model = model
        self.args = args
        self.source = source
        self.collate = collate
        self.evaluate_fn = evaluate
        self.loss_fn = loss_fn or default_loss
        self.save_model = save_model or (lambda m, path: m.save_pretrained(path))
        self.callbacks = list(callbacks)
        self.dist = dist_info or init_distributed(args.no_cuda)
        self.state = TrainerState()
        self.output_dir = Path(args.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.best_dir = self.output_dir / "best"
        self.metrics_path = self.output_dir / "metrics.jsonl"
        self.should_stop = False

    # ------------------------------------------------------------------------------------------------------------

    @property
    def global_batch_size(self) -> int:
        return self.args.batch_size * self.dist.world_size * self.args.gradient_accumulation_steps

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when ``args.bf16`` (CPU or CUDA), else a no-op."""
        if not self.args.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16)

    def _total_steps(self) -> int:
        per_epoch = self.source.steps_per_epoch(self.global_batch_size, self.dist.world_size)
        if per_epoch is None:
            if not self.args.max_steps:
                raise ValueError("a streamed training set needs max_steps")
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

    # ------------------------------------------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Run training to the end (or early stop); return the summary (also written to
        ``output_dir/training_summary.json``)."""
        args, info = self.args, self.dist
        model = self.model.to(info.device)
        model.train()
        self.optimizer = build_optimizer(model, args.optimizer, args.learning_rate, args.weight_decay)
        total = self._total_steps()
        warmup = args.warmup_steps if args.warmup_steps is not None else int(args.warmup_ratio * total)
        self.scheduler = build_schedule(self.optimizer, total, warmup, args.schedule)
        self.state = TrainerState(total_steps=total, global_batch_size=self.global_batch_size)

        resumed_from = self._maybe_resume() if args.resume else None
        if resumed_from is None:
            set_seed(args.seed + info.rank)  # one dropout stream per process
            if info.is_main and self.metrics_path.exists():
                self.metrics_path.unlink()
        wrapped: nn.Module = model
        if info.world_size > 1:
            wrapped = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[info.device.index] if info.device.type == "cuda" else None,
                find_unused_parameters=not isinstance(model, _USES_EVERY_PARAMETER),
            )
        if info.is_main:
            logger.info(
                "training %d steps, global batch %d (%d processes x %d x %d accumulation)%s",
                total,
                self.global_batch_size,
                info.world_size,
                args.batch_size,
                args.gradient_accumulation_steps,
                f", resumed from {resumed_from}" if resumed_from else "",
            )

        bar = tqdm(
            total=total,
            initial=self.state.global_step,
            desc="train",
            unit="step",
            disable=not (args.progress and info.is_main),
            dynamic_ncols=True,
        )
        start_time, start_examples = time.perf_counter(), self.state.examples_seen
        running_loss, running_count = 0.0, 0
        self.last_loss = float("nan")
        try:
            while not self.should_stop and self.state.global_step < total:
                per_epoch = self.source.steps_per_epoch(self.global_batch_size, info.world_size)
                if per_epoch is not None and self.state.epoch >= args.num_epochs:
                    break
                epoch = self.state.epoch
                for chunk in self.source.chunks(
                    epoch, self.global_batch_size, self.state.step_in_epoch, info.world_size
                ):
                    loss = self._train_step(wrapped, chunk)
                    self.last_loss = loss
                    running_loss += loss
                    running_count += 1
                    elapsed = time.perf_counter() - start_time
                    throughput = (self.state.examples_seen - start_examples) / max(elapsed, 1e-9)
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{loss:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}", seq_s=f"{throughput:.1f}"
                    )
                    if self.state.global_step % args.logging_steps == 0:
                        self._log(
                            {
                                "step": self.state.global_step,
                                "epoch": epoch,
                                "loss": running_loss / running_count,
                                "learning_rate": self.scheduler.get_last_lr()[0],
                                "sequences_per_second": throughput,
                            }
                        )
                        running_loss, running_count = 0.0, 0
                    self._fire("on_step_end")
                    if args.eval_steps and self.state.global_step % args.eval_steps == 0:
                        self.evaluate()
                    if self.should_stop or self.state.global_step >= total:
                        break
                    if args.save_steps and self.state.global_step % args.save_steps == 0:
                        self.save_checkpoint()
                else:  # the epoch ran to its end
                    self._end_epoch(total)
                    continue
                if per_epoch is not None and self.state.step_in_epoch >= per_epoch:
                    self._end_epoch(total)
                break
            if self.evaluate_fn is not None and self.state.last_eval_step != self.state.global_step:
                self.evaluate()  # the final model is always evaluated
        finally:
            bar.close()
        elapsed = time.perf_counter() - start_time
        return self._finish(elapsed, (self.state.examples_seen - start_examples) / max(elapsed, 1e-9))

    def _end_epoch(self, total: int) -> None:
        self.state.epoch += 1
        self.state.step_in_epoch = 0
        evaluated = self.state.last_eval_step == self.state.global_step
        if self.evaluate_fn is not None and self.args.eval_each_epoch and not evaluated:
            self.evaluate(epoch_end=True)
        if self.args.save_steps and not self.should_stop and self.state.global_step < total:
            self.save_checkpoint()

    def _train_step(self, wrapped: nn.Module, chunk: list[Any]) -> float:
        """One optimizer step on a global batch; returns its mean loss (over all processes)."""
        info, args = self.dist, self.args
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
        greater = args.greater_is_better if args.metric_for_best else False
        if key not in result:
            raise ValueError(f"metric_for_best {key!r} is not among the metrics {sorted(result)}")
        value = result[key]
        best = self.state.best_metric
        improved = best is None or (value > best if greater else value < best)
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
        if info.is_main and self.args.progress:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in result.items())
            tqdm.write(f"step {self.state.global_step} eval: {shown}{' (best)' if improved else ''}")
        self._fire("on_evaluate", result)
        if info.world_size > 1:
            dist.barrier()
        return result

    # ------------------------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path | None:
        """Write a resumable checkpoint (model, optimizer, scheduler, every process's RNG state, data position)."""
        info = self.dist
        rng = [ckpt.rng_state()]
        if info.world_size > 1:
            gathered: list[Any] = [None] * info.world_size
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
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
        if info.world_size > 1:
            dist.barrier()
        return path

    def _maybe_resume(self) -> Path | None:
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
        if self.dist.is_main and self.metrics_path.exists():  # drop log lines of steps the resumed run will redo
            lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
            kept = [
                line for line in lines if line.strip() and json.loads(line).get("step", 0) <= self.state.global_step
            ]
            with hub.atomic_write(self.metrics_path) as f:
                f.write("".join(line + "\n" for line in kept))
        return path

    # ------------------------------------------------------------------------------------------------------------

    def _finish(self, elapsed: float, throughput: float) -> dict[str, Any]:
        info = self.dist
        if self.state.best_step is not None and self.best_dir.is_dir():
            state = hub.load_state_dict(self.best_dir)
            result = self.model.load_state_dict(state, strict=False)
            tied = set(getattr(self.model, "tied_keys", {}))
            if set(result.missing_keys) - tied or result.unexpected_keys:
                raise RuntimeError(f"the best model in {self.best_dir} does not match the model: {result}")
            if hasattr(self.model, "tie_weights"):
                self.model.tie_weights()
        summary = {
            "global_step": self.state.global_step,
            "epochs_completed": self.state.epoch,
            "examples_seen": self.state.examples_seen,
            "final_train_loss": self.last_loss,
            "best_metric": self.state.best_metric,
            "best_step": self.state.best_step,
            "metric_for_best": self.args.metric_for_best,
            "last_eval": self.state.last_eval,
            "early_stopped": self.should_stop,
            "train_seconds": elapsed,
            "train_sequences_per_second": throughput,
            "world_size": info.world_size,
            "output_dir": str(self.output_dir),
        }
        if info.is_main:
            self.save_model(self.model, str(self.output_dir))
            hub.write_json(self.output_dir / "training_summary.json", summary)
            self._log({"step": self.state.global_step, "summary": summary})
        if info.world_size > 1:
            dist.barrier()
        return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines about a finished run."""
    lines = [
        f"trained {summary['global_step']} steps ({summary['examples_seen']} sequences, "
        f"{summary['epochs_completed']} full epochs) in {summary['train_seconds']:.1f}s, "
        f"{summary['train_sequences_per_second']:.1f} sequences/s on {summary['world_size']} process(es)",
        f"final training loss {summary['final_train_loss']:.4f}",
    ]
    if summary.get("best_metric") is not None:
        name = summary.get("metric_for_best") or "metric"
        lines.append(f"best {name} {summary['best_metric']:.4f} at step {summary['best_step']}")
    if summary.get("last_eval"):
        lines.append("last evaluation: " + ", ".join(f"{k}={v:.4f}" for k, v in summary["last_eval"].items()))
    if summary.get("early_stopped"):
        lines.append("stopped early (no improvement)")
    lines.append(f"model saved to {summary['output_dir']}")
    return "\n".join(lines)
