"""The call-time API of our tokenizers against transformers' BertTokenizerFast on the real bert-base-uncased files:
padding and truncation sides, ``pad()`` (what data collators call), ``is_split_into_words`` with the token maps of
``BatchEncoding``, ``model_input_names``, the too-long warning, and the options saved in tokenizer_config.json.

Both of our tokenizers share the truncation and padding code and follow the ``tokenizers`` library, so the slow one
is held to HF's fast tokenizer as well (on texts both tokenize alike; it has no offsets).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import transformers
from support.logs import capture_logs

from squeezebert import SqueezeBertTokenizer, SqueezeBertTokenizerFast

transformers.logging.set_verbosity_error()

TEXTS = [
    "The quick brown fox jumps over the lazy dog, then naps under the old oak tree.",
    "Tokenization of unaffable, unbelievable words: 1,234.56 e-mail@example.com and more text here.",
    "Short one.",
]
PAIRS = [
    "Where does the fox sleep?",
    "A second sequence that is fairly long as well, with several words in it.",
    "Tiny.",
]
LONG_FIRSTS = [text + " And a tail of extra words to be cut." for text in TEXTS]
WORDS = [
    ["Hello,", "wonderful", "", "New York", "unaffable", "[SEP]", "  ", "world!"],
    ["John", "lives", "in", "Berlin"],
    [],
]


def assert_same_encoding(ours, theirs, *, maps: bool = True, offsets: bool = True):
    """Same keys and values; with ``maps``, the same word ids and sequence ids for every row."""
    keys = [key for key in theirs if offsets or key != "offset_mapping"]
    assert sorted(ours) == sorted(keys)
    for key in keys:
        assert ours[key] == theirs[key], key
    if maps:
        rows = len(theirs["input_ids"]) if isinstance(theirs["input_ids"][0], list) else 1
        for row in range(rows):
            assert ours.sequence_ids(row) == theirs.sequence_ids(row)
            assert ours.word_ids(row) == theirs.word_ids(row)


@pytest.fixture
def sides(slow, fast, hf_fast):
    """Restore the three tokenizers' sides after a test that changes them."""
    yield
    for tokenizer in (slow, fast, hf_fast):
        tokenizer.padding_side = tokenizer.truncation_side = "right"


# ------------------------------------------------------------------------------------------------------------------
# Padding and truncation sides


@pytest.mark.parametrize("truncation_side", ["right", "left"])
@pytest.mark.parametrize(
    "strategy, firsts, max_length", [("longest_first", TEXTS, 20), ("only_first", LONG_FIRSTS, 32)]
)
@pytest.mark.parametrize("stride", [0, 2])
def test_pair_truncation_sides_with_overflow_match_hf(
    slow, fast, hf_fast, sides, truncation_side, strategy, firsts, max_length, stride
):
    options = dict(
        max_length=max_length,
        truncation=strategy,
        stride=stride,
        return_overflowing_tokens=True,
        padding=True,
        padding_side="left",
        return_special_tokens_mask=True,
        return_length=True,
    )
    for tokenizer in (slow, fast, hf_fast):
        tokenizer.truncation_side = truncation_side
    expected = hf_fast(firsts, PAIRS, return_offsets_mapping=True, **options)
    assert_same_encoding(fast(firsts, PAIRS, return_offsets_mapping=True, **options), expected)
    slow_output = slow(firsts, PAIRS, **options)
    assert_same_encoding(slow_output, expected, maps=False, offsets=False)
    assert [slow_output.sequence_ids(i) for i in range(len(expected["input_ids"]))] == [
        expected.sequence_ids(i) for i in range(len(expected["input_ids"]))
    ]


