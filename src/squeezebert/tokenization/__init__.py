"""SqueezeBERT tokenizers: a pure-Python one, a fast one backed by ``tokenizers``, and ``AutoTokenizer``.

The building blocks of the pure-Python one are public under ``transformers``' names too: :class:`BasicTokenizer`,
:class:`WordpieceTokenizer` and the character classes ``_is_whitespace``, ``_is_control`` and ``_is_punctuation``.
"""

from .added_tokens import AddedToken
from .auto import AutoTokenizer
from .basic import BasicTokenizer, WordpieceTokenizer, load_vocab
from .basic import is_control as _is_control
from .basic import is_punctuation as _is_punctuation
from .basic import is_whitespace as _is_whitespace
from .batch import BatchEncoding
from .fast import SqueezeBertTokenizerFast
from .slow import SqueezeBertTokenizer

__all__ = [
    "AddedToken",
    "AutoTokenizer",
    "BasicTokenizer",
    "BatchEncoding",
    "SqueezeBertTokenizer",
    "SqueezeBertTokenizerFast",
    "WordpieceTokenizer",
    "load_vocab",
    "_is_control",
    "_is_punctuation",
    "_is_whitespace",
]
