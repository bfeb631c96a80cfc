"""Added tokens (``add_tokens``, ``add_special_tokens``, ``AddedToken``) against the transformers oracle: matching,
ids, decoding, saving and loading both ways, and an end-to-end run through a resized model.

The oracle is transformers' BertTokenizer (tokenizers-backed in 5.x) loaded from ``minilm_dir``. Where HF's
documentation and code disagree we follow the documentation, and the tests say so:

* ``add_tokens`` returns "the number of tokens added to the vocabulary"; HF's fast code also counts tokens that
  were already in it (they keep their id).
* ``add_special_tokens(replace_extra_special_tokens=True)`` flags the replaced extra special tokens as no longer
  special, so ``decode(skip_special_tokens=True)`` keeps them; HF's fast code still drops them.
* a new ``cls_token`` / ``sep_token`` set with ``add_special_tokens`` is the one the encodings use; HF's fast code
  keeps wrapping with the old one.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from support.configs import tiny_config

import squeezebert
from squeezebert import AddedToken, SqueezeBertTokenizer, SqueezeBertTokenizerFast

VOCAB_SIZE = 30522  # bert-base-uncased

# Overlapping tokens, tokens already in the vocabulary, cased ones, and every AddedToken option.
TOKENS = [
    AddedToken("<m>", lstrip=True, rstrip=True),
    "New York",
    "york",  # in the vocabulary: keeps its id, but is matched before WordPiece from now on
    AddedToken("ÜBER", normalized=False),
    "newword",
    "hello",  # in the vocabulary
    AddedToken("Foo", single_word=True),
    AddedToken("foo", normalized=False),
    "ab",
    "abc",
    "bcd",
    AddedToken("<x>", single_word=True),
    "Café",
    "a\tb",
    "xyz!",
]
EXTRA = ["<ent>", "[E2]"]
TEXTS = [
    "x  <m>  y<m>z <m>",
    "New York, new york; NEW\tYORK newyork York-york.",
    "ÜBERx über ÜBER",
    "Hello newword, newwordnewword! hello-newword",
    "Foo foo FOO Foo. Foo,foo_Foo 3Foo Foo3 (Foo)",
    "<x>y <x> ,<x>, a<x> <x>",
    "abcd xabcdx ab abc bcd ABCD",
    "CAFÉ café cafe Café!",
    "a b a\tb ab",
    "xyz!!xyz! xyz",
    "[CLS] newword[SEP]Foo [MASK]<ent>x <ENT> [E2][e2]",
    "",
    "   ",
    "The quick brown fox jumps over the lazy dog.",
]


def ours(kind: str, minilm_dir) -> squeezebert.tokenization.base.TokenizerBase:
    return (SqueezeBertTokenizer if kind == "slow" else SqueezeBertTokenizerFast).from_pretrained(minilm_dir)


def with_added(tokenizer):
    tokenizer.add_tokens(TOKENS)
    tokenizer.add_special_tokens({"additional_special_tokens": EXTRA})
    return tokenizer


def behaviour(tok) -> dict:
    """Everything the added tokens change, on :data:`TEXTS`."""
    encoded = [tok.encode(text) for text in TEXTS]
    return {
        "len": len(tok),
        "ids": [tok(text, add_special_tokens=False)["input_ids"] for text in TEXTS],
        "tokens": [tok.tokenize(text) for text in TEXTS],
        "decoded": [tok.decode(ids) for ids in encoded],
        "decoded_skip": [tok.decode(ids, skip_special_tokens=True) for ids in encoded],
        "all_special_tokens": tok.all_special_tokens,
        "all_special_ids": tok.all_special_ids,
        "added_vocab": tok.get_added_vocab(),
        "vocab_past_base": {token: i for token, i in tok.get_vocab().items() if i >= VOCAB_SIZE},
        "ids_to_tokens": tok.convert_ids_to_tokens(list(range(VOCAB_SIZE, len(tok)))),
        "tokens_to_ids": tok.convert_tokens_to_ids(["Foo", "foo", "<m>", "newword", "york", "New York", "<ent>"]),
    }


@pytest.fixture(scope="module")
def hf_added(minilm_dir):
    return with_added(transformers.AutoTokenizer.from_pretrained(minilm_dir))


@pytest.mark.parametrize("kind", ["slow", "fast"])
def test_added_tokens_match_hf(kind, minilm_dir, hf_added):
    tok = with_added(ours(kind, minilm_dir))
    assert behaviour(tok) == behaviour(hf_added)
    # The oracle's ids, spelled out for a few texts (so a change of both would show).
    assert tok("Foo foo FOO", add_special_tokens=False)["input_ids"] == [30526, 29379, 30526]
    assert tok.tokenize("x  <m>  y") == ["x", "  <m>  ", "y"]  # lstrip / rstrip take the spaces in
    assert len(tok) == VOCAB_SIZE + 12 and tok.vocab_size == VOCAB_SIZE
    if kind == "fast":
        for text in TEXTS:
            assert (
                tok(text, return_offsets_mapping=True)["offset_mapping"]
                == (hf_added(text, return_offsets_mapping=True)["offset_mapping"])
            )


def test_add_tokens_returns_how_many_got_a_new_id(minilm_dir):
    for kind in ("slow", "fast"):
        tok = ours(kind, minilm_dir)
        assert tok.add_tokens(["hello", "brandnew", "brandnew"]) == 1  # "hello" is in the vocabulary
        assert tok.add_tokens("brandnew") == 0  # already added
        assert tok.add_tokens(AddedToken("<s1>", special=True)) == 1
        assert tok.add_tokens(["x1", "x2"], special_tokens=True) == 2
        assert tok.add_tokens([]) == 0
        assert len(tok) == VOCAB_SIZE + 4
        assert tok.convert_tokens_to_ids(["hello", "brandnew", "<s1>", "x1", "x2"]) == [
            7592,
            30522,
            30523,
            30524,
            30525,
        ]
        # Tokens added as special are dropped by skip_special_tokens, but are not extra special tokens.
        ids = tok.encode("a x1 brandnew <s1>")
        assert tok.decode(ids, skip_special_tokens=True) == "a brandnew"
        assert tok.convert_ids_to_tokens(ids, skip_special_tokens=True) == ["a", "brandnew"]
        assert tok.all_special_tokens == ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
        with pytest.raises(TypeError, match="new_tokens"):
            tok.add_tokens(5)
        with pytest.raises(TypeError, match="new_tokens"):
            tok.add_tokens(["ok", None])


@pytest.mark.parametrize("kind", ["slow", "fast"])
def test_add_special_tokens(kind, minilm_dir):
    tok = ours(kind, minilm_dir)
    assert tok.add_special_tokens({"additional_special_tokens": ["<e1>", "<e2>"]}) == 2
    assert tok.additional_special_tokens == tok.extra_special_tokens == ["<e1>", "<e2>"]
    assert tok.extra_special_tokens_ids == tok.additional_special_tokens_ids == [30522, 30523]
    assert tok.all_special_tokens[-2:] == ["<e1>", "<e2>"]
    # 5.x spelling, appended rather than replacing; "<e1>" is not added twice.
    assert tok.add_special_tokens({"extra_special_tokens": ["<e1>", "<e3>"]}, replace_extra_special_tokens=False) == 1
    assert tok.extra_special_tokens == ["<e1>", "<e2>", "<e3>"]
    # Replacing (the default): the documented behaviour, "<e1>" / "<e2>" stay added tokens but are no longer special.
    assert tok.add_special_tokens({"additional_special_tokens": ["<e3>"]}, replace_additional_special_tokens=True) == 0
    assert tok.extra_special_tokens == ["<e3>"]
    ids = tok.encode("<e1> <e2> <e3> x")
    assert ids == [101, 30522, 30523, 30524, 1060, 102]
    assert tok.decode(ids, skip_special_tokens=True) == "<e1> <e2> x"
    assert not tok.added_tokens_decoder[30522].special and tok.added_tokens_decoder[30524].special
    # A named special token: the encodings use the new one (as documented).
    assert tok.add_special_tokens({"cls_token": "<cls>"}) == 1
    assert tok.cls_token == "<cls>" and tok.cls_token_id == 30525
    assert tok.encode("x") == [30525, 1060, 102]
    assert tok.decode(tok.encode("x [CLS]"), skip_special_tokens=True) == "x"  # the old one is still special
    with pytest.raises(ValueError, match="special_tokens_dict key 'eos_tok'"):
        tok.add_special_tokens({"eos_tok": "</s>"})
    with pytest.raises(TypeError, match="additional_special_tokens must be a list"):
        tok.add_special_tokens({"additional_special_tokens": "<e4>"})
    with pytest.raises(TypeError, match="special_tokens_dict must be a dict"):
        tok.add_special_tokens(["<e4>"])


@pytest.mark.parametrize("kind", ["slow", "fast"])
def test_we_load_what_hf_saves(kind, tmp_path, minilm_dir, hf_added):
    hf_added.save_pretrained(tmp_path)  # tokenizer.json + tokenizer_config.json (no vocab.txt in 5.x)
    tok = (SqueezeBertTokenizer if kind == "slow" else SqueezeBertTokenizerFast).from_pretrained(tmp_path)
    assert behaviour(tok) == behaviour(hf_added)
    if kind == "fast":
        for text in TEXTS:
            assert dict(tok(text, return_offsets_mapping=True)) == dict(hf_added(text, return_offsets_mapping=True))


@pytest.mark.parametrize("kind", ["slow", "fast"])
def test_hf_loads_what_we_save(kind, tmp_path, minilm_dir, hf_added):
    tok = with_added(ours(kind, minilm_dir))
    written = {p.rsplit("/", 1)[-1] for p in tok.save_pretrained(tmp_path)}
    assert "added_tokens.json" in written and ("tokenizer.json" in written) == (kind == "fast")
    added = json.loads((tmp_path / "added_tokens.json").read_text())
    assert added == {token: i for token, i in hf_added.get_added_vocab().items() if i >= VOCAB_SIZE}
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["extra_special_tokens"] == EXTRA
    assert config["added_tokens_decoder"]["30526"] == {
        "content": "Foo",
        "single_word": True,
        "lstrip": False,
        "rstrip": False,
        "normalized": True,
        "special": False,
    }
    assert config["added_tokens_decoder"]["30522"]["lstrip"] and config["added_tokens_decoder"]["0"]["special"]
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert behaviour(theirs) == behaviour(hf_added)
    for cls in (SqueezeBertTokenizer, SqueezeBertTokenizerFast):
        # (the slow tokenizer cleans up decoded text only with this option, which a fast-saved folder has off)
        assert behaviour(cls.from_pretrained(tmp_path, clean_up_tokenization_spaces=True)) == behaviour(hf_added)
    if kind == "fast":
        assert [t["content"] for t in json.loads((tmp_path / "tokenizer.json").read_text())["added_tokens"]][-3:] == [
            "xyz!",
            "<ent>",
            "[E2]",
        ]


def test_legacy_added_tokens_json_folder(tmp_path, minilm_dir):
    """A folder as transformers 4.x slow tokenizers wrote it: vocab.txt, added_tokens.json and the extra special
    tokens in special_tokens_map.json, no added_tokens_decoder."""
    (tmp_path / "vocab.txt").write_bytes((minilm_dir / "vocab.txt").read_bytes())
    (tmp_path / "added_tokens.json").write_text(json.dumps({"newword": 30522, "<ent>": 30523}))
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"additional_special_tokens": ["<ent>"]}))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"})
    )
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for cls in (SqueezeBertTokenizer, SqueezeBertTokenizerFast):
        tok = cls.from_pretrained(tmp_path)
        assert tok.extra_special_tokens == ["<ent>"] and len(tok) == VOCAB_SIZE + 2
        assert tok.encode("NewWord <ent> x") == theirs.encode("NewWord <ent> x") == [101, 30522, 30523, 1060, 102]
        assert tok.decode(tok.encode("newword <ent>"), skip_special_tokens=True) == "newword"
        assert not tok.added_tokens_decoder[30522].special and tok.added_tokens_decoder[30523].special


def test_added_tokens_decoder_ids_must_follow_the_vocabulary(minilm_dir):
    for cls, options in ((SqueezeBertTokenizer, {}), (SqueezeBertTokenizerFast, {})):
        with pytest.raises(ValueError, match="'<gap>' has id 30530 but would get 30522"):
            cls(vocab_file=minilm_dir / "vocab.txt", added_tokens_decoder={30530: AddedToken("<gap>")}, **options)
        tok = cls(
            vocab_file=minilm_dir / "vocab.txt",
            added_tokens_decoder={"30522": {"content": "<a>", "normalized": False, "special": True}},
        )
        assert tok.convert_tokens_to_ids("<a>") == 30522 and tok.added_tokens_decoder[30522].special
        with pytest.raises(ValueError, match="not both"):
            cls(vocab_file=minilm_dir / "vocab.txt", extra_special_tokens=["<a>"], additional_special_tokens=["<b>"])


@pytest.mark.parametrize("kind", ["slow", "fast"])
def test_resized_model_runs_the_added_token(kind, minilm_dir, single_thread):
    torch.manual_seed(0)
    tok = ours(kind, minilm_dir)
    assert tok.add_special_tokens({"additional_special_tokens": ["<ent>"]}) == 1
    model = squeezebert.SqueezeBertForMaskedLM(tiny_config(vocab_size=VOCAB_SIZE)).eval()
    model.resize_token_embeddings(len(tok))
    batch = tok(["a <ent> b", "a [UNK] b"], return_tensors="pt")
    assert batch["input_ids"][0, 2].item() == VOCAB_SIZE
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 5, VOCAB_SIZE + 1)
    # The new token's own embedding row is read: changing it changes the first row's hidden states, not the second's
    # (the decoder is tied to the embeddings, so the logits would change in both).
    with torch.no_grad():
        before = model.base_model(**batch).last_hidden_state
        model.get_input_embeddings().weight[VOCAB_SIZE] += 1.0
        after = model.base_model(**batch).last_hidden_state
    assert not torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
