"""The paper's comparison on your own machine: SqueezeBERT against BERT-base, no weights needed.

``squeezebert bench`` (:func:`run_benchmark`) builds both networks with random weights and prints
their parameters, analytic GFLOPs, measured latency and SqueezeBERT's speed-up, as in Table 2 of Iandola et al.
(2020), who report 4.3x on a Pixel 3. BERT-base here is :class:`PlainBertEncoder`, a plain PyTorch BERT-base
written in this module (dense Linear layers, the same FLOPs as BERT-base; Hugging Face ``transformers`` is not
needed). The two models run interleaved, and each figure is the median of the rounds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import SqueezeBertConfig
from .modeling import SqueezeBertModel

__all__ = [
    "BenchOptions",
    "BenchReport",
    "PlainBertEncoder",
    "encoder_flops",
    "layer_macs_per_token",
    "matmul_peak_gflops",
    "run_benchmark",
    "time_interleaved",
]


# ----------------------------------------------------------------------------------------------------------------
# FLOPs: the one count, used by ``squeezebert bench``, ``squeezebert info`` and the benchmarks


def layer_macs_per_token(config: SqueezeBertConfig, seq: int) -> list[tuple[str, int]]:
    """Multiply-adds per token of each part of one encoder layer, at sequence length ``seq``.

    The projections are ``in * out / groups``; the attention products (scores ``q k^T`` and the weighted sum of
    ``v``) are ``2 * seq * hidden`` per token. Embeddings, LayerNorm, softmax and the activation are left out, as in
    the paper (they are a fraction of a percent).
    """
    c, i = config.hidden_size, config.intermediate_size
    return [
        ("attention.query", c * c // config.q_groups),
        ("attention.key", c * c // config.k_groups),
        ("attention.value", c * c // config.v_groups),
        ("attention (QK^T, PV)", 2 * seq * c),
        ("post_attention.conv1d", c * c // config.post_attention_groups),
        ("intermediate.conv1d", c * i // config.intermediate_groups),
        ("output.conv1d", i * c // config.output_groups),
    ]


def encoder_flops(config: SqueezeBertConfig, batch: int, seq: int) -> float:
    """FLOPs (2 x multiply-adds) of the encoder layers on ``batch`` sequences of ``seq`` tokens, as the paper counts
    them (:func:`layer_macs_per_token`; no embeddings, no pooler)."""
    per_token = sum(macs for _, macs in layer_macs_per_token(config, seq))
    return 2.0 * config.num_hidden_layers * batch * seq * per_token


def bert_base_config(**overrides: object) -> SqueezeBertConfig:
    """BERT-base as a SqueezeBERT config: every group count 1."""
    groups = dict(q_groups=1, k_groups=1, v_groups=1, post_attention_groups=1, intermediate_groups=1, output_groups=1)
    return SqueezeBertConfig(**{**groups, **overrides})


# ----------------------------------------------------------------------------------------------------------------
# A plain BERT-base, for the comparison


class PlainBertLayer(nn.Module):
    """One BERT layer with dense Linear projections: fused QKV, SDPA attention, output, feed-forward."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attention_output = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden, eps=eps)
        self.up = nn.Linear(hidden, intermediate)
        self.down = nn.Linear(intermediate, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, seq, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = self.norm1(x + self.attention_output(context.transpose(1, 2).reshape(batch, seq, hidden)))
        return self.norm2(x + self.down(F.gelu(self.up(x))))


class PlainBertEncoder(nn.Module):
    """BERT-base (Devlin et al., 2019) in plain PyTorch: embeddings and 12 dense layers, random weights.

    Only for timing: it has BERT-base's shapes and FLOPs, not its checkpoint names.
    """

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        c = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, c)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, c)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, c)
        self.norm = nn.LayerNorm(c, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(
            PlainBertLayer(c, config.num_attention_heads, config.intermediate_size, config.layer_norm_eps)
            for _ in range(config.num_hidden_layers)
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        seq = input_ids.shape[1]
        positions = torch.arange(seq, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        x = self.norm(x)
        mask = None
        if attention_mask is not None:
            mask = torch.zeros(attention_mask.shape, dtype=x.dtype, device=x.device)
            mask = mask.masked_fill(attention_mask == 0, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        return x


# ----------------------------------------------------------------------------------------------------------------
# Timing


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The best GFLOP/s of a ``size``^3 fp32 matmul: the ceiling the encoders are measured against."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def time_interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, run in turn (A B C A B C ...) so that load changes hit all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------------------------
# The comparison

MAX_SEQ = SqueezeBertConfig().max_position_embeddings  # the paper's models have 512 positions


@dataclass
class BenchOptions:
    """What ``squeezebert bench`` measures (its flags are generated from these fields)."""

    batch: int = field(default=1, metadata={"help": "sequences per forward pass"})
    seq: int = field(default=128, metadata={"help": f"tokens per sequence, at most {MAX_SEQ}; the paper uses 128"})
    rounds: int = field(default=10, metadata={"help": "timed rounds, the models interleaved"})
    int8: bool = field(default=True, metadata={"help": "also time the int8 SqueezeBERT"})

    def __post_init__(self) -> None:
        for name in ("batch", "seq", "rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.seq > MAX_SEQ:
            raise ValueError(f"seq must be at most {MAX_SEQ} (the models' max_position_embeddings), got {self.seq}")


@dataclass
class BenchRow:
    """One model's figures: parameters, analytic GFLOPs and median seconds per forward pass."""

    name: str
    parameters: int
    flops: float
    seconds: float


@dataclass
class BenchReport:
    """The result of :func:`run_benchmark`."""

    options: BenchOptions
    threads: int
    kernels: str | None  # how the int8 kernels ran, when int8 was timed
    peak_gflops: float
    rows: list[BenchRow]

    def format(self) -> str:
        """The readable table that ``squeezebert bench`` prints."""
        o = self.options
        lines = [f"torch {torch.__version__}, {self.threads} threads; batch {o.batch} x {o.seq} tokens"]
        if self.kernels is not None:
            lines.append(f"int8 CPU kernels: {self.kernels}")
        lines.append(f"fp32 matmul peak (2048^3): {self.peak_gflops:.0f} GFLOP/s\n")
        header = f"{'model':<18}{'params':>9}{'GFLOPs':>9}{'ms':>10}{'GFLOP/s':>10}{'speed-up':>10}"
        lines += [header, "-" * len(header)]
        base = self.rows[0].seconds
        for row in self.rows:
            lines.append(
                f"{row.name:<18}{row.parameters / 1e6:>8.1f}M{row.flops / 1e9:>9.2f}{row.seconds * 1e3:>10.1f}"
                f"{row.flops / row.seconds / 1e9:>10.0f}{base / row.seconds:>9.2f}x"
            )
        lines.append(
            "\nBERT-base is a plain PyTorch BERT-base (dense layers, random weights) written in squeezebert.bench. "
            "GFLOPs: encoder layers, analytic. The paper reports a 4.3x speed-up on a Pixel 3 phone."
        )
        return "\n".join(lines)


def run_benchmark(options: BenchOptions, progress: Callable[[str], None] | None = None) -> BenchReport:
    """Time BERT-base, SqueezeBERT and (``options.int8``) int8 SqueezeBERT on random inputs, interleaved.

    Args:
        options: the shapes and the number of rounds.
        progress: called with a short message at each stage (building, warming up, timing).
    """
    say = progress or (lambda message: None)
    torch.manual_seed(0)
    config = SqueezeBertConfig()
    bert_config = bert_base_config()
    say("building BERT-base and SqueezeBERT (random weights)")
    squeeze = SqueezeBertModel(config).eval()
    bert = PlainBertEncoder(bert_config).eval()
    ids = torch.randint(0, config.vocab_size, (options.batch, options.seq))
    models: dict[str, tuple[nn.Module, Callable[[], object]]] = {
        "BERT-base": (bert, lambda: bert(ids)),
        "SqueezeBERT": (squeeze, lambda: squeeze(input_ids=ids)),
    }
    kernels = None
    if options.int8:
        from .kernels import kernels_status
        from .quantization import quantize_dynamic

        say("quantizing SqueezeBERT to int8")
        squeeze_int8 = quantize_dynamic(squeeze)
        models["SqueezeBERT int8"] = (squeeze, lambda: squeeze_int8(input_ids=ids))
        kernels = kernels_status()
    with torch.inference_mode():
        say("timing the fp32 matmul peak")
        peak = matmul_peak_gflops()
        say(f"timing {len(models)} models, {options.rounds} round{'s' if options.rounds > 1 else ''} each")
        times = time_interleaved({name: call for name, (_, call) in models.items()}, options.rounds)
    rows = [
        BenchRow(
            name=name,
            parameters=parameter_count(module),
            flops=encoder_flops(bert_config if name == "BERT-base" else config, options.batch, options.seq),
            seconds=statistics.median(times[name]),
        )
        for name, (module, _) in models.items()
    ]
    return BenchReport(options, torch.get_num_threads(), kernels, peak, rows)
