"""Log lines carry the job, rollout (and, while tracing is on, trace) ids of where they were written."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from shared.observability.logcontext import log_context
from shared.protos.intervene.v1 import common_pb2, queue_pb2
from shared.queues.codec import Delivery
from shared.queues.handling import run_handler
from shared.rpc.logs import configure_logging
from tests.shared.rpc.rpc_probe import make_settings


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_json_lines_carry_the_ids_of_their_context(restore_root_logger: None, capsys) -> None:
    configure_logging(make_settings(log_format="json", log_level="info"))
    logger = logging.getLogger("intervene.test")
    with log_context(job_id="j-1"):
        logger.info("submitted")
        with log_context(rollout_id="r-7"):
            logger.info("judged")
    logger.info("outside")
    logger.info("given", extra={"job_id": "j-2"})
    entries = [json.loads(line) for line in lines(capsys)]
    ids = [{k: e.get(k) for k in ("job_id", "rollout_id", "trace_id")} for e in entries]
    assert ids == [
        {"job_id": "j-1", "rollout_id": None, "trace_id": None},
        {"job_id": "j-1", "rollout_id": "r-7", "trace_id": None},
        {"job_id": None, "rollout_id": None, "trace_id": None},
        {"job_id": "j-2", "rollout_id": None, "trace_id": None},
    ]


def test_text_lines_end_with_the_ids(restore_root_logger: None, capsys) -> None:
    configure_logging(make_settings(log_format="text", log_level="info"))
    with log_context(job_id="j-1", rollout_id="r-7"):
        logging.getLogger("intervene.test").info("judged")
    (line,) = lines(capsys)
    assert line.endswith("intervene.test: judged [job_id=j-1 rollout_id=r-7]")


def test_a_queue_handler_logs_with_its_entrys_job_and_rollout(restore_root_logger: None, capsys) -> None:
    configure_logging(make_settings(log_format="json", log_level="info"))
    message = queue_pb2.RolloutJudged(job_id="j-9", rollout=common_pb2.Rollout(id="r-3", reasoning="secret text"))
    run_handler([Delivery("1-0", message, 1)], lambda delivery: logging.getLogger("intervene.test").info("handled"))
    (entry,) = [json.loads(line) for line in lines(capsys)]
    assert entry["job_id"] == "j-9" and entry["rollout_id"] == "r-3"
    assert "secret text" not in json.dumps(entry)
