"""`intervene serve SERVICE`: run one service in the foreground; the container image's entry point.

The image runs `intervene serve <name>` (ENTRYPOINT ["intervene"]), so one image serves every service.
The command replaces itself with `python -m services.<name>` (exec, not a child process) so that the
service is the process Kubernetes signals on shutdown and its exit status is the container's.
Settings come from INTERVENE_* environment variables, as for `python -m services.<name>`.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import click

SERVICES = ("generation", "judge", "intervention", "pairstore")


@click.command()
@click.argument("service", type=click.Choice(SERVICES))
def serve(service: str) -> None:
    """Run SERVICE (a gRPC server) in the foreground until SIGTERM."""
    module = f"services.{service}"
    if importlib.util.find_spec(module) is None:
        raise click.ClickException(f"service {service!r} is not installed (no module {module}): reinstall intervene")
    os.execvp(sys.executable, [sys.executable, "-m", module])
