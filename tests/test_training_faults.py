"""Scale and faults: a run SIGKILLed mid-epoch and resumed ends with the weights of an uninterrupted run; a kill
during a checkpoint write leaves the previous checkpoint usable; 2 DDP processes (gloo, torchrun) give the weights of
1 process with the same global batch."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from test_training_common import (
    KILL_DRIVER,
    free_port,
    max_weight_difference,
    run_python,
    sentiment_rows,
    train,
    write_config,
    write_conll,
    write_csv,
    write_tokenizer,
)

from squeezebert.training import checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("faults")
    driver = root / "driver.py"
    driver.write_text(KILL_DRIVER, encoding="utf-8")
    return {
        "root": root,
        "driver": driver,
        "tokenizer": write_tokenizer(root / "tokenizer"),
        "config": write_config(root / "config.json"),  # dropout on: resuming must restore the RNG
        "config_no_dropout": write_config(
            root / "config0.json", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        ),
        "train": write_csv(root / "train.csv", sentiment_rows(40, seed=0)),
    }


def _argv(setup: dict[str, Path], out: Path, config: str = "config") -> list[str]:
    # 40 examples, batch 4: 10 steps per epoch, 2 epochs; checkpoints every 3 steps; no evaluation, so the final
    # folder holds the last weights.
    return [
        "train",
        "--train-file",
        str(setup["train"]),
        "--validation-split",
        "0",
        "--config",
        str(setup[config]),
        "--tokenizer",
        str(setup["tokenizer"]),
        "--output-dir",
        str(out),
        "--max-length",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--save-steps",
        "3",
        "--learning-rate",
        "2e-3",
        "--no-progress",
    ]


def _run(setup: dict[str, Path], argv: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run the driver in a subprocess (every run of a comparison uses the same thread count: 1)."""
    os.environ.update(env)
    try:
        return run_python([str(setup["driver"]), *argv])
    finally:
        for key in env:
            os.environ.pop(key)


@pytest.fixture(scope="module")
def uninterrupted(setup: dict[str, Path]) -> Path:
    out = setup["root"] / "uninterrupted"
    result = _run(setup, _argv(setup, out))
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def _killed_run(setup: dict[str, Path], out: Path, **env: str) -> None:
    result = _run(setup, _argv(setup, out), **env)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


def _resume(setup: dict[str, Path], out: Path) -> None:
    result = _run(setup, [*_argv(setup, out), "--resume"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed from" in result.stderr


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(setup: dict[str, Path], uninterrupted: Path) -> None:
    out = setup["root"] / "killed"
    _killed_run(setup, out, KILL_STEP="14")  # epoch 2, 4 steps in; last checkpoint at step 12
    assert checkpoint.latest_checkpoint(out / "checkpoints").name == "checkpoint-12"
    assert not (out / "model.safetensors").exists()
    _resume(setup, out)
    assert max_weight_difference(out, uninterrupted) == 0.0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    steps = [int(line.split('"step": ')[1].split(",")[0].rstrip("}")) for line in lines if '"loss"' in line]
    assert steps == sorted(set(steps))  # the resumed run did not log the redone steps twice


def test_kill_during_a_checkpoint_write_keeps_the_previous_one(setup: dict[str, Path], uninterrupted: Path) -> None:
    out = setup["root"] / "torn"
    _killed_run(setup, out, KILL_IN_CHECKPOINT="6")
    folder = out / "checkpoints"
    assert list(folder.glob(".checkpoint-6.*.partial")), "the torn checkpoint should be a hidden temporary folder"
    assert not (folder / "checkpoint-6").exists()
    latest = checkpoint.latest_checkpoint(folder)
    assert latest is not None and latest.name == "checkpoint-3"
    assert not list(folder.glob(".checkpoint-*.partial"))  # cleaned up when looking for the latest one
    model_state, training_state, trainer_state = checkpoint.load_checkpoint(latest)
    assert trainer_state["global_step"] == 3 and trainer_state["step_in_epoch"] == 3
    assert training_state["optimizer"]["state"] and model_state

    _resume(setup, out)
    assert max_weight_difference(out, uninterrupted) == 0.0


def test_resume_refuses_a_different_global_batch(setup: dict[str, Path], uninterrupted: Path, capsys) -> None:
    argv = _argv(setup, uninterrupted)
    argv[argv.index("--batch-size") + 1] = "8"
    assert train([*argv, "--resume"]) == 2
    assert "global batch" in capsys.readouterr().err


def _torchrun(argv: list[str]) -> subprocess.CompletedProcess:
    """``squeezebert ARGV`` in 2 processes (gloo)."""
    launcher = ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2"]
    launcher += ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    return run_python([*launcher, "-m", "squeezebert", *argv], timeout=300)


def test_two_ddp_processes_match_one_process(setup: dict[str, Path]) -> None:
    single = setup["root"] / "single"
    argv = _argv(setup, single, "config_no_dropout")
    argv[argv.index("--batch-size") + 1] = "8"
    argv[argv.index("--validation-split") + 1] = "0.2"  # evaluation runs on rank 0, shared with rank 1
    result = _run(setup, argv)
    assert result.returncode == 0, result.stderr[-2000:]

    ddp = setup["root"] / "ddp"
    argv = _argv(setup, ddp, "config_no_dropout")
    argv[argv.index("--batch-size") + 1] = "2"  # 2 processes x 2 examples x 2 accumulation steps = 8
    argv[argv.index("--validation-split") + 1] = "0.2"
    argv += ["--gradient-accumulation-steps", "2"]
    result = _torchrun(argv)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 processes" in result.stdout
    assert max_weight_difference(single, ddp) < 1e-5
    assert (ddp / "checkpoints" / "latest").is_file()


def test_ddp_trains_a_tagger_whose_pooler_gets_no_gradient(setup: dict[str, Path]) -> None:
    # DDP must be told about the unused pooler (find_unused_parameters), or its second step fails.
    argv = _argv(setup, setup["root"] / "ddp-tagger")
    argv[argv.index("--train-file") + 1] = str(write_conll(setup["root"] / "tags.conll", 16, 0))
    argv[argv.index("--batch-size") + 1] = "2"
    result = _torchrun([*argv, "--task", "token-classification", "--max-steps", "3"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained 3 steps" in result.stdout and "on 2 processes" in result.stdout
