"""The last Hugging Face compatibility gaps, each against transformers 5.x on the same inputs: the public tokenizer
building blocks (BasicTokenizer, WordpieceTokenizer, the character classes), the remaining PreTrainedModel methods,
the config fields, and pre-split words in the token-classification pipeline."""

from __future__ import annotations

import itertools
import sys

import pytest
import torch
import transformers
from support.configs import tiny, tiny_config
from support.logs import capture_logs
from support.oracle import oracle_and_ours, randomize_
from test_pipelines_oracle import assert_same
from transformers import tokenization_python as hf_python
from transformers.models.bert import tokenization_bert_legacy as hf_legacy

import squeezebert
from squeezebert.modeling import pretrained
from squeezebert.tokenization import (
    BasicTokenizer,
    WordpieceTokenizer,
    _is_control,
    _is_punctuation,
    _is_whitespace,
)

# ------------------------------------------------------------------------------------------------------------------
# BasicTokenizer / WordpieceTokenizer / character classes

# Texts that exercise each step: case, accents (composed and decomposed), punctuation inside and around words,
# CJK ideographs next to Latin and kana, control characters, odd whitespace, never_split words in any case.
TEXTS = [
    "",
    "   \t\n ",
    " \tHeLLo!how  \n Are yoU?  ",
    "Hällo! Ünïcödé façade naïve résumé — ÀÉÎÕÜ",
    "He\u0301llo mañana\u0303",  # decomposed accents (NFC recombines the first)
    "ah\u535a\u63a8zz 日本語のテキスト 한국어",
    "don't stop-believing, 3.14 $5 a/b #hash @at ^caret `tick ~tilde",
    "ctrl\x00chars\x07 \ufffdhere\u200b\u00ad soft",
    "tabs\u3000ideographic\u00a0nbsp\u2028line\u2029para\x85nel",
    "[UNK] [unk] [UNK]! x[UNK]y [CLS] [SEP]",
    "İstanbul ǅemal ßtraße ﬁne",
    "¿Qué? «Bien» „quotes“ 'single' (paren) {brace} <angle> 1,000.5%",
    "emoji 🙂👍🏽 and symbols ™ © ° ± µ",
]
OPTIONS = [
    dict(),
    dict(do_lower_case=False),
    dict(do_lower_case=True, strip_accents=False),
    dict(do_lower_case=True, strip_accents=True),
    dict(do_lower_case=False, strip_accents=True),
    dict(do_lower_case=False, strip_accents=False),
    dict(never_split=["[UNK]", "[CLS]"]),
    dict(do_lower_case=False, never_split=["[UNK]"]),
    dict(tokenize_chinese_chars=False),
    dict(do_split_on_punc=False),
    dict(do_split_on_punc=False, do_lower_case=False, never_split=["[UNK]"]),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_basic_tokenizer_matches_transformers(options):
    ours, theirs = BasicTokenizer(**options), hf_legacy.BasicTokenizer(**options)
    for text in TEXTS:
        assert ours.tokenize(text) == theirs.tokenize(text), text
        # never_split given per call adds to the constructor's
        assert ours.tokenize(text, never_split=["[unk]", "x[UNK]y"]) == theirs.tokenize(
            text, never_split=["[unk]", "x[UNK]y"]
        ), text


def test_basic_tokenizer_positional_arguments_and_hand_checked_examples():
    # the positional order of transformers: do_lower_case, never_split, tokenize_chinese_chars, strip_accents, ...
    tokenizer = BasicTokenizer(False, ["[UNK]"], False, True, False)
    assert tokenizer.tokenize(" \tHäLLo!how  \n Are yoU? [UNK] 中国") == ["HaLLo!how", "Are", "yoU?", "[UNK]", "中国"]
    assert BasicTokenizer().tokenize("ah\u535a\u63a8zz") == ["ah", "\u535a", "\u63a8", "zz"]
    assert BasicTokenizer(do_lower_case=True, strip_accents=False).tokenize("HäLLo!") == ["hällo", "!"]


VOCAB_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ",", "low", "lowest"]


@pytest.mark.parametrize("max_chars", [100, 5])
def test_wordpiece_tokenizer_matches_transformers(max_chars):
    vocab = {token: index for index, token in enumerate(VOCAB_TOKENS)}
    ours = WordpieceTokenizer(vocab, "[UNK]", max_chars)
    theirs = hf_legacy.WordpieceTokenizer(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=max_chars)
    texts = ["", "unwanted running", "unwantedX running", "lowest low ,", "wa want ##want", "a" * 101, "runnin"]
    for text in texts:
        assert ours.tokenize(text) == theirs.tokenize(text), text
    assert WordpieceTokenizer(vocab, "[UNK]").tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]


