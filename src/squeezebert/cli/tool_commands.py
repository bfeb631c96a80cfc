"""The tool subcommands: ``info`` (parameters, FLOPs and layers of a model), ``bench`` (the paper's comparison on
this machine) and ``convert-bert`` (a BERT checkpoint folder as a SqueezeBERT one)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .arguments import add_dataclass_arguments, dataclass_from_args
from .command import Command

# ----------------------------------------------------------------------------------------------------------------
# info


def layer_table(config: Any, seq: int) -> list[dict[str, Any]]:
    """The rows of ``squeezebert info``'s table: each part's name, shape, groups, parameters and MACs per token at
    sequence length ``seq`` (from :func:`squeezebert.bench.layer_macs_per_token`, the one FLOP count)."""
    from ..bench import layer_macs_per_token

    h, i, e = config.hidden_size, config.intermediate_size, config.embedding_size

    def row(name: str, shape: str, groups: int, params: int, macs: int = 0) -> dict[str, Any]:
        return {"name": name, "shape": shape, "groups": groups, "params": params, "macs_per_token": macs}

    rows = [
        row("embeddings.word_embeddings", f"{config.vocab_size}x{e}", 1, config.vocab_size * e),
        row(
            "embeddings.position_embeddings",
            f"{config.max_position_embeddings}x{e}",
            1,
            config.max_position_embeddings * e,
        ),
        row("embeddings.token_type_embeddings", f"{config.type_vocab_size}x{e}", 1, config.type_vocab_size * e),
        row("embeddings.LayerNorm", f"{e}", 1, 2 * e),
    ]
    projections = {  # name -> (in, out, groups)
        "attention.query": (h, h, config.q_groups),
        "attention.key": (h, h, config.k_groups),
        "attention.value": (h, h, config.v_groups),
        "post_attention.conv1d": (h, h, config.post_attention_groups),
        "intermediate.conv1d": (h, i, config.intermediate_groups),
        "output.conv1d": (i, h, config.output_groups),
    }
    layer = []
    for name, macs in layer_macs_per_token(config, seq):
        if name in projections:
            c_in, c_out, groups = projections[name]
            layer.append(row(name, f"{c_in}->{c_out}", groups, c_in * c_out // groups + c_out, macs))
        else:
            layer.append(row(name, f"{config.num_attention_heads} heads", 1, 0, macs))
        if name == "post_attention.conv1d":
            layer.append(row("post_attention.layernorm", f"{h}", 1, 2 * h))
    layer.append(row("output.layernorm", f"{h}", 1, 2 * h))
    last = config.num_hidden_layers - 1
    rows += [{**r, "name": f"encoder.layers.[0-{last}].{r['name']}"} for r in layer]
    rows.append(row("pooler.dense", f"{h}->{h}", 1, h * h + h))
    return rows


def _seq_lens(value: str) -> list[int]:
    try:
        lens = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None
    if not lens or min(lens) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sequence lengths, got {value!r}")
    return lens


def _add_info_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", "-m", help="model folder or hub id (reads its config.json)")
    source.add_argument("--config", help="a config.json file (or a folder holding one)")
    p.add_argument("--seq-lens", type=_seq_lens, default=[128, 512], help="sequence lengths (default 128,512)")
    p.add_argument("--json", action="store_true", help="JSON output (the default when piped)")


def run_info(args: argparse.Namespace) -> int:
    from ..bench import encoder_flops
    from ..config import SqueezeBertConfig

    source = args.config or args.model or "squeezebert/squeezebert-uncased"
    config = SqueezeBertConfig.from_pretrained(source)
    table = layer_table(config, args.seq_lens[0])
    parameters = sum(r["params"] * (config.num_hidden_layers if ".layers." in r["name"] else 1) for r in table)
    report = {
        "source": str(source),
        "parameters": parameters,
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "heads": config.num_attention_heads,
        "max_position_embeddings": config.max_position_embeddings,
        "gflops": {str(n): round(encoder_flops(config, 1, n) / 1e9, 6) for n in args.seq_lens},
        "table": table,
    }
    if args.json or not sys.stdout.isatty():
        print(json.dumps(report))
        return 0
    print(
        f"{source}: {parameters:,} parameters (encoder and pooler), {config.num_hidden_layers} layers, hidden "
        f"{config.hidden_size}, {config.num_attention_heads} heads"
    )
    shown = ", ".join(f"{n} tokens: {v:.3f}" for n, v in report["gflops"].items())
    print(f"GFLOPs per sequence (encoder layers): {shown}")
    print(f"\n{'layer':<48} {'shape':<14} {'groups':>6} {'params':>12} {f'MACs/token@{args.seq_lens[0]}':>18}")
    for r in table:
        print(f"{r['name']:<48} {r['shape']:<14} {r['groups']:>6} {r['params']:>12,} {r['macs_per_token']:>18,}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# bench


def _add_bench_arguments(p: argparse.ArgumentParser) -> None:
    from ..bench import BenchOptions

    add_dataclass_arguments(p, BenchOptions)


def run_bench(args: argparse.Namespace) -> int:
    from ..bench import BenchOptions, run_benchmark

    options = dataclass_from_args(BenchOptions, args)
    report = run_benchmark(options, progress=lambda message: print(f"bench: {message} ...", file=sys.stderr))
    print(report.format())
    return 0


# ----------------------------------------------------------------------------------------------------------------
# convert-bert


def _add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="a local folder holding a BERT checkpoint (config.json and weights)")
    p.add_argument("dst", help="the output folder")


def run_convert(args: argparse.Namespace) -> int:
    from ..convert import convert_bert_checkpoint

    convert_bert_checkpoint(args.src, args.dst)
    print(f"converted {args.src} -> {args.dst}", file=sys.stderr)
    return 0


COMMANDS: tuple[Command, ...] = (
    Command(
        name="info",
        help="parameters, GFLOPs and layer table of a config or checkpoint",
        add_arguments=_add_info_arguments,
        run=run_info,
    ),
    Command(
        name="bench",
        help="SqueezeBERT vs BERT-base on this machine (random weights, no download)",
        description="SqueezeBERT vs BERT-base on this machine (random weights, no download): parameters, GFLOPs, "
        "latency and speed-up, as in the SqueezeBERT paper.",
        add_arguments=_add_bench_arguments,
        run=run_bench,
    ),
    Command(
        name="convert-bert",
        help="convert a BERT checkpoint folder to SqueezeBERT",
        add_arguments=_add_convert_arguments,
        run=run_convert,
    ),
)
