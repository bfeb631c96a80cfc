"""Tokenizer API: saving and loading (with HF interop), AutoTokenizer, BatchEncoding, bad input, a tiny hand-made
vocabulary with hand-derived outputs, and property tests."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

import squeezebert
from squeezebert import AutoTokenizer, BatchEncoding, SqueezeBertTokenizer, SqueezeBertTokenizerFast
from squeezebert.hub import CheckpointNotFoundError

transformers.logging.set_verbosity_error()

TEXTS = [
    "Hello, world! Tokenizers are unaffable.",
    "naïve café 你好 [MASK] straße",
    "",
    "a much longer sentence with quite a few words in it, to make the rows ragged",
]
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "hello", "world", "!", ",", "a"]


@pytest.fixture()
def tiny_vocab(tmp_path) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_text("".join(t + "\n" for t in TINY_VOCAB), encoding="utf-8")
    return path


def outputs(tokenizer, texts=TEXTS) -> dict:
    return dict(tokenizer(texts, texts[::-1], padding=True, truncation=True, max_length=24))


# ----------------------------------------------------------------------------------------------------------------
# A tiny vocabulary, outputs derived by hand


def test_tiny_vocab_by_hand(tiny_vocab):
    for tok in (SqueezeBertTokenizer(tiny_vocab), SqueezeBertTokenizerFast(vocab_file=tiny_vocab)):
        assert tok.tokenize("Unaffable, HELLO world!") == ["un", "##aff", "##able", ",", "hello", "world", "!"]
        assert tok.tokenize("unable hellos") == ["un", "##able", "[UNK]"]  # "hellos": "##s" is not in the vocab
        assert tok("hello", "world")["input_ids"] == [2, 8, 3, 9, 3]
        assert tok("hello", "world")["token_type_ids"] == [0, 0, 0, 1, 1]
        assert tok.decode([2, 5, 6, 7, 10, 3]) == "[CLS] unaffable! [SEP]"
        assert tok.decode([2, 5, 6, 7, 3], skip_special_tokens=True) == "unaffable"
        assert tok.vocab_size == len(tok) == len(TINY_VOCAB)
        assert tok(["a", "hello world"], padding=True)["attention_mask"] == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_words_over_100_characters_are_unknown(tiny_vocab):
    exactly_100 = "un" + "able" * 23 + "aff" * 2
    assert len(exactly_100) == 100
    for tok in (SqueezeBertTokenizer(tiny_vocab), SqueezeBertTokenizerFast(vocab_file=tiny_vocab)):
        assert tok.tokenize(exactly_100) == ["un"] + ["##able"] * 23 + ["##aff"] * 2
        assert tok.tokenize(exactly_100 + "aff hello") == ["[UNK]", "hello"]  # 103 characters
        assert tok.tokenize("hello unx") == ["hello", "[UNK]"]  # no piece matches "x"


def test_fast_options_by_hand(tmp_path, tiny_vocab):
    # clean_text=False keeps control characters, so the word no longer matches the vocabulary.
    assert SqueezeBertTokenizerFast(vocab_file=tiny_vocab).tokenize("hel\x07lo") == ["hello"]
    assert SqueezeBertTokenizerFast(vocab_file=tiny_vocab, clean_text=False).tokenize("hel\x07lo") == ["[UNK]"]
    # wordpieces_prefix
    vocab = tmp_path / "prefixed.txt"
    vocab.write_text("\n".join(t.replace("##", "@@") for t in TINY_VOCAB) + "\n", encoding="utf-8")
    tok = SqueezeBertTokenizerFast(vocab_file=vocab, wordpieces_prefix="@@")
    assert tok.tokenize("unaffable") == ["un", "@@aff", "@@able"]
    assert tok.decode(tok.encode("unaffable"), skip_special_tokens=True) == "unaffable"


def test_custom_special_tokens(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["<pad>", "<unk>", "<s>", "</s>", "<mask>", "hello"]) + "\n", encoding="utf-8")
    names = {
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "mask_token": "<mask>",
    }
    for tok in (SqueezeBertTokenizer(vocab, **names), SqueezeBertTokenizerFast(vocab_file=vocab, **names)):
        assert tok("hello <mask> bye")["input_ids"] == [2, 5, 4, 1, 3]
        assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
            0,
            1,
            2,
            3,
            4,
        )
        assert tok(["hello", ""], padding=True)["input_ids"] == [[2, 5, 3], [2, 3, 0]]


# ----------------------------------------------------------------------------------------------------------------
# Saving and loading


def test_slow_save_load_round_trip_with_hf(tmp_path, slow, minilm_dir):
    written = slow.save_pretrained(tmp_path)
    names = sorted(Path(p).name for p in written)
    assert names == ["special_tokens_map.json", "tokenizer_config.json", "vocab.txt"]
    assert (tmp_path / "vocab.txt").read_bytes() == (minilm_dir / "vocab.txt").read_bytes()
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["do_lower_case"] is True and config["model_max_length"] == 512
    reloaded = SqueezeBertTokenizer.from_pretrained(tmp_path)
    assert outputs(reloaded) == outputs(slow)
    # HF loads what we saved, with the same output
    legacy = BertTokenizerLegacy.from_pretrained(tmp_path)
    assert (
        legacy(TEXTS, return_token_type_ids=True, padding=True)["input_ids"] == slow(TEXTS, padding=True)["input_ids"]
    )
    assert outputs(transformers.AutoTokenizer.from_pretrained(tmp_path)) == outputs(slow)


def test_fast_save_load_round_trip_with_hf(tmp_path, fast, hf_fast):
    written = fast.save_pretrained(tmp_path)
    assert sorted(Path(p).name for p in written) == [
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert outputs(theirs) == outputs(fast) == outputs(hf_fast)
    assert dict(theirs(TEXTS, return_offsets_mapping=True)) == dict(fast(TEXTS, return_offsets_mapping=True))
    # The saved tokenizer.json has no truncation or padding switched on (the original one had both).
    assert json.loads((tmp_path / "tokenizer.json").read_text())["truncation"] is None
    assert outputs(SqueezeBertTokenizerFast.from_pretrained(tmp_path)) == outputs(fast)
    # vocab.txt alone gives the same tokenizer
    (tmp_path / "tokenizer.json").unlink()
    assert outputs(SqueezeBertTokenizerFast.from_pretrained(tmp_path)) == outputs(fast)


def test_we_load_what_hf_saves(tmp_path, minilm_dir, hf_fast):
    hf_fast.save_pretrained(tmp_path / "fast")  # tokenizer.json + tokenizer_config.json only
    ours = AutoTokenizer.from_pretrained(tmp_path / "fast")
    assert isinstance(ours, SqueezeBertTokenizerFast)
    assert outputs(ours) == outputs(hf_fast)
    legacy = BertTokenizerLegacy.from_pretrained(minilm_dir, do_lower_case=False, model_max_length=64)
    legacy.save_pretrained(tmp_path / "slow")  # vocab.txt + tokenizer_config.json
    ours = SqueezeBertTokenizer.from_pretrained(tmp_path / "slow")
    assert ours.do_lower_case is False and ours.model_max_length == 64
    for text in TEXTS:
        assert ours.tokenize(text) == legacy.tokenize(text)


def test_options_survive_save_and_load(tmp_path, minilm_dir):
    slow = SqueezeBertTokenizer(
        minilm_dir / "vocab.txt", do_lower_case=False, never_split=["Hello!"], strip_accents=True, model_max_length=32
    )
    slow.save_pretrained(tmp_path / "slow")
    again = SqueezeBertTokenizer.from_pretrained(tmp_path / "slow")
    assert (again.do_lower_case, again.never_split, again.strip_accents, again.model_max_length) == (
        False,
        ["Hello!"],
        True,
        32,
    )
    assert again.tokenize("Hello! café Café") == slow.tokenize("Hello! café Café") == ["Hello!", "cafe", "[UNK]"]
    fast = SqueezeBertTokenizerFast(vocab_file=minilm_dir / "vocab.txt", tokenize_chinese_chars=False)
    fast.save_pretrained(tmp_path / "fast")
    again = SqueezeBertTokenizerFast.from_pretrained(tmp_path / "fast")
    assert again.tokenize("世界") == fast.tokenize("世界") == ["[UNK]"]  # one word, not in the vocabulary
    reloaded = SqueezeBertTokenizerFast.from_pretrained(tmp_path / "fast", tokenize_chinese_chars=True)
    assert reloaded.tokenize("世界") == ["世", "[UNK]"]  # kwargs override the saved options


def test_save_vocabulary(tmp_path, slow, fast, minilm_dir):
    for tok in (slow, fast):
        (path,) = tok.save_vocabulary(tmp_path, filename_prefix=type(tok).__name__)
        assert Path(path).name == f"{type(tok).__name__}-vocab.txt"
        assert Path(path).read_bytes() == (minilm_dir / "vocab.txt").read_bytes()


def test_auto_tokenizer_picks_fast_when_it_can(tmp_path, minilm_dir, slow):
    assert isinstance(AutoTokenizer.from_pretrained(minilm_dir), SqueezeBertTokenizerFast)
    assert isinstance(AutoTokenizer.from_pretrained(minilm_dir, use_fast=False), SqueezeBertTokenizer)
    slow.save_pretrained(tmp_path)  # vocab.txt, no tokenizer.json: the fast one is built from it
    assert isinstance(AutoTokenizer.from_pretrained(tmp_path), SqueezeBertTokenizerFast)
    # Options only the slow tokenizer has
    tok = AutoTokenizer.from_pretrained(tmp_path, never_split=["[foo]"])
    assert isinstance(tok, SqueezeBertTokenizer) and tok.tokenize("[foo]") == ["[foo]"]
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "do_basic_tokenize": False}))
    assert isinstance(AutoTokenizer.from_pretrained(tmp_path), SqueezeBertTokenizer)
    with pytest.raises(TypeError):
        AutoTokenizer()


def test_from_hub_id_through_the_cache(tmp_path, minilm_dir):
    """A hub id resolves through the Hugging Face cache (here a hand-made one, offline)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--acme--tiny-bert"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (snapshot / name).write_bytes((minilm_dir / name).read_bytes())
    kwargs = {"cache_dir": tmp_path, "local_files_only": True}
    tok = AutoTokenizer.from_pretrained("acme/tiny-bert", **kwargs)
    assert isinstance(tok, SqueezeBertTokenizerFast)
    assert tok("Hello world")["input_ids"] == [101, 7592, 2088, 102]
    assert SqueezeBertTokenizer.from_pretrained("acme/tiny-bert", **kwargs).encode("Hello") == [101, 7592, 102]
    with pytest.raises(CheckpointNotFoundError, match="acme/missing"):
        SqueezeBertTokenizer.from_pretrained("acme/missing", **kwargs)