@pytest.mark.parametrize("truncation_side", ["right", "left"])
def test_only_second_and_single_truncation_sides_match_hf(slow, fast, hf_fast, sides, truncation_side):
    for tokenizer in (slow, fast, hf_fast):
        tokenizer.truncation_side = truncation_side
    seconds = [PAIRS[1]] * 3
    pair_options = dict(max_length=40, truncation="only_second", stride=1, return_overflowing_tokens=True)
    single_options = dict(max_length=9, truncation=True, stride=3, return_overflowing_tokens=True, padding=True)
    for texts, text_pair, options in ((TEXTS, seconds, pair_options), (TEXTS, None, single_options)):
        expected = hf_fast(texts, text_pair, return_offsets_mapping=True, **options)
        assert_same_encoding(fast(texts, text_pair, return_offsets_mapping=True, **options), expected)
        assert_same_encoding(slow(texts, text_pair, **options), expected, maps=False, offsets=False)
    # without overflow: the kept window only, on a single input
    expected = hf_fast(TEXTS[1], max_length=8, truncation=True)
    assert fast(TEXTS[1], max_length=8, truncation=True) == expected
    assert slow(TEXTS[1], max_length=8, truncation=True) == expected


def test_left_truncation_keeps_the_end_by_hand(fast, sides):
    text = "one two three four five"
    ids = fast(text, add_special_tokens=False)["input_ids"]
    fast.truncation_side = "left"
    rows = fast(text, max_length=4, truncation=True, stride=1, return_overflowing_tokens=True)["input_ids"]
    cls, sep = fast.cls_token_id, fast.sep_token_id
    # windows of 2 tokens moving 1 token towards the start: [3, 5), [2, 4), [1, 3), [0, 2)
    assert rows == [[cls, *ids[start : start + 2], sep] for start in (3, 2, 1, 0)]


@pytest.mark.parametrize("cls", [SqueezeBertTokenizer, SqueezeBertTokenizerFast])
def test_padding_side_from_constructor_attribute_and_call(minilm_dir, hf_fast, cls):
    options = dict(padding="max_length", max_length=12, return_special_tokens_mask=True)
    left = cls.from_pretrained(minilm_dir, padding_side="left")
    hf_left = transformers.AutoTokenizer.from_pretrained(minilm_dir, padding_side="left")
    assert left.padding_side == "left"
    assert_same_encoding(left(TEXTS[2], PAIRS[2], **options), hf_left(TEXTS[2], PAIRS[2], **options), maps=left.is_fast)
    expected = hf_fast(TEXTS[2], PAIRS[2], padding_side="left", **options)
    assert left(TEXTS[2], PAIRS[2], **options) == expected
    # the call's padding_side wins over the attribute
    assert left(TEXTS[2], PAIRS[2], padding_side="right", **options) == hf_fast(TEXTS[2], PAIRS[2], **options)
    left.padding_side = "right"
    assert left(TEXTS[2], PAIRS[2], **options) == hf_fast(TEXTS[2], PAIRS[2], **options)
    assert left(TEXTS[2], PAIRS[2], **options)["input_ids"][-1] == left.pad_token_id


@pytest.mark.parametrize("cls", [SqueezeBertTokenizer, SqueezeBertTokenizerFast])
def test_bad_sides_raise(minilm_dir, fast, cls):
    for name in ("padding_side", "truncation_side"):
        with pytest.raises(ValueError, match=f"{name} must be 'right' or 'left', not 'middle'"):
            cls.from_pretrained(minilm_dir, **{name: "middle"})
        with pytest.raises(ValueError, match=name):
            setattr(fast, name, "Left")
        assert getattr(fast, name) == "right"
    with pytest.raises(ValueError, match="padding_side must be 'right' or 'left', not 'top'"):
        fast("hello", padding="max_length", max_length=5, padding_side="top")
    with pytest.raises(ValueError, match="padding_side"):
        fast.pad([{"input_ids": [1, 2]}], padding_side="up")


