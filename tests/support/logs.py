"""Capturing the package's log records."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def capture_logs(name: str = "squeezebert") -> Iterator[list[logging.LogRecord]]:
    """Collect the records of logger ``name`` (and its children) whatever its propagation settings."""
    logger = logging.getLogger(name)
    handler = _ListHandler()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
