"""Shared pieces of the training tests: a tiny word-level vocabulary and model config, toy data sets with a signal a
small model learns in a few steps, and helpers that run the ``squeezebert`` command in-process or in a subprocess.

(No tests here; the other ``test_training_*`` modules import these helpers.)
"""

from __future__ import annotations

import csv
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from support.configs import tiny_config

from squeezebert import SqueezeBertConfig
from squeezebert.cli import main as squeezebert_main
from squeezebert.tokenization import SqueezeBertTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = ["good", "great", "lovely", "happy", "fine", "bright"]
NEGATIVE = ["bad", "awful", "sad", "poor", "grim", "dull"]
FILLER = ["the", "a", "movie", "day", "was", "is", "very", "and", "it", "food", "city", "old", "new", "man", "woman"]
NAMES = ["paris", "london", "alice", "bob", "acme", "globex"]
EXTRA = [".", ",", "?", "what", "who", "where", "went", "to", "met", "works", "at", "##s", "##ing", "##ed"]
VOCAB = SPECIALS + POSITIVE + NEGATIVE + FILLER + NAMES + EXTRA


def word_config(**overrides: Any) -> SqueezeBertConfig:
    """The tests' tiny config with a vocabulary of :data:`VOCAB` (and ``overrides``)."""
    return tiny_config(vocab_size=len(VOCAB), **overrides)


REPO_SRC = Path(__file__).resolve().parent.parent / "src"


def write_tokenizer(folder: Path) -> Path:
    """A BERT WordPiece tokenizer folder over :data:`VOCAB`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    SqueezeBertTokenizerFast(vocab_file=folder / "vocab.txt").save_pretrained(folder)
    return folder


def write_config(path: Path, **overrides: Any) -> Path:
    """A ``.json`` file of :func:`word_config`."""
    path.write_text(json.dumps(word_config(**overrides).to_dict()), encoding="utf-8")
    return path


def sentiment_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Sentences whose label is the sentiment word they contain."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label == "pos" else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sentiment_workspace(root: Path, train_rows: int, validation_rows: int | None = None) -> dict[str, Path]:
    """A folder with a word-level tokenizer, a tiny config and sentiment CSVs (``train``, and ``valid`` if asked)."""
    workspace = {
        "root": root,
        "tokenizer": write_tokenizer(root / "tokenizer"),
        "config": write_config(root / "config.json"),
        "train": write_csv(root / "train.csv", sentiment_rows(train_rows, seed=0)),
    }
    if validation_rows is not None:
        workspace["valid"] = write_csv(root / "valid.csv", sentiment_rows(validation_rows, seed=1))
    return workspace


def train(argv: list[str]) -> int:
    """Run ``squeezebert train|pretrain ...`` in this process (log lines, no progress bar); returns the exit status."""
    return squeezebert_main([*argv, "--no-progress"])


def write_conll(path: Path, n: int, seed: int) -> Path:
    """A CoNLL file of ``n`` sentences tagging the places, people and companies of :data:`NAMES`."""
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- O O", ""]
    for _ in range(n):
        name = rng.choice(NAMES)
        tag = "LOC" if name in ("paris", "london") else "PER" if name in ("alice", "bob") else "ORG"
        words = [("the", "O"), ("man", "O"), ("went", "O"), ("to", "O"), (name, f"B-{tag}")]
        if rng.random() < 0.5:
            words += [("and", "O"), ("met", "O"), (rng.choice(["alice", "bob"]), "B-PER"), ("##s", "I-PER")]
        lines += [f"{w} X X {t}" for w, t in words] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(folder / "model.safetensors"))


def max_weight_difference(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_SRC), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def run_python(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """``python ARGS`` in a subprocess (stdout and stderr are pipes, not terminals)."""
    return subprocess.run(
        [sys.executable, *args], env=subprocess_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def run_squeezebert(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m squeezebert ARGS`` in a subprocess."""
    return run_python(["-m", "squeezebert", *args], timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs the training command, SIGKILLing itself at a chosen point: after optimizer step KILL_STEP, or halfway through
# writing training_state.pt of checkpoint-KILL_IN_CHECKPOINT.
KILL_DRIVER = """
import os, signal, sys
from squeezebert.cli import main
from squeezebert.training import checkpoint, trainer

kill_step = int(os.environ.get("KILL_STEP", "0"))
kill_in_checkpoint = os.environ.get("KILL_IN_CHECKPOINT")
fire = trainer.Trainer._fire


def fire_then_die(self, event, *payload):
    fire(self, event, *payload)
    if event == "on_step_end" and self.state.global_step == kill_step:
        os.kill(os.getpid(), signal.SIGKILL)


save_torch = checkpoint._save_torch


def save_then_die(obj, path):
    if kill_in_checkpoint and f".checkpoint-{kill_in_checkpoint}." in str(path) and path.name == checkpoint.STATE_FILE:
        with open(path, "wb") as f:  # a torn, half-written file
            f.write(b"PK\\x03\\x04 half written")
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    save_torch(obj, path)


trainer.Trainer._fire = fire_then_die
checkpoint._save_torch = save_then_die
sys.exit(main(sys.argv[1:]))
"""
