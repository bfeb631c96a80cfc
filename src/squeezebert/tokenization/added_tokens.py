"""Added tokens: tokens put on top of the WordPiece vocabulary (``add_tokens``, ``add_special_tokens``) and found in
the text before WordPiece runs.

:class:`AddedToken` is the ``tokenizers`` library's class (the one ``transformers`` exports too). The fast tokenizer
hands added tokens to its ``tokenizers`` backend; :class:`AddedVocabulary` is the slow tokenizer's pure-Python
equivalent and finds them the same way:

1. tokens with ``normalized=False`` are looked for in the raw text, then tokens with ``normalized=True`` in the
   normalized (cleaned, lower-cased, ...) pieces of text left between those matches, their own content normalized
   the same way;
2. the search is leftmost-longest: at the first position where tokens start, the longest one wins; matches do not
   overlap;
3. a ``single_word`` match is dropped when a word character (letter, mark, digit or connector) touches it;
4. ``lstrip`` / ``rstrip`` make a match take in the whitespace on its left / right.

:class:`AddedTokensMixin` is what both tokenizers share on top of that: ``add_tokens``, ``add_special_tokens``, the
extra special tokens, and saving and loading added tokens the way ``transformers`` does.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tokenizers import AddedToken

ADDED_TOKENS_FILE = "added_tokens.json"

# Unicode White_Space (what the tokenizers library strips for lstrip / rstrip)
_WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    map(chr, range(0x2000, 0x200B))
)
_EXTRA_KEYS = ("extra_special_tokens", "additional_special_tokens")  # the 5.x and the 4.x spelling


def _is_word_char(char: str) -> bool:
    """A letter, mark, decimal or letter number, connector punctuation or joiner (a regex ``\\w`` in Rust)."""
    category = unicodedata.category(char)
    return category[0] in "LM" or category in ("Nd", "Nl", "Pc") or char in "\u200c\u200d"


def as_added_tokens(tokens: Any, special: bool, name: str) -> list[AddedToken]:
    """``tokens`` (a string, an :class:`AddedToken` or a list of them) as a list of :class:`AddedToken`.

    A string becomes a token that is normalized unless ``special``; with ``special`` every token is marked special.
    """
    items = [tokens] if isinstance(tokens, (str, AddedToken)) else tokens
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"{name} must be a string, an AddedToken or a list of them, not {type(tokens).__name__}")
    result = []
    for item in items:
        if isinstance(item, str):
            item = AddedToken(item, special=special, normalized=not special)
        elif not isinstance(item, AddedToken):
            raise TypeError(f"{name} must hold strings or AddedToken objects, not {type(item).__name__}")
        elif special and not item.special:
            item = _flagged(item, special=True)
        result.append(item)
    return result


def _flagged(token: AddedToken, special: bool) -> AddedToken:
    """A copy of ``token`` with its ``special`` flag set to ``special``."""
    return AddedToken(**{**token.__getstate__(), "special": special})


def _content(value: Any) -> str:
    """The content of a token saved as a string or as a ``{"content": ...}`` dict."""
    return value.get("content") if isinstance(value, Mapping) else str(value)


def _token_from_saved(value: Any, special: bool = False) -> AddedToken:
    """An added token as saved: a string or a ``{"content": ..., "lstrip": ...}`` dict."""
    if isinstance(value, Mapping):
        fields = {
            key: value[key] for key in ("content", "single_word", "lstrip", "rstrip", "normalized") if key in value
        }
        return AddedToken(**fields, special=value.get("special", special))
    return value


class AddedVocabulary:
    """The added tokens of the slow tokenizer: their ids, and finding them in a text.

    Args:
        vocab: the WordPiece vocabulary (ids ``0..len(vocab) - 1``); a token already in it keeps its id.
        normalize: the tokenizer's normalization, applied to the text (and to the content of normalized tokens)
            before normalized tokens are looked for.
    """

    def __init__(self, vocab: Mapping[str, int], normalize: Callable[[str], str]):
        self._vocab = vocab
        self._normalize = normalize
        self.tokens: dict[int, AddedToken] = {}
        self.ids: dict[str, int] = {}  # content -> id
        self.strings: dict[int, str] = {}  # id -> token string: the normalized content for normalized tokens
        self._matchers: tuple[Any, Any] | None = None  # (raw, normalized), compiled on first use

    def add(self, tokens: Iterable[AddedToken]) -> None:
        """Add tokens (or update the options of ones already added); a new content gets the next free id."""
        for token in tokens:
            if not token.content:
                continue
            index = self.ids.get(token.content, self._vocab.get(token.content))
            if index is None:
                index = max(len(self._vocab), max(self.tokens, default=-1) + 1)
            self.tokens[index] = token
            self.ids[token.content] = index
            self.strings[index] = self._normalize(token.content) if token.normalized else token.content
        self._matchers = None

    def split(self, text: str) -> list[tuple[str, int | None]]:
        """Cut ``text`` into ``(piece, id)``: the added tokens found, and (with id ``None``) the text between them,
        normalized when normalized tokens were looked for in it."""
        if self._matchers is None:
            self._matchers = (self._matcher(False), self._matcher(True))
        raw, normalized = self._matchers
        pieces = []
        for piece, index in self._find(text, raw):
            if index is None and normalized is not None:
                pieces += self._find(self._normalize(piece), normalized)
            else:
                pieces.append((piece, index))
        return pieces

    def _matcher(self, normalized: bool) -> tuple[re.Pattern, dict[str, int]] | None:
        """A regex of the tokens with this ``normalized`` flag (longest first: leftmost-longest matching) and the id of
        each pattern. Special tokens come first, so they win when two tokens normalize to the same text."""
        ids: dict[str, int] = {}
        for index, token in sorted(self.tokens.items(), key=lambda item: not item[1].special):
            if token.normalized == normalized:
                ids.setdefault(self.strings[index], index)
        ids.pop("", None)
        if not ids:
            return None
        return re.compile("|".join(map(re.escape, sorted(ids, key=len, reverse=True)))), ids

    def _find(self, text: str, matcher: tuple[re.Pattern, dict[str, int]] | None) -> list[tuple[str, int | None]]:
        if matcher is None or not text:
            return [(text, None)] if text else []
        regex, ids = matcher
        pieces: list[tuple[str, int | None]] = []
        done = 0
        for match in regex.finditer(text):
            index = ids[match.group()]
            token = self.tokens[index]
            start, stop = match.span()
            if token.single_word and (
                (start > 0 and _is_word_char(text[start - 1])) or (stop < len(text) and _is_word_char(text[stop]))
            ):
                continue
            if token.lstrip:
                while start > done and text[start - 1] in _WHITESPACE:
                    start -= 1
            if token.rstrip:
                while stop < len(text) and text[stop] in _WHITESPACE:
                    stop += 1
            if done < start:
                pieces.append((text[done:start], None))
            pieces.append((text[start:stop], index))
            done = stop
        if done < len(text):
            pieces.append((text[done:], None))
        return pieces


class AddedTokensMixin:
    """Added and extra special tokens, shared by both tokenizers (mixed into ``TokenizerBase``).

    A tokenizer provides :meth:`_add_to_vocabulary` and :attr:`added_tokens_decoder`, and calls
    :meth:`_init_added_tokens` at the end of its constructor.
    """

    _extra_special_tokens: tuple[str, ...] = ()

    def _add_to_vocabulary(self, tokens: list[AddedToken]) -> None:
        """Add (or update) added tokens in the tokenizer's vocabulary."""
        raise NotImplementedError

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """Every added token (the special tokens included) by id, in id order."""
        raise NotImplementedError

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """The id of every added token (the special tokens included), by content."""
        return {token.content: index for index, token in self.added_tokens_decoder.items()}

    def get_added_vocab(self) -> dict[str, int]:
        """The added tokens (the special tokens included) as a content -> id dict."""
        return self.added_tokens_encoder

    @property
    def extra_special_tokens(self) -> list[str]:
        """The special tokens besides the named ones (``cls_token``, ...); ``additional_special_tokens`` in 4.x."""
        return list(self._extra_special_tokens)

    additional_special_tokens = extra_special_tokens

    @property
    def extra_special_tokens_ids(self) -> list[int]:
        return [self._token_to_id(token) for token in self._extra_special_tokens]

    additional_special_tokens_ids = extra_special_tokens_ids

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens that are matched in the text before WordPiece; return how many got a new id.

        A token already in the vocabulary keeps its id (it is only matched first from now on), and a string already
        added is left as it is. Strings become :class:`AddedToken` objects, normalized (matched in the lower-cased
        text of an uncased tokenizer) unless ``special_tokens``, which marks every token special (dropped by
        ``decode(..., skip_special_tokens=True)``). Resize the model's embeddings to ``len(tokenizer)`` afterwards.
        """
        tokens = as_added_tokens(new_tokens, special_tokens, "new_tokens")
        added = self.added_tokens_encoder
        items = new_tokens if isinstance(new_tokens, (list, tuple)) else [new_tokens]
        strings = {item for item in items if isinstance(item, str)}
        return self._count_added(
            [token for token in tokens if not (token.content in strings and token.content in added)]
        )

    def add_special_tokens(
        self,
        special_tokens_dict: Mapping[str, str | AddedToken | Sequence[str | AddedToken]],
        replace_extra_special_tokens: bool = True,
        *,
        replace_additional_special_tokens: bool | None = None,
    ) -> int:
        """Set named special tokens (``"cls_token"``, ...) and extra ones (``"extra_special_tokens"``, or the 4.x
        ``"additional_special_tokens"``: a list), adding those not in the vocabulary; return how many got a new id.

        With ``replace_extra_special_tokens`` (4.x: ``replace_additional_special_tokens``) the given list replaces
        the extra special tokens: the previous ones stay added tokens but are no longer special. Otherwise the new
        ones are appended. Strings become special tokens that are not normalized.
        """
        if replace_additional_special_tokens is not None:
            replace_extra_special_tokens = replace_additional_special_tokens
        if not isinstance(special_tokens_dict, Mapping):
            raise TypeError(f"special_tokens_dict must be a dict, not {type(special_tokens_dict).__name__}")
        if all(key in special_tokens_dict for key in _EXTRA_KEYS):
            raise ValueError("give extra_special_tokens or additional_special_tokens (its 4.x name), not both")
        names = tuple(self.special_tokens_map)
        to_add: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key in _EXTRA_KEYS:
                if not isinstance(value, (list, tuple)):
                    raise TypeError(
                        f"{key} must be a list of strings or AddedToken objects, not {type(value).__name__}"
                    )
                tokens = as_added_tokens(value, True, key)
                contents = [token.content for token in tokens]
                if replace_extra_special_tokens:
                    decoder, named = self.added_tokens_decoder, set(self.special_tokens_map.values())
                    dropped = [old for old in self._extra_special_tokens if old not in contents and old not in named]
                    to_add += [_flagged(decoder[self._token_to_id(old)], special=False) for old in dropped]
                    self._extra_special_tokens = tuple(dict.fromkeys(contents))
                else:
                    tokens = [token for token in tokens if token.content not in self._extra_special_tokens]
                    self._extra_special_tokens = tuple(dict.fromkeys((*self._extra_special_tokens, *contents)))
                to_add += tokens
            elif key in names:
                (token,) = as_added_tokens(value, True, key)
                setattr(self, key, token.content)
                to_add.append(token)
            else:
                raise ValueError(f"special_tokens_dict key {key!r} is not one of {[*names, *_EXTRA_KEYS]}")
        added = self._count_added(to_add)
        self._special_tokens_changed()
        return added

    def _count_added(self, tokens: list[AddedToken]) -> int:
        before = len(self)
        self._add_to_vocabulary(tokens)
        return len(self) - before

    def _special_tokens_changed(self) -> None:
        """Called after :meth:`add_special_tokens` (the fast tokenizer rebuilds its post-processor)."""

    def _without_special_ids(self, ids: list[int]) -> list[int]:
        """``ids`` without those ``skip_special_tokens`` drops: the special tokens, and added tokens marked special."""
        skipped = set(self.all_special_ids)
        skipped.update(index for index, token in self.added_tokens_decoder.items() if token.special)
        return [index for index in ids if index not in skipped]

    def _init_added_tokens(
        self,
        extra_special_tokens: Sequence[str | AddedToken] | None,
        additional_special_tokens: Sequence[str | AddedToken] | None,
        added_tokens_decoder: Mapping[int | str, AddedToken | Mapping[str, Any]] | None,
    ) -> None:
        """Register the added tokens given to the constructor (they must keep their ids), then the special tokens
        that are not added tokens yet."""
        if extra_special_tokens is not None and additional_special_tokens is not None:
            raise ValueError("give extra_special_tokens or additional_special_tokens (its 4.x name), not both")
        if added_tokens_decoder is not None and not isinstance(added_tokens_decoder, Mapping):
            raise TypeError(
                f"added_tokens_decoder must be a dict of id -> AddedToken, not {type(added_tokens_decoder).__name__}"
            )
        for index, token in sorted((int(i), _token_from_saved(t)) for i, t in (added_tokens_decoder or {}).items()):
            (token,) = as_added_tokens(token, False, "added_tokens_decoder")
            self._add_to_vocabulary([token])
            if self._token_to_id(token.content) != index:
                raise ValueError(
                    f"added token {token.content!r} has id {index} but would get {self._token_to_id(token.content)}: "
                    "added tokens must take the ids after the vocabulary's, without gaps"
                )
        extras = extra_special_tokens if extra_special_tokens is not None else additional_special_tokens
        extras = as_added_tokens(
            [_token_from_saved(t, special=True) for t in extras or ()], True, "extra_special_tokens"
        )
        self._extra_special_tokens = tuple(dict.fromkeys(token.content for token in extras))
        named = [AddedToken(token, special=True, normalized=False) for token in self.special_tokens_map.values()]
        present = self.added_tokens_encoder
        self._add_to_vocabulary([token for token in named + extras if token.content not in present])

    def _added_tokens_config(self) -> dict[str, Any]:
        """What tokenizer_config.json says about added tokens (as transformers writes it)."""
        config: dict[str, Any] = {
            "added_tokens_decoder": {str(i): token.__getstate__() for i, token in self.added_tokens_decoder.items()}
        }
        if self._extra_special_tokens:
            config["extra_special_tokens"] = list(self._extra_special_tokens)
        return config

    def _save_added_tokens_file(self, save_directory: str) -> tuple[str, ...]:
        """Write added_tokens.json (the added tokens past the vocabulary, for older readers) when there are any."""
        from ..hub import write_json

        beyond = {token: index for token, index in self.added_tokens_encoder.items() if index >= self.vocab_size}
        if not beyond:
            return ()
        path = os.path.join(save_directory, ADDED_TOKENS_FILE)
        write_json(path, dict(sorted(beyond.items())))
        return (path,)

    @staticmethod
    def _saved_added_tokens(files: dict[str, Any], with_tokenizer_json: bool) -> dict[str, Any]:
        """Constructor options for the added tokens of a saved folder, as transformers reads them: the
        ``added_tokens_decoder`` of tokenizer_config.json, or else added_tokens.json (and, when
        ``with_tokenizer_json``, the ``added_tokens`` of tokenizer.json); the 4.x ``additional_special_tokens`` of
        special_tokens_map.json when tokenizer_config.json has no extra special tokens."""
        config, options = files["config"], {}
        if not any(key in config for key in _EXTRA_KEYS) and "additional_special_tokens" in files["special_tokens_map"]:
            options["additional_special_tokens"] = files["special_tokens_map"]["additional_special_tokens"]
        if "added_tokens_decoder" in config:
            options["added_tokens_decoder"] = config["added_tokens_decoder"]
            return options
        decoder: dict[int, AddedToken] = {}
        if files.get("added_tokens_file") is not None:
            saved = {**files["special_tokens_map"], **config}
            special = {_content(value) for key, value in saved.items() if key.endswith("_token")}
            special |= {_content(token) for key in _EXTRA_KEYS for token in saved.get(key) or ()}
            with open(files["added_tokens_file"], encoding="utf-8") as f:
                for content, index in json.load(f).items():
                    decoder[index] = AddedToken(content, special=content in special, normalized=content not in special)
        if with_tokenizer_json and files.get("tokenizer_file") is not None:
            with open(files["tokenizer_file"], encoding="utf-8") as f:
                for token in json.load(f).get("added_tokens") or ():
                    decoder[token["id"]] = _token_from_saved(token)
        if decoder:
            options["added_tokens_decoder"] = decoder
        return options