def test_sides_saved_and_loaded(tmp_path, minilm_dir):
    ours = SqueezeBertTokenizerFast.from_pretrained(minilm_dir, padding_side="left", truncation_side="left")
    ours.save_pretrained(tmp_path / "ours")
    config = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text())
    assert (config["padding_side"], config["truncation_side"]) == ("left", "left")
    for loader in (SqueezeBertTokenizer, SqueezeBertTokenizerFast, transformers.AutoTokenizer):
        reloaded = loader.from_pretrained(tmp_path / "ours")
        assert (reloaded.padding_side, reloaded.truncation_side) == ("left", "left"), loader
    # what HF saves, we load
    transformers.AutoTokenizer.from_pretrained(minilm_dir, padding_side="left").save_pretrained(tmp_path / "hf")
    assert SqueezeBertTokenizerFast.from_pretrained(tmp_path / "hf").padding_side == "left"
    # a default tokenizer saves "right" for both, as HF does
    SqueezeBertTokenizer.from_pretrained(minilm_dir).save_pretrained(tmp_path / "default")
    config = json.loads((tmp_path / "default" / "tokenizer_config.json").read_text())
    assert (config["padding_side"], config["truncation_side"]) == ("right", "right")


def test_sides_of_a_tokenizer_json_with_padding_and_truncation(tmp_path, minilm_dir):
    from tokenizers import Tokenizer

    backend = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    backend.enable_truncation(max_length=64, direction="left")
    backend.enable_padding(direction="left", pad_id=0, pad_token="[PAD]")
    backend.save(str(tmp_path / "tokenizer.json"))
    ours = SqueezeBertTokenizerFast(tokenizer_file=tmp_path / "tokenizer.json")
    theirs = transformers.BertTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert (ours.padding_side, ours.truncation_side) == (theirs.padding_side, theirs.truncation_side) == ("left",) * 2
    assert SqueezeBertTokenizerFast(tokenizer_file=tmp_path / "tokenizer.json", padding_side="right").padding_side == (
        "right"
    )


# ------------------------------------------------------------------------------------------------------------------
# The too-long warning


@pytest.mark.parametrize("cls", [SqueezeBertTokenizer, SqueezeBertTokenizerFast])
def test_too_long_warning_once_per_tokenizer(minilm_dir, cls):
    tokenizer = cls.from_pretrained(minilm_dir, model_max_length=10)
    long_text = TEXTS[0]
    n_tokens = len(tokenizer(long_text, verbose=False)["input_ids"])
    assert n_tokens > 10
    with capture_logs() as records:
        tokenizer(long_text, truncation=True)  # truncated: no warning
        tokenizer(long_text, max_length=30, padding="max_length")  # max_length given: no warning
        tokenizer(long_text, verbose=False)
        assert records == []
        tokenizer(long_text)
        tokenizer([long_text, long_text], padding=True)
        tokenizer.encode(long_text)
    assert [record.levelno for record in records] == [logging.WARNING]
    assert records[0].getMessage() == (
        "Token indices sequence length is longer than the specified maximum sequence length for this model "
        f"({n_tokens} > 10). Running this sequence through the model will result in indexing errors"
    )
    assert len(tokenizer(long_text)["input_ids"]) == n_tokens
    with capture_logs() as records:
        cls.from_pretrained(minilm_dir, model_max_length=10)(long_text)
    assert len(records) == 1  # a new tokenizer warns again


# ------------------------------------------------------------------------------------------------------------------
# pad(): what data collators call


def unpadded(tokenizer, **options):
    return [tokenizer(text, pair, **options) for text, pair in zip(TEXTS, PAIRS, strict=True)]


@pytest.mark.parametrize("tokenizer_name", ["slow", "fast"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"padding": "max_length", "max_length": 64},
        {"pad_to_multiple_of": 8, "padding_side": "left"},
        {"padding": False},
        {"return_attention_mask": True},
        {"return_tensors": "pt"},
        {"return_tensors": "np", "padding_side": "left"},
    ],
)
def test_pad_a_list_of_encodings_matches_hf(request, hf_fast, tokenizer_name, options):
    tokenizer = request.getfixturevalue(tokenizer_name)
    encodings = unpadded(tokenizer, return_special_tokens_mask=True)
    expected = hf_fast.pad(unpadded(hf_fast, return_special_tokens_mask=True), **options)
    ours = tokenizer.pad(encodings, **options)
    assert sorted(ours) == sorted(expected)
    for key in expected:
        if isinstance(expected[key], torch.Tensor):
            assert isinstance(ours[key], torch.Tensor) and ours[key].dtype == expected[key].dtype
            assert torch.equal(ours[key], expected[key]), key
        elif isinstance(expected[key], np.ndarray):
            assert isinstance(ours[key], np.ndarray) and ours[key].dtype == expected[key].dtype
            np.testing.assert_array_equal(ours[key], expected[key])
        else:
            assert ours[key] == expected[key], key
    # the inputs are not modified
    assert encodings == unpadded(tokenizer, return_special_tokens_mask=True)


