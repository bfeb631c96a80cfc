"""Shared helpers for the squeezebert test suite: small configs, the HF oracle, inputs, labels, comparisons,
hand-written reference math, checkpoint writers and a hand-made Hugging Face cache.

Hugging Face ``transformers`` is used here as a test oracle only; the package never imports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import transformers

import squeezebert

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


@pytest.fixture
def single_thread() -> Iterator[None]:
    """The test models are tiny: one thread is faster, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


ATOL = 2e-5
RTOL = 2e-5

HEADS = (
    "SqueezeBertModel",
    "SqueezeBertForMaskedLM",
    "SqueezeBertForSequenceClassification",
    "SqueezeBertForMultipleChoice",
    "SqueezeBertForTokenClassification",
    "SqueezeBertForQuestionAnswering",
)
NUM_CHOICES = 2

# Per-head config fields: the classification heads get 3 labels (QA needs exactly 2: start and end).
HEAD_CONFIG: dict[str, dict[str, Any]] = {
    "SqueezeBertForSequenceClassification": {"num_labels": 3},
    "SqueezeBertForTokenClassification": {"num_labels": 3},
}

# Small configs: every group count differs per layer type, including groups=1 and groups that do not line up
# with the attention heads (e.g. 3 query groups of 16 channels over 4 heads of 12 channels).
SMALL_CONFIGS: dict[str, dict[str, Any]] = {
    "relu-h32": dict(
        vocab_size=100,
        hidden_size=32,
        embedding_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=24,
        type_vocab_size=3,
        hidden_act="relu",
        q_groups=2,
        k_groups=1,
        v_groups=8,
        post_attention_groups=1,
        intermediate_groups=2,
        output_groups=4,
    ),
    "gelu_new-h48-unaligned": dict(
        vocab_size=97,
        hidden_size=48,
        embedding_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=24,
        type_vocab_size=3,
        hidden_act="gelu_new",
        q_groups=3,
        k_groups=6,
        v_groups=1,
        post_attention_groups=2,
        intermediate_groups=3,
        output_groups=1,
        pad_token_id=3,
    ),
    "silu-h64": dict(
        vocab_size=120,
        hidden_size=64,
        embedding_size=64,
        num_hidden_layers=2,
        num_attention_heads=8,
        intermediate_size=128,
        max_position_embeddings=24,
        type_vocab_size=3,
        hidden_act="silu",
        q_groups=4,
        k_groups=4,
        v_groups=4,
        post_attention_groups=4,
        intermediate_groups=4,
        output_groups=8,
        layer_norm_eps=1e-5,
    ),
}
CONFIG_NAMES = tuple(SMALL_CONFIGS)

ACTIVATIONS = {
    "relu": F.relu,
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
}


def config_kwargs(cfg_name: str, head: str, **overrides: Any) -> dict[str, Any]:
    return {**SMALL_CONFIGS[cfg_name], **HEAD_CONFIG.get(head, {}), **overrides}


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


# ----------------------------------------------------------------------------------------------------------------
# Inputs and labels

VARIANTS = ("ids", "padded-types-positions", "embeds")


def input_shape(head: str, batch: int, seq: int) -> tuple[int, ...]:
    return (batch, NUM_CHOICES, seq) if head == "SqueezeBertForMultipleChoice" else (batch, seq)


def make_inputs(
    cfg: dict[str, Any], head: str, variant: str, batch: int = 3, seq: int = 7, seed: int = 1
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shape = input_shape(head, batch, seq)
    ids = torch.randint(0, cfg["vocab_size"], shape, generator=gen)
    if variant == "ids":
        return {"input_ids": ids}
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., seq - 3 :] = 0  # the second example is padded
    ids[1, ..., seq - 3 :] = cfg.get("pad_token_id", 0)
    out = {
        "attention_mask": mask,
        "token_type_ids": torch.randint(0, cfg["type_vocab_size"], shape, generator=gen),
    }
    if variant == "padded-types-positions":
        out["input_ids"] = ids
        out["position_ids"] = torch.randint(0, cfg["max_position_embeddings"], shape, generator=gen)
    elif variant == "embeds":
        out["inputs_embeds"] = torch.randn(*shape, cfg["hidden_size"], generator=gen)
    else:
        raise AssertionError(variant)
    return out