def test_missing_files_name_the_path(tmp_path):
    missing = tmp_path / "nope" / "vocab.txt"
    with pytest.raises(FileNotFoundError, match="nope"):
        SqueezeBertTokenizer(missing)
    with pytest.raises(FileNotFoundError, match="nope"):
        SqueezeBertTokenizerFast(vocab_file=missing)
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        SqueezeBertTokenizerFast(tokenizer_file=tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match="vocab_file or a tokenizer_file"):
        SqueezeBertTokenizerFast()
    empty = tmp_path / "empty"
    empty.mkdir()
    for loader in (SqueezeBertTokenizer, SqueezeBertTokenizerFast, AutoTokenizer):
        with pytest.raises(FileNotFoundError, match="empty"):
            loader.from_pretrained(empty)


# ----------------------------------------------------------------------------------------------------------------
# BatchEncoding


def test_batch_encoding_access_and_to(fast, slow):
    for tok in (fast, slow):
        enc = tok(TEXTS, padding=True, return_tensors="pt")
        assert isinstance(enc, BatchEncoding) and isinstance(enc, dict)
        assert enc.input_ids is enc["input_ids"]
        assert enc.attention_mask.shape == enc.input_ids.shape
        with pytest.raises(AttributeError):
            enc.not_a_key  # noqa: B018
        moved = enc.to("cpu")
        assert moved is enc and moved.input_ids.device == torch.device("cpu")
        assert pickle.loads(pickle.dumps(enc))["input_ids"].equal(enc["input_ids"])
    single = fast("hello world")
    assert single.input_ids == [101, 7592, 2088, 102]
    assert single.word_ids() == [None, 0, 1, None]
    with pytest.raises(ValueError, match="SqueezeBertTokenizerFast"):
        slow("hello world").word_ids()
    with pytest.raises(NotImplementedError, match="SqueezeBertTokenizerFast"):
        slow("hello", return_offsets_mapping=True)


