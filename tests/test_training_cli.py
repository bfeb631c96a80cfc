"""``squeezebert train`` / ``pretrain`` as a user runs them (real subprocesses): generated ``--help``, the refusal
to train over an earlier run, log lines on a non-terminal, the summary after a resume, bad flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_training_common import run_squeezebert, sentiment_workspace, train


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sentiment_workspace(tmp_path_factory.mktemp("cli"), train_rows=24)


def _argv(ws: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """24 examples, batch 4, 20% held out: 5 steps per epoch."""
    return [
        "train",
        "--train-file",
        str(ws["train"]),
        "--validation-split",
        "0.2",
        "--config",
        str(ws["config"]),
        "--tokenizer",
        str(ws["tokenizer"]),
        "--output-dir",
        str(out),
        "--max-length",
        "16",
        "--batch-size",
        "4",
        *extra,
    ]


def test_help_lists_the_generated_flags_with_their_defaults() -> None:
    result = run_squeezebert(["train", "--help"])
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for expected in (
        "--epochs EPOCHS passes over the training set (default 3)",
        "--learning-rate LEARNING_RATE, --lr LEARNING_RATE peak learning rate (default 5e-05)",
        "--warmup-ratio WARMUP_RATIO fraction of the steps spent warming up (default 0.1)",
        "--no-progress",
        "--overwrite-output-dir",
        "--resume",
        "--task {multiple-choice,question-answering,sequence-classification,token-classification}",
        "--teacher TEACHER",
        "--no-eval-each-epoch",
    ):
        assert expected in text, expected
    for heading in ("task and data:", "model:", "distillation:", "training loop and evaluation:"):
        assert heading in result.stdout

    result = run_squeezebert(["pretrain", "--help"])
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "peak learning rate (default 0.0001)" in text  # pretraining's own default
    assert "--corpus CORPUS [CORPUS ...]" in text and "--whole-word-masking" in text


def test_an_earlier_run_is_refused_unless_overwritten_or_resumed(workspace: dict[str, Path]) -> None:
    out = workspace["root"] / "run"
    assert train(_argv(workspace, out, "--max-steps", "4", "--save-steps", "2", "--logging-steps", "1")) == 0
    assert (out / "checkpoints" / "checkpoint-2").is_dir()

    refused = run_squeezebert(_argv(workspace, out, "--max-steps", "2"))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1, refused.stderr  # one line, no traceback
    assert refused.stderr.startswith("squeezebert train: error: output_dir ")
    assert "already holds a training run" in refused.stderr and "--overwrite-output-dir" in refused.stderr
    assert "--resume" in refused.stderr
    assert (out / "checkpoints" / "checkpoint-2").is_dir()  # untouched

    assert train(_argv(workspace, out, "--max-steps", "2", "--overwrite-output-dir")) == 0
    assert not (out / "checkpoints").exists()  # the old run's checkpoints are gone
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 2  # and so are its metrics
    assert json.loads((out / "training_summary.json").read_text())["global_step"] == 2

    both = run_squeezebert(_argv(workspace, out, "--resume", "--overwrite-output-dir"))
    assert both.returncode == 2 and both.stderr.count("\n") == 1, both.stderr


def test_on_a_non_terminal_training_logs_lines_not_a_bar(workspace: dict[str, Path]) -> None:
    for extra in ((), ("--no-progress",)):
        out = workspace["root"] / f"logged{len(extra)}"
        result = run_squeezebert(_argv(workspace, out, "--max-steps", "4", "--logging-steps", "2", *extra))
        assert result.returncode == 0, result.stderr
        assert "\r" not in result.stderr  # no tqdm redraws
        lines = [line for line in result.stderr.splitlines() if "squeezebert.training: step " in line]
        assert len(lines) == 3, result.stderr  # steps 2 and 4, and the final evaluation
        assert "step 2/4: loss " in lines[0] and ", lr " in lines[0] and "sequences/s" in lines[0]
        assert any("step 4 eval: " in line and "accuracy=" in line for line in lines)
        assert result.stdout.startswith("trained 4 steps (16 sequences, 0 full epochs) in ")


def test_the_summary_after_a_resume_separates_this_process_from_the_run(workspace: dict[str, Path]) -> None:
    out = workspace["root"] / "resumed"
    assert train(_argv(workspace, out, "--epochs", "1", "--save-steps", "3", "--validation-split", "0")) == 0
    (out / "checkpoints" / "latest").write_text("checkpoint-3\n")  # as if killed after step 3
    result = run_squeezebert(_argv(workspace, out, "--epochs", "2", "--validation-split", "0", "--resume"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("resumed at step 3 and trained 9 steps (36 sequences) in "), lines
    assert lines[1].startswith("the whole run: 12 steps (48 sequences, 2 full epochs), "), lines
    summary = json.loads((out / "training_summary.json").read_text())
    assert (summary["resumed_from_step"], summary["steps_this_process"], summary["global_step"]) == (3, 9, 12)
    assert summary["total_train_seconds"] >= summary["train_seconds"]


def test_bad_flags_are_one_line_naming_the_argument(workspace: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    out = workspace["root"] / "bad"
    assert train(_argv(workspace, out, "--batch-size", "0")) == 2
    assert capsys.readouterr().err == "squeezebert train: error: batch_size must be a positive integer, got 0\n"
    argv = _argv(workspace, out)
    argv[argv.index("--config") : argv.index("--config") + 2] = []
    assert train(argv) == 2
    assert "pass exactly one of --model" in capsys.readouterr().err
    assert train(["pretrain", "--corpus", str(workspace["root"] / "missing.txt"), "--output-dir", str(out)]) == 2
    assert "corpus file not found" in capsys.readouterr().err
    assert not out.exists()
