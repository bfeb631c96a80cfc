"""Units of the training package: metrics, LAMB and schedules, data readers, checkpoint files, distillation loss,
MLM + SOP masking and packing, vocabulary training, SqueezeBertForPreTraining, and the pretrain command."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_training_common import VOCAB, max_weight_difference, train, word_config, write_config, write_tokenizer

import squeezebert
from squeezebert import SqueezeBertForMaskedLM, SqueezeBertForPreTraining
from squeezebert.tokenization import AutoTokenizer
from squeezebert.training import checkpoint, data, metrics
from squeezebert.training.distill import DistillationLoss, init_grouped_from_dense, soft_cross_entropy
from squeezebert.training.optim import Lamb, build_optimizer, build_schedule
from squeezebert.training.pretrain import MlmSopCollator, iter_documents, packed_examples, train_wordpiece
from squeezebert.training.trainer import ListSource, StreamSource, Trainer, TrainingArguments

# --------------------------------------------------------------------------------------------------------------
# Metrics (reference values computed by hand)


def test_classification_metrics() -> None:
    preds, labels = [1, 0, 1, 1, 0, 2], [1, 0, 0, 1, 1, 2]
    assert metrics.accuracy(preds, labels) == pytest.approx(4 / 6)
    # class 0: tp1 fp1 fn1 -> .5; class 1: tp2 fp1 fn1 -> 2/3; class 2: 1
    assert metrics.f1_score(preds, labels, "macro") == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert metrics.f1_score([1, 0, 1, 1], [1, 0, 0, 1], "binary") == pytest.approx(0.8)
    # binary MCC: tp=2 tn=1 fp=1 fn=0 -> (2*1 - 1*0) / sqrt(3*2*2*1)
    assert metrics.matthews_corrcoef([1, 0, 1, 1], [1, 0, 0, 1]) == pytest.approx(2 / math.sqrt(12))
    assert metrics.matthews_corrcoef([1, 1, 1], [1, 1, 1]) == 0.0


def test_correlations() -> None:
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 4.0]
    assert metrics.pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    # ranks of y with the tie averaged: 1, 2.5, 4, 2.5
    assert metrics.spearman(x, y) == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 2.5, 4, 2.5])[0, 1])
    assert metrics.pearson([1, 1, 1], [1, 2, 3]) == 0.0


def test_multilabel_scores() -> None:
    pred = np.array([[1, 0, 1], [0, 1, 0]])
    gold = np.array([[1, 0, 0], [0, 1, 0]])
    scores = metrics.multilabel_scores(pred, gold)
    assert scores["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 1))
    assert scores["subset_accuracy"] == 0.5


def test_squad_metrics() -> None:
    assert metrics.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert metrics.squad_exact("the Paris", ["Paris"]) == 1.0
    assert metrics.squad_f1("in big paris", ["paris city"]) == pytest.approx(2 * (1 / 3 * 1 / 2) / (1 / 3 + 1 / 2))
    scores = metrics.squad_scores(["paris", "london"], [["Paris"], ["rome"]])
    assert scores == {"exact_match": 50.0, "f1": 50.0}


def test_entity_scores() -> None:
    assert metrics.entity_spans(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG"]) == {
        ("PER", 0, 2),
        ("LOC", 3, 4),
        ("LOC", 4, 5),
        ("ORG", 5, 6),
    }
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "O", "B-LOC"]]  # PER span cut short: wrong; LOC right
    scores = metrics.entity_scores(pred, gold)
    assert scores["precision"] == 0.5 and scores["recall"] == 0.5 and scores["f1"] == 0.5
    assert scores["token_accuracy"] == 0.75


# --------------------------------------------------------------------------------------------------------------
# Optimisation


def test_lamb_step_matches_the_formula() -> None:
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, 3))
    grad = torch.randn(5, 3)
    start = p.detach().clone()
    opt = Lamb([p], lr=0.1, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.01, max_trust_ratio=None)
    p.grad = grad.clone()
    opt.step()
    m_hat = (0.1 * grad) / (1 - 0.9)
    v_hat = (0.01 * grad * grad) / (1 - 0.99)
    update = m_hat / (v_hat.sqrt() + 1e-6) + 0.01 * start
    expected = start - 0.1 * (start.norm() / update.norm()) * update
    assert torch.allclose(p.detach(), expected, atol=1e-6)


def test_optimizer_groups_and_schedule() -> None:
    model = squeezebert.SqueezeBertForSequenceClassification(word_config(num_labels=2))
    opt = build_optimizer(model, "adamw", lr=1.0, weight_decay=0.1)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    schedule = build_schedule(opt, total_steps=10, warmup_steps=4)
    rates = []
    for _ in range(10):
        rates.append(schedule.get_last_lr()[0])
        opt.step()
        schedule.step()
    assert rates[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])  # s / w, as transformers' linear warm-up
    assert rates[5:] == pytest.approx([5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    with pytest.raises(ValueError, match="optimizer"):
        build_optimizer(model, "sgd")


def test_early_stopping_and_sources(tmp_path: Path) -> None:
    model = squeezebert.SqueezeBertForSequenceClassification(word_config(num_labels=2))
    features = [{"input_ids": [2, 5 + i % 3, 3], "attention_mask": [1, 1, 1], "labels": i % 2} for i in range(16)]
    args = TrainingArguments(
        output_dir=str(tmp_path), num_epochs=10, batch_size=4, eval_steps=1, early_stopping_patience=2, progress=False
    )
    args.metric_for_best, args.greater_is_better = "accuracy", True
    calls = []

    def evaluate(model, autocast):
        calls.append(1)
        return {"accuracy": 0.5}  # never improves

    from squeezebert.training.data import pad_batch

    summary = Trainer(model, args, ListSource(features), lambda f: pad_batch(f, 0), evaluate=evaluate).train()
    assert (
        summary["early_stopped"]
        and summary["global_step"] == 3
        and len(calls) == 3
        and summary["epochs_completed"] == 0
    )
    # the same order in every epoch for a given seed, different across epochs
    source = ListSource(list(range(10)), seed=1)
    assert list(source.chunks(0, 4, 0, 1)) == list(source.chunks(0, 4, 0, 1))
    assert list(source.chunks(0, 4, 0, 1)) != list(source.chunks(1, 4, 0, 1))
    assert list(source.chunks(0, 4, 1, 1)) == list(source.chunks(0, 4, 0, 1))[1:]
    assert [len(c) for c in source.chunks(0, 4, 0, 3)] == [4, 4]  # a 2-example tail cannot feed 3 processes
    lengths = [random.Random(i).randint(1, 100) for i in range(230)]
    grouped = ListSource(list(range(230)), seed=2, lengths=lengths)
    order = grouped.order(0, 8)
    assert sorted(order) == list(range(230)) and order == grouped.order(0, 8) != grouped.order(1, 8)
    spread = [
        max(lengths[i] for i in order[k : k + 8]) - min(lengths[i] for i in order[k : k + 8]) for k in range(0, 224, 8)
    ]
    assert sum(spread) / len(spread) < 20  # random batches of 8 spread over ~75 of the 100 lengths
    stream = StreamSource(lambda epoch: iter(range(10)), num_examples=10)
    assert list(stream.chunks(0, 4, 1, 1)) == [[4, 5, 6, 7], [8, 9]]
    assert stream.steps_per_epoch(4, 1) == 3


# --------------------------------------------------------------------------------------------------------------
# Data


def test_readers_and_errors(tmp_path: Path) -> None:
    csv_file = tmp_path / "a.csv"
    csv_file.write_text('text,label\n"hello, world",x\nbye,y\n', encoding="utf-8")
    assert data.read_table(csv_file) == [{"text": "hello, world", "label": "x"}, {"text": "bye", "label": "y"}]
    bad = tmp_path / "b.csv"
    bad.write_text("text,label\na,b,c\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"b\.csv.*line 2"):
        data.read_table(bad)
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(ValueError, match="format"):
        data.read_table(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="row 2: no column 'label'"):
        data.column([{"label": 1}, {"text": "a"}], "label", "f.csv")
    conll = tmp_path / "c.conll"
    conll.write_text("-DOCSTART- O\n\nAlice B-PER\nsmiles O\n\nBob B-PER\n", encoding="utf-8")
    assert data.read_conll(conll) == [(["Alice", "smiles"], ["B-PER", "O"]), (["Bob"], ["B-PER"])]
    conll.write_text("Alice\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        data.read_conll(conll)
    squad = tmp_path / "s.json"
    squad.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "paragraphs": [
                            {
                                "context": "abc",
                                "qas": [{"id": "q", "question": "?", "answers": [{"text": "b", "answer_start": 0}]}],
                            }
                        ]
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="not at character 0"):
        data.read_squad(squad)


def test_labels_split_and_padding() -> None:
    assert data.discover_labels(["10", "9", "2"]) == ["2", "9", "10"]
    assert data.discover_labels(["b", "a", "b"]) == ["a", "b"]
    assert data.split_labels("x; y;", ";") == ["x", "y"]
    rows = [{"i": i, "label": "a" if i < 30 else "b"} for i in range(40)]
    train_rows, valid = data.train_validation_split(rows, 0.2, seed=0, stratify=[r["label"] for r in rows])
    assert len(valid) == 8 and sum(r["label"] == "b" for r in valid) == 2
    assert sorted(r["i"] for r in train_rows + valid) == list(range(40))
    batch = data.pad_batch([{"input_ids": [5, 6, 7], "labels": [1, 2, 3]}, {"input_ids": [5], "labels": [4]}], 0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, 3], [4, -100, -100]]


# --------------------------------------------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_round_trip_and_pruning(tmp_path: Path) -> None:
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    state = checkpoint.rng_state()
    expected = (torch.rand(3), random.random(), np.random.rand())
    for step in (1, 2, 3):
        checkpoint.save_checkpoint(
            tmp_path,
            step,
            model_state={"w": torch.full((2,), float(step))},
            training_state={"rng": [state]},
            trainer_state={"global_step": step},
            keep=2,
        )
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [2, 3]
    model_state, training_state, trainer_state = checkpoint.load_checkpoint(checkpoint.latest_checkpoint(tmp_path))
    assert model_state["w"].tolist() == [3.0, 3.0] and trainer_state == {"global_step": 3}
    checkpoint.set_rng_state(training_state["rng"][0])
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
    assert np.random.rand() == expected[2]


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint.save_checkpoint(tmp_path, 1, model_state={}, training_state={}, trainer_state={"global_step": 1})

    def broken(obj, path):
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "_save_torch", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(tmp_path, 2, model_state={}, training_state={}, trainer_state={"global_step": 2})
    assert checkpoint.latest_checkpoint(tmp_path).name == "checkpoint-1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "latest"]


# --------------------------------------------------------------------------------------------------------------
# Distillation


def test_soft_cross_entropy_and_distillation_loss() -> None:
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    expected = F.kl_div(F.log_softmax(s / 2, -1), F.softmax(t / 2, -1), reduction="batchmean") * 4
    assert soft_cross_entropy(s, t, 2.0) == pytest.approx(float(expected), rel=1e-5)
    assert float(soft_cross_entropy(t, t, 3.0)) == pytest.approx(0.0, abs=1e-6)

    config = word_config(num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    teacher = squeezebert.SqueezeBertForSequenceClassification(config).eval()
    student = squeezebert.SqueezeBertForSequenceClassification(config).eval()
    batch = {"input_ids": torch.randint(5, len(VOCAB), (3, 6)), "labels": torch.tensor([0, 1, 1])}
    loss = DistillationLoss(teacher, temperature=2.0, alpha=0.25)(student, batch)
    out_s, out_t = student(**batch), teacher(input_ids=batch["input_ids"])
    manual = 0.25 * soft_cross_entropy(out_s.logits, out_t.logits, 2.0) + 0.75 * out_s.loss
    assert float(loss.detach()) == pytest.approx(float(manual.detach()), rel=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(teacher, alpha=1.5)


def test_grouped_student_from_dense_keeps_the_diagonal_blocks() -> None:
    dense = squeezebert.SqueezeBertModel(
        word_config(q_groups=1, k_groups=1, v_groups=1, post_attention_groups=1, intermediate_groups=1, output_groups=1)
    )
    grouped = squeezebert.SqueezeBertModel(word_config(q_groups=4, output_groups=4))
    assert init_grouped_from_dense(grouped, dense.state_dict()) == []
    w_dense = dense.encoder.layers[0].attention.query.weight[..., 0]
    w_grouped = grouped.encoder.layers[0].attention.query.weight[..., 0]  # [32, 8]
    for g in range(4):
        assert torch.equal(w_grouped[g * 8 : (g + 1) * 8], w_dense[g * 8 : (g + 1) * 8, g * 8 : (g + 1) * 8])
    assert torch.equal(grouped.embeddings.word_embeddings.weight, dense.embeddings.word_embeddings.weight)


# --------------------------------------------------------------------------------------------------------------
# Pretraining


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return AutoTokenizer.from_pretrained(write_tokenizer(tmp_path_factory.mktemp("tok")))


def test_masking_rates_and_whole_words(tokenizer) -> None:
    collator = MlmSopCollator(tokenizer, 0.15, seed=0)
    ids = [tokenizer.cls_token_id] + [VOCAB.index("good")] * 2000 + [tokenizer.sep_token_id]
    masked, labels = collator.mask(ids, epoch=0, index=0)
    chosen = [i for i, y in enumerate(labels) if y != -100]
    assert len(chosen) == 300 and 0 not in chosen and len(ids) - 1 not in chosen
    as_mask = sum(masked[i] == tokenizer.mask_token_id for i in chosen) / 300
    kept = sum(masked[i] == ids[i] for i in chosen) / 300
    assert 0.74 < as_mask < 0.86 and 0.05 < kept < 0.17
    assert collator.mask(ids, 0, 0) == (masked, labels) and collator.mask(ids, 0, 1) != (masked, labels)

    wwm = MlmSopCollator(tokenizer, 0.3, whole_word_masking=True, seed=0)
    word = [VOCAB.index("bob"), VOCAB.index("##s")]
    ids = [tokenizer.cls_token_id] + word * 40 + [tokenizer.sep_token_id]
    for index in range(5):
        _, labels = wwm.mask(ids, 0, index)
        chosen = {i for i, y in enumerate(labels) if y != -100}
        assert all((i + 1 in chosen) == (i in chosen) for i in range(1, len(ids) - 1, 2))  # pieces go together


def test_packing_streams_documents_into_sop_pairs(tokenizer, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    rng = random.Random(0)
    docs = []
    for _ in range(12):
        docs.append(
            "\n".join(
                " ".join(rng.choices(["good", "day", "the", "city"], k=rng.randint(3, 9)))
                for _ in range(rng.randint(1, 5))
            )
        )
    corpus.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    assert len(list(iter_documents([corpus]))) == 12
    examples = list(packed_examples(tokenizer, [corpus], max_length=16, seed=0, epoch=0))
    assert examples == list(packed_examples(tokenizer, [corpus], max_length=16, seed=0, epoch=0))
    assert all(len(e["input_ids"]) <= 16 for e in examples)
    assert max(len(e["input_ids"]) for e in examples) == 16  # packed up to max_length
    assert {e["sentence_order_label"] for e in examples} == {0, 1}
    for e in examples:
        assert e["input_ids"][0] == tokenizer.cls_token_id and e["input_ids"][-1] == tokenizer.sep_token_id
        assert len(e["token_type_ids"]) == len(e["input_ids"]) and e["token_type_ids"][-1] == 1
    batch = MlmSopCollator(tokenizer)(examples[:4])
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "sentence_order_label"}


def test_wordpiece_training(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("playing played player plays\nthe players play\n" * 20, encoding="utf-8")
    tok = train_wordpiece([corpus], 60, tmp_path / "tok")
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert len(vocab) <= 60 and any(t.startswith("##") for t in vocab)
    again = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert again("players play")["input_ids"] == tok("players play")["input_ids"]


def test_pretraining_model_loss_and_checkpoint_compatibility(tmp_path: Path) -> None:
    config = word_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = SqueezeBertForPreTraining(config).eval()
    ids = torch.randint(5, len(VOCAB), (2, 7))
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    order = torch.tensor([0, 1])
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels, sentence_order_label=order)
    mlm = F.cross_entropy(out.prediction_logits.view(-1, len(VOCAB)), labels.view(-1), ignore_index=-100)
    assert float(out.loss) == pytest.approx(float(mlm + F.cross_entropy(out.sop_logits, order)), rel=1e-6)
    assert out.sop_logits.shape == (2, 2) and len(model(input_ids=ids, return_dict=False)) == 2
    assert model.cls.predictions.decoder.weight is model.transformer.embeddings.word_embeddings.weight

    model.save_pretrained(tmp_path)
    mlm_model = SqueezeBertForMaskedLM.from_pretrained(tmp_path)
    assert torch.allclose(mlm_model(input_ids=ids).logits, out.prediction_logits, atol=1e-6)
    back, info = SqueezeBertForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}
    _, info = SqueezeBertForPreTraining.from_pretrained(
        _save_mlm(mlm_model, tmp_path / "mlm"), output_loading_info=True
    )
    assert info["missing_keys"] == {"cls.seq_relationship.bias", "cls.seq_relationship.weight"}


def _save_mlm(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


def test_pretrain_command_with_a_new_vocabulary_and_resume(tmp_path: Path) -> None:
    rng = random.Random(1)
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "while",
        "dogs",
        "ran",
        "across",
        "green",
        "fields",
        "under",
        "blue",
        "skies",
    ]
    docs = [
        "\n".join(" ".join(rng.choices(words, k=rng.randint(3, 10))) for _ in range(rng.randint(1, 5)))
        for _ in range(30)
    ]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(docs), encoding="utf-8")
    config = write_config(tmp_path / "config.json")
    out = tmp_path / "out"
    argv = ["pretrain", "--corpus", str(corpus), "--validation-corpus", str(corpus), "--vocab-size", "80"]
    argv += ["--config", str(config), "--output-dir", str(out), "--max-length", "24", "--batch-size", "4"]
    argv += [
        "--max-steps",
        "6",
        "--save-steps",
        "4",
        "--whole-word-masking",
        "--eval-steps",
        "3",
        "--optimizer",
        "lamb",
    ]
    assert train(argv) == 0
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["global_step"] == 6 and {"mlm_accuracy", "sop_accuracy"} <= set(summary["last_eval"])
    model = SqueezeBertForPreTraining.from_pretrained(out)
    assert model.config.vocab_size == len(AutoTokenizer.from_pretrained(out)) <= 80
    assert squeezebert.SqueezeBertForSequenceClassification.from_pretrained(out, num_labels=2) is not None
    assert (out / "tokenizer" / "vocab.txt").is_file()

    # A streamed run resumed from its step-4 checkpoint re-reads the corpus, skips what it trained on, and ends
    # with the same weights (no evaluation here, so the final folder holds the last weights).
    argv = argv[: argv.index("--validation-corpus")] + argv[argv.index("--validation-corpus") + 2 :]
    argv = argv[: argv.index("--eval-steps")] + argv[argv.index("--eval-steps") + 2 :]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert train([*argv[: argv.index("--output-dir") + 1], str(full), *argv[argv.index("--output-dir") + 2 :]]) == 0
    shutil.copytree(full / "checkpoints", resumed / "checkpoints")
    shutil.copytree(full / "tokenizer", resumed / "tokenizer")
    assert checkpoint.latest_checkpoint(resumed / "checkpoints").name == "checkpoint-4"
    argv[argv.index("--output-dir") + 1] = str(resumed)
    assert train([*argv, "--resume"]) == 0
    assert max_weight_difference(full, resumed) == 0.0
