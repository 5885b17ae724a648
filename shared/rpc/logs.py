"""Logging for services: one line per record, JSON or plain text, and no request text by default.

Prompts, reasoning and pairs hold harmful text. Code that wants to mention such text in a log passes it
through `redact(text, settings)`, which returns it only when `settings.log_text` is on (debugging) and
otherwise just its length.

Each line also carries the ids that apply where it was written — `job_id`, `rollout_id` (from
`shared.observability.logcontext.log_context`, or a record's `extra=`) and, while tracing is on, `trace_id` and
`span_id` — as JSON fields, or as `key=value` at the end of a text line. Ids only: never prompt or trace text.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime

from shared.config.base import ServiceSettings
from shared.observability.logcontext import FIELDS, current_fields

_HANDLER_NAME = "intervene"


def context_fields(record: logging.LogRecord) -> dict[str, str]:
    """The ids of the record: its own `extra=` ids first, then those of the context it was written in."""
    fields = current_fields()
    for name in FIELDS:
        value = getattr(record, name, None)
        if value:
            fields[name] = str(value)
    return fields


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, the ids of its context (job_id,
    rollout_id, trace_id, span_id) and, if any, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, then the ids of its context as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = context_fields(record)
        if not fields:
            return line
        head, newline, rest = line.partition("\n")
        ids = " ".join(f"{name}={value}" for name, value in fields.items())
        return f"{head} [{ids}]{newline}{rest}"


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
        handler.setFormatter(TextFormatter())
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
