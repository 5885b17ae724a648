"""Log setup (JSON or text lines, level from settings) and redaction of request text."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from shared.rpc.logs import configure_logging, redact
from tests.shared.rpc.rpc_probe import make_settings


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines(restore_root_logger: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(make_settings(log_format="json", log_level="info"))
    configure_logging(make_settings(log_format="json", log_level="info"))  # again: still one handler
    logger = logging.getLogger("intervene.test")
    logger.debug("hidden")
    logger.info("hello %s", "world")
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed")
    lines = capsys.readouterr().err.strip().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert [entry["message"] for entry in entries] == ["hello world", "failed"]
    assert entries[0]["level"] == "INFO" and entries[0]["logger"] == "intervene.test"
    assert "ValueError: bad" in entries[1]["exception"]


def test_text_lines(restore_root_logger: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(make_settings(log_format="text", log_level="WARNING"))
    logging.getLogger("intervene.test").info("hidden")
    logging.getLogger("intervene.test").warning("shown")
    err = capsys.readouterr().err
    assert "WARNING intervene.test: shown" in err and "hidden" not in err


def test_bad_level_says_what_to_set() -> None:
    with pytest.raises(ValueError, match="INTERVENE_LOG_LEVEL"):
        configure_logging(make_settings(log_level="LOUD"))


def test_redact() -> None:
    assert redact("some prompt text", make_settings()) == "<16 chars>"
    assert redact("some prompt text", make_settings(log_text=True)) == "some prompt text"