def make_labels(cfg: dict[str, Any], head: str, batch: int = 3, seq: int = 7, seed: int = 2) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    num_labels = cfg.get("num_labels", 2)
    if head == "SqueezeBertForMaskedLM":
        labels = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=gen)
        labels[:, ::3] = -100
        return {"labels": labels}
    if head == "SqueezeBertForSequenceClassification":
        return {"labels": torch.randint(0, num_labels, (batch,), generator=gen)}
    if head == "SqueezeBertForMultipleChoice":
        return {"labels": torch.randint(0, NUM_CHOICES, (batch,), generator=gen)}
    if head == "SqueezeBertForTokenClassification":
        labels = torch.randint(0, num_labels, (batch, seq), generator=gen)
        labels[:, 1::3] = -100
        return {"labels": labels}
    if head == "SqueezeBertForQuestionAnswering":
        # one start beyond the sequence (ignored after clamping), one negative end (clamped to 0)
        starts = torch.tensor([1, seq + 5, seq - 1])[:batch]
        ends = torch.tensor([-2, 2, seq + 100])[:batch]
        return {"start_positions": starts, "end_positions": ends}
    return {}


def backward_target(out: Any, seed: int = 3) -> torch.Tensor:
    """The output's loss, or for the base model a fixed random projection of both of its outputs."""
    if getattr(out, "loss", None) is not None:
        return out.loss
    gen = torch.Generator().manual_seed(seed)
    last, pooled = out.last_hidden_state, out.pooler_output
    w1 = torch.randn(last.shape, generator=gen, dtype=torch.float32).to(last.dtype)
    w2 = torch.randn(pooled.shape, generator=gen, dtype=torch.float32).to(pooled.dtype)
    return (last * w1).sum() + (pooled * w2).sum()


# ----------------------------------------------------------------------------------------------------------------
# Comparisons


def assert_close(actual: Any, expected: Any, what: str = "", atol: float = ATOL, rtol: float = RTOL) -> None:
    """A fixed tolerance, for shallow computations (a loss from logits, a slice of the same tensor). Comparisons of
    whole forward or backward passes use :mod:`support.numerics`, whose tolerance follows from the arithmetic."""
    assert actual is not None, f"{what}: got None"
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


def state_dicts_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b), (sorted(set(a) - set(b)), sorted(set(b) - set(a)))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


# ----------------------------------------------------------------------------------------------------------------
# A hand-written SqueezeBERT encoder (from the oracle's weights), with a per-layer, per-head mask on the attention
# probabilities.


def _conv(x: torch.Tensor, conv: torch.nn.Conv1d, groups: int) -> torch.Tensor:
    return F.conv1d(x, conv.weight, conv.bias, groups=groups)


# The reference builds the two LayerNorms of every encoder layer with a fixed eps of 1e-12 (config.layer_norm_eps
# only reaches the embeddings and the MLM head), so the same checkpoint must give the same numbers.
ENCODER_LAYER_NORM_EPS = 1e-12


def _layer_norm_ncw(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x.transpose(1, 2), ln.weight.shape, ln.weight, ln.bias, ENCODER_LAYER_NORM_EPS).transpose(1, 2)


