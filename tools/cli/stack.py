"""`intervene up | status | down`: the local stack on 127.0.0.1."""

from __future__ import annotations

import click

from tools.stack import local
from tools.stack.state import run_dir


@click.command()
@click.option(
    "--service",
    "services",
    multiple=True,
    type=click.Choice(list(local.SERVICES)),
    help="Start only these services (repeatable; default: every service in this checkout).",
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for each service to be SERVING.")
def up(services: tuple[str, ...], timeout: float) -> None:
    """Start Redis (AOF) and the services; wait until each reports SERVING."""
    folder = run_dir()
    try:
        state = local.up(
            folder,
            list(services) or None,
            timeout_s=timeout,
            on_started=lambda name, address: click.echo(f"{name:<13} SERVING  {address}"),
        )
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{'redis':<13} SERVING  {state.redis_url.split('@')[-1]}")
    click.echo(f"run folder: {folder} (logs/, secrets/, stack.json)")


@click.command()
def status() -> None:
    """Show the health of each process of the local stack."""
    report = local.status(run_dir())
    if not report:
        raise click.ClickException("no local stack is running here; start one with `intervene up`")
    for name, health in report.items():
        click.echo(f"{name:<13} {health}")
    if any(health != "SERVING" for health in report.values()):
        raise SystemExit(1)


@click.command()
def down() -> None:
    """Stop exactly the processes `intervene up` started."""
    stopped = local.down(run_dir())
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
