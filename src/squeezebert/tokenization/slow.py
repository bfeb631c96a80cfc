"""``SqueezeBertTokenizer``: BERT WordPiece tokenization in pure Python."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .added_tokens import AddedToken, AddedVocabulary
from .base import DEFAULT_MODEL_MAX_LENGTH, TokenizerBase, _Texts
from .basic import BasicTokenizer, FullTokenizer, WordpieceTokenizer, load_vocab


class SqueezeBertTokenizer(TokenizerBase):
    """BERT tokenization (cleaning, CJK splitting, lower-casing, accent stripping, punctuation splitting, then
    greedy longest-match-first WordPiece) in pure Python.

    Args:
        vocab_file: path of ``vocab.txt`` (one token per line; the line number is the id), or the token -> id dict.
        do_lower_case: lower-case the text.
        do_basic_tokenize: clean and split the text before WordPiece (when False, only split on whitespace).
        never_split: words that are never lower-cased, split or word-pieced.
        unk_token, sep_token, pad_token, cls_token, mask_token: the special tokens. They are recognised as such
            anywhere in the text.
        tokenize_chinese_chars: make each CJK ideograph a word of its own.
        strip_accents: strip accents; ``None`` follows ``do_lower_case``.
        clean_up_tokenization_spaces: default of :meth:`decode`'s option of the same name.
        model_max_length: default ``max_length`` for truncation and padding.
        extra_special_tokens: more special tokens (``additional_special_tokens`` is the 4.x name).
        added_tokens_decoder: added tokens by id (as tokenizer_config.json saves them); the ids must follow the
            vocabulary's.
        padding_side, truncation_side, model_input_names, and any other keyword arguments: see
            :class:`~squeezebert.tokenization.base.TokenizerBase`.
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike | Mapping[str, int],
        do_lower_case: bool = True,
        do_basic_tokenize: bool = True,
        never_split: Iterable[str] | None = None,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        clean_up_tokenization_spaces: bool = True,
        model_max_length: int | None = DEFAULT_MODEL_MAX_LENGTH,
        extra_special_tokens: Sequence[str | AddedToken] | None = None,
        additional_special_tokens: Sequence[str | AddedToken] | None = None,
        added_tokens_decoder: Mapping[int, AddedToken | Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            model_max_length=model_max_length,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **kwargs,
        )
        self.vocab = dict(vocab_file) if isinstance(vocab_file, Mapping) else load_vocab(vocab_file)
        self.ids_to_tokens = {index: token for token, index in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.do_basic_tokenize = do_basic_tokenize
        self.never_split = list(never_split or ())
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        # The building blocks, under transformers' names: basic_tokenizer is None without do_basic_tokenize.
        self.basic_tokenizer = (
            BasicTokenizer(
                do_lower_case=do_lower_case,
                never_split=self.never_split,
                tokenize_chinese_chars=tokenize_chinese_chars,
                strip_accents=strip_accents,
            )
            if do_basic_tokenize
            else None
        )
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, unk_token)
        self._full = FullTokenizer(self.basic_tokenizer, self.wordpiece_tokenizer)
        # Added tokens (the special tokens among them) are cut out of the text first, and never tokenized further.
        self._added = AddedVocabulary(self.vocab, self._normalize)
        self._unk_id = None
        self._init_added_tokens(extra_special_tokens, additional_special_tokens, added_tokens_decoder)
        self._unk_id = self._token_to_id(unk_token)

    def _normalize(self, text: str) -> str:
        """``text`` as normalized added tokens are looked for in it: cleaned, each word (but ``never_split`` ones)
        lower-cased and accent-stripped as the tokenizer does; unchanged without ``do_basic_tokenize``."""
        basic = self.basic_tokenizer
        if basic is None:
            return text
        words = text.translate(basic._cleaning).split(" ")
        return " ".join(word if word in basic.never_split else basic.normalize_word(word) for word in words)

    def _tokens(self, text: str) -> list[tuple[str, int]]:
        """``(token, id)`` for each token of ``text``: the added tokens found in it, word pieces between them."""
        vocab, unk = self.vocab, self._unk_id
        tokens = []
        for piece, index in self._added.split(text):
            if index is None:
                tokens += [(token, vocab.get(token, unk)) for token in self._full.tokenize(piece)]
            else:
                tokens.append((piece, index))
        return tokens

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into word pieces (added and special tokens in the text are kept whole)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, not {type(text).__name__}")
        return [token for token, _ in self._tokens(text)]

    def _encode_texts(self, texts: list[str] | list[list[str]], with_offsets: bool, split_into_words: bool) -> _Texts:
        if not split_into_words:
            return _Texts([[index for _, index in self._tokens(text)] for text in texts], None, None)
        ids, word_ids = [], []
        for words in texts:
            pieces = [(index, token_id) for index, word in enumerate(words) for _, token_id in self._tokens(word)]
            word_ids.append([index for index, _ in pieces])
            ids.append([token_id for _, token_id in pieces])
        return _Texts(ids, None, word_ids.__getitem__)

    def _token_to_id(self, token: str) -> int:
        index = self._added.ids.get(token)
        return self.vocab.get(token, self._unk_id) if index is None else index

    def _id_to_token(self, index: int) -> str:
        token = self._added.strings.get(index)
        return self.ids_to_tokens.get(index, self.unk_token) if token is None else token

    def _add_to_vocabulary(self, tokens: list[AddedToken]) -> None:
        self._added.add(tokens)

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(sorted(self._added.tokens.items()))

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens).replace(" ##", "").strip()

    def _decode_ids(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self.convert_tokens_to_string(self.convert_ids_to_tokens(ids, skip_special_tokens))

    def get_vocab(self) -> dict[str, int]:
        return {**self.vocab, **self._added.ids}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab) + sum(token not in self.vocab for token in self._added.ids)

    def _base_vocab(self) -> dict[str, int]:
        return self.vocab

    def _tokenizer_config(self) -> dict[str, Any]:
        return {
            "do_lower_case": self.do_lower_case,
            "do_basic_tokenize": self.do_basic_tokenize,
            "never_split": self.never_split or None,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "strip_accents": self.strip_accents,
        }

    @classmethod
    def _from_files(cls, name_or_path: Any, files: dict[str, Any], kwargs: dict[str, Any]) -> SqueezeBertTokenizer:
        vocab_file = files["vocab_file"]
        if vocab_file is None and files["tokenizer_file"] is not None:
            # A folder saved by a fast tokenizer of transformers 5.x: the vocabulary is the one of tokenizer.json.
            with open(files["tokenizer_file"], encoding="utf-8") as f:
                vocab_file = json.load(f)["model"].get("vocab")
        if vocab_file is None and "vocab_file" not in kwargs:
            raise FileNotFoundError(
                f"no vocab.txt (nor a WordPiece tokenizer.json) in {os.fspath(name_or_path)!r}: "
                "SqueezeBertTokenizer needs one"
            )
        options = cls._init_kwargs(files, kwargs)
        for key, value in cls._saved_added_tokens(files, with_tokenizer_json=True).items():
            options.setdefault(key, value)
        options.setdefault("vocab_file", vocab_file)
        return cls(**options)
