"""``SqueezeBertTokenizerFast``: BERT WordPiece tokenization with the Rust ``tokenizers`` library."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from .base import DEFAULT_MODEL_MAX_LENGTH, TOKENIZER_FILE, TokenizerBase, _Texts
from .basic import MAX_INPUT_CHARS_PER_WORD, load_vocab


class SqueezeBertTokenizerFast(TokenizerBase):
    """BERT tokenization backed by the ``tokenizers`` library; batches are encoded in parallel.

    Loads ``tokenizer_file`` (a ``tokenizer.json``) when given, otherwise builds the BERT pipeline from
    ``vocab_file``. The normaliser follows the options below in both cases.

    Args:
        vocab_file: path of ``vocab.txt``.
        tokenizer_file: path of a ``tokenizer.json``.
        do_lower_case: lower-case the text.
        unk_token, sep_token, pad_token, cls_token, mask_token: the special tokens. They are recognised as such
            anywhere in the text.
        clean_text: drop control characters and turn all whitespace into spaces.
        tokenize_chinese_chars: make each CJK ideograph a word of its own.
        strip_accents: strip accents; ``None`` follows ``do_lower_case``.
        wordpieces_prefix: prefix of continuation word pieces.
        clean_up_tokenization_spaces: default of :meth:`decode`'s option of the same name.
        model_max_length: default ``max_length`` for truncation and padding.
        extra_special_tokens: more special tokens (``additional_special_tokens`` is the 4.x name).
        added_tokens_decoder: added tokens by id (as tokenizer_config.json saves them) for a tokenizer built from
            ``vocab_file``; the ids must follow the vocabulary's.
        padding_side, truncation_side: default to the direction of the padding / truncation set in
            ``tokenizer_file``, if any, else "right".
        model_input_names, and any other keyword arguments: see
            :class:`~squeezebert.tokenization.base.TokenizerBase`.
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        tokenizer_file: str | os.PathLike | None = None,
        do_lower_case: bool = True,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        clean_text: bool = True,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        wordpieces_prefix: str = "##",
        clean_up_tokenization_spaces: bool = False,
        model_max_length: int | None = DEFAULT_MODEL_MAX_LENGTH,
        padding_side: str | None = None,
        truncation_side: str | None = None,
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
        self.do_lower_case = do_lower_case
        self.clean_text = clean_text
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        self.wordpieces_prefix = wordpieces_prefix

        if tokenizer_file is not None:
            if not os.path.isfile(tokenizer_file):
                raise FileNotFoundError(f"tokenizer file not found: {os.fspath(tokenizer_file)!r}")
            backend = Tokenizer.from_file(os.fspath(tokenizer_file))
        elif vocab_file is not None:
            backend = Tokenizer(
                WordPiece(
                    load_vocab(vocab_file),
                    unk_token=unk_token,
                    continuing_subword_prefix=wordpieces_prefix,
                    max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD,
                )
            )
            backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            backend.decoder = decoders.WordPiece(prefix=wordpieces_prefix)
        else:
            raise ValueError("SqueezeBertTokenizerFast needs a vocab_file or a tokenizer_file")
        if tokenizer_file is None or isinstance(backend.normalizer, normalizers.BertNormalizer):
            backend.normalizer = normalizers.BertNormalizer(
                clean_text=clean_text,
                handle_chinese_chars=tokenize_chinese_chars,
                strip_accents=strip_accents,
                lowercase=do_lower_case,
            )
        # Truncation, padding and special tokens are applied by the shared code, not by the backend; a
        # tokenizer.json may come with truncation or padding switched on.
        if padding_side is None and backend.padding is not None:
            padding_side = backend.padding["direction"]
        if truncation_side is None and backend.truncation is not None:
            truncation_side = backend.truncation["direction"]
        self.padding_side = "right" if padding_side is None else padding_side
        self.truncation_side = "right" if truncation_side is None else truncation_side
        backend.no_truncation()
        backend.no_padding()
        self.backend_tokenizer = backend
        self._unk_id = None
        self._init_added_tokens(extra_special_tokens, additional_special_tokens, added_tokens_decoder)
        self._unk_id = backend.token_to_id(unk_token)
        self._special_tokens_changed()

    def _special_tokens_changed(self) -> None:
        """(Re)build the backend's post-processor, ``[CLS] A [SEP] B [SEP]``, from the current special tokens
        (it is what a saved tokenizer.json uses; the shared code adds the special tokens itself)."""
        cls, sep = self.cls_token, self.sep_token
        self.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, self.cls_token_id), (sep, self.sep_token_id)],
        )

    @property
    def is_fast(self) -> bool:
        return True

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into word pieces (added and special tokens in the text are kept whole)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, not {type(text).__name__}")
        return self.backend_tokenizer.encode(text, add_special_tokens=False).tokens

    def _encode_texts(self, texts: list[str] | list[list[str]], with_offsets: bool, split_into_words: bool) -> _Texts:
        encodings = self.backend_tokenizer.encode_batch(
            texts, is_pretokenized=split_into_words, add_special_tokens=False
        )
        return _Texts(
            [e.ids for e in encodings],
            [e.offsets for e in encodings] if with_offsets else None,
            lambda i: encodings[i].word_ids,
        )

    def _token_to_id(self, token: str) -> int:
        index = self.backend_tokenizer.token_to_id(token)
        return self._unk_id if index is None else index

    def _id_to_token(self, index: int) -> str | None:
        return self.backend_tokenizer.id_to_token(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        decoder = self.backend_tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def _decode_ids(self, ids: list[int], skip_special_tokens: bool) -> str:
        # The special tokens are dropped here rather than by the backend, which also drops the tokens that
        # add_special_tokens(replace_extra_special_tokens=True) made non-special.
        ids = self._without_special_ids(ids) if skip_special_tokens else ids
        return self.backend_tokenizer.decode(ids, skip_special_tokens=False)

    def _add_to_vocabulary(self, tokens: list[AddedToken]) -> None:
        self.backend_tokenizer.add_tokens(tokens)

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(sorted(self.backend_tokenizer.get_added_tokens_decoder().items()))

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab_size(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def _base_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=False)

    def _tokenizer_config(self) -> dict[str, Any]:
        return {
            "do_lower_case": self.do_lower_case,
            "clean_text": self.clean_text,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "strip_accents": self.strip_accents,
            "wordpieces_prefix": self.wordpieces_prefix,
        }

    def _save_extra_files(self, save_directory: str) -> tuple[str, ...]:
        from ..hub import atomic_write

        path = os.path.join(save_directory, TOKENIZER_FILE)
        with atomic_write(path) as f:
            f.write(self.backend_tokenizer.to_str(pretty=True))
        return (path,)

    @classmethod
    def _from_files(cls, name_or_path: Any, files: dict[str, Any], kwargs: dict[str, Any]) -> SqueezeBertTokenizerFast:
        if (
            files["vocab_file"] is None
            and files["tokenizer_file"] is None
            and not ({"vocab_file", "tokenizer_file"} & kwargs.keys())
        ):
            raise FileNotFoundError(
                f"neither tokenizer.json nor vocab.txt in {os.fspath(name_or_path)!r}: SqueezeBertTokenizerFast "
                "needs one of them"
            )
        options = cls._init_kwargs(files, kwargs)
        for key, value in cls._saved_added_tokens(files, with_tokenizer_json=False).items():
            options.setdefault(key, value)
        if "tokenizer_file" not in kwargs and "vocab_file" not in kwargs:
            options["tokenizer_file"] = files["tokenizer_file"]
            options["vocab_file"] = files["vocab_file"]
        return cls(**options)
