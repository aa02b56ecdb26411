"""Structured logging: JSON lines (orjson) by default, console for people."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Configure structlog once, at process start (the CLI calls this)."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=orjson.dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=(
            structlog.BytesLoggerFactory(sys.stderr.buffer)
            if fmt == "json"
            else structlog.PrintLoggerFactory(sys.stderr)
        ),
        cache_logger_on_first_use=True,
    )


def get(name: str = "bucketfn") -> structlog.typing.FilteringBoundLogger:
    """A logger; bind event fields to it per invocation."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
