"""Promotion: ask the generation service to serve a freshly trained adapter under its versioned name."""

from __future__ import annotations

from pathlib import Path

import grpc


def promote_adapter(address: str, token: str | None, name: str, path: Path, timeout_s: float = 120.0) -> None:
    """Call `LoadAdapter(name, path)`; raises RuntimeError with the service's answer when it refuses."""
    from shared.protos.intervene.v1 import generation_pb2, generation_pb2_grpc
    from shared.rpc.client import connect

    stub = generation_pb2_grpc.GenerationServiceStub(connect(address, token=token))
    try:
        stub.LoadAdapter(generation_pb2.LoadAdapterRequest(name=name, path=str(path.resolve())), timeout=timeout_s)
    except grpc.RpcError as error:
        raise RuntimeError(
            f"promotion of {name} to {address} failed ({error.code().name}: {error.details()}); the adapter is at "
            f"{path}, promote it later with LoadAdapter"
        ) from error
