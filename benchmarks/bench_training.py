"""Training throughput (sequences/s) of squeezebert against Hugging Face's SqueezeBERT on the same batches.

Both models start from the same weights (ours saved with ``save_pretrained``, loaded by ``transformers``) and take
the same sequence of batches; each step is forward + backward + AdamW step, in train mode (dropout on), timed after
warm-up steps. With ``--check`` the first losses are compared with dropout off. ``transformers`` is a benchmark
dependency only.

    python benchmarks/bench_training.py                       # squeezebert-uncased's shape, batch 16 x 128 tokens
    python benchmarks/bench_training.py --size small --bf16   # a 4-layer model, bf16 autocast
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from typing import Any

import torch

import squeezebert
from squeezebert import SqueezeBertConfig

SIZES = {
    "base": {},  # squeezebert/squeezebert-uncased: 12 layers, 768 channels, groups 4
    "small": dict(
        num_hidden_layers=4, hidden_size=384, embedding_size=384, num_attention_heads=12, intermediate_size=1536
    ),
}


def make_batches(config: SqueezeBertConfig, n: int, batch: int, seq: int, seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(1000, config.vocab_size, (batch, seq), generator=g)
        lengths = torch.randint(seq // 2, seq + 1, (batch,), generator=g)
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        labels = torch.randint(0, config.num_labels, (batch,), generator=g)
        batches.append({"input_ids": ids * mask, "attention_mask": mask, "labels": labels})
    return batches


class _Stepper:
    """One model with its optimizer: ``step(batch)`` trains on a batch and returns (seconds, loss)."""

    def __init__(self, model: torch.nn.Module, bf16: bool) -> None:
        self.model = model.train()
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        self.bf16 = bf16

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
        start = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with autocast:
            loss = self.model(**batch).loss
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start, float(loss.detach())


def time_training(models: dict[str, torch.nn.Module], batches, warmup: int, bf16: bool) -> dict[str, Any]:
    """Train every model on the same batches, alternating models step by step (so a change in machine load hits
    them alike); the median step time and the losses of each."""
    steppers = {name: _Stepper(model, bf16) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    losses: dict[str, list[float]] = {name: [] for name in models}
    for i, batch in enumerate(batches):
        for name, stepper in steppers.items():
            seconds, loss = stepper.step(batch)
            losses[name].append(loss)
            if i >= warmup:
                times[name].append(seconds)
    return {name: (statistics.median(times[name]) if times[name] else None, losses[name]) for name in models}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="timed steps (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--check", action="store_true", help="compare the losses with dropout off first")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import transformers

    transformers.logging.set_verbosity_error()
    config = SqueezeBertConfig(**SIZES[args.size], num_labels=3)
    torch.manual_seed(0)
    ours = squeezebert.SqueezeBertForSequenceClassification(config)
    with tempfile.TemporaryDirectory() as folder:
        ours.save_pretrained(folder)
        hf = transformers.SqueezeBertForSequenceClassification.from_pretrained(folder)
        if args.check:
            quiet = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
            a = squeezebert.SqueezeBertForSequenceClassification.from_pretrained(folder, **quiet)
            b = transformers.SqueezeBertForSequenceClassification.from_pretrained(folder, **quiet)
            check = time_training({"ours": a, "HF": b}, make_batches(config, 3, 4, 32, seed=1), 3, False)
            print(f"losses with dropout off: ours {check['ours'][1]}, HF {check['HF'][1]}")

    batches = make_batches(config, args.steps + args.warmup, args.batch_size, args.seq_len, seed=0)
    timed = time_training({"squeezebert": ours, "transformers": hf}, batches, args.warmup, args.bf16)
    results = {name: args.batch_size / step for name, (step, _) in timed.items()}
    print(
        f"training throughput, {args.size} ({config.num_hidden_layers} layers x {config.hidden_size}), batch "
        f"{args.batch_size} x {args.seq_len} tokens, {'bf16 autocast' if args.bf16 else 'fp32'}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, transformers {transformers.__version__}"
    )
    for name, value in results.items():
        print(f"  {name:13s} {value:8.2f} sequences/s")
    print(f"  speed-up      {results['squeezebert'] / results['transformers']:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
