"""Flags generated from dataclass fields (squeezebert.cli.arguments): each field type, the metadata keys, defaults
per command, and the round trip back to the dataclass."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

import pytest

from squeezebert.cli.arguments import add_dataclass_arguments, dataclass_from_args


@dataclass
class Options:
    output_dir: str = field(metadata={"help": "where results go"})
    num_epochs: int = field(default=3, metadata={"help": "passes", "flag": "--epochs"})
    learning_rate: float = field(default=5e-5, metadata={"help": "peak rate", "aliases": ("--lr",)})
    warmup_steps: int | None = field(default=None, metadata={"help": "warm-up steps"})
    schedule: Literal["linear", "cosine"] = field(default="linear", metadata={"help": "the schedule"})
    optimizer: str = field(default="adamw", metadata={"help": "optimizer", "choices": ("adamw", "lamb")})
    files: tuple[str, ...] = field(default=(), metadata={"help": "input files"})
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    internal: int = field(default=7, metadata={"cli": False})

    def __post_init__(self) -> None:
        if self.num_epochs < 1:
            raise ValueError(f"num_epochs must be a positive integer, got {self.num_epochs}")


def parser(**defaults: object) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="test", exit_on_error=False)
    return add_dataclass_arguments(p, Options, "options", defaults=defaults or None)


def test_defaults_round_trip_to_the_dataclass() -> None:
    options = dataclass_from_args(Options, parser().parse_args(["--output-dir", "out"]))
    assert options == Options(output_dir="out")


def test_every_kind_of_flag() -> None:
    argv = ["--output-dir", "o", "--epochs", "5", "--lr", "0.001", "--warmup-steps", "10", "--schedule", "cosine"]
    argv += ["--optimizer", "lamb", "--files", "a.txt", "b.txt", "--bf16", "--no-progress"]
    options = dataclass_from_args(Options, parser().parse_args(argv))
    assert options == Options(
        output_dir="o",
        num_epochs=5,
        learning_rate=0.001,
        warmup_steps=10,
        schedule="cosine",
        optimizer="lamb",
        files=("a.txt", "b.txt"),
        bf16=True,
        progress=False,
    )
    assert isinstance(options.files, tuple)


def test_help_shows_each_flag_once_with_its_default() -> None:
    text = " ".join(parser().format_help().split())  # argparse wraps lines at the terminal width
    assert "--epochs EPOCHS" in text and "passes (default 3)" in text
    assert "--learning-rate LEARNING_RATE, --lr LEARNING_RATE" in text and "(default 5e-05)" in text
    assert "--no-progress" in text and "show a progress bar (on by default; this flag turns it off)" in text
    assert "{linear,cosine}" in text and "--internal" not in text
    assert "--warmup-steps WARMUP_STEPS warm-up steps --schedule" in text  # no "(default None)"


def test_a_command_can_change_a_default() -> None:
    options = dataclass_from_args(Options, parser(learning_rate=1e-4).parse_args(["--output-dir", "o"]))
    assert options.learning_rate == 1e-4


@pytest.mark.parametrize(
    "argv",
    [
        [],  # --output-dir is required
        ["--output-dir", "o", "--epochs", "many"],
        ["--output-dir", "o", "--schedule", "steep"],
        ["--output-dir", "o", "--optimizer", "sgd"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        parser().parse_args(argv)


def test_the_dataclass_validates_what_argparse_cannot() -> None:
    with pytest.raises(ValueError, match="num_epochs must be a positive integer, got 0"):
        dataclass_from_args(Options, parser().parse_args(["--output-dir", "o", "--epochs", "0"]))


def test_only_dataclasses() -> None:
    with pytest.raises(TypeError, match="dataclass"):
        add_dataclass_arguments(argparse.ArgumentParser(), dict)
