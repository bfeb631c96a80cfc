"""Callbacks of :class:`~squeezebert.training.trainer.Trainer`, and the two that show training as it runs: a tqdm
bar on a terminal, log lines elsewhere (a file, a pipe, a job scheduler's log).

A callback is any object with some of these methods; the trainer calls them in every process:

- ``on_train_begin(trainer)`` and ``on_train_end(trainer)``;
- ``on_step_end(trainer)`` after every optimizer step (``trainer.state``, ``trainer.last_loss``,
  ``trainer.learning_rate``, ``trainer.sequences_per_second()``);
- ``on_log(trainer, record)`` every ``logging_steps`` steps, with the record written to ``metrics.jsonl``
  (``step``, ``epoch``, ``loss`` averaged since the previous record, ``learning_rate``, ``sequences_per_second``);
- ``on_evaluate(trainer, metrics)`` after every evaluation;
- ``on_save(trainer, path)`` after a checkpoint was written (main process).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger("squeezebert.training")


def evaluation_line(trainer: Any, metrics: dict[str, float]) -> str:
    """``step 40 eval: accuracy=0.9000, loss=0.3012 (best)``."""
    shown = ", ".join(f"{name}={value:.4f}" for name, value in metrics.items())
    best = trainer.state.best_step == trainer.state.global_step
    return f"step {trainer.state.global_step} eval: {shown}{' (best)' if best else ''}"


class ProgressBar:
    """A tqdm bar of the optimizer steps showing the loss, learning rate and throughput; evaluations print above it."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def on_train_begin(self, trainer: Any) -> None:
        state = trainer.state
        self.bar = tqdm(
            total=state.total_steps, initial=state.global_step, desc="train", unit="step", dynamic_ncols=True
        )

    def on_step_end(self, trainer: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{trainer.last_loss:.4f}",
                lr=f"{trainer.learning_rate:.2e}",
                seq_s=f"{trainer.sequences_per_second():.1f}",
            )

    def on_evaluate(self, trainer: Any, metrics: dict[str, float]) -> None:
        tqdm.write(evaluation_line(trainer, metrics), file=sys.stderr)

    def on_train_end(self, trainer: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LogLines:
    """A log line (logger ``squeezebert.training``, level INFO) every ``logging_steps`` steps and per evaluation."""

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        logger.info(
            "step %d/%d: loss %.4f, lr %.2e, %.1f sequences/s",
            record["step"],
            trainer.state.total_steps,
            record["loss"],
            record["learning_rate"],
            record["sequences_per_second"],
        )

    def on_evaluate(self, trainer: Any, metrics: dict[str, float]) -> None:
        logger.info("%s", evaluation_line(trainer, metrics))


def display_callback(progress: bool) -> ProgressBar | LogLines:
    """A progress bar when ``progress`` and stderr is a terminal; log lines otherwise."""
    return ProgressBar() if progress and sys.stderr.isatty() else LogLines()