def test_pairs_as_tuples_and_empty_batch(fast, slow, hf_fast):
    pairs = [("hello", "world"), ("a b", "c")]
    expected = dict(hf_fast(pairs))
    assert dict(fast(pairs)) == dict(slow(pairs)) == expected
    assert dict(fast([])) == dict(slow([])) == {"input_ids": [], "token_type_ids": [], "attention_mask": []}


# ----------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("cls", ["slow", "fast"])
def test_bad_input_raises_clear_errors(request, cls):
    tok = request.getfixturevalue(cls)
    with pytest.raises(TypeError, match="int"):
        tok(3)
    with pytest.raises(TypeError, match="item 1"):
        tok(["ok", None])
    with pytest.raises(TypeError, match="item 0"):
        tok([b"bytes"])
    with pytest.raises(TypeError):
        tok.tokenize(["not", "a string"])
    with pytest.raises(TypeError, match="text_pair"):
        tok("a", ["b"])
    with pytest.raises(TypeError, match="text_pair"):
        tok(["a"], "b")
    with pytest.raises(ValueError, match="same length"):
        tok(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="padding"):
        tok(TEXTS, return_tensors="pt")
    with pytest.raises(ValueError, match="padding"):
        tok(TEXTS, return_tensors="np")
    with pytest.raises(ValueError, match="return_tensors"):
        tok("a", return_tensors="tf")
    with pytest.raises(ValueError, match="padding"):
        tok("a", padding="left")
    with pytest.raises(ValueError, match="truncation"):
        tok("a", truncation="middle")
    # Truncation that cannot be done: too few tokens in the sequence to cut, or no room at all.
    with pytest.raises(ValueError, match="only_second"):
        tok("a b c d e f", "g", truncation="only_second", max_length=5)
    with pytest.raises(ValueError, match="only_second"):
        tok("a b c d e f", truncation="only_second", max_length=5)
    with pytest.raises(ValueError, match="special tokens"):
        tok("a b c", truncation=True, max_length=1)
    with pytest.raises(ValueError, match="stride"):  # the tokenizers library panics here
        tok("a b c d e f g", truncation=True, max_length=5, stride=3, return_overflowing_tokens=True)
    with pytest.raises(ValueError, match="multiple"):
        tok("a", padding="max_length", truncation=True, max_length=10, pad_to_multiple_of=4)
    with pytest.raises(ValueError, match="already_has_special_tokens"):
        tok.get_special_tokens_mask([1], [2], already_has_special_tokens=True)


