"""The paper's comparison on your own machine: SqueezeBERT against BERT-base, no weights needed.

``squeezebert bench`` (or ``python -m squeezebert.bench``) builds both networks with random weights and prints
their parameters, analytic GFLOPs, measured latency and SqueezeBERT's speed-up, as in Table 2 of Iandola et al.
(2020), who report 4.3x on a Pixel 3. BERT-base here is :class:`PlainBertEncoder`, a plain PyTorch BERT-base
written in this module (dense Linear layers, the same FLOPs as BERT-base; Hugging Face ``transformers`` is not
needed). The two models run interleaved, and each figure is the median of the rounds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import SqueezeBertConfig
from .modeling import SqueezeBertModel

__all__ = ["PlainBertEncoder", "encoder_flops", "main", "matmul_peak_gflops", "time_interleaved"]


# ----------------------------------------------------------------------------------------------------------------
# FLOPs


def encoder_flops(config: SqueezeBertConfig, batch: int, seq: int) -> float:
    """Multiply-adds x 2 of the encoder layers (projections and attention), as counted in the paper.

    Embeddings, LayerNorm, softmax and the activation are left out (they are a fraction of a percent).
    """
    c, i = config.hidden_size, config.intermediate_size
    per_token = (
        c * c / config.q_groups
        + c * c / config.k_groups
        + c * c / config.v_groups
        + c * c / config.post_attention_groups
        + c * i / config.intermediate_groups
        + i * c / config.output_groups
    )
    attention = 2 * seq * seq * c  # scores q k^T and the weighted sum of v, per sequence
    return 2.0 * config.num_hidden_layers * (batch * seq * per_token + batch * attention)


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
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="squeezebert bench",
        description="SqueezeBERT vs BERT-base on this machine (random weights, no download): parameters, GFLOPs, "
        "latency and speed-up, as in the SqueezeBERT paper.",
    )
    parser.add_argument("--batch", type=int, default=1, help="sequences per forward pass (default 1)")
    parser.add_argument("--seq", type=int, default=128, help="tokens per sequence (default 128, as in the paper)")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds, interleaved (default 10)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 SqueezeBERT row")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print it; return the exit status."""
    args = _parser().parse_args(argv)
    if args.batch < 1 or args.seq < 1 or args.rounds < 1:
        print("error: --batch, --seq and --rounds must be positive", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    config = SqueezeBertConfig(max_position_embeddings=max(512, args.seq))
    bert_config = bert_base_config(max_position_embeddings=max(512, args.seq))
    squeeze = SqueezeBertModel(config).eval()
    bert = PlainBertEncoder(bert_config).eval()
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq))
    models: dict[str, Callable[[], object]] = {
        "BERT-base": lambda: bert(ids),
        "SqueezeBERT": lambda: squeeze(input_ids=ids),
    }
    if not args.no_int8:
        from .quantization import quantize_dynamic

        squeeze_int8 = quantize_dynamic(squeeze)
        models["SqueezeBERT int8"] = lambda: squeeze_int8(input_ids=ids)
    flops = {
        "BERT-base": encoder_flops(bert_config, args.batch, args.seq),
        "SqueezeBERT": encoder_flops(config, args.batch, args.seq),
        "SqueezeBERT int8": encoder_flops(config, args.batch, args.seq),
    }
    params = {
        "BERT-base": parameter_count(bert),
        "SqueezeBERT": parameter_count(squeeze),
        "SqueezeBERT int8": parameter_count(squeeze),
    }

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch} x {args.seq} tokens")
    if not args.no_int8:
        from .kernels import kernels_status

        print(f"int8 CPU kernels: {kernels_status()}")
    with torch.inference_mode():
        peak = matmul_peak_gflops()
        times = time_interleaved(models, args.rounds)
    print(f"fp32 matmul peak (2048^3): {peak:.0f} GFLOP/s\n")
    base = statistics.median(times["BERT-base"])
    header = f"{'model':<18}{'params':>9}{'GFLOPs':>9}{'ms':>10}{'GFLOP/s':>10}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for name, samples in times.items():
        seconds = statistics.median(samples)
        print(
            f"{name:<18}{params[name] / 1e6:>8.1f}M{flops[name] / 1e9:>9.2f}{seconds * 1e3:>10.1f}"
            f"{flops[name] / seconds / 1e9:>10.0f}{base / seconds:>9.2f}x"
        )
    print(
        "\nBERT-base is a plain PyTorch BERT-base (dense layers, random weights) written in squeezebert.bench. "
        "GFLOPs: encoder layers, analytic. The paper reports a 4.3x speed-up on a Pixel 3 phone."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
