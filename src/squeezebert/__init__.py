"""SqueezeBERT: efficient BERT-like encoders with grouped convolutions, Hugging Face compatible."""

__version__ = "0.1.0"
