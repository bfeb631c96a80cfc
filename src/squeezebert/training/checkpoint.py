"""Resumable training checkpoints, written atomically.

A checkpoint is a folder ``checkpoint-<step>`` holding ``model.pt`` (the state dict), ``training_state.pt``
(optimizer, scheduler, the RNG states of every process) and ``trainer_state.json`` (step, epoch, position in the
epoch, best metric, ...). It is assembled in a hidden temporary folder and renamed into place, and only then does
the ``latest`` pointer file move to it (itself written atomically). A process killed at any moment therefore leaves
either the new checkpoint or the previous one, never a half-written folder that ``--resume`` would pick up.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import hub

MODEL_FILE = "model.pt"
STATE_FILE = "training_state.pt"
TRAINER_STATE_FILE = "trainer_state.json"
LATEST = "latest"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def rng_state() -> dict[str, Any]:
    """This process's random states (python, numpy, torch CPU and, if any, CUDA), in a ``weights_only``-safe form."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    python = state["python"]
    random.setstate((python[-2], tuple(python[:-2]), python[-1]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _save_torch(obj: Any, path: Path) -> None:
    with hub.atomic_write(path, "wb") as f:
        torch.save(obj, f)


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    *,
    model_state: dict[str, torch.Tensor],
    training_state: dict[str, Any],
    trainer_state: dict[str, Any],
    keep: int | None = 2,
) -> Path:
    """Write ``root/checkpoint-<step>`` atomically, point ``root/latest`` at it, and delete all but the newest
    ``keep`` checkpoints (``None``: keep all). Returns the checkpoint folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"checkpoint-{step}"
    staging = hub.staging_dir(root / name)
    try:
        _save_torch({k: v.detach().cpu() for k, v in model_state.items()}, staging / MODEL_FILE)
        _save_torch(training_state, staging / STATE_FILE)
        hub.write_json(staging / TRAINER_STATE_FILE, trainer_state)  # written last: its presence marks completion
        _fsync_dir(staging)
        final = root / name
        if final.exists():  # the same step saved again (e.g. after a resume): replace it
            old = root / f".{name}-old.tmp"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    with hub.atomic_write(root / LATEST) as f:
        f.write(name + "\n")
    if keep is not None:
        for old_step, path in list_checkpoints(root)[:-keep] if keep > 0 else []:
            if old_step != step:
                shutil.rmtree(path, ignore_errors=True)
    return final


def list_checkpoints(root: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root`` (those with a trainer state), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and (path / TRAINER_STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint ``root/latest`` names, or else the newest complete one; ``None`` if there is none.

    Leftover temporary folders from an interrupted save are removed.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    for leftover in (*root.glob(".checkpoint-*.partial"), *root.glob(".checkpoint-*-old.tmp")):
        shutil.rmtree(leftover, ignore_errors=True)
    pointer = root / LATEST
    if pointer.is_file():
        named = root / pointer.read_text(encoding="utf-8").strip()
        if _NAME.match(named.name) and (named / TRAINER_STATE_FILE).is_file():
            return named
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """``(model_state, training_state, trainer_state)`` of a checkpoint folder (loaded with ``weights_only``)."""
    path = Path(path)
    if not (path / TRAINER_STATE_FILE).is_file():
        raise ValueError(f"{os.fspath(path)!r} is not a complete checkpoint (no {TRAINER_STATE_FILE})")
    model_state = torch.load(path / MODEL_FILE, map_location="cpu", weights_only=True)
    training_state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    trainer_state = json.loads((path / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    return model_state, training_state, trainer_state
