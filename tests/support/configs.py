"""The one factory of tiny configs for the tests: small enough to run in milliseconds, grouped like the paper.

:func:`tiny` gives the fields as a dict (the Hugging Face oracle takes the same fields), :func:`tiny_config` our
config. The named variants below are :data:`TINY` with overrides; a test that needs other values overrides them too.
"""

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

# The published group layout (also the config defaults): Q/K/V and the feed-forward pair in 4 groups, the
# post-attention projection dense. With equal Q/K/V groups on head boundaries the engine fuses QKV.
PAPER_GROUPS: dict[str, int] = dict(
    q_groups=4, k_groups=4, v_groups=4, post_attention_groups=1, intermediate_groups=4, output_groups=4
)


def tiny(**overrides: Any) -> dict[str, Any]:
    """The fields of :data:`TINY` with ``overrides`` applied."""
    return {**TINY, **overrides}


def tiny_config(**overrides: Any) -> squeezebert.SqueezeBertConfig:
    """A :data:`TINY` config with ``overrides`` applied (any config field, e.g. ``num_labels=3``)."""
    return squeezebert.SqueezeBertConfig(**tiny(**overrides))


# The paper's layout at 128 channels and 8 heads (the int8 tests: wide enough rows for the quantizer).
PAPER_128 = tiny(hidden_size=128, embedding_size=128, num_attention_heads=8, intermediate_size=512, **PAPER_GROUPS)

# Named configs of the oracle and engine tests. The first three: every group count differs per layer type,
# including groups=1 and groups that do not line up with the attention heads (e.g. 3 query groups of 16 channels
# over 4 heads of 12 channels). "engine": the paper's layout scaled down (fused QKV, feed-forward pair in matching
# groups); "unfused": group counts that rule out both fusions.
_TYPES = dict(max_position_embeddings=24, type_vocab_size=3)
SMALL_CONFIGS: dict[str, dict[str, Any]] = {
    "relu-h32": tiny(
        **_TYPES,
        hidden_act="relu",
        q_groups=2,
        k_groups=1,
        v_groups=8,
        post_attention_groups=1,
        intermediate_groups=2,
        output_groups=4,
    ),
    "gelu_new-h48-unaligned": tiny(
        **_TYPES,
        vocab_size=97,
        hidden_size=48,
        embedding_size=48,
        intermediate_size=96,
        hidden_act="gelu_new",
        q_groups=3,
        k_groups=6,
        v_groups=1,
        post_attention_groups=2,
        intermediate_groups=3,
        output_groups=1,
        pad_token_id=3,
    ),
    "silu-h64": tiny(
        **_TYPES,
        vocab_size=120,
        hidden_size=64,
        embedding_size=64,
        num_attention_heads=8,
        intermediate_size=128,
        hidden_act="silu",
        q_groups=4,
        k_groups=4,
        v_groups=4,
        post_attention_groups=4,
        intermediate_groups=4,
        output_groups=8,
        layer_norm_eps=1e-5,
    ),
    "engine": tiny(
        hidden_size=64,
        embedding_size=64,
        num_attention_heads=8,
        intermediate_size=128,
        max_position_embeddings=40,
        type_vocab_size=2,
        hidden_act="gelu",
        **PAPER_GROUPS,
    ),
    "unfused": tiny(
        hidden_size=48,
        embedding_size=48,
        intermediate_size=96,
        max_position_embeddings=40,
        type_vocab_size=2,
        hidden_act="gelu_new",
        q_groups=3,
        k_groups=1,
        v_groups=2,
        post_attention_groups=2,
        intermediate_groups=1,
        output_groups=3,
    ),
}
CONFIG_NAMES = ("relu-h32", "gelu_new-h48-unaligned", "silu-h64")  # the oracle sweep
ENGINE_CONFIG_NAMES = ("engine", "unfused")

# Per-head config fields: the classification heads get 3 labels (QA needs exactly 2: start and end).
HEAD_CONFIG: dict[str, dict[str, Any]] = {
    "SqueezeBertForSequenceClassification": {"num_labels": 3},
    "SqueezeBertForTokenClassification": {"num_labels": 3},
}


def config_kwargs(cfg_name: str, head: str, **overrides: Any) -> dict[str, Any]:
    """The fields of the named config, with the head's fields and ``overrides`` applied."""
    return {**SMALL_CONFIGS[cfg_name], **HEAD_CONFIG.get(head, {}), **overrides}
