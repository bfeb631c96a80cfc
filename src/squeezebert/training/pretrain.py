"""Pretraining with masked-LM plus sentence-order prediction (SOP), the paper's recipe.

- :func:`train_wordpiece` trains a BERT-style WordPiece vocabulary on the corpus with the ``tokenizers`` trainer.
- :func:`iter_documents` streams a corpus (plain text, one sentence or paragraph per line, blank lines between
  documents) without loading it; :func:`packed_examples` tokenizes it lazily and packs consecutive segments of a
  document into sequences of up to ``max_length`` tokens, split into two parts A and B that are swapped half of
  the time (the SOP label).
- :class:`MlmSopCollator` masks 15% of the tokens (80% ``[MASK]``, 10% a random token, 10% unchanged), optionally
  whole words, with a random generator seeded by the example's position, so masks do not depend on the number of
  processes and are reproduced exactly after a resume.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .. import hub
from ..config import SqueezeBertConfig
from ..modeling.pretraining import SqueezeBertForPreTraining
from .data import pad_batch
from .trainer import (
    DistributedInfo,
    StreamSource,
    Trainer,
    TrainingArguments,
    check_output_dir,
    init_distributed,
    set_seed,
)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass
class CorpusArguments:
    """The text to pretrain on, and its vocabulary (an existing tokenizer, or one trained on the corpus)."""

    corpus: tuple[str, ...] = field(
        metadata={"help": "text files: one segment (sentence or paragraph) per line, blank lines between documents"}
    )
    validation_corpus: tuple[str, ...] = field(
        default=(), metadata={"help": "held-out text files for the loss and MLM / SOP accuracy"}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "reuse this tokenizer (folder or hub id); otherwise one is trained"}
    )
    vocab_size: int = field(default=30522, metadata={"help": "size of a newly trained WordPiece vocabulary"})
    cased: bool = field(default=False, metadata={"help": "keep case when training a vocabulary"})

    def __post_init__(self) -> None:
        for path in (*self.corpus, *self.validation_corpus):
            if not os.path.isfile(path):
                raise ValueError(f"corpus file not found: {os.fspath(path)!r}")


@dataclass
class PretrainModelArguments:
    """The model to pretrain (a config's random weights, or a checkpoint to continue) and the MLM + SOP objective."""

    config: str | None = field(
        default=None,
        metadata={"help": "model config (folder, .json file or hub id); vocab_size follows the tokenizer"},
    )
    model: str | None = field(default=None, metadata={"help": "continue pretraining this checkpoint instead"})
    max_length: int = field(default=128, metadata={"help": "packed sequence length in tokens"})
    mlm_probability: float = field(default=0.15, metadata={"help": "fraction of the tokens to predict"})
    whole_word_masking: bool = field(default=False, metadata={"help": "mask every piece of a chosen word"})

    def __post_init__(self) -> None:
        if self.config is not None and self.model is not None:
            raise ValueError("pass --config (random weights) or --model (a checkpoint to continue), not both")


# --------------------------------------------------------------------------------------------------------------
# Vocabulary


def train_wordpiece(
    files: Sequence[str | os.PathLike], vocab_size: int, output_dir: str | os.PathLike, lowercase: bool = True
) -> Any:
    """Train a WordPiece vocabulary on ``files`` (streamed by ``tokenizers``), save a tokenizer folder
    (``vocab.txt``, ``tokenizer.json``, ``tokenizer_config.json``) in ``output_dir`` and return the tokenizer.

    The special tokens take ids 0-4 (``[PAD]`` is 0, the models' ``pad_token_id``).
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import WordPiece

    from ..tokenization import SqueezeBertTokenizerFast

    paths = [os.fspath(f) for f in files]
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"corpus file not found: {path!r}")
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size must be larger than {len(SPECIAL_TOKENS)}, got {vocab_size}")
    backend = Tokenizer(WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    backend.train(paths, trainer)
    vocab = backend.get_vocab()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with hub.atomic_write(output_dir / "vocab.txt") as f:
        f.write("".join(token + "\n" for token, _ in sorted(vocab.items(), key=lambda item: item[1])))
    tokenizer = SqueezeBertTokenizerFast(vocab_file=output_dir / "vocab.txt", do_lower_case=lowercase)
    tokenizer.save_pretrained(output_dir)
    return tokenizer


# --------------------------------------------------------------------------------------------------------------
# Streaming and packing


def iter_documents(files: Sequence[str | os.PathLike]) -> Iterator[list[str]]:
    """Documents of the corpus, one at a time: lists of non-empty lines, split at blank lines and file ends."""
    for path in files:
        if not os.path.isfile(path):
            raise ValueError(f"corpus file not found: {os.fspath(path)!r}")
        document: list[str] = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    document.append(line)
                elif document:
                    yield document
                    document = []
        if document:
            yield document


def packed_examples(
    tokenizer: Any, files: Sequence[str | os.PathLike], max_length: int, seed: int, epoch: int
) -> Iterator[dict[str, Any]]:
    """MLM + SOP examples of up to ``max_length`` tokens, ``[CLS] A [SEP] B [SEP]``, packed from consecutive segments
    of each document; ``sentence_order_label`` is 1 where A and B were swapped. Deterministic in ``(seed, epoch)``.
    """
    if max_length < 8:
        raise ValueError(f"max_length must be at least 8, got {max_length}")
    rng = random.Random(seed * 1_000_003 + epoch)
    room = max_length - 3
    index = 0
    for document in iter_documents(files):
        segments = [ids for ids in tokenizer(document, add_special_tokens=False)["input_ids"] if ids]
        chunk: list[list[int]] = []
        length = 0
        for i, segment in enumerate(segments):
            chunk.append(segment[:room])
            length += len(chunk[-1])
            if length >= room or i == len(segments) - 1:
                example = _sop_example(tokenizer, chunk, room, rng)
                if example is not None:
                    example.update(_index=index, _epoch=epoch)
                    index += 1
                    yield example
                chunk, length = [], 0


def _sop_example(tokenizer: Any, chunk: list[list[int]], room: int, rng: random.Random) -> dict[str, Any] | None:
    if len(chunk) >= 2:
        cut = rng.randint(1, len(chunk) - 1)
        a = [t for s in chunk[:cut] for t in s]
        b = [t for s in chunk[cut:] for t in s]
    else:
        tokens = chunk[0]
        if len(tokens) < 2:
            return None
        cut = rng.randint(1, len(tokens) - 1)
        a, b = tokens[:cut], tokens[cut:]
    while len(a) + len(b) > room:  # trim the longer part, from its far end
        if len(a) > len(b):
            a.pop(0)
        else:
            b.pop()
    swapped = rng.random() < 0.5
    if swapped:
        a, b = b, a
    ids = [tokenizer.cls_token_id, *a, tokenizer.sep_token_id, *b, tokenizer.sep_token_id]
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1),
        "sentence_order_label": int(swapped),
    }


# --------------------------------------------------------------------------------------------------------------
# Masking


class MlmSopCollator:
    """Masks a batch of packed examples for MLM (labels ``-100`` where nothing is predicted) and pads it.

    Args:
        tokenizer: gives the special, ``[MASK]`` and pad ids, and which tokens continue a word (``##``).
        mlm_probability: fraction of the (non-special) tokens to predict.
        whole_word_masking: choose whole words (a token and its ``##`` continuations) rather than tokens.
        seed: with each example's ``_epoch`` and ``_index``, seeds its masks.
    """

    def __init__(
        self, tokenizer: Any, mlm_probability: float = 0.15, whole_word_masking: bool = False, seed: int = 42
    ) -> None:
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must lie in (0, 1), got {mlm_probability}")
        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.whole_word_masking = whole_word_masking
        self.seed = seed
        vocab = tokenizer.get_vocab()
        size = max(vocab.values()) + 1
        self.special = np.zeros(size, dtype=bool)
        self.special[list(tokenizer.all_special_ids)] = True
        self.continuation = np.zeros(size, dtype=bool)
        for token, i in vocab.items():
            self.continuation[i] = token.startswith("##")
        self.random_ids = np.flatnonzero(~self.special)

    def mask(self, ids: Sequence[int], epoch: int, index: int) -> tuple[list[int], list[int]]:
        """``(masked input ids, labels)`` of one example."""
        rng = np.random.default_rng([self.seed, epoch, index])
        ids_arr = np.asarray(ids)
        candidates = np.flatnonzero(~self.special[ids_arr])
        labels = np.full(len(ids_arr), -100, dtype=np.int64)
        if not len(candidates):
            return list(ids), labels.tolist()
        budget = max(1, round(len(candidates) * self.mlm_probability))
        if self.whole_word_masking:
            words: list[list[int]] = []
            for position in candidates:
                if words and self.continuation[ids_arr[position]] and words[-1][-1] == position - 1:
                    words[-1].append(int(position))
                else:
                    words.append([int(position)])
            chosen: list[int] = []
            for w in rng.permutation(len(words)):
                if len(chosen) + len(words[w]) > budget and chosen:
                    continue
                chosen += words[w]
                if len(chosen) >= budget:
                    break
            picked = np.array(sorted(chosen))
        else:
            picked = np.sort(rng.choice(candidates, size=budget, replace=False))
        labels[picked] = ids_arr[picked]
        out = ids_arr.copy()
        roll = rng.random(len(picked))
        out[picked[roll < 0.8]] = self.tokenizer.mask_token_id
        randomised = picked[(roll >= 0.8) & (roll < 0.9)]
        out[randomised] = rng.choice(self.random_ids, size=len(randomised))
        return out.tolist(), labels.tolist()

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        masked = []
        for f in features:
            ids, labels = self.mask(f["input_ids"], f.get("_epoch", 0), f.get("_index", 0))
            masked.append({**f, "input_ids": ids, "labels": labels})
        return pad_batch(masked, self.tokenizer.pad_token_id)


def evaluate_pretraining(
    model: torch.nn.Module,
    features: Sequence[dict[str, Any]],
    collate: MlmSopCollator,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    autocast: Any = None,
) -> dict[str, float]:
    """Loss, masked-token accuracy and sentence-order accuracy on held-out packed examples."""
    autocast = autocast or contextlib.nullcontext
    was_training = model.training
    model.eval()
    loss = mlm_right = mlm_total = sop_right = count = 0.0
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            batch = {k: v.to(device) for k, v in collate(features[start : start + batch_size]).items()}
            with autocast():
                out = model(**batch)
            n = batch["input_ids"].shape[0]
            loss += float(out.loss) * n
            count += n
            keep = batch["labels"].ne(-100)
            mlm_right += float((out.prediction_logits.argmax(-1)[keep] == batch["labels"][keep]).sum())
            mlm_total += float(keep.sum())
            sop_right += float((out.sop_logits.argmax(-1) == batch["sentence_order_label"]).sum())
    model.train(was_training)
    return {
        "loss": loss / max(count, 1),
        "mlm_accuracy": mlm_right / max(mlm_total, 1),
        "sop_accuracy": sop_right / max(count, 1),
    }


# --------------------------------------------------------------------------------------------------------------


def pretrain(
    corpus_args: CorpusArguments,
    model_args: PretrainModelArguments,
    training_args: TrainingArguments,
    dist_info: DistributedInfo | None = None,
) -> dict[str, Any]:
    """Pretrain with MLM + SOP: the vocabulary (trained into ``output_dir/tokenizer`` unless ``corpus_args.tokenizer``
    or ``model_args.model`` gives one), the model, the streamed corpus, training. Returns the training summary (see
    :meth:`Trainer.train`); ``metric_for_best`` defaults to the held-out loss. ``dist_info`` defaults to
    :func:`init_distributed`.
    """
    from ..tokenization import AutoTokenizer

    check_output_dir(training_args)  # before training a vocabulary (the Trainer checks again)
    info = dist_info or init_distributed(training_args.no_cuda)
    if corpus_args.tokenizer or model_args.model:
        tokenizer = AutoTokenizer.from_pretrained(corpus_args.tokenizer or model_args.model)
    else:
        vocab_dir = Path(training_args.output_dir) / "tokenizer"
        reuse = (vocab_dir / "vocab.txt").is_file() and not training_args.overwrite_output_dir
        if info.is_main and not reuse:
            train_wordpiece(corpus_args.corpus, corpus_args.vocab_size, vocab_dir, lowercase=not corpus_args.cased)
        if info.world_size > 1:
            dist.barrier()
        tokenizer = AutoTokenizer.from_pretrained(vocab_dir)

    set_seed(training_args.seed)
    model = _pretraining_model(model_args, tokenizer)
    collate = MlmSopCollator(tokenizer, model_args.mlm_probability, model_args.whole_word_masking, training_args.seed)

    def stream(epoch: int) -> Iterator[dict[str, Any]]:
        return packed_examples(tokenizer, corpus_args.corpus, model_args.max_length, training_args.seed, epoch)

    num_examples = None
    if not training_args.max_steps:  # epochs were asked for: count the packed examples in one streaming pass
        num_examples = sum(1 for _ in stream(0))
    evaluate = None
    if corpus_args.validation_corpus:
        held_out = list(
            packed_examples(tokenizer, corpus_args.validation_corpus, model_args.max_length, training_args.seed, 0)
        )

        def evaluate(m: Any, autocast: Any) -> dict[str, float]:
            return evaluate_pretraining(m, held_out, collate, training_args.eval_batch_size, info.device, autocast)

    def save(m: Any, folder: str) -> None:
        m.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    trainer = Trainer(
        model,
        replace(training_args, metric_for_best=training_args.metric_for_best or "loss"),
        StreamSource(stream, num_examples),
        collate,
        evaluate=evaluate,
        save_model=save,
        dist_info=info,
    )
    return trainer.train()


def _pretraining_model(model_args: PretrainModelArguments, tokenizer: Any) -> SqueezeBertForPreTraining:
    """The checkpoint to continue, or random weights of the config with the tokenizer's vocabulary size."""
    if model_args.model:
        model = SqueezeBertForPreTraining.from_pretrained(model_args.model)
    else:
        config = (
            SqueezeBertConfig() if model_args.config is None else SqueezeBertConfig.from_pretrained(model_args.config)
        )
        config = SqueezeBertConfig.from_dict(config.to_dict(), vocab_size=len(tokenizer))
        if model_args.max_length > config.max_position_embeddings:
            raise ValueError(
                f"--max-length {model_args.max_length} exceeds the config's max_position_embeddings "
                f"{config.max_position_embeddings}"
            )
        model = SqueezeBertForPreTraining(config)
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, the model only {model.config.vocab_size}")
    return model
