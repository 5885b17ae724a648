"""Redis with a password and an ACL user: the services work as a user confined to their own keys, read the
password from a mounted file, and a wrong password turns health NOT_SERVING with a log line that says why and
never shows the password.

The ACL user is what a shared Redis would give Intervene: every command except the dangerous ones (FLUSHALL,
KEYS, CONFIG, ...) on the keys the services use — the pair store's and job state's `intervene:*` prefixes and the
work-queue streams (`rollout.*`, `continuation.*`, `pair.*`, with their `.dead` and `.errors` companions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis

from services.pairstore.server import build_spec as build_pairstore
from shared.config.pairstore import PairStoreSettings
from shared.protos.intervene.v1 import (
    common_pb2,
    intervention_pb2,
    intervention_pb2_grpc,
    pairstore_pb2,
    pairstore_pb2_grpc,
)
from shared.rpc.client import connect
from shared.rpc.health import NOT_SERVING, SERVING
from shared.rpc.server import RunningServer, start_server
from tests.reliability.security_fixtures import TOKEN, start_services, wait_until_serving
from tools.redis_process import RedisProcess

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "admin-secret-5b1e"
USER, USER_PASSWORD = "intervene", "service-secret-c04d"
WRONG_PASSWORD = "wrong-secret-9aa7"
KEY_PATTERNS = ["intervene:*", "rollout.*", "continuation.*", "pair.*"]


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A redis-server whose default user needs ADMIN_PASSWORD, with the confined ACL user USER."""
    server = RedisProcess(data_dir=tmp_path_factory.mktemp("acl-redis"), password=ADMIN_PASSWORD).start()
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser(
        USER, enabled=True, passwords=[f"+{USER_PASSWORD}"], keys=KEY_PATTERNS, commands=["+@all", "-@dangerous"]
    )
    yield server
    server.stop()


def url_of(server: RedisProcess, user: str = USER, password: str | None = USER_PASSWORD) -> str:
    credentials = f"{user}:{password}@" if password is not None else f"{user}@"
    return f"redis://{credentials}127.0.0.1:{server.port}/0"


def serve_pairstore(redis_url: str, **overrides: object) -> RunningServer:
    settings = PairStoreSettings(
        port=0, redis_url=redis_url, auth_token=TOKEN, consume_queue=False, dependency_check_seconds=0.1, **overrides
    )
    return start_server(build_pairstore(settings), settings)


def wait_for_status(server: RunningServer, status: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while server.health.status() != status and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.health.status() == status


def test_the_acl_user_is_confined(acl_redis: RedisProcess) -> None:
    user = redis.Redis.from_url(url_of(acl_redis))
    assert user.set("intervene:pairs:probe", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.set("someone-else:key", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.flushall()


def test_a_job_runs_through_every_service_as_the_acl_user(acl_redis: RedisProcess, tiny_model_folder: Path) -> None:
    admin = redis.Redis.from_url(acl_redis.url)
    admin.acl_log_reset()
    services = start_services(url_of(acl_redis), tiny_model_folder, consume_queue=True)
    try:
        wait_until_serving(services)
        stub = intervention_pb2_grpc.InterventionServiceStub(services.channel("InterventionService", TOKEN))
        request = intervention_pb2.SubmitPromptsRequest(
            prompts=[common_pb2.Prompt(text=text) for text in ("How do tides work?", "Why is the sky blue?")],
            sampling=common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=12, max_response_tokens=4),
            name="acl",
        )
        job_id = stub.SubmitPrompts(request, timeout=60).job_id
        deadline = time.monotonic() + 180
        job = stub.GetJob(intervention_pb2.GetJobRequest(job_id=job_id), timeout=30).job
        while job.state == common_pb2.JOB_STATE_RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
            job = stub.GetJob(intervention_pb2.GetJobRequest(job_id=job_id), timeout=30).job
        assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.failed_items == 0, job
        assert job.rollouts_judged == job.rollouts_requested == 2
    finally:
        services.stop()
    denied = [entry for entry in admin.acl_log() if entry.get("username") == USER]
    assert not denied, f"the services used keys or commands outside the ACL: {denied[:3]}"
    assert any(admin.scan_iter(match=f"intervene:jobs*{job_id}*")), "the job's state is in the user's keys"


def test_password_from_a_mounted_file(acl_redis: RedisProcess, tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text(USER_PASSWORD + "\n")
    # The URL names the user only; the file holds the password (a Kubernetes Secret mounted as a file).
    server = serve_pairstore(url_of(acl_redis, password=None), redis_password_file=secret)
    try:
        wait_for_status(server, SERVING)
        stub = pairstore_pb2_grpc.PairStoreServiceStub(connect(server.address, token=TOKEN))
        assert stub.Stats(pairstore_pb2.StatsRequest(), timeout=10).snapshot_id
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize(
    ("user", "password"),
    [(USER, WRONG_PASSWORD), ("default", WRONG_PASSWORD), ("default", None)],
    ids=["wrong-user-password", "wrong-default-password", "no-password"],
)
def test_refused_credentials_mean_not_serving_and_a_log_line_without_the_password(
    acl_redis: RedisProcess, caplog: pytest.LogCaptureFixture, user: str, password: str | None
) -> None:
    url = url_of(acl_redis, user, password) if password else f"redis://127.0.0.1:{acl_redis.port}/0"
    caplog.set_level(logging.DEBUG)
    server = serve_pairstore(url)
    try:
        time.sleep(0.5)
        wait_for_status(server, NOT_SERVING)
        stub = pairstore_pb2_grpc.PairStoreServiceStub(connect(server.address, token=TOKEN))
        with pytest.raises(grpc.RpcError) as refused:
            stub.Stats(pairstore_pb2.StatsRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        details = refused.value.details()
    finally:
        server.stop(grace=None)
    lines = [record.getMessage() for record in caplog.records]
    assert any("Redis refused the credentials" in line and "INTERVENE_REDIS_URL" in line for line in lines), lines
    for secret in (WRONG_PASSWORD, USER_PASSWORD, ADMIN_PASSWORD):
        assert secret not in "\n".join(lines) + caplog.text + details
