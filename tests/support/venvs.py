"""Virtual environments for oracles that cannot live beside the dev extra (transformers 4.x for the
question-answering pipeline, sentence-transformers' ONNX backend): built once under ``<repo>/.cache/``, torch's
CPU wheel first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"  # first: a later requirement then never pulls a CUDA build


def oracle_python(name: str, requirements: tuple[str, ...]) -> Path:
    """The Python of ``.cache/<name>`` with ``requirements`` installed (after :data:`TORCH`), building the
    environment on first use; skips the test when it cannot be built (no registry, say)."""
    venv = REPO_ROOT / ".cache" / name
    python = venv / "bin" / "python"
    marker = venv / "squeezebert-requirements.txt"  # written last: the environment is complete
    wanted = "\n".join((TORCH, *requirements)) + "\n"
    if marker.is_file() and marker.read_text() == wanted and python.is_file():
        return python
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)], [*pip, TORCH], [*pip, *requirements]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=1500)
        if done.returncode != 0:
            pytest.skip(f"cannot build the {name} environment ({' '.join(step[-2:])}): {done.stderr[-500:]}")
    marker.write_text(wanted)
    return python