def test_wordpiece_tokenizer_on_the_real_vocabulary(slow, minilm_dir):
    vocab = squeezebert.tokenization.load_vocab(minilm_dir / "vocab.txt")
    ours, theirs = WordpieceTokenizer(vocab, "[UNK]"), hf_legacy.WordpieceTokenizer(vocab, "[UNK]")
    basic = hf_legacy.BasicTokenizer()
    for text in TEXTS:
        words = " ".join(basic.tokenize(text))
        assert ours.tokenize(words) == theirs.tokenize(words), text
    # the slow tokenizer exposes its blocks under transformers' attribute names
    assert slow.basic_tokenizer.tokenize("Hello, World") == ["hello", ",", "world"]
    assert slow.wordpiece_tokenizer.tokenize("unaffable") == ["una", "##ffa", "##ble"]


def test_character_classes_match_transformers():
    # every code point of the BMP's first 0x3100 (ASCII, Latin, controls, general punctuation, CJK symbols), the
    # ends of the planes and a few astral ones
    code_points = itertools.chain(range(0x3100), range(0xFE00, 0x10000), [0x1F642, 0x20000, 0xE0001, sys.maxunicode])
    for char in map(chr, code_points):
        assert _is_whitespace(char) == hf_python._is_whitespace(char), hex(ord(char))
        assert _is_control(char) == hf_python._is_control(char), hex(ord(char))
        assert _is_punctuation(char) == hf_python._is_punctuation(char), hex(ord(char))
    assert [_is_whitespace(c) for c in " \t\r\n\u00a0A-"] == [True] * 5 + [False] * 2
    assert [_is_control(c) for c in "\u0005A \t\r"] == [True] + [False] * 4
    assert [_is_punctuation(c) for c in "-$`.A "] == [True] * 4 + [False] * 2


# ------------------------------------------------------------------------------------------------------------------
# PreTrainedModel methods

MLM, SEQ, BASE = "SqueezeBertForMaskedLM", "SqueezeBertForSequenceClassification", "SqueezeBertModel"


def _pair(head: str, **overrides):
    """Our model and the oracle built from the same tiny config, holding the same random weights."""
    ours = getattr(squeezebert, head)(tiny_config(**overrides)).eval()
    theirs = getattr(transformers, head)(transformers.SqueezeBertConfig(**tiny(**overrides))).eval()
    theirs.load_state_dict(randomize_(ours).state_dict())
    return ours, theirs


IDS = torch.tensor([[2, 17, 33, 4, 0], [2, 8, 0, 0, 0]])


@pytest.mark.parametrize(
    "kwargs, config_dtype",
    [
        ({}, None),
        ({}, "float16"),
        ({"dtype": torch.bfloat16}, None),
        ({"dtype": "float16"}, "bfloat16"),
        ({"torch_dtype": torch.float16}, None),
        ({"dtype": torch.bfloat16, "torch_dtype": torch.float16}, None),
    ],
)
def test_from_config_builds_in_the_dtype_and_records_it(kwargs, config_dtype):
    ours_config, their_config = (
        tiny_config(dtype=config_dtype),
        transformers.SqueezeBertConfig(**tiny(dtype=config_dtype)),
    )
    ours = squeezebert.SqueezeBertForMaskedLM._from_config(ours_config, **kwargs)
    theirs = transformers.SqueezeBertForMaskedLM._from_config(their_config, **kwargs)
    assert {p.dtype for p in ours.parameters()} == {p.dtype for p in theirs.parameters()} == {theirs.dtype}
    assert ours_config.dtype == their_config.dtype  # both record the dtype used on the given config
    assert torch.get_default_dtype() == torch.float32
    assert ours.name_or_path == theirs.name_or_path == ""


