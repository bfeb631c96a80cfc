"""The pure-Python pieces of BERT tokenization: text cleaning, basic splitting and greedy WordPiece.

The pipeline, for one piece of text (special tokens already split off by the caller):

1. cleaning: NUL, U+FFFD and control characters are dropped; every whitespace character becomes a space;
   CJK ideographs get a space on each side (``tokenize_chinese_chars``);
2. NFC normalisation, then splitting on whitespace;
3. per word (unless it is in ``never_split``): lower-casing and accent stripping (NFD, drop non-spacing marks),
   then splitting off every punctuation character as its own word;
4. WordPiece: greedy longest-match-first against the vocabulary, continuation pieces prefixed with ``##``; a word
   longer than 100 characters, or one that cannot be covered by vocabulary pieces, becomes the unknown token.

Steps 3 and 4 depend only on the word, so their result is cached per word: natural text repeats words a lot.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Mapping

MAX_INPUT_CHARS_PER_WORD = 100
_PREFIX = "##"  # marks a piece that continues a word
_WORD_CACHE_LIMIT = 200_000

# Code point ranges treated as CJK ideographs (the CJK Unified Ideographs blocks and their extensions, and the
# compatibility ideographs). Hangul, kana and CJK punctuation are not in here.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_cjk(cp: int) -> bool:
    """Whether code point ``cp`` is a CJK ideograph."""
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or any Unicode space separator (Zs)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """Any "other" (C*) category character, except tab, newline and carriage return (which are whitespace)."""
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """Unicode punctuation (P*), plus every ASCII character that is neither a letter, a digit nor a space."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


class _CleaningTable(dict):
    """A ``str.translate`` table that classifies each code point the first time it is seen."""

    def __init__(self, tokenize_chinese_chars: bool):
        super().__init__()
        self.tokenize_chinese_chars = tokenize_chinese_chars

    def __missing__(self, cp: int) -> str | None:
        char = chr(cp)
        if cp == 0 or cp == 0xFFFD or is_control(char):
            value = None
        elif is_whitespace(char):
            value = " "
        elif self.tokenize_chinese_chars and is_cjk(cp):
            value = f" {char} "
        else:
            value = char
        self[cp] = value
        return value


class _PunctuationSet(dict):
    """``char in table`` style lookup for punctuation, computed once per character."""

    def __missing__(self, char: str) -> bool:
        value = is_punctuation(char)
        self[char] = value
        return value


def strip_accents(text: str) -> str:
    """Decompose (NFD) and drop the non-spacing combining marks (category Mn)."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def load_vocab(vocab_file: str | os.PathLike) -> dict[str, int]:
    """Read a ``vocab.txt`` (one token per line, the line number is its id) into a token -> id dict."""
    if not os.path.isfile(vocab_file):
        raise FileNotFoundError(f"vocabulary file not found: {os.fspath(vocab_file)!r}")
    with open(vocab_file, encoding="utf-8") as f:
        return {line.rstrip("\n"): index for index, line in enumerate(f)}


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece over a fixed vocabulary (the constructor of ``transformers``' class).

    ``tokenize("unaffable")`` gives ``["un", "##aff", "##able"]`` with the BERT vocabulary. A word with more than
    ``max_input_chars_per_word`` characters, or one no sequence of pieces covers, becomes ``unk_token``.
    The vocabulary is read when the tokenizer is made (the longest piece bounds the search): do not change it later.
    """

    def __init__(
        self, vocab: Mapping[str, int], unk_token: str, max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD
    ):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # No vocabulary entry is longer than these, so longer candidate pieces need not be looked up.
        self._longest_head = max((len(t) for t in vocab if not t.startswith(_PREFIX)), default=0)
        self._longest_tail = max((len(t) - len(_PREFIX) for t in vocab if t.startswith(_PREFIX)), default=0)

    def tokenize_word(self, word: str) -> list[str]:
        """The pieces of one whitespace-free word."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces = []
        start = 0
        while start < n:
            longest = self._longest_tail if start else self._longest_head
            end = min(n, start + longest)
            while end > start:
                piece = word[start:end] if start == 0 else _PREFIX + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            else:
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` on whitespace and return the pieces of every word."""
        return [piece for word in text.split() for piece in self.tokenize_word(word)]


