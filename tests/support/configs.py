"""The one factory of tiny configs for the tests: small enough to run in milliseconds, grouped like the paper."""

from __future__ import annotations

from typing import Any

import squeezebert

# Two layers of 32 channels, every projection grouped (2 groups), 4 heads: the shape most tests need.
TINY: dict[str, Any] = dict(
    vocab_size=100,
    hidden_size=32,
    embedding_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
    q_groups=2,
    k_groups=2,
    v_groups=2,
    post_attention_groups=2,
    intermediate_groups=2,
    output_groups=2,
)


def tiny_config(**overrides: Any) -> squeezebert.SqueezeBertConfig:
    """A :data:`TINY` config with ``overrides`` applied (any config field, e.g. ``num_labels=3``)."""
    return squeezebert.SqueezeBertConfig(**{**TINY, **overrides})