def test_pad_a_dict_of_batches_a_single_encoding_and_tensors(fast, hf_fast):
    batch = {key: [e[key] for e in unpadded(fast)] for key in ("input_ids", "token_type_ids", "attention_mask")}
    hf_batch = {key: [e[key] for e in unpadded(hf_fast)] for key in batch}
    assert fast.pad(batch, padding_side="left") == hf_fast.pad(hf_batch, padding_side="left")
    # one encoding: padding=True leaves it as it is; "max_length" pads it, without a batch dimension
    single = {"input_ids": fast(TEXTS[2])["input_ids"]}
    assert (
        fast.pad(single) == hf_fast.pad(dict(single)) == {"input_ids": single["input_ids"], "attention_mask": [1] * 5}
    )
    assert fast.pad(single, padding="max_length", max_length=7) == hf_fast.pad(
        dict(single), padding="max_length", max_length=7
    )
    # 1-d tensors per example (a dataset with format "torch"): tensors come back
    features = [{key: torch.tensor(value) for key, value in e.items()} for e in unpadded(fast)]
    hf_features = [{key: torch.tensor(value) for key, value in e.items()} for e in unpadded(hf_fast)]
    ours, theirs = fast.pad(features), hf_fast.pad(hf_features)
    assert sorted(ours) == sorted(theirs)
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
    # a 2-d numpy batch
    arrays = fast.pad(unpadded(fast), return_tensors="np")
    assert isinstance(fast.pad(dict(arrays), padding="max_length", max_length=40)["input_ids"], np.ndarray)


def test_pad_keeps_other_keys_and_drops_the_mask_when_asked(fast):
    features = [dict(e, label=i) for i, e in enumerate(unpadded(fast, return_token_type_ids=False))]
    padded = fast.pad(features, return_tensors="pt")
    assert padded["label"].tolist() == [0, 1, 2]
    float_labels = fast.pad([dict(e, label=0.5) for e in unpadded(fast)], return_tensors="pt")["label"]
    assert float_labels.dtype == torch.float32
    no_mask = fast.pad(unpadded(fast), return_attention_mask=False)
    assert "attention_mask" not in no_mask and len({len(row) for row in no_mask["input_ids"]}) == 1


def test_data_collator_with_padding_matches_hf(fast, slow, hf_fast):
    features = [dict(e, label=i) for i, e in enumerate(unpadded(hf_fast))]
    expected = transformers.DataCollatorWithPadding(hf_fast, pad_to_multiple_of=8)(features)
    for tokenizer in (fast, slow):
        ours_features = [dict(e, label=i) for i, e in enumerate(unpadded(tokenizer))]
        ours = transformers.DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)(ours_features)
        assert sorted(ours) == sorted(expected)
        assert all(torch.equal(ours[key], expected[key]) for key in expected)


def test_pad_bad_input(fast):
    with pytest.raises(ValueError, match="'input_ids'"):
        fast.pad({"attention_mask": [[1]]})
    with pytest.raises(ValueError, match="encoding 1 has the keys"):
        fast.pad([{"input_ids": [1]}, {"input_ids": [1], "label": 0}])
    with pytest.raises(TypeError, match="encoded_inputs"):
        fast.pad("not an encoding")
    with pytest.raises(ValueError, match="'attention_mask' has 1 rows but 'input_ids' has 2"):
        fast.pad({"input_ids": [[1], [2, 3]], "attention_mask": [[1]]})