class BasicTokenizer:
    """Steps 1 to 3 above: cleaning, CJK splitting, lower-casing, accent stripping and punctuation splitting (the
    constructor and ``tokenize`` of ``transformers``' class).

    Args:
        do_lower_case: lower-case every word.
        never_split: words kept exactly as they are (not lower-cased, accent-stripped nor split on punctuation).
        tokenize_chinese_chars: put spaces around CJK ideographs so each becomes a word.
        strip_accents: strip accents; ``None`` means "when lower-casing".
        do_split_on_punc: make each punctuation character a word of its own.
    """

    def __init__(
        self,
        do_lower_case: bool = True,
        never_split: Iterable[str] | None = None,
        tokenize_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        do_split_on_punc: bool = True,
    ):
        self.do_lower_case = do_lower_case
        self.never_split = set(never_split or ())
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        self.do_split_on_punc = do_split_on_punc
        self._cleaning = _CleaningTable(tokenize_chinese_chars)
        self._punctuation = _PunctuationSet()

    def tokenize(self, text: str, never_split: Iterable[str] | None = None) -> list[str]:
        """The words of ``text``; ``never_split`` adds words to keep whole for this call."""
        kept = self.never_split.union(never_split) if never_split else self.never_split
        return [part for word in self.clean(text).split() for part in self.split_word(word, kept)]

    def clean(self, text: str) -> str:
        """Step 1 and the NFC normalisation of step 2."""
        text = text.translate(self._cleaning)
        return text if text.isascii() else unicodedata.normalize("NFC", text)

    def normalize_word(self, word: str) -> str:
        """``word`` lower-cased and accent-stripped as the options say."""
        if self.do_lower_case:
            word = word.lower()
            return word if self.strip_accents is False else strip_accents(word)
        return strip_accents(word) if self.strip_accents else word

    def split_word(self, word: str, never_split: set[str]) -> list[str]:
        """Step 3 for one whitespace-free word of cleaned text."""
        if word in never_split:
            return [word]
        word = self.normalize_word(word)
        if not self.do_split_on_punc or word in never_split:
            return word.split()  # lower-casing or accent stripping may have produced whitespace
        punctuation = self._punctuation
        parts = []
        start = 0
        for i, char in enumerate(word):
            if punctuation[char]:
                parts += word[start:i].split()
                parts.append(char)
                start = i + 1
        return parts + word[start:].split()


class FullTokenizer:
    """Basic tokenization (when ``basic`` is given) and then WordPiece, as the slow tokenizer runs them; words of
    ``basic.never_split`` are not word-pieced. The pieces of each word are cached."""

    def __init__(self, basic: BasicTokenizer | None, wordpiece: WordpieceTokenizer):
        self.basic = basic
        self.wordpiece = wordpiece
        self._cache: dict[str, list[str]] = {}

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text``."""
        if self.basic is not None:
            text = self.basic.clean(text)
        cache = self._cache
        if len(cache) > _WORD_CACHE_LIMIT:
            cache.clear()
        pieces: list[str] = []
        for word in text.split():
            word_pieces = cache.get(word)
            if word_pieces is None:
                word_pieces = cache[word] = self._tokenize_word(word)
            pieces += word_pieces
        return pieces

    def _tokenize_word(self, word: str) -> list[str]:
        basic = self.basic
        if basic is None:
            return self.wordpiece.tokenize_word(word)
        pieces = []
        for part in basic.split_word(word, basic.never_split):
            pieces += [part] if part in basic.never_split else self.wordpiece.tokenize_word(part)
        return pieces
