"""A truncated or garbage weight file is one clear DamagedCheckpointError (an OSError) naming the file."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from support.configs import tiny_config

import squeezebert
from squeezebert import hub


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(os.urandom(len(data) // 4))


def _saved(folder: Path, safe: bool) -> Path:
    squeezebert.SqueezeBertModel(tiny_config()).save_pretrained(folder, safe_serialization=safe)
    return folder / (hub.SAFE_WEIGHTS_NAME if safe else hub.WEIGHTS_NAME)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_damaged_weight_file(tmp_path: Path, safe: bool, how: str) -> None:
    weights = _saved(tmp_path, safe)
    _damage(weights, how)
    with pytest.raises(hub.DamagedCheckpointError) as info:
        squeezebert.SqueezeBertModel.from_pretrained(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{weights} is damaged or truncated (")
    assert message.endswith("): re-download or re-save it")
    assert ("safetensors: " if safe else "torch.load: ") in message
    assert "\n" not in message and len(message) < 500
    assert isinstance(info.value, OSError)


def test_safetensors_truncation_message(tmp_path: Path) -> None:
    weights = _saved(tmp_path, safe=True)
    _damage(weights, "truncated")
    with pytest.raises(hub.DamagedCheckpointError, match="incomplete metadata"):
        hub.load_state_dict(tmp_path)


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_sharded_checkpoint_with_a_damaged_shard(tmp_path: Path, safe: bool) -> None:
    state = squeezebert.SqueezeBertModel(tiny_config()).state_dict()
    keys = sorted(state)
    suffix = "safetensors" if safe else "bin"
    shards = {f"model-0000{i}-of-00002.{suffix}": keys[i - 1 :: 2] for i in (1, 2)}
    for name, names in shards.items():
        hub.save_state_dict({k: state[k] for k in names}, tmp_path / name, safe=safe)
    index = hub.SAFE_WEIGHTS_INDEX_NAME if safe else hub.WEIGHTS_INDEX_NAME
    weight_map = {k: name for name, names in shards.items() for k in names}
    (tmp_path / index).write_text(json.dumps({"weight_map": weight_map}))
    assert set(hub.load_state_dict(tmp_path)) == set(keys)

    damaged = tmp_path / f"model-00002-of-00002.{suffix}"
    _damage(damaged, "truncated")
    with pytest.raises(hub.DamagedCheckpointError, match=f"^{damaged} is damaged or truncated"):
        hub.load_state_dict(tmp_path)


def test_missing_file_is_not_called_damaged(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        hub._load_weight_file(str(tmp_path / "model.safetensors"))
    assert not isinstance(info.value, hub.DamagedCheckpointError)


def test_a_pickle_with_objects_is_still_refused_as_unsafe(tmp_path: Path) -> None:
    weights = tmp_path / hub.WEIGHTS_NAME
    torch.save({"w": torch.zeros(1), "obj": pickle.PickleError("x")}, weights)
    with pytest.raises(ValueError, match="arbitrary pickled objects"):
        hub._load_weight_file(str(weights))
