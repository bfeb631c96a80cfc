"""The training loop as a library: a Trainer is set up when constructed, the output folder is claimed, DDP learns
which parameters get no gradient, the display follows the terminal, the summary reads well; ``finetune`` takes
typed arguments; training names do not collide with the pipelines'."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_training_common import sentiment_rows, word_config, write_config, write_csv, write_tokenizer

import squeezebert
import squeezebert.training
from squeezebert.training import checkpoint
from squeezebert.training.callbacks import LogLines, ProgressBar, display_callback
from squeezebert.training.data import pad_batch
from squeezebert.training.finetune import FinetuneModelArguments, TaskArguments, finetune
from squeezebert.training.trainer import ListSource, StreamSource, Trainer, TrainingArguments, format_summary

FEATURES = [{"input_ids": [2, 5 + i % 3, 3], "attention_mask": [1, 1, 1], "labels": i % 2} for i in range(16)]


def _collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return pad_batch(features, 0)


def _trainer(output_dir: Path, model: torch.nn.Module | None = None, **options: Any) -> Trainer:
    model = model or squeezebert.SqueezeBertForSequenceClassification(word_config(num_labels=2))
    args = TrainingArguments(output_dir=str(output_dir), batch_size=4, progress=False, **options)
    return Trainer(model, args, ListSource(FEATURES), _collate, evaluate=lambda m, autocast: {"loss": 0.5})


def test_evaluate_and_save_checkpoint_work_before_train(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, num_epochs=1)
    assert trainer.evaluate() == {"loss": 0.5}
    assert trainer.state.best_metric == 0.5 and (tmp_path / "best" / "model.safetensors").is_file()
    path = trainer.save_checkpoint()
    assert path is not None and path.name == "checkpoint-0"
    _, training_state, trainer_state = checkpoint.load_checkpoint(path)
    assert trainer_state["global_step"] == 0 and {"optimizer", "scheduler", "rng"} <= set(training_state)

    summary = trainer.train()  # the folder is this trainer's: no refusal
    assert summary["global_step"] == 4 and summary["epochs_completed"] == 1

    with pytest.raises(ValueError, match="already holds a training run .*--overwrite-output-dir"):
        _trainer(tmp_path)
    replaced = _trainer(tmp_path, overwrite_output_dir=True)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()
    assert replaced.train()["global_step"] == 12


def test_greater_is_better_follows_the_metric_name(tmp_path: Path) -> None:
    assert not TrainingArguments(output_dir=str(tmp_path)).best_is_greater()  # loss
    assert TrainingArguments(output_dir=str(tmp_path), metric_for_best="accuracy").best_is_greater()
    assert not TrainingArguments(output_dir=str(tmp_path), metric_for_best="mse").best_is_greater()
    assert not TrainingArguments(
        output_dir=str(tmp_path), metric_for_best="f1", greater_is_better=False
    ).best_is_greater()


def test_a_stream_without_batches_is_an_error_not_a_hang(tmp_path: Path) -> None:
    model = squeezebert.SqueezeBertForSequenceClassification(word_config(num_labels=2))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, batch_size=4, progress=False)
    trainer = Trainer(model, args, StreamSource(lambda epoch: iter(())), _collate)
    with pytest.raises(ValueError, match="epoch 0 of the training data holds no batch"):
        trainer.train()


def test_the_parameters_without_gradient_are_found_for_ddp(tmp_path: Path) -> None:
    tagger = squeezebert.SqueezeBertForTokenClassification(word_config(num_labels=3))
    features = [{**f, "labels": [0, 1, 2]} for f in FEATURES]
    args = TrainingArguments(output_dir=str(tmp_path), batch_size=4, progress=False)
    trainer = Trainer(tagger, args, ListSource(features), _collate)
    weights = {k: v.clone() for k, v in tagger.state_dict().items()}
    random_state = torch.get_rng_state()
    assert trainer.parameters_without_gradient() == ["transformer.pooler.dense.weight", "transformer.pooler.dense.bias"]
    assert all(torch.equal(weights[k], v) for k, v in tagger.state_dict().items())
    assert torch.equal(torch.get_rng_state(), random_state)
    assert all(p.grad is None for p in tagger.parameters())

    assert _trainer(tmp_path / "classifier").parameters_without_gradient() == []  # the pooler feeds the classifier


def test_a_bar_on_a_terminal_log_lines_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    assert isinstance(display_callback(progress=True), ProgressBar)
    assert isinstance(display_callback(progress=False), LogLines)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(display_callback(progress=True), LogLines)


def test_the_summary_reads_well_fresh_and_resumed() -> None:
    fresh = {
        "global_step": 5,
        "epochs_completed": 1,
        "examples_seen": 20,
        "total_train_seconds": 2.0,
        "resumed_from_step": None,
        "steps_this_process": 5,
        "examples_this_process": 20,
        "train_seconds": 2.0,
        "train_sequences_per_second": 10.0,
        "final_train_loss": 0.5,
        "world_size": 1,
        "output_dir": "out",
    }
    assert format_summary(fresh).splitlines()[0] == (
        "trained 5 steps (20 sequences, 1 full epoch) in 2.0s, 10.0 sequences/s on 1 process"
    )
    resumed = {
        **fresh,
        "global_step": 10,
        "epochs_completed": 2,
        "examples_seen": 40,
        "total_train_seconds": 5.0,
        "resumed_from_step": 9,
        "steps_this_process": 1,
        "examples_this_process": 4,
        "train_seconds": 0.5,
        "train_sequences_per_second": 8.0,
        "world_size": 2,
    }
    assert format_summary(resumed).splitlines()[:2] == [
        "resumed at step 9 and trained 1 step (4 sequences) in 0.5s, 8.0 sequences/s on 2 processes",
        "the whole run: 10 steps (40 sequences, 2 full epochs), 5.0s of training",
    ]


def test_finetune_is_a_library_call_with_typed_arguments(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "train.csv", sentiment_rows(20, seed=0))
    summary = finetune(
        TaskArguments(train_file=str(data), max_length=16, validation_split=0.2),
        FinetuneModelArguments(config=str(write_config(tmp_path / "c.json")), tokenizer=str(write_tokenizer(tmp_path))),
        TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, batch_size=4, progress=False),
    )
    assert summary["global_step"] == 2 and summary["metric_for_best"] == "accuracy"
    assert json.loads((tmp_path / "out" / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}
    with pytest.raises(ValueError, match="task must be one of"):
        TaskArguments(train_file=str(data), task="translation")
    with pytest.raises(ValueError, match="resume .* overwrite_output_dir"):
        TrainingArguments(output_dir="x", resume=True, overwrite_output_dir=True)


def test_training_names_do_not_collide_and_no_argparse_in_the_library() -> None:
    assert set(squeezebert.training.TRAINING_TASKS) == {
        "sequence-classification",
        "token-classification",
        "question-answering",
        "multiple-choice",
    }
    assert issubclass(squeezebert.training.SequenceClassificationTask, squeezebert.training.TrainingTask)
    assert not hasattr(squeezebert.training, "Task") and not hasattr(squeezebert.training, "TASKS")
    folder = Path(squeezebert.training.__file__).parent
    assert [p.name for p in folder.glob("*.py") if "argparse" in p.read_text(encoding="utf-8")] == []
    assert not (folder / "cli.py").exists() and not (folder / "__main__.py").exists()
