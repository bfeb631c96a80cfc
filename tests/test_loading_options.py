"""Hugging Face's loading options in ``from_pretrained``: the ones that mean something here work, the others are a
clear ValueError, and none of them ends up as a field of the saved config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from support.configs import tiny_config

import squeezebert


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loading-options")
    torch.manual_seed(0)
    squeezebert.SqueezeBertModel(tiny_config()).save_pretrained(path)
    return path


def test_device_map_with_one_device_and_low_cpu_mem_usage(folder: Path, tmp_path: Path) -> None:
    plain = squeezebert.SqueezeBertModel.from_pretrained(folder)
    model = squeezebert.SqueezeBertModel.from_pretrained(folder, device_map="cpu", low_cpu_mem_usage=True)
    assert model.device == torch.device("cpu")
    for (name, a), (_, b) in zip(plain.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert not {"device_map", "low_cpu_mem_usage"} & set(saved)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("device_map", "auto", "one device"),
        ("device_map", {"": 0}, "one device"),
        ("device_map", "banana", "device must be"),
        ("variant", "fp16", "variant="),
        ("quantization_config", {"load_in_8bit": True}, "quantize_dynamic"),
        ("attn_implementation", "flash_attention_2", "attention path"),
    ],
)
def test_unsupported_loading_options_are_named(folder: Path, option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        squeezebert.SqueezeBertModel.from_pretrained(folder, **{option: value})


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there")
def test_device_map_cuda_without_a_gpu(folder: Path) -> None:
    with pytest.raises(ValueError, match="'cuda' is not available"):
        squeezebert.SqueezeBertModel.from_pretrained(folder, device_map="cuda")
