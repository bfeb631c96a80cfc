"""The Hugging Face oracle: our model and the reference with the same random weights, and a fixed-tolerance
comparison for shallow computations (whole passes are compared with :mod:`support.numerics`).

``transformers`` is used here as a test oracle only; the package never imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers

import squeezebert
from support.configs import config_kwargs

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

ATOL = 2e-5
RTOL = 2e-5


def our_cls(head: str) -> type:
    return getattr(squeezebert, head)


def oracle_cls(head: str) -> type:
    return getattr(transformers, head)


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter (biases, LayerNorms and the MLM bias included) non-trivial random values."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        noise = torch.randn(param.shape, generator=gen, dtype=torch.float32).to(param.dtype)
        if name.endswith(("LayerNorm.weight", "layernorm.weight")):
            param.copy_(1.0 + 0.1 * noise)
        else:
            param.copy_(0.2 * noise)
    return model


def make_oracle(cfg_name: str, head: str, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.SqueezeBertConfig(**config_kwargs(cfg_name, head, **overrides))
    return randomize_(oracle_cls(head)(config), seed).eval()


def make_ours(cfg_name: str, head: str, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = squeezebert.SqueezeBertConfig(**config_kwargs(cfg_name, head, **overrides))
    return randomize_(our_cls(head)(config), seed).eval()


def load_info_is_clean(info: dict[str, list]) -> bool:
    return not info["missing_keys"] and not info["unexpected_keys"] and not info.get("mismatched_keys")


def oracle_and_ours(
    tmp_path: Path, cfg_name: str, head: str, direction: str, seed: int = 0, **overrides: Any
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The oracle and our model holding the same weights, carried across by a save / load in ``direction``."""
    folder = tmp_path / f"ckpt-{direction}"
    if direction == "oracle->ours":
        oracle = make_oracle(cfg_name, head, seed, **overrides)
        oracle.save_pretrained(folder)
        ours, info = our_cls(head).from_pretrained(folder, output_loading_info=True)
    elif direction == "ours->oracle":
        ours = make_ours(cfg_name, head, seed, **overrides)
        ours.save_pretrained(folder)
        oracle, info = oracle_cls(head).from_pretrained(folder, output_loading_info=True)
    else:
        raise AssertionError(direction)
    assert load_info_is_clean(info), info
    return oracle.eval(), ours.eval()


def assert_close(actual: Any, expected: Any, what: str = "", atol: float = ATOL, rtol: float = RTOL) -> None:
    """A fixed tolerance, for shallow computations (a loss from logits, a slice of the same tensor). Comparisons of
    whole forward or backward passes use :mod:`support.numerics`, whose tolerance follows from the arithmetic."""
    assert actual is not None, f"{what}: got None"
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")