def test_set_output_embeddings_replaces_the_decoder_and_its_bias():
    ours, theirs = _pair(MLM)
    hidden, vocab = ours.config.hidden_size, ours.config.vocab_size
    for model in (ours, theirs):
        torch.manual_seed(4)
        new = torch.nn.Linear(hidden, vocab)
        model.set_output_embeddings(new)
        assert model.get_output_embeddings() is new and model.cls.predictions.bias is new.bias
    ids = IDS.clamp(max=vocab - 1)
    torch.testing.assert_close(ours(ids).logits, theirs(ids).logits, atol=2e-5, rtol=2e-5)
    with pytest.raises(AttributeError):
        squeezebert.SqueezeBertModel(tiny_config()).set_output_embeddings(torch.nn.Linear(hidden, vocab))
    with pytest.raises(AttributeError):
        transformers.SqueezeBertModel(transformers.SqueezeBertConfig(**tiny())).set_output_embeddings(new)


def test_init_weights_initialises_only_new_modules():
    ours, theirs = _pair(SEQ, initializer_range=0.5)
    for model in (ours, theirs):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        torch.manual_seed(0)
        model.classifier = torch.nn.Linear(model.config.hidden_size, 7)
        model.init_weights()
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("classifier"))
        assert torch.equal(model.classifier.bias, torch.zeros(7))  # nn.Linear's own init has a non-zero bias
        assert abs(model.classifier.weight.std().item() - 0.5) < 0.1  # N(0, 0.5^2), not nn.Linear's U(+-1/sqrt(32))
        model.classifier.weight.data.fill_(3.0)
        model.init_weights()  # initialised once: an edited weight stays
        assert torch.equal(model.classifier.weight, torch.full((7, model.config.hidden_size), 3.0))


def test_input_require_grads_hook():
    ours, theirs = _pair(BASE)
    for model in (ours, theirs):
        model.requires_grad_(False)
        assert not model(IDS).last_hidden_state.requires_grad
        model.enable_input_require_grads()
        out = model(IDS).last_hidden_state
        assert out.requires_grad and model._require_grads_hook is model._require_grads_hooks[-1]
        model.disable_input_require_grads()
        assert not model(IDS).last_hidden_state.requires_grad and not hasattr(model, "_require_grads_hook")
    # enabling twice then disabling leaves the oracle with the first hook still registered; ours removes it
    ours.enable_input_require_grads()
    ours.enable_input_require_grads()
    ours.disable_input_require_grads()
    assert not ours(IDS).last_hidden_state.requires_grad


@pytest.mark.parametrize("return_buffers", [True, False])
def test_memory_footprint_matches_the_oracle(return_buffers):
    ours, theirs = _pair(MLM)
    assert ours.get_memory_footprint(return_buffers) == theirs.get_memory_footprint(return_buffers)
    ours.half(), theirs.half()
    assert ours.get_memory_footprint(return_buffers=return_buffers) == theirs.get_memory_footprint(return_buffers)
    parameters = ours.num_parameters() * 2  # the tied decoder counts once
    assert ours.get_memory_footprint(False) == parameters


def test_name_or_path_is_set_by_from_pretrained(tmp_path):
    theirs, ours = oracle_and_ours(tmp_path, "relu-h32", MLM, "oracle->ours")
    assert ours.name_or_path == ours.config.name_or_path == str(tmp_path / "ckpt-oracle->ours")
    folder = tmp_path / "ckpt-oracle->ours"
    given = squeezebert.SqueezeBertConfig.from_pretrained(folder)
    reloaded = squeezebert.SqueezeBertForMaskedLM.from_pretrained(folder, config=given)
    their_reload = transformers.SqueezeBertForMaskedLM.from_pretrained(folder, config=theirs.config)
    assert reloaded.name_or_path == their_reload.name_or_path
    assert given.name_or_path == "" and reloaded.config is not given  # the caller's config is copied, as HF does
    # a 4.x config.json stores it as "_name_or_path": read, and not written back
    assert squeezebert.SqueezeBertConfig(_name_or_path="some/repo").name_or_path == "some/repo"
    assert "_name_or_path" not in squeezebert.SqueezeBertConfig(_name_or_path="some/repo").to_dict()


