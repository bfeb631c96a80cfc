"""What both SqueezeBERT tokenizers share: input checking, special tokens, truncation with overflow windows,
padding, tensors, decoding, saving and loading.

A subclass only says how to turn texts into token ids (:meth:`TokenizerBase._encode_texts`), how to map between
ids and tokens, and how to decode; everything :meth:`TokenizerBase.__call__` does around that lives here, so the
slow and the fast tokenizer behave the same way by construction.

How a call is processed:

1. the input (a string, a pair, or lists of them) becomes a list of ``(first, second | None)`` text pairs;
2. every text is tokenized without special tokens (one batched call to the subclass);
3. truncation picks, per pair, the token windows to keep (several with ``return_overflowing_tokens``, each
   window becoming a row of the output);
4. each row gets ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]``, its token type ids and masks;
5. padding (on ``padding_side``), then conversion to tensors.

Truncation removes tokens on ``truncation_side``: the kept window is the start of a sequence ("right") or its end
("left"), and overflow windows walk away from it.

Truncation follows the ``tokenizers`` library exactly (how ``longest_first`` shares the budget between the two
sequences of a pair, the stride between overflow windows, and the order of the overflow rows of a pair), so the
slow tokenizer's rows match the fast one's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from .added_tokens import ADDED_TOKENS_FILE, AddedTokensMixin
from .batch import BatchEncoding

VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

DEFAULT_MODEL_MAX_LENGTH = 512
SPECIAL_TOKEN_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

_PADDING = {False: None, "do_not_pad": None, True: "longest", "longest": "longest", "max_length": "max_length"}
_TRUNCATION = {
    False: None,
    "do_not_truncate": None,
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
}
_NO_LIMIT = 10**18  # a model_max_length at or above this (HF writes 1e30) means "no limit"
SIDES = ("right", "left")
MODEL_INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
# tokenizer_config.json keys that describe the file rather than the tokenizer: not passed to the constructor
_NOT_OPTIONS = frozenset(
    {
        "tokenizer_class",
        "name_or_path",
        "vocab_file",
        "tokenizer_file",
        "special_tokens_map_file",
        "added_tokens_decoder",
    }
)

logger = logging.getLogger(__name__)


class _Row(NamedTuple):
    """One output row: a window ``[a_start, a_stop)`` of text ``a`` and optionally one of text ``b``."""

    sample: int
    a: int
    a_start: int
    a_stop: int
    b: int | None
    b_start: int
    b_stop: int


class _Texts(NamedTuple):
    """Token ids of every text of a call (special tokens not added), with offsets / word ids when available."""

    ids: list[list[int]]
    offsets: list[list[tuple[int, int]]] | None
    word_ids: Callable[[int], list[int | None]] | None  # word ids of text i, computed on demand


def _windows(length: int, keep: int, stride: int, overflow: bool, side: str) -> list[tuple[int, int]]:
    """The ``[start, stop)`` windows of a sequence of ``length`` tokens truncated to ``keep`` tokens on ``side``.

    The first window is the kept part: the first ``keep`` tokens (``side="right"``) or the last ones (``"left"``).
    With ``overflow`` the following ones cover the rest, each moved ``keep - stride`` tokens away from the previous
    one (so consecutive windows share ``stride`` tokens), towards the end ("right") or the start ("left").
    """
    if keep >= length:
        return [(0, length)]
    if not overflow:
        return [(0, keep)] if side == "right" else [(length - keep, length)]
    if keep == 0:
        raise ValueError("truncation leaves no room for the tokens of a sequence, so it cannot overflow")
    if stride >= keep:
        raise ValueError(
            f"stride={stride} must be smaller than the {keep} tokens of a sequence that fit in max_length "
            "(max_length minus the special tokens, and for longest_first pairs, minus the other sequence)"
        )
    windows = []
    if side == "right":
        for start in range(0, length, keep - stride):
            windows.append((start, min(start + keep, length)))
            if windows[-1][1] == length:
                break
    else:
        for stop in range(length, 0, stride - keep):
            windows.append((max(stop - keep, 0), stop))
            if windows[-1][0] == 0:
                break
    return windows


def _truncated_rows(
    sample: int,
    a: int,
    len_a: int,
    b: int | None,
    len_b: int,
    room: int,
    strategy: str,
    stride: int,
    overflow: bool,
    side: str,
) -> list[_Row]:
    """The rows of one (pair of) text(s) of ``len_a`` (+ ``len_b``) tokens when at most ``room`` tokens fit,
    truncated on ``side``."""
    windows_b = [(0, len_b)]
    excess = len_a + len_b - room
    if excess <= 0:
        windows_a = [(0, len_a)]
    elif b is None and strategy != "only_second":
        windows_a = _windows(len_a, room, stride, overflow, side)
    elif strategy == "longest_first":
        # The shorter sequence keeps what it can of its share; when both are too long they split the room.
        short, long_ = sorted((len_a, len_b))
        long_ = short if short > room else max(short, room - short)
        if short + long_ > room:
            short, long_ = room // 2, room // 2 + room % 2
        keep_a, keep_b = (long_, short) if len_a > len_b else (short, long_)
        windows_a = _windows(len_a, keep_a, stride, overflow, side)
        windows_b = _windows(len_b, keep_b, stride, overflow, side)
    else:
        if strategy == "only_second" and b is None:
            raise ValueError("truncation='only_second' needs pairs of texts (text_pair)")
        target = len_a if strategy == "only_first" else len_b
        if target <= excess:
            which = "first" if strategy == "only_first" else "second"
            raise ValueError(
                f"cannot truncate with {strategy!r}: {len_a + len_b} tokens must lose {excess} to fit max_length, "
                f"but the {which} sequence has only {target}; use a larger max_length or another strategy"
            )
        if strategy == "only_first":
            windows_a = _windows(len_a, len_a - excess, stride, overflow, side)
        else:
            windows_a = [(0, len_a)]
            windows_b = _windows(len_b, len_b - excess, stride, overflow, side)
    # Row order of the tokenizers library: the main row, then each overflow window of A with B (and with each of
    # B's overflow windows), then A's main window with each of B's overflow windows.
    pairs = [(windows_a[0], windows_b[0])]
    for window_a in windows_a[1:]:
        pairs += [(window_a, window_b) for window_b in windows_b]
    pairs += [(windows_a[0], window_b) for window_b in windows_b[1:]]
    return [_Row(sample, a, a0, a1, b, b0, b1) for (a0, a1), (b0, b1) in pairs]


def _as_id_list(token_ids: Any) -> list[int]:
    """Accept an int, a list of ints, a numpy array or a torch tensor."""
    if hasattr(token_ids, "tolist"):
        token_ids = token_ids.tolist()
    if isinstance(token_ids, int):
        return [token_ids]
    return [int(i) for i in token_ids]


def _check_side(name: str, side: Any) -> str:
    if side not in SIDES:
        raise ValueError(f"{name} must be 'right' or 'left', not {side!r}")
    return side


def _padded(row: list, length: int, value: Any, side: str) -> list:
    """``row`` with ``value`` added on ``side`` up to ``length`` items (unchanged when already that long)."""
    padding = [value] * (length - len(row))
    return row + padding if side == "right" else padding + row


def _row_map(
    rows: list[_Row], pads: list[int], side: str, special: list, values_of: Callable[[int, int], list]
) -> Callable[[int], list]:
    """A function giving one value per token of output row ``i``: ``values_of(text, 0 or 1)`` sliced to the row's
    window of its first / second text, ``special`` around them and ``None`` for its padding."""

    def row_map(index: int) -> list:
        row = rows[index]
        values = special + values_of(row.a, 0)[row.a_start : row.a_stop] + special
        if row.b is not None:
            values += values_of(row.b, 1)[row.b_start : row.b_stop] + special
        return _padded(values, len(values) + pads[index], None, side)

    return row_map


def _tensor_type_of(value: Any) -> str | None:
    """The tensor type ("pt" / "np") when the rows (or ids) of ``value`` are torch tensors / numpy arrays, else None."""
    first = value[0] if len(value) else None
    if isinstance(first, (list, tuple)):
        first = next((row[0] for row in value if len(row)), None)
    library = type(first).__module__.split(".")[0]
    return {"torch": "pt", "numpy": "np"}.get(library)


def _as_lists(value: Any) -> Any:
    """Tensors and arrays (also inside lists) as nested Python lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_as_lists(item) for item in value]
    return value


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces decoding puts before punctuation and inside English contractions."""
    for before, after in (
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ):
        text = text.replace(before, after)
    return text


def _special_token_value(value: Any) -> Any:
    """Special tokens are saved either as strings or as {"content": ...} objects."""
    return value.get("content") if isinstance(value, dict) else value


class TokenizerBase(AddedTokensMixin):
    """Shared implementation of :class:`SqueezeBertTokenizer` and :class:`SqueezeBertTokenizerFast`."""

    #: the model inputs, main one first; the default of ``return_token_type_ids`` / ``return_attention_mask``
    model_input_names: list[str] = list(MODEL_INPUT_NAMES)
    #: token type id of padding tokens
    pad_token_type_id: int = 0
    #: BERT has no beginning / end of sequence tokens
    bos_token: str | None = None
    eos_token: str | None = None

    def __init__(
        self,
        *,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        model_max_length: int | None = DEFAULT_MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces: bool = True,
        padding_side: str = "right",
        truncation_side: str = "right",
        model_input_names: Sequence[str] | None = None,
        **kwargs: Any,
    ):
        """The options every tokenizer has; ``kwargs`` it does not use are kept in :attr:`init_kwargs` and saved to
        tokenizer_config.json."""
        for name, value in zip(
            SPECIAL_TOKEN_NAMES, (unk_token, sep_token, pad_token, cls_token, mask_token), strict=True
        ):
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name} must be a non-empty string, not {value!r}")
        self.unk_token = unk_token
        self.sep_token = sep_token
        self.pad_token = pad_token
        self.cls_token = cls_token
        self.mask_token = mask_token
        if model_max_length is not None and model_max_length >= _NO_LIMIT:
            model_max_length = None
        self.model_max_length = model_max_length
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        if model_input_names is not None:
            if isinstance(model_input_names, str) or not all(isinstance(name, str) for name in model_input_names):
                raise TypeError(f"model_input_names must be a list of strings, not {model_input_names!r}")
            if not model_input_names:
                raise ValueError("model_input_names must name at least the main input (input_ids)")
            self.model_input_names = list(model_input_names)
        self.init_kwargs = dict(kwargs)
        self._warned_too_long = False

    @property
    def padding_side(self) -> str:
        """Where padding goes: "right" (after the tokens) or "left" (before them)."""
        return self._padding_side

    @padding_side.setter
    def padding_side(self, side: str) -> None:
        self._padding_side = _check_side("padding_side", side)

    @property
    def truncation_side(self) -> str:
        """Where truncation removes tokens: "right" (keeps the start of a sequence) or "left" (keeps its end)."""
        return self._truncation_side

    @truncation_side.setter
    def truncation_side(self, side: str) -> None:
        self._truncation_side = _check_side("truncation_side", side)

    @property
    def max_len_single_sentence(self) -> int | None:
        """The most tokens of one sequence that fit in ``model_max_length`` with its special tokens."""
        return None if self.model_max_length is None else self.model_max_length - self.num_special_tokens_to_add()

    @property
    def max_len_sentences_pair(self) -> int | None:
        """The most tokens of a pair of sequences that fit in ``model_max_length`` with their special tokens."""
        if self.model_max_length is None:
            return None
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    # ------------------------------------------------------------------------------------------------------------
    # What subclasses provide

    def _encode_texts(self, texts: list[str] | list[list[str]], with_offsets: bool, split_into_words: bool) -> _Texts:
        """Token ids (no special tokens) of each text, and their character offsets when ``with_offsets``.

        With ``split_into_words`` each text is a list of words, tokenized one by one (the word ids are their
        indices in the list; offsets are within each word)."""
        raise NotImplementedError

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into tokens (no special tokens added)."""
        raise NotImplementedError

    def _token_to_id(self, token: str) -> int:
        raise NotImplementedError

    def _id_to_token(self, index: int) -> str | None:
        raise NotImplementedError

    def _decode_ids(self, ids: list[int], skip_special_tokens: bool) -> str:
        raise NotImplementedError

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens into text, gluing ``##`` continuation pieces to the previous token."""
        raise NotImplementedError

    def get_vocab(self) -> dict[str, int]:
        """The token -> id mapping."""
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the base vocabulary."""
        raise NotImplementedError

    def _tokenizer_config(self) -> dict[str, Any]:
        """The constructor options written to tokenizer_config.json."""
        raise NotImplementedError

    def _save_extra_files(self, save_directory: str) -> tuple[str, ...]:
        return ()

    # ------------------------------------------------------------------------------------------------------------
    # Special tokens

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """``{"unk_token": "[UNK]", ...}``."""
        return {name: getattr(self, name) for name in SPECIAL_TOKEN_NAMES}

    @property
    def all_special_tokens(self) -> list[str]:
        """The named special tokens, then the extra ones."""
        return list(dict.fromkeys((*self.special_tokens_map.values(), *self._extra_special_tokens)))

    @property
    def all_special_ids(self) -> list[int]:
        return [self._token_to_id(token) for token in self.all_special_tokens]

    @property
    def unk_token_id(self) -> int:
        return self._token_to_id(self.unk_token)

    @property
    def sep_token_id(self) -> int:
        return self._token_to_id(self.sep_token)

    @property
    def pad_token_id(self) -> int:
        return self._token_to_id(self.pad_token)

    @property
    def cls_token_id(self) -> int:
        return self._token_to_id(self.cls_token)

    @property
    def mask_token_id(self) -> int:
        return self._token_to_id(self.mask_token)

    @property
    def bos_token_id(self) -> int | None:
        return None if self.bos_token is None else self._token_to_id(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return None if self.eos_token is None else self._token_to_id(self.eos_token)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """2 for ``[CLS] A [SEP]``, 3 for ``[CLS] A [SEP] B [SEP]``."""
        return 3 if pair else 2

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """``[CLS] X [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + list(token_ids_1) + sep

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 for each special token of ``build_inputs_with_special_tokens(token_ids_0, token_ids_1)``, else 0.

        With ``already_has_special_tokens=True``, ``token_ids_0`` already holds them: every special token id in it
        is marked.
        """
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError("token_ids_1 must be None when already_has_special_tokens=True")
            special = set(self.all_special_ids)
            return [1 if i in special else 0 for i in token_ids_0]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``."""
        if token_ids_1 is None:
            return [0] * (len(token_ids_0) + 2)
        return [0] * (len(token_ids_0) + 2) + [1] * (len(token_ids_1) + 1)

    # ------------------------------------------------------------------------------------------------------------
    # Tokens and ids

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """The id of a token (the unknown token's id if it is not in the vocabulary), or of each token."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(token) for token in tokens]

    def convert_ids_to_tokens(
        self, ids: int | Sequence[int], skip_special_tokens: bool = False
    ) -> str | None | list[str | None]:
        """The token of an id, or of each id (leaving out special tokens, and added tokens marked special, if
        ``skip_special_tokens``)."""
        if isinstance(ids, int):
            return self._id_to_token(ids)
        ids = _as_id_list(ids)
        if skip_special_tokens:
            ids = self._without_special_ids(ids)
        return [self._id_to_token(i) for i in ids]

    def __len__(self) -> int:
        return len(self.get_vocab())

    # ------------------------------------------------------------------------------------------------------------
    # Encoding

    def __call__(
        self,
        text: str | Sequence[str] | Sequence[tuple[str, str]],
        text_pair: str | Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        is_split_into_words: bool = False,
        padding_side: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Tokenize a text, a pair of texts (``text``, ``text_pair``), or a batch of either.

        A batch is a list of texts (with an optional list ``text_pair`` of the same length) or a list of
        ``(text, text_pair)`` tuples. A single input gives rows without a batch dimension, unless tensors or
        overflowing tokens are asked for.

        Args:
            add_special_tokens: wrap each row as ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]``.
            padding: ``True`` / ``"longest"`` pads to the longest row, ``"max_length"`` to ``max_length``.
            truncation: ``True`` / ``"longest_first"`` removes tokens from the longer sequence of a pair first;
                ``"only_first"`` / ``"only_second"`` from that sequence only; on :attr:`truncation_side`. Given
                ``max_length`` but neither padding nor truncation, truncation is ``"longest_first"``.
            max_length: the length to truncate / pad to; defaults to ``model_max_length``.
            stride: with ``return_overflowing_tokens``, how many tokens consecutive windows share.
            pad_to_multiple_of: round the padded length up to a multiple of this.
            return_tensors: ``"pt"`` (torch), ``"np"`` (numpy) or ``None`` (lists).
            return_token_type_ids, return_attention_mask: default to whether :attr:`model_input_names` has them.
            return_overflowing_tokens: return the truncated tokens as extra rows (windows), with
                ``overflow_to_sample_mapping`` giving the input each row comes from.
            return_offsets_mapping: (fast tokenizer only) the ``(start, end)`` characters of each token.
            is_split_into_words: each text is a list of words (a batch is a list of such lists, with pairs as
                tuples of two lists); each word is tokenized on its own and ``word_ids()`` gives its index.
            padding_side: ``"right"`` or ``"left"``; defaults to :attr:`padding_side`.
            verbose: warn (once per tokenizer) when, without ``max_length``, a row is longer than
                ``model_max_length``.
        """
        padding_strategy, truncation_strategy, max_length = self._strategies(
            padding, truncation, max_length, stride, pad_to_multiple_of
        )
        padding_side = self.padding_side if padding_side is None else _check_side("padding_side", padding_side)
        if return_offsets_mapping and not self.is_fast:
            raise NotImplementedError("return_offsets_mapping needs SqueezeBertTokenizerFast")
        if return_tensors is not None and return_tensors not in ("pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, not {return_tensors!r}")

        batched, pairs = self._as_pairs(text, text_pair, is_split_into_words)
        texts = [first for first, _ in pairs]
        second_index = []
        for first_second in pairs:
            if first_second[1] is None:
                second_index.append(None)
            else:
                second_index.append(len(texts))
                texts.append(first_second[1])
        encoded = self._encode_texts(texts, return_offsets_mapping, is_split_into_words)
        text_lengths = [len(ids) for ids in encoded.ids]

        rows = []
        if truncation_strategy is not None:
            n_special = self.num_special_tokens_to_add(pair=any(b is not None for b in second_index))
            if add_special_tokens and max_length < n_special:
                raise ValueError(f"max_length={max_length} is too small to hold the {n_special} special tokens")
        for sample, b in enumerate(second_index):
            len_a, len_b = text_lengths[sample], 0 if b is None else text_lengths[b]
            if truncation_strategy is not None:
                room = max_length - (self.num_special_tokens_to_add(b is not None) if add_special_tokens else 0)
                if len_a + len_b > room:
                    rows += _truncated_rows(
                        sample,
                        sample,
                        len_a,
                        b,
                        len_b,
                        room,
                        truncation_strategy,
                        stride,
                        return_overflowing_tokens,
                        self.truncation_side,
                    )
                    continue
            rows.append(_Row(sample, sample, 0, len_a, b, 0, len_b))

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        columns = self._build_columns(
            encoded,
            rows,
            add_special_tokens=add_special_tokens,
            return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            return_special_tokens_mask=return_special_tokens_mask,
            return_offsets_mapping=return_offsets_mapping,
        )
        unpadded = [len(ids) for ids in columns["input_ids"]]
        target = self._padded_length(unpadded, padding_strategy, max_length, pad_to_multiple_of)
        if target is not None:
            self._pad_columns(columns, target, padding_side)
        row_lengths = [len(ids) for ids in columns["input_ids"]]
        if return_length:
            columns["length"] = row_lengths
        if return_overflowing_tokens:
            columns["overflow_to_sample_mapping"] = [row.sample for row in rows]
        if verbose and max_length is None:
            self._warn_if_too_long(max(row_lengths, default=0))

        pads = [padded - n for padded, n in zip(row_lengths, unpadded, strict=True)]
        special = [None] if add_special_tokens else []
        word_ids = None
        if encoded.word_ids is not None:
            word_ids = _row_map(rows, pads, padding_side, special, lambda text, _: encoded.word_ids(text))
        sequence_ids = _row_map(rows, pads, padding_side, special, lambda text, i: [i] * text_lengths[text])
        if not batched and return_tensors is None and not return_overflowing_tokens:
            columns = {key: value[0] for key, value in columns.items()}
        return BatchEncoding(columns, word_ids=word_ids, sequence_ids=sequence_ids).convert_to_tensors(return_tensors)

    def _warn_if_too_long(self, length: int) -> None:
        """Warn once per tokenizer that a row of ``length`` tokens is too long for the model."""
        if self.model_max_length and length > self.model_max_length and not self._warned_too_long:
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length for this model "
                f"({length} > {self.model_max_length}). Running this sequence through the model will result in "
                "indexing errors"
            )
            self._warned_too_long = True

    def _strategies(
        self,
        padding: bool | str,
        truncation: bool | str | None,
        max_length: int | None,
        stride: int,
        pad_to_multiple_of: int | None,
    ) -> tuple[str | None, str | None, int | None]:
        """Check the padding / truncation options; return the padding and truncation strategies and max_length."""
        if not isinstance(padding, (bool, str)) or padding not in _PADDING:
            raise ValueError(f"padding must be one of {list(_PADDING)}, not {padding!r}")
        padding_strategy = _PADDING[padding]
        if truncation is None:
            truncation = max_length is not None and padding_strategy is None
        if not isinstance(truncation, (bool, str)) or truncation not in _TRUNCATION:
            raise ValueError(f"truncation must be one of {list(_TRUNCATION)} or None, not {truncation!r}")
        truncation_strategy = _TRUNCATION[truncation]
        if max_length is None and (truncation_strategy or padding_strategy == "max_length"):
            max_length = self.model_max_length
            if max_length is None:  # no limit known: nothing to truncate or pad to
                truncation_strategy = None
                padding_strategy = None if padding_strategy == "max_length" else padding_strategy
        if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
            raise ValueError(f"max_length must be a non-negative int, not {max_length!r}")
        if not isinstance(stride, int) or stride < 0:
            raise ValueError(f"stride must be a non-negative int, not {stride!r}")
        if pad_to_multiple_of is not None:
            if not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0:
                raise ValueError(f"pad_to_multiple_of must be a positive int, not {pad_to_multiple_of!r}")
            if truncation_strategy and padding_strategy and max_length % pad_to_multiple_of:
                raise ValueError(
                    f"max_length={max_length} must be a multiple of pad_to_multiple_of={pad_to_multiple_of} "
                    "when both truncation and padding are on"
                )
        return padding_strategy, truncation_strategy, max_length

    @staticmethod
    def _as_pairs(text: Any, text_pair: Any, is_split_into_words: bool = False) -> tuple[bool, list[tuple[Any, Any]]]:
        """Check the input and turn it into ``(batched, [(first, second or None), ...])``."""
        if is_split_into_words:
            return TokenizerBase._as_word_pairs(text, text_pair)
        if isinstance(text, str):
            if text_pair is not None and not isinstance(text_pair, str):
                raise TypeError(
                    f"text is a single string, so text_pair must be a string too, not {type(text_pair).__name__}"
                )
            return False, [(text, text_pair)]
        if not isinstance(text, (list, tuple)):
            raise TypeError(
                f"text must be a string, a list of strings or a list of (text, text_pair) tuples, "
                f"not {type(text).__name__}"
            )
        if text_pair is not None:
            if not isinstance(text_pair, (list, tuple)):
                raise TypeError(f"text is a batch, so text_pair must be a list too, not {type(text_pair).__name__}")
            if len(text_pair) != len(text):
                raise ValueError(f"text and text_pair must have the same length, got {len(text)} and {len(text_pair)}")
            pairs = list(zip(text, text_pair, strict=True))
        else:
            pairs = [tuple(item) if isinstance(item, (list, tuple)) else (item, None) for item in text]
        for index, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"item {index} of the batch has {len(pair)} texts; a pair has 2")
            for part in pair:
                if not isinstance(part, str) and part is not None:
                    raise TypeError(f"item {index} of the batch holds a {type(part).__name__}, not a string")
            if pair[0] is None:
                raise TypeError(f"item {index} of the batch is None, not a string")
        return True, pairs

    @staticmethod
    def _as_word_pairs(text: Any, text_pair: Any) -> tuple[bool, list[tuple[list[str], list[str] | None]]]:
        """:meth:`_as_pairs` for ``is_split_into_words=True``: a list of words, a batch of them, or pairs."""

        def words(value: Any, what: str) -> list[str]:
            if not isinstance(value, (list, tuple)) or not all(isinstance(word, str) for word in value):
                raise TypeError(
                    f"with is_split_into_words=True, {what} must be a list of words (strings), not {value!r:.80}"
                )
            return list(value)

        if not isinstance(text, (list, tuple)):
            raise TypeError(
                "with is_split_into_words=True, text must be a list of words or a batch of such lists, "
                f"not {type(text).__name__}"
            )
        if not text or not isinstance(text[0], (list, tuple)):
            return False, [(words(text, "text"), None if text_pair is None else words(text_pair, "text_pair"))]
        if text_pair is not None:
            if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
                raise ValueError("text is a batch of word lists, so text_pair must be a batch of the same length")
            return True, [
                (words(first, f"item {index} of text"), words(second, f"item {index} of text_pair"))
                for index, (first, second) in enumerate(zip(text, text_pair, strict=True))
            ]
        pairs = []
        for index, item in enumerate(text):
            what = f"item {index} of the batch"
            if isinstance(item, tuple) and len(item) == 2 and all(isinstance(part, (list, tuple)) for part in item):
                pairs.append((words(item[0], what), words(item[1], what)))
            else:
                pairs.append((words(item, what), None))
        return True, pairs

    def _build_columns(
        self,
        encoded: _Texts,
        rows: list[_Row],
        *,
        add_special_tokens: bool,
        return_token_type_ids: bool,
        return_attention_mask: bool,
        return_special_tokens_mask: bool,
        return_offsets_mapping: bool,
    ) -> dict[str, list]:
        """Assemble the rows (special tokens, type ids, masks, offsets), not padded yet."""
        ids, offsets_of = encoded.ids, encoded.offsets
        cls, sep = ([self.cls_token_id], [self.sep_token_id]) if add_special_tokens else ([], [])
        n_special = len(cls)
        mark = [1] * n_special  # the special tokens mask of one special token (none without special tokens)
        no_offset = [(0, 0)] * n_special

        input_ids, type_ids, special_masks, offsets = [], [], [], []
        for row in rows:
            a = ids[row.a][row.a_start : row.a_stop]
            if row.b is None:
                input_ids.append(cls + a + sep)
                if return_token_type_ids:
                    type_ids.append([0] * len(input_ids[-1]))
                if return_special_tokens_mask:
                    special_masks.append(mark + [0] * len(a) + mark)
                if return_offsets_mapping:
                    offsets.append(no_offset + offsets_of[row.a][row.a_start : row.a_stop] + no_offset)
            else:
                b = ids[row.b][row.b_start : row.b_stop]
                input_ids.append(cls + a + sep + b + sep)
                if return_token_type_ids:
                    type_ids.append([0] * (len(a) + 2 * n_special) + [1] * (len(b) + n_special))
                if return_special_tokens_mask:
                    special_masks.append(mark + [0] * len(a) + mark + [0] * len(b) + mark)
                if return_offsets_mapping:
                    window_a = offsets_of[row.a][row.a_start : row.a_stop]
                    window_b = offsets_of[row.b][row.b_start : row.b_stop]
                    offsets.append(no_offset + window_a + no_offset + window_b + no_offset)

        columns: dict[str, list] = {"input_ids": input_ids}
        if return_token_type_ids:
            columns["token_type_ids"] = type_ids
        if return_attention_mask:
            columns["attention_mask"] = [[1] * len(row) for row in input_ids]
        if return_special_tokens_mask:
            columns["special_tokens_mask"] = special_masks
        if return_offsets_mapping:
            columns["offset_mapping"] = offsets
        return columns

    def _pad_columns(self, columns: dict[str, list], length: int, side: str, main_input: str = "input_ids") -> None:
        """Pad (in place) every row of the ids, type ids, masks and offsets to ``length`` tokens on ``side``."""
        pad_values = {
            main_input: self.pad_token_id,
            "token_type_ids": self.pad_token_type_id,
            "attention_mask": 0,
            "special_tokens_mask": 1,
            "offset_mapping": (0, 0),
        }
        for key, value in pad_values.items():
            if key in columns:
                columns[key] = [_padded(row, length, value, side) for row in columns[key]]

    @staticmethod
    def _padded_length(
        lengths: list[int], padding: str | None, max_length: int | None, pad_to_multiple_of: int | None
    ) -> int | None:
        if padding is None or not lengths:
            return None
        target = max(lengths) if padding == "longest" else max_length
        if pad_to_multiple_of and target % pad_to_multiple_of:
            target += pad_to_multiple_of - target % pad_to_multiple_of
        return target

    def pad(
        self,
        encoded_inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad encodings that were tokenized without padding, as a data collator does.

        Args:
            encoded_inputs: a list of encodings (``BatchEncoding`` or dicts of lists / 1-d tensors), a dict of
                batched lists (or 2-d tensors), or one encoding. Keys other than the ids, type ids and masks (e.g.
                labels) are kept as they are.
            padding: ``True`` / ``"longest"`` pads to the longest row, ``"max_length"`` to ``max_length``
                (default ``model_max_length``); ``False`` does not pad.
            max_length, pad_to_multiple_of: as for :meth:`__call__`.
            padding_side: ``"right"`` or ``"left"``; defaults to :attr:`padding_side`.
            return_attention_mask: add (or keep) the attention mask; defaults to whether
                :attr:`model_input_names` has it. ``False`` leaves it out.
            return_tensors: ``"pt"``, ``"np"`` or ``None``; defaults to the type of the input's tensors, if any.
            verbose: accepted for compatibility (padding never warns).

        Returns:
            the padded :class:`BatchEncoding` (a single encoding stays without a batch dimension).
        """
        if isinstance(encoded_inputs, (list, tuple)):
            if not all(isinstance(encoding, Mapping) for encoding in encoded_inputs):
                raise TypeError("encoded_inputs must be an encoding (a dict), a dict of batches or a list of encodings")
            keys = list(encoded_inputs[0]) if encoded_inputs else []
            for index, encoding in enumerate(encoded_inputs):
                if set(encoding) != set(keys):
                    raise ValueError(f"encoding {index} has the keys {sorted(encoding)}, encoding 0 {sorted(keys)}")
            encoded_inputs = {key: [encoding[key] for encoding in encoded_inputs] for key in keys}
        elif not isinstance(encoded_inputs, Mapping):
            raise TypeError(f"encoded_inputs must be a dict or a list of dicts, not {type(encoded_inputs).__name__}")
        main_input = self.model_input_names[0]
        if main_input not in encoded_inputs:
            raise ValueError(
                f"encoded_inputs must have {main_input!r} (the main model input); it has {list(encoded_inputs)}"
            )
        padding_side = self.padding_side if padding_side is None else _check_side("padding_side", padding_side)
        padding_strategy, _, max_length = self._strategies(padding, False, max_length, 0, pad_to_multiple_of)
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names

        columns = dict(encoded_inputs)
        input_type = _tensor_type_of(columns[main_input])
        if input_type is not None:
            columns = {key: _as_lists(value) for key, value in columns.items()}
            return_tensors = return_tensors or input_type
        single = bool(columns[main_input]) and not isinstance(columns[main_input][0], (list, tuple))
        if single:
            columns = {key: [value] for key, value in columns.items()}
        for key, value in columns.items():
            if len(value) != len(columns[main_input]):
                raise ValueError(f"{key!r} has {len(value)} rows but {main_input!r} has {len(columns[main_input])}")

        if not return_attention_mask:
            columns.pop("attention_mask", None)
        elif "attention_mask" not in columns:
            columns["attention_mask"] = [[1] * len(row) for row in columns[main_input]]
        target = self._padded_length(
            [len(row) for row in columns[main_input]], padding_strategy, max_length, pad_to_multiple_of
        )
        if target is not None:
            self._pad_columns(columns, target, padding_side, main_input)
        if single:
            columns = {key: value[0] for key, value in columns.items()}
        return BatchEncoding(columns).convert_to_tensors(return_tensors)

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        *,
        add_special_tokens: bool = True,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        padding: bool | str = False,
        return_tensors: str | None = None,
    ) -> list[int]:
        """The input ids of ``text`` (and ``text_pair``)."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a string, not {type(text).__name__}; call the tokenizer for batches")
        return self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            truncation=truncation,
            max_length=max_length,
            padding=padding,
            return_tensors=return_tensors,
            return_token_type_ids=False,
            return_attention_mask=False,
        )["input_ids"]

    # ------------------------------------------------------------------------------------------------------------
    # Decoding

    def decode(
        self,
        token_ids: int | Sequence[int] | Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> str:
        """Turn ids (a list, a 1-d array or tensor) back into text."""
        text = self._decode_ids(_as_id_list(token_ids), skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    def batch_decode(
        self,
        sequences: Sequence[Sequence[int]] | Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[str]:
        """:meth:`decode` each row of a batch (a list of lists, a 2-d array or tensor)."""
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [self.decode(ids, skip_special_tokens, clean_up_tokenization_spaces) for ids in sequences]

    # ------------------------------------------------------------------------------------------------------------
    # Saving and loading

    def save_vocabulary(self, save_directory: str | os.PathLike, filename_prefix: str | None = None) -> tuple[str]:
        """Write ``vocab.txt`` (one token per line, in id order) into ``save_directory``; return its path."""
        from ..hub import atomic_write

        vocab = self._base_vocab()
        tokens = sorted(vocab, key=vocab.__getitem__)
        if [vocab[t] for t in tokens] != list(range(len(tokens))):
            raise ValueError("the vocabulary ids are not 0..n-1, so it cannot be written as vocab.txt")
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(os.fspath(save_directory), (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILE)
        with atomic_write(path) as f:
            f.write("".join(token + "\n" for token in tokens))
        return (path,)

    def _base_vocab(self) -> dict[str, int]:
        return self.get_vocab()

    def save_pretrained(self, save_directory: str | os.PathLike) -> tuple[str, ...]:
        """Write vocab.txt, tokenizer_config.json and special_tokens_map.json (and the fast tokenizer's
        tokenizer.json, and added_tokens.json when tokens were added past the vocabulary) into ``save_directory``,
        atomically; return the paths written."""
        from ..hub import write_json

        save_directory = os.fspath(save_directory)
        if os.path.isfile(save_directory):
            raise ValueError(f"{save_directory!r} is a file; save_pretrained needs a directory")
        os.makedirs(save_directory, exist_ok=True)
        config = {
            "tokenizer_class": "SqueezeBertTokenizer",
            "model_max_length": self.model_max_length if self.model_max_length is not None else int(1e30),
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            **self._tokenizer_config(),
            **self.special_tokens_map,
        }
        if self.model_input_names != type(self).model_input_names:
            config["model_input_names"] = self.model_input_names
        config = {**self.init_kwargs, **config, **self._added_tokens_config()}
        config_path = os.path.join(save_directory, TOKENIZER_CONFIG_FILE)
        map_path = os.path.join(save_directory, SPECIAL_TOKENS_MAP_FILE)
        write_json(config_path, config)
        write_json(map_path, self.special_tokens_map)
        return (
            *self.save_vocabulary(save_directory),
            config_path,
            map_path,
            *self._save_added_tokens_file(save_directory),
            *self._save_extra_files(save_directory),
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **kwargs: Any,
    ) -> TokenizerBase:
        """Load from a folder or a hub repo id: vocab.txt (and tokenizer.json for the fast tokenizer), with the
        options of tokenizer_config.json / special_tokens_map.json when present; ``kwargs`` override them."""
        files = find_tokenizer_files(
            name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
        return cls._from_files(name_or_path, files, kwargs)

    @classmethod
    def _from_files(cls, name_or_path: Any, files: dict[str, Any], kwargs: dict[str, Any]) -> TokenizerBase:
        raise NotImplementedError

    @classmethod
    def _init_kwargs(cls, files: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Constructor options: tokenizer_config.json and special_tokens_map.json, overridden by ``kwargs``.

        Every tokenizer_config.json key but those describing files is an option; the constructor keeps those it
        does not use in ``init_kwargs``."""
        config = files["config"]
        options = {
            key: files["special_tokens_map"][key] for key in SPECIAL_TOKEN_NAMES if key in files["special_tokens_map"]
        }
        options.update({key: value for key, value in config.items() if key not in _NOT_OPTIONS})
        options = {
            key: _special_token_value(value) if key in SPECIAL_TOKEN_NAMES else value for key, value in options.items()
        }
        if options.get("model_max_length") is not None:
            options["model_max_length"] = int(min(options["model_max_length"], _NO_LIMIT))
        options.update(kwargs)
        return options

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, model_max_length={self.model_max_length}, "
            f"special_tokens={self.special_tokens_map})"
        )

    @property
    def is_fast(self) -> bool:
        return False


def find_tokenizer_files(name_or_path: str | os.PathLike, **hub_kwargs: Any) -> dict[str, Any]:
    """Resolve the tokenizer files of a folder or hub repo: paths of vocab.txt / tokenizer.json / added_tokens.json
    (``None`` when absent) and the parsed tokenizer_config.json / special_tokens_map.json (``{}`` when absent)."""
    from ..hub import read_json, resolve_file

    files: dict[str, Any] = {
        "vocab_file": resolve_file(name_or_path, VOCAB_FILE, **hub_kwargs),
        "tokenizer_file": resolve_file(name_or_path, TOKENIZER_FILE, **hub_kwargs),
        "added_tokens_file": resolve_file(name_or_path, ADDED_TOKENS_FILE, **hub_kwargs),
    }
    for key, filename in (("config", TOKENIZER_CONFIG_FILE), ("special_tokens_map", SPECIAL_TOKENS_MAP_FILE)):
        path = resolve_file(name_or_path, filename, **hub_kwargs)
        files[key] = read_json(path) if path is not None else {}
    return files
