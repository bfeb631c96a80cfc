"""``SqueezeBertTokenizer``: BERT WordPiece tokenization in pure Python."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from .base import DEFAULT_MODEL_MAX_LENGTH, TokenizerBase, _Texts
from .basic import BasicTokenizer, WordPiece, load_vocab


class SqueezeBertTokenizer(TokenizerBase):
    """BERT tokenization (cleaning, CJK splitting, lower-casing, accent stripping, punctuation splitting, then
    greedy longest-match-first WordPiece) in pure Python.

    Args:
        vocab_file: path of ``vocab.txt`` (one token per line; the line number is the id).
        do_lower_case: lower-case the text.
        do_basic_tokenize: clean and split the text before WordPiece (when False, only split on whitespace).
        never_split: words that are never lower-cased, split or word-pieced.
        unk_token, sep_token, pad_token, cls_token, mask_token: the special tokens. They are recognised as such
            anywhere in the text.
        tokenize_chinese_chars: make each CJK ideograph a word of its own.
        strip_accents: strip accents; ``None`` follows ``do_lower_case``.
        clean_up_tokenization_spaces: default of :meth:`decode`'s option of the same name.
        model_max_length: default ``max_length`` for truncation and padding.
        padding_side, truncation_side, model_input_names, and any other keyword arguments: see
            :class:`~squeezebert.tokenization.base.TokenizerBase`.
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike,
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
        self.vocab = load_vocab(vocab_file)
        self.ids_to_tokens = {index: token for token, index in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.do_basic_tokenize = do_basic_tokenize
        self.never_split = list(never_split or ())
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        self._unk_id = self.vocab.get(unk_token)
        self._basic = BasicTokenizer(
            WordPiece(self.vocab, unk_token),
            do_lower_case=do_lower_case,
            do_basic_tokenize=do_basic_tokenize,
            never_split=self.never_split,
            tokenize_chinese_chars=tokenize_chinese_chars,
            strip_accents=strip_accents,
            protected=self.all_special_tokens,
        )
        # Special tokens are cut out of the text first (longest first), and never tokenized further.
        alternatives = sorted(self.all_special_tokens, key=len, reverse=True)
        self._special_split = re.compile("(" + "|".join(map(re.escape, alternatives)) + ")")

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into word pieces (special tokens in the text are kept as they are)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, not {type(text).__name__}")
        parts = self._special_split.split(text)
        tokens = self._basic.tokenize(parts[0])
        for i in range(1, len(parts), 2):
            tokens.append(parts[i])
            tokens += self._basic.tokenize(parts[i + 1])
        return tokens

    def _encode_texts(self, texts: list[str] | list[list[str]], with_offsets: bool, split_into_words: bool) -> _Texts:
        vocab, unk = self.vocab, self._unk_id
        if not split_into_words:
            return _Texts([[vocab.get(t, unk) for t in self.tokenize(text)] for text in texts], None, None)
        ids, word_ids = [], []
        for words in texts:
            pieces = [(index, vocab.get(t, unk)) for index, word in enumerate(words) for t in self.tokenize(word)]
            word_ids.append([index for index, _ in pieces])
            ids.append([token_id for _, token_id in pieces])
        return _Texts(ids, None, word_ids.__getitem__)

    def _token_to_id(self, token: str) -> int:
        return self.vocab.get(token, self._unk_id)

    def _id_to_token(self, index: int) -> str:
        return self.ids_to_tokens.get(index, self.unk_token)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens).replace(" ##", "").strip()

    def _decode_ids(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self.convert_tokens_to_string(self.convert_ids_to_tokens(ids, skip_special_tokens))

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

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
        if files["vocab_file"] is None and "vocab_file" not in kwargs:
            raise FileNotFoundError(f"no vocab.txt in {os.fspath(name_or_path)!r}: SqueezeBertTokenizer needs one")
        options = cls._init_kwargs(files, kwargs)
        options.setdefault("vocab_file", files["vocab_file"])
        return cls(**options)