@pytest.mark.parametrize(
    "ids, mask, pad, sep",
    [
        ([[2, 5, 0]], None, 0, None),  # padded at the end
        ([[0, 5, 6]], None, 0, None),  # left padding
        ([[2, 0, 6]], None, 0, None),  # only in the middle: not checked
        ([[2, 5, 6]], None, 0, None),
        ([[2, 5, 0]], [[1, 1, 0]], 0, None),  # a mask is given
        ([[2, 5, 0]], None, None, None),  # no pad token
        ([[2, 5, 3]], None, 3, 3),  # pad is also the separator: the warning says so
    ],
)
def test_warn_if_padding_and_no_attention_mask(monkeypatch, ids, mask, pad, sep):
    warned = []
    monkeypatch.setattr(transformers.modeling_utils.logger, "warning_once", warned.append)
    ours, theirs = _pair(BASE, pad_token_id=pad, sep_token_id=sep)
    ids, mask = torch.tensor(ids), None if mask is None else torch.tensor(mask)
    theirs.warn_if_padding_and_no_attention_mask(ids, mask)
    pretrained._warn_once.cache_clear()
    with capture_logs() as records:
        ours.warn_if_padding_and_no_attention_mask(ids, mask)
        ours.warn_if_padding_and_no_attention_mask(ids, mask)  # once
    assert len(records) == len(warned) <= 1
    assert all(("sep_token_id (3)" in r.getMessage()) == (sep is not None) for r in records)


def test_the_forward_pass_warns_about_padding_without_a_mask():
    """As HF's SqueezeBertModel.forward: padded ids without an attention_mask warn once; with the mask they do not."""
    model = squeezebert.SqueezeBertModel(tiny_config(pad_token_id=0)).eval()
    pretrained._warn_once.cache_clear()
    with capture_logs() as records:
        model(input_ids=torch.tensor([[2, 5, 0]]), attention_mask=torch.tensor([[1, 1, 0]]))
        model(input_ids=torch.tensor([[2, 5, 6]]))
    assert records == []
    with capture_logs() as records:
        model(input_ids=torch.tensor([[2, 5, 0]]))
        model(input_ids=torch.tensor([[2, 5, 0]]))
    assert len(records) == 1 and "attention_mask" in records[0].getMessage()


# The 4.x mask helpers (transformers 5 removed them): hand-derived values.
def test_extended_attention_mask_and_inverted_mask():
    model = squeezebert.SqueezeBertModel(tiny_config())
    low = torch.finfo(torch.float32).min
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    expected = torch.tensor([[0.0, 0.0, low], [0.0, low, low]])[:, None, None, :]
    assert torch.equal(model.get_extended_attention_mask(mask, (2, 3)), expected)
    assert torch.equal(model.invert_attention_mask(mask), expected)
    square = torch.tensor([[[1, 0], [1, 1]]])
    assert torch.equal(model.get_extended_attention_mask(square, (1, 2)), torch.tensor([[[[0.0, low], [0.0, 0.0]]]]))
    half = model.get_extended_attention_mask(mask, (2, 3), dtype=torch.float16)
    assert half.dtype == torch.float16 and half[0, 0, 0, 2] == torch.finfo(torch.float16).min
    with pytest.raises(ValueError, match=r"2 or 3 dimensions, got shape \(3,\)"):
        model.get_extended_attention_mask(mask[0], (3,))


def test_head_mask_as_five_dimensions():
    model = squeezebert.SqueezeBertModel(tiny_config())  # 2 layers, 4 heads
    assert model.get_head_mask(None, 2) == [None, None]
    per_head = torch.tensor([1, 0, 1, 1])
    five = model.get_head_mask(per_head, 2)
    assert five.shape == (2, 1, 4, 1, 1) and five.dtype == torch.float32
    assert five[:, 0, :, 0, 0].tolist() == [[1.0, 0.0, 1.0, 1.0]] * 2
    per_layer = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.5, 1.0, 1.0, 0.0]])
    assert torch.equal(model.get_head_mask(per_layer, 2)[:, 0, :, 0, 0], per_layer)
    assert model.get_head_mask(per_layer, 2, is_attention_chunked=True).shape == (2, 1, 4, 1, 1, 1)
    with pytest.raises(ValueError, match="1, 2 or 5 dimensions"):
        model.get_head_mask(per_layer[None], 2)


# ------------------------------------------------------------------------------------------------------------------
# Config fields


def test_config_keys_against_the_oracle():
    ours = squeezebert.SqueezeBertConfig().to_dict()
    theirs = transformers.SqueezeBertConfig().to_dict()
    base = transformers.PretrainedConfig().to_dict()
    # only the oracle's own bookkeeping: its version, the load path (a property here) and a constant False
    assert (
        set(theirs) - set(ours)
        == set(base) - set(ours)
        == {"_name_or_path", "transformers_version", "is_encoder_decoder"}
    )
    assert set(ours) <= set(theirs)
    assert {k: v for k, v in ours.items() if k != "id2label"} == {k: theirs[k] for k in ours if k != "id2label"}


