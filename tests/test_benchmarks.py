"""The benchmark scripts stay runnable: their measuring functions on tiny models (no timings are asserted)."""

from __future__ import annotations

import bench_int8_accuracy  # benchmarks/ is on sys.path (tests/conftest.py)
import torch
from support.configs import PAPER_GROUPS, tiny_config

import squeezebert


def test_int8_accuracy_rows_cover_every_variant():
    torch.manual_seed(0)
    config = tiny_config(
        hidden_size=64,
        embedding_size=64,
        num_attention_heads=8,
        intermediate_size=128,
        max_position_embeddings=32,
        **PAPER_GROUPS,
    )
    model = squeezebert.SqueezeBertModel(config).eval()
    ids = torch.randint(1, 100, (3, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    rows = bench_int8_accuracy.compare(model, {"input_ids": ids, "attention_mask": mask}, rounds=1)
    assert [row["variant"] for row in rows] == list(bench_int8_accuracy.VARIANTS)
    for row in rows:
        assert 0 <= row["mean"] <= row["max"] < 0.5
        assert 0.99 < row["token"] <= 1.0 + 1e-6 and 0.99 < row["pooled"] <= 1.0 + 1e-6
        assert row["speed"] > 0
    # keeping the feed-forward block in floating point is never less accurate than quantizing it
    by_variant = {row["variant"]: row for row in rows}
    assert by_variant['keep_float=("output", "intermediate")']["mean"] <= by_variant["outliers=0"]["mean"]
