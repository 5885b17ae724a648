"""Where the CLI finds a service and its token: flags, then environment, then the local stack's run folder."""

from __future__ import annotations

import os
from pathlib import Path

import click
import grpc

from shared.rpc.client import connect
from tools.stack.local import SERVICES
from tools.stack.state import StackState, run_dir


def service_address(service: str, explicit: str | None) -> str:
    """`--address`, else INTERVENE_<SERVICE>_ADDRESS, else the running local stack, else the default port."""
    if explicit:
        return explicit
    from_env = os.environ.get(f"INTERVENE_{service.upper()}_ADDRESS")
    if from_env:
        return from_env
    state = StackState.load(run_dir())
    if state is not None and service in state.services:
        return state.address(service)
    return f"127.0.0.1:{SERVICES[service]}"


def bearer_token(read_scope: bool, token_file: Path | None) -> str | None:
    """`--token-file`, else INTERVENE_TOKEN / INTERVENE_READ_TOKEN (or their *_FILE), else the local stack's."""
    if token_file is not None:
        return token_file.read_text().strip()
    name = "INTERVENE_READ_TOKEN" if read_scope else "INTERVENE_TOKEN"
    if os.environ.get(name):
        return os.environ[name]
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    state = StackState.load(run_dir())
    if state is not None:
        return Path(state.read_token_file if read_scope else state.token_file).read_text().strip()
    return None


def open_channel(service: str, address: str | None, token_file: Path | None, read_scope: bool = False) -> grpc.Channel:
    """A channel to `service` carrying the right bearer token."""
    return connect(service_address(service, address), token=bearer_token(read_scope, token_file))


def fail_on_rpc_error(error: grpc.RpcError, service: str) -> click.ClickException:
    """A CLI error that names the service, the status and what to do about an unreachable one."""
    code = error.code() if isinstance(error, grpc.Call) else None
    hint = ""
    if code == grpc.StatusCode.UNAVAILABLE:
        hint = " Is it running? Start the local stack with `intervene up` or pass --address."
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        hint = " Pass --token-file or set INTERVENE_TOKEN."
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    name = code.name if code else "ERROR"
    return click.ClickException(f"{service}: {name}: {details}.{hint}")


address_option = click.option("--address", help="host:port of the service (default: the local stack's).")
token_option = click.option(
    "--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="File holding the bearer token."
)
