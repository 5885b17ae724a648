"""Logging for services: one line per record, JSON or plain text, and no request text by default.

Prompts, reasoning and pairs hold harmful text. Code that wants to mention such text in a log passes it
through `redact(text, settings)`, which returns it only when `settings.log_text` is on (debugging) and
otherwise just its length.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime

from shared.config.base import ServiceSettings

_HANDLER_NAME = "intervene"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and, if any, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: ServiceSettings) -> None:
    """Sends the root logger's records to stderr in `settings.log_format` at `settings.log_level`.

    Calling it again replaces the handler it installed before, so it is safe in tests and re-runs.
    """
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        raise ValueError(f"INTERVENE_LOG_LEVEL={settings.log_level!r} is not a log level; use DEBUG, INFO, WARNING")
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def redact(text: str, settings: ServiceSettings) -> str:
    """`text` itself when `settings.log_text` is on, else only its length (`<N chars>`)."""
    return text if settings.log_text else f"<{len(text)} chars>"


def describe_exception(error: BaseException, log_text: bool) -> str:
    """The traceback of `error` and of the exceptions that led to it, like Python prints it, except that each
    exception's message is replaced by its length unless `log_text`: messages can quote the request."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts = []
    for exception in reversed(chain):
        message = str(exception)
        shown = message if log_text else f"<{len(message)} chars>"
        frames = "".join(traceback.format_tb(exception.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{frames}{type(exception).__name__}: {shown}")
    return "\n\nThe above exception led to the following one:\n\n".join(parts)