def hand_layer(
    layer: torch.nn.Module, cfg: Any, x: torch.Tensor, additive_mask: torch.Tensor, head_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One encoder layer on ``x`` [batch, channels, seq]; returns (layer output, post-attention output)."""
    att = layer.attention
    batch, channels, seq = x.shape
    heads = cfg.num_attention_heads
    d = channels // heads
    q = _conv(x, att.query, cfg.q_groups).view(batch, heads, d, seq).transpose(2, 3)
    k = _conv(x, att.key, cfg.k_groups).view(batch, heads, d, seq)
    v = _conv(x, att.value, cfg.v_groups).view(batch, heads, d, seq).transpose(2, 3)
    probs = (q @ k / math.sqrt(d) + additive_mask).softmax(-1)
    probs = probs * head_scale.view(1, heads, 1, 1)
    context = (probs @ v).transpose(2, 3).reshape(batch, channels, seq)
    post = layer.post_attention
    y = _layer_norm_ncw(_conv(context, post.conv1d, cfg.post_attention_groups) + x, post.layernorm)
    inter = ACTIVATIONS[cfg.hidden_act](_conv(y, layer.intermediate.conv1d, cfg.intermediate_groups))
    out = layer.output
    z = _layer_norm_ncw(_conv(inter, out.conv1d, cfg.output_groups) + y, out.layernorm)
    return z, y


@torch.no_grad()
def hand_hidden_states(
    base: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, head_mask: torch.Tensor
) -> list[torch.Tensor]:
    """Hidden states [batch, seq, hidden] of the oracle base model ``base``; ``head_mask`` is [layers, heads]."""
    cfg = base.config
    emb = base.embeddings
    seq = input_ids.shape[-1]
    x = emb.word_embeddings.weight[input_ids] + emb.position_embeddings.weight[:seq]
    x = x + emb.token_type_embeddings.weight[0]
    x = F.layer_norm(x, (cfg.hidden_size,), emb.LayerNorm.weight, emb.LayerNorm.bias, cfg.layer_norm_eps)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    additive = torch.zeros(attention_mask.shape, dtype=x.dtype).masked_fill(attention_mask == 0, -1e30)
    additive = additive[:, None, None, :]
    states = [x]
    h = x.transpose(1, 2)
    for index, layer in enumerate(base.encoder.layers):
        h, _ = hand_layer(layer, cfg, h, additive, head_mask[index])
        states.append(h.transpose(1, 2))
    return states


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint files


def write_sharded(state: dict[str, torch.Tensor], folder: Path, fmt: str, num_shards: int = 3) -> list[str]:
    """Split ``state`` over ``num_shards`` files in ``fmt`` ("safetensors" or "bin") and write the index."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    shards = []
    weight_map = {}
    for i in range(num_shards):
        if fmt == "safetensors":
            name = f"model-{i + 1:05d}-of-{num_shards:05d}.safetensors"
        else:
            name = f"pytorch_model-{i + 1:05d}-of-{num_shards:05d}.bin"
        part = {k: state[k].detach().clone().contiguous() for k in keys[i::num_shards]}
        if fmt == "safetensors":
            save_file(part, folder / name, metadata={"format": "pt"})
        else:
            torch.save(part, folder / name)
        weight_map.update(dict.fromkeys(part, name))
        shards.append(name)
    index_name = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / index_name).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return shards


def write_checkpoint(state: dict[str, torch.Tensor], config: dict[str, Any], folder: Path, fmt: str) -> Path:
    """Write ``config.json`` and the weights in ``fmt``: safetensors, bin, sharded-safetensors or sharded-bin."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    if fmt == "safetensors":
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    elif fmt == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    elif fmt.startswith("sharded-"):
        write_sharded(state, folder, fmt.removeprefix("sharded-"))
    else:
        raise AssertionError(fmt)
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def build_hub_cache(
    cache: Path, repo_id: str, files: dict[str, bytes], commit: str | None = None, ref: str | None = "main"
) -> str:
    """Lay ``files`` out the way huggingface_hub does: blobs by hash, snapshot symlinks, ``refs/<ref>``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    if commit is None:
        commit = hashlib.sha1(b"".join(sorted(files.values()))).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        blob = repo / "blobs" / digest
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return commit


# ----------------------------------------------------------------------------------------------------------------
# Logging


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def capture_logs(name: str = "squeezebert") -> Iterator[list[logging.LogRecord]]:
    """Collect the records of logger ``name`` (and its children) whatever its propagation settings."""
    logger = logging.getLogger(name)
    handler = _ListHandler()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
