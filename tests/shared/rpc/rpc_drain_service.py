"""A probe service run by `run_service` in its own process, for the SIGTERM drain test.

GetPair(id="slow") writes $PROBE_DIR/started, then waits for $PROBE_DIR/release before answering, so the
test controls exactly when the in-flight call ends. The background task writes $PROBE_DIR/background-stopped
when it is stopped. Run from the repository root:
    PROBE_DIR=<dir> INTERVENE_AUTH_TOKEN=<token> INTERVENE_PORT=<port> python -m tests.shared.rpc.rpc_drain_service
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc

from shared.config.base import ServiceSettings
from shared.protos.intervene.v1 import pairstore_pb2
from shared.rpc.server import run_service
from tests.shared.rpc.rpc_probe import ProbeServicer, make_spec

PROBE_DIR = Path(os.environ["PROBE_DIR"])


class FileControlledServicer(ProbeServicer):
    def GetPair(self, request: pairstore_pb2.GetPairRequest, context: grpc.ServicerContext):
        if request.id != "slow":
            return super().GetPair(request, context)
        (PROBE_DIR / "started").touch()
        deadline = time.monotonic() + 60
        while not (PROBE_DIR / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return pairstore_pb2.GetPairResponse()


class MarkerTask:
    def start(self) -> None:
        (PROBE_DIR / "background-started").touch()

    def stop(self) -> None:
        (PROBE_DIR / "background-stopped").touch()


if __name__ == "__main__":
    run_service(make_spec(FileControlledServicer(), background=[MarkerTask()]), ServiceSettings())
