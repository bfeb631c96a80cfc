"""Helpers shared by the test suite (fixtures are in tests/conftest.py):

- ``configs``: the one tiny-config factory (``tiny`` / ``tiny_config``) and the named configs built on it;
- ``inputs``: inputs and labels for every head, and the scalar a backward pass starts from;
- ``oracle``: our model and the Hugging Face reference with the same random weights;
- ``numerics``: float64 recomputation of the reference and tolerances derived from rounding-error analysis;
- ``reference``: a hand-written encoder, for what the reference does not implement (``head_mask``);
- ``checkpoints``: checkpoint writers, a hand-made Hugging Face cache, the pipeline tests' small checkpoints;
- ``logs``: capturing the package's log records;
- ``server``: ``squeezebert serve`` in a subprocess on a loopback port, or its app in-process with an httpx client.

``transformers`` is imported only by the modules that compare against it; the package never imports it.
"""