def test_chunk_size_feed_forward_is_saved_and_changes_nothing(tmp_path):
    ours, theirs = _pair(MLM, chunk_size_feed_forward=4)
    assert ours.config.chunk_size_feed_forward == 4
    ours.save_pretrained(tmp_path / "ours")
    assert transformers.SqueezeBertConfig.from_pretrained(tmp_path / "ours").chunk_size_feed_forward == 4
    theirs.config.chunk_size_feed_forward = 3
    theirs.save_pretrained(tmp_path / "theirs")
    loaded = squeezebert.SqueezeBertForMaskedLM.from_pretrained(tmp_path / "theirs")
    assert loaded.config.chunk_size_feed_forward == 3
    unchunked = squeezebert.SqueezeBertForMaskedLM(tiny_config()).eval()
    unchunked.load_state_dict(ours.state_dict())
    with torch.no_grad():
        assert torch.equal(unchunked(IDS).logits, ours(IDS).logits)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="chunk_size_feed_forward must be a non-negative integer"):
            tiny_config(chunk_size_feed_forward=bad)


# ------------------------------------------------------------------------------------------------------------------
# token-classification: pre-split words

WORD_LISTS = [
    ["John", "Smithson", "visited", "Washington", "."],
    ["Mary", "works", "at", "Acme-Corp", "in", "São", "Paulo", "!"],  # punctuation and an accent inside words
    ["Zürich", "\u2603snowman", "unaffable", "", "x"],  # an unknown token, an empty word
]


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
@pytest.mark.parametrize("delimiter", [None, "_", "  "])
def test_token_classification_split_words_match_hf(checkpoints, strategy, delimiter):
    folder = checkpoints["ner"]
    hf = transformers.pipeline("token-classification", model=str(folder))
    pipe = squeezebert.pipeline("token-classification", model=folder)
    options = {"aggregation_strategy": strategy, "ignore_labels": [], "is_split_into_words": True}
    if delimiter is not None:
        options["delimiter"] = delimiter
    expected = [hf(words, **options) for words in WORD_LISTS]  # each a list of one result
    assert_same(pipe(WORD_LISTS, **options), [e for [e] in expected])  # a list of word lists: one result each
    assert_same(pipe(WORD_LISTS[1], **options), expected[1])  # one list of words: a list of one result
    assert_same(list(pipe(iter(WORD_LISTS), **options)), [e for [e] in expected])  # any iterable of word lists
    text = (" " if delimiter is None else delimiter).join(WORD_LISTS[1])
    if strategy == "none":  # offsets point into the joined words: each token's characters, hand-checked
        spans = [text[e["start"] : e["end"]] for e in pipe(WORD_LISTS[1], **options)[0]]
        assert spans == ["Mary", "works", "at", "Ac", "me", "-", "Corp", "in", "São", "Paulo", "!"]


def test_token_classification_split_words_errors(checkpoints):
    folder = checkpoints["ner"]
    pipe = squeezebert.pipeline("token-classification", model=folder)
    with pytest.raises(TypeError, match="list of word strings"):
        pipe([["a", 1]], is_split_into_words=True)
    with pytest.raises(TypeError, match="list of words or of word lists"):
        pipe("not split", is_split_into_words=True)
    with pytest.raises(TypeError, match="delimiter must be a string"):
        pipe(["a"], is_split_into_words=True, delimiter=1)
    with pytest.raises(ValueError, match="offset_mapping cannot be given"):
        pipe(["a"], is_split_into_words=True, offset_mapping=[(0, 0), (0, 1), (0, 0)])
    slow = squeezebert.pipeline(
        "token-classification", model=folder, tokenizer=squeezebert.SqueezeBertTokenizer.from_pretrained(folder)
    )
    with pytest.raises(ValueError, match="needs a fast tokenizer"):  # as HF
        slow(["a"], is_split_into_words=True)


def test_token_classification_long_split_words_are_windowed(checkpoints):
    pipe = squeezebert.pipeline("token-classification", model=checkpoints["ner"])
    words = ["one", "two", "three", "four"] * 200  # far more tokens than one window
    [tokens] = pipe(words, is_split_into_words=True, ignore_labels=[])
    text = " ".join(words)
    assert [text[t["start"] : t["end"]] for t in tokens] == words  # each word once, its characters in the text
    assert [t["index"] for t in tokens] == list(range(1, len(words) + 1))