# ------------------------------------------------------------------------------------------------------------------
# model_input_names


@pytest.mark.parametrize("cls", [SqueezeBertTokenizer, SqueezeBertTokenizerFast])
def test_model_input_names(tmp_path, minilm_dir, cls):
    assert cls.model_input_names == ["input_ids", "token_type_ids", "attention_mask"]
    names = ["input_ids", "attention_mask"]
    ours = cls.from_pretrained(minilm_dir, model_input_names=names)
    theirs = transformers.AutoTokenizer.from_pretrained(minilm_dir, model_input_names=names)
    assert ours.model_input_names == theirs.model_input_names == names
    assert ours(TEXTS, padding=True) == theirs(TEXTS, padding=True)
    assert ours(TEXTS[0], return_token_type_ids=True) == theirs(TEXTS[0], return_token_type_ids=True)
    assert ours.pad(unpadded(ours)) == theirs.pad(unpadded(theirs))
    ours.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["model_input_names"] == names
    assert cls.from_pretrained(tmp_path).model_input_names == names
    with pytest.raises(TypeError, match="model_input_names"):
        cls.from_pretrained(minilm_dir, model_input_names="input_ids")
    with pytest.raises(ValueError, match="model_input_names"):
        cls.from_pretrained(minilm_dir, model_input_names=[])


# ------------------------------------------------------------------------------------------------------------------
# is_split_into_words and the token maps


@pytest.mark.parametrize(
    "text, text_pair",
    [
        (WORDS[0], None),
        (WORDS[0], WORDS[1]),
        (WORDS, None),
        (WORDS, [["a", "b"], ["c"], ["d", "e", "f"]]),
        ([(WORDS[0], WORDS[1]), (WORDS[1], WORDS[2]), ("a", "b")], None),
        ([], None),
    ],
)
def test_split_into_words_matches_hf(slow, fast, hf_fast, text, text_pair):
    options = dict(is_split_into_words=True, padding=True, return_special_tokens_mask=True)
    expected = hf_fast(text, text_pair, return_offsets_mapping=True, **options)
    assert_same_encoding(fast(text, text_pair, return_offsets_mapping=True, **options), expected)
    assert_same_encoding(slow(text, text_pair, **options), expected, offsets=False)


def test_split_into_words_with_truncation_and_left_padding(slow, fast, hf_fast, sides):
    options = dict(
        is_split_into_words=True,
        max_length=8,
        truncation=True,
        stride=2,
        return_overflowing_tokens=True,
        padding=True,
        padding_side="left",
    )
    for tokenizer in (slow, fast, hf_fast):
        tokenizer.truncation_side = "left"
    expected = hf_fast(WORDS, return_offsets_mapping=True, **options)
    assert_same_encoding(fast(WORDS, return_offsets_mapping=True, **options), expected)
    assert_same_encoding(slow(WORDS, **options), expected, offsets=False)


def test_token_maps_match_hf(slow, fast, hf_fast):
    plain = fast([TEXTS[1], TEXTS[2]], [PAIRS[1], PAIRS[2]], padding=True)
    words = slow(WORDS[:2], is_split_into_words=True, padding=True)
    hf_plain = hf_fast([TEXTS[1], TEXTS[2]], [PAIRS[1], PAIRS[2]], padding=True)
    hf_words = hf_fast(WORDS[:2], is_split_into_words=True, padding=True)
    for ours, theirs in ((plain, hf_plain), (words, hf_words)):
        for row in range(2):
            n_tokens = len(theirs["input_ids"][row])
            assert [ours.token_to_word(row, t) for t in range(n_tokens)] == theirs.word_ids(row)
            assert [ours.token_to_sequence(row, t) for t in range(n_tokens)] == theirs.sequence_ids(row)
            assert ours.token_to_word(row, n_tokens + 3) is theirs.token_to_word(row, n_tokens + 3) is None
            for word in range(12):
                for sequence in (0, 1):
                    assert ours.word_to_tokens(row, word, sequence) == theirs.word_to_tokens(row, word, sequence)
    single, hf_single = fast(TEXTS[2]), hf_fast(TEXTS[2])
    assert (single.token_to_word(1), single.word_to_tokens(1)) == (hf_single.token_to_word(1), (2, 3))
    assert tuple(hf_single.word_to_tokens(1)) == (2, 3)
    assert single.word_to_tokens(1).start == 2