def test_truncation_edge_cases_match_hf_fast(slow, fast, hf_fast):
    # max_length == number of special tokens: every sequence token is cut
    for args in (("a b c",), ("a b c", "d")):
        n = 2 if len(args) == 1 else 3
        expected = dict(hf_fast(*args, truncation=True, max_length=n))
        assert dict(fast(*args, truncation=True, max_length=n)) == dict(slow(*args, truncation=True, max_length=n))
        assert dict(fast(*args, truncation=True, max_length=n)) == expected
    # only_first on a single sequence truncates it like longest_first
    expected = dict(hf_fast("a b c d e", truncation="only_first", max_length=4))
    assert dict(fast("a b c d e", truncation="only_first", max_length=4)) == expected
    assert dict(slow("a b c d e", truncation="only_first", max_length=4)) == expected


def test_tokenization_imports_no_torch_at_module_level():
    """torch is imported lazily (return_tensors='pt', BatchEncoding.to), never when the modules load."""
    package = Path(squeezebert.__file__).parent / "tokenization"
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module-level statements only
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                assert node.level == 0 or node.module not in ("hub", "modeling", "config"), path
            assert not any(n.split(".")[0] in ("torch", "transformers", "numpy") for n in names), (path, names)


# ----------------------------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60), pair=st.one_of(st.none(), st.text(max_size=20)))
def test_never_crashes_and_decode_is_stable(slow, fast, text, pair):
    for tok in (slow, fast):
        enc = tok(text, pair, return_special_tokens_mask=True, truncation=True, max_length=16, padding="max_length")
        assert len(enc["input_ids"]) == len(enc["attention_mask"]) == len(enc["special_tokens_mask"]) == 16
        ids = tok.encode(text)
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        decoded = tok.decode(ids, skip_special_tokens=True)
        # Decoding then encoding again gives the same ids, less the special tokens (among them [UNK]) ...
        special = set(tok.all_special_ids)
        again = tok.encode(decoded)
        assert again == [ids[0]] + [i for i in ids[1:-1] if i not in special] + [ids[-1]]
        # ... and from there on decode(encode(x)) is a fixed point.
        assert tok.decode(again, skip_special_tokens=True) == decoded


def test_numpy_and_list_inputs_to_decode(fast, slow):
    ids = [101, 7592, 2088, 102]
    for tok in (fast, slow):
        assert tok.decode(np.array(ids)) == tok.decode(ids) == tok.decode(torch.tensor(ids))
        assert tok.decode(7592) == "hello"
