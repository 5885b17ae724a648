"""Tracing stays off unless the OTEL_* variables ask for it, and then refuses settings it cannot honour by name.

Turning it on installs the process-wide tracer provider, so the spans themselves are checked across real service
processes (tests/reliability/test_telemetry.py), not in this test process.
"""

from __future__ import annotations

import pytest

from shared.observability import tracing
from shared.protos.intervene.v1 import queue_pb2
from shared.queues.tracing import stamp

OTEL = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL:
        monkeypatch.delenv(name, raising=False)
    assert not tracing.enabled()


def test_off_by_default_and_every_call_is_a_no_op() -> None:
    assert tracing.configure("judge") is False
    assert tracing.start_span("x", "server") is None
    assert tracing.carrier() == {} and tracing.current_ids() == {}
    with tracing.span("x") as span:
        assert span is None
    message = queue_pb2.RolloutRequested(job_id="j", rollout_id="r", trace_context={"traceparent": "kept"})
    stamp("rollout.requested", message)
    assert dict(message.trace_context) == {"traceparent": "kept"}


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
    ],
)
def test_none_and_sdk_disabled_keep_it_off(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.configure("judge") is False and not tracing.enabled()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ],
)
def test_settings_it_cannot_honour_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=named):
        tracing.configure("judge")
    assert not tracing.enabled()