def test_word_ids_of_the_slow_tokenizer_on_text_raise(slow, fast):
    encoding = slow(TEXTS[0])
    assert encoding.sequence_ids() == fast(TEXTS[0]).sequence_ids()
    with pytest.raises(ValueError, match="is_split_into_words=True"):
        encoding.word_ids()
    with pytest.raises(ValueError, match="word_ids"):
        fast.pad(unpadded(fast)).word_ids()


@pytest.mark.parametrize("cls", [SqueezeBertTokenizer, SqueezeBertTokenizerFast])
def test_split_into_words_bad_input(minilm_dir, cls):
    tokenizer = cls.from_pretrained(minilm_dir)
    with pytest.raises(TypeError, match="list of words or a batch"):
        tokenizer("hello world", is_split_into_words=True)
    with pytest.raises(TypeError, match="item 1 of the batch must be a list of words"):
        tokenizer([["a"], ["b", 3]], is_split_into_words=True)
    with pytest.raises(ValueError, match="text_pair must be a batch of the same length"):
        tokenizer([["a"], ["b"]], [["c"]], is_split_into_words=True)


# ------------------------------------------------------------------------------------------------------------------
# Attributes and options


@pytest.mark.parametrize("cls", [SqueezeBertTokenizer, SqueezeBertTokenizerFast])
def test_attributes_match_hf(minilm_dir, hf_fast, cls):
    ours = cls.from_pretrained(minilm_dir)
    for name in (
        "bos_token",
        "eos_token",
        "bos_token_id",
        "eos_token_id",
        "pad_token_type_id",
        "max_len_single_sentence",
        "max_len_sentences_pair",
        "padding_side",
        "truncation_side",
        "model_input_names",
    ):
        assert getattr(ours, name) == getattr(hf_fast, name), name
    assert (ours.max_len_single_sentence, ours.max_len_sentences_pair) == (510, 509)
    for pair in (False, True):
        assert ours.num_special_tokens_to_add(pair=pair) == hf_fast.num_special_tokens_to_add(pair=pair)
    unlimited = cls.from_pretrained(minilm_dir, model_max_length=int(1e30))
    assert unlimited.max_len_single_sentence is unlimited.max_len_sentences_pair is None


@pytest.mark.parametrize("cls", [SqueezeBertTokenizer, SqueezeBertTokenizerFast])
def test_unknown_options_kept_and_saved(tmp_path, minilm_dir, cls):
    ours = cls.from_pretrained(minilm_dir, foo="bar", nested={"a": [1, 2]})
    theirs = transformers.AutoTokenizer.from_pretrained(minilm_dir, foo="bar", nested={"a": [1, 2]})
    assert ours.init_kwargs["foo"] == theirs.init_kwargs["foo"] == "bar"
    ours.save_pretrained(tmp_path / "ours")
    theirs.save_pretrained(tmp_path / "theirs")
    ours_config = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text())
    theirs_config = json.loads((tmp_path / "theirs" / "tokenizer_config.json").read_text())
    for key in ("foo", "nested", "padding_side", "truncation_side", "model_max_length", "do_lower_case"):
        assert ours_config[key] == theirs_config[key], key
    assert "model_input_names" not in ours_config and "model_input_names" not in theirs_config
    reloaded = cls.from_pretrained(tmp_path / "ours")
    assert reloaded.init_kwargs["nested"] == {"a": [1, 2]}
    assert transformers.AutoTokenizer.from_pretrained(tmp_path / "ours").init_kwargs["foo"] == "bar"
    assert cls(vocab_file=minilm_dir / "vocab.txt", option=1).init_kwargs == {"option": 1}
