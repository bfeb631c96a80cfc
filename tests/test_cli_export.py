"""``squeezebert export onnx`` as a user runs it (subprocess): the folder it writes loads in ONNX Runtime with the
model's outputs, and each mistake is one line, exit 2, with nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support.checkpoints import Checkpoints

import squeezebert

pytest.importorskip("onnxruntime")


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "squeezebert", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def assert_user_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("squeezebert export: error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_export_onnx_writes_a_folder_onnx_runtime_runs(checkpoints: Checkpoints, tmp_path: Path) -> None:
    import onnxruntime

    out = tmp_path / "sentiment-onnx"
    done = run(["export", "onnx", str(checkpoints["sentiment"]), str(out), "--int8"])
    assert done.returncode == 0, done.stderr
    assert "max abs diff" in done.stdout and "min cosine" in done.stdout
    assert {"config.json", "tokenizer.json", "onnx"} <= {p.name for p in out.iterdir()}

    tokenizer = squeezebert.AutoTokenizer.from_pretrained(out)
    inputs = tokenizer(["A fine day.", "Not good at all, sadly."], padding=True, return_tensors="np")
    session = onnxruntime.InferenceSession(str(out / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {k: v.astype(np.int64) for k, v in inputs.items()})
    model = squeezebert.SqueezeBertForSequenceClassification.from_pretrained(checkpoints["sentiment"])
    with torch.no_grad():
        expected = model(**tokenizer(["A fine day.", "Not good at all, sadly."], padding=True, return_tensors="pt"))
    assert np.abs(logits - expected.logits.numpy()).max() <= 1e-4


def test_export_onnx_mistakes(checkpoints: Checkpoints, tmp_path: Path) -> None:
    folder = str(checkpoints["sentiment"])
    assert_user_error(run(["export", "onnx", folder, str(tmp_path / "a"), "--task", "qa"]), "task 'qa'")
    assert_user_error(run(["export", "onnx", folder, str(tmp_path / "b"), "--task", "question-answering"]), "needs a")
    assert_user_error(run(["export", "onnx", folder, str(tmp_path / "c"), "--opset", "9"]), "opset", "17")
    (tmp_path / "a-file").write_text("not a folder")
    assert_user_error(run(["export", "onnx", folder, str(tmp_path / "a-file" / "out")]), "not a writable folder")
    (tmp_path / "a-file").unlink()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert_user_error(run(["export", "onnx", folder, str(tmp_path / "full")]), "not empty", "--overwrite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # nothing else was left behind
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_export_onnx_without_the_extra(checkpoints: Checkpoints, tmp_path: Path) -> None:
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "onnxruntime.py").write_text("raise ImportError('onnxruntime is not installed')\n")
    done = run(
        ["export", "onnx", str(checkpoints["sentiment"]), str(tmp_path / "out")],
        env={"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])},
    )
    assert_user_error(done, "pip install 'squeezebert[onnx]'")
    assert not (tmp_path / "out").exists()


def test_export_executorch_writes_a_checked_program(checkpoints: Checkpoints, tmp_path: Path) -> None:
    pytest.importorskip("executorch")
    out = tmp_path / "sentiment.pte"
    done = run(["export", "executorch", str(checkpoints["sentiment"]), str(out), "--max-length", "32"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sequence length dynamic, 1 to 32" in done.stdout and "delegated to XNNPACK" in done.stdout
    assert out.stat().st_size > 0 and [p.name for p in tmp_path.iterdir()] == ["sentiment.pte"]
    assert_user_error(
        run(["export", "executorch", str(checkpoints["sentiment"]), str(tmp_path / "x.pte"), "--task", "qa"]),
        "task 'qa'",
    )
