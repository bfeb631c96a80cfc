"""Saved files get the permissions a plain open() would give them (0o666 & ~umask), and saves stay atomic."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.configs import tiny_config

import squeezebert
from squeezebert import hub

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s"]


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process's umask after a test that changes it."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _save_everything(folder: Path) -> list[Path]:
    """save_pretrained of a model (both weight formats), a config and both tokenizers into ``folder``."""
    model = squeezebert.SqueezeBertModel(tiny_config())
    model.save_pretrained(folder / "safe")
    model.save_pretrained(folder / "bin", safe_serialization=False)
    tiny_config().save_pretrained(folder / "config")
    vocab = folder / "vocab.txt"
    vocab.write_text("".join(token + "\n" for token in VOCAB), encoding="utf-8")
    squeezebert.SqueezeBertTokenizer(vocab).save_pretrained(folder / "slow")
    squeezebert.SqueezeBertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder / "fast")
    return [p for p in folder.rglob("*") if p.is_file() and p != vocab]


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_follow_the_umask(tmp_path: Path, umask: None, mask: int, expected: int) -> None:
    os.umask(mask)
    assert hub.current_umask() == mask
    files = _save_everything(tmp_path)
    names = {p.name for p in files}
    assert {"config.json", "model.safetensors", "pytorch_model.bin", "vocab.txt", "tokenizer.json"} <= names
    assert {"tokenizer_config.json", "special_tokens_map.json"} <= names
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in files} == {
        str(p.relative_to(tmp_path)): oct(expected) for p in files
    }


def test_overwriting_applies_the_current_umask(tmp_path: Path, umask: None) -> None:
    target = tmp_path / "config.json"
    os.umask(0o077)
    hub.write_json(target, {"a": 1})
    assert _mode(target) == 0o600
    os.umask(0o022)
    hub.write_json(target, {"a": 2})
    assert _mode(target) == 0o644
    assert hub.read_json(target) == {"a": 2}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, umask: None) -> None:
    os.umask(0o022)
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"), hub.atomic_write(target, "wb") as f:
        f.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_umask_fallback_without_proc(monkeypatch: pytest.MonkeyPatch, umask: None) -> None:
    os.umask(0o027)
    real_open = open

    def no_proc(file: object, *args: object, **kwargs: object) -> object:
        if file == "/proc/self/status":
            raise FileNotFoundError(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    assert hub.current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # left as it was


def test_training_checkpoints_follow_the_umask(tmp_path: Path, umask: None) -> None:
    import torch

    from squeezebert.training import checkpoint

    os.umask(0o022)
    folder = checkpoint.save_checkpoint(
        tmp_path / "checkpoints",
        3,
        model_state={"w": torch.zeros(2)},
        training_state={"optimizer": {}},
        trainer_state={"global_step": 3},
    )
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()} == {0o644}
