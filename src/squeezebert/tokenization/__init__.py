"""SqueezeBERT tokenizers: a pure-Python one, a fast one backed by ``tokenizers``, and ``AutoTokenizer``."""

from .added_tokens import AddedToken
from .auto import AutoTokenizer
from .batch import BatchEncoding
from .fast import SqueezeBertTokenizerFast
from .slow import SqueezeBertTokenizer

__all__ = ["AddedToken", "AutoTokenizer", "BatchEncoding", "SqueezeBertTokenizer", "SqueezeBertTokenizerFast"]
