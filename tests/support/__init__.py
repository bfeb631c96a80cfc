"""Helpers shared by the test suite: tiny configs, the Hugging Face oracle, reference math, checkpoint writers.

``transformers`` is imported only by the modules that compare against it; the package never imports it.
"""
