"""SqueezeBertConfig.from_pretrained: the one config loader, for a folder, a hub id or the path of a JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.configs import tiny_config

from squeezebert import SqueezeBertConfig, hub


@pytest.mark.parametrize("as_path", [True, False], ids=["Path", "str"])
def test_from_a_json_file(tmp_path: Path, as_path: bool) -> None:
    config = tiny_config(num_labels=3)
    target = tmp_path / "my-settings.json"
    target.write_text(config.to_json_string())
    loaded = SqueezeBertConfig.from_pretrained(target if as_path else str(target))
    assert loaded == config


def test_a_json_file_and_its_folder_load_the_same(tmp_path: Path) -> None:
    tiny_config(hidden_act="relu").save_pretrained(tmp_path)
    by_file = SqueezeBertConfig.from_pretrained(tmp_path / hub.CONFIG_NAME)
    assert by_file == SqueezeBertConfig.from_pretrained(tmp_path)
    assert by_file.hidden_act == "relu"


def test_a_json_file_with_overrides_and_hub_options(tmp_path: Path) -> None:
    target = tmp_path / "c.json"
    target.write_text(tiny_config().to_json_string())
    loaded = SqueezeBertConfig.from_pretrained(target, num_labels=4, output_hidden_states=True, local_files_only=True)
    assert loaded.num_labels == 4 and loaded.output_hidden_states
    assert not hasattr(loaded, "local_files_only")


def test_matches_transformers_on_a_json_file(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    target = tmp_path / "c.json"
    target.write_text(tiny_config(intermediate_groups=4, output_groups=4).to_json_string())
    theirs = transformers.SqueezeBertConfig.from_pretrained(str(target))
    ours = SqueezeBertConfig.from_pretrained(target)
    for key in ("hidden_size", "intermediate_size", "q_groups", "intermediate_groups", "output_groups", "vocab_size"):
        assert getattr(ours, key) == getattr(theirs, key)


def test_a_json_file_of_another_model_type(tmp_path: Path) -> None:
    target = tmp_path / "bert.json"
    target.write_text(json.dumps({**tiny_config().to_dict(), "model_type": "bert"}))
    with pytest.raises(ValueError, match=f"^{target} is a config for model_type 'bert'"):
        SqueezeBertConfig.from_pretrained(target)


@pytest.mark.parametrize("content", [b"{not json", b"\x89PNG\r\n\x1a\n\xff\xfe", b"[1, 2]"])
def test_a_file_that_is_not_a_json_config(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "weights.bin"
    target.write_bytes(content)
    with pytest.raises(ValueError, match=f"^{target}: "):
        SqueezeBertConfig.from_pretrained(target)


def test_a_folder_without_config_still_says_so(tmp_path: Path) -> None:
    with pytest.raises(hub.CheckpointNotFoundError, match="has no config.json"):
        SqueezeBertConfig.from_pretrained(tmp_path)
