"""`intervene queues`: lag and dead letters of the work queues, and requeueing of dead letters.

An operator's tool: it talks to Redis directly (`--redis-url`, else INTERVENE_REDIS_URL, else the local
stack's). Dead letters are listed by id, origin and error; their bodies (which may hold harmful text)
are never printed.
"""

from __future__ import annotations

import os

import click
import redis

from shared.queues import ALL_STREAMS, BackPressureError, dead_letters, queue_lag, requeue_dead
from tools.stack.state import StackState, run_dir

redis_option = click.option("--redis-url", help="Redis URL (default: INTERVENE_REDIS_URL, else the local stack's).")


def _client(redis_url: str | None) -> redis.Redis:
    url = redis_url or os.environ.get("INTERVENE_REDIS_URL")
    if not url:
        state = StackState.load(run_dir())
        if state is None:
            raise click.ClickException(
                "no Redis to inspect: pass --redis-url, set INTERVENE_REDIS_URL or start the stack with `intervene up`"
            )
        url = state.redis_url
    return redis.Redis.from_url(url, socket_timeout=10)


@click.group(invoke_without_command=True)
@redis_option
@click.pass_context
def queues(context: click.Context, redis_url: str | None) -> None:
    """Show each stream's length, dead letters and consumer groups' lag (subcommands: dead, requeue)."""
    if context.invoked_subcommand is not None:
        return
    try:
        report = queue_lag(_client(redis_url))
    except redis.exceptions.ConnectionError as error:
        raise click.ClickException(f"Redis unreachable: {error}") from None
    click.echo(f"{'stream':<24}{'length':>8}{'dead':>7}  groups (lag/pending/consumers)")
    for stream in report:
        groups = ", ".join(f"{g.group} {g.lag}/{g.pending}/{g.consumers}" for g in stream.groups) or "-"
        click.echo(f"{stream.stream:<24}{stream.length:>8}{stream.dead_letters:>7}  {groups}")


@queues.command()
@click.argument("stream", type=click.Choice(ALL_STREAMS))
@click.option("--limit", default=20, show_default=True, help="Show at most this many dead letters.")
@redis_option
def dead(stream: str, limit: int, redis_url: str | None) -> None:
    """List the dead letters of STREAM: id, original entry, deliveries and the last error."""
    letters = dead_letters(_client(redis_url), stream, count=limit)
    if not letters:
        click.echo(f"{stream}: no dead letters")
    for letter in letters:
        click.echo(f"{letter.dead_id}  entry {letter.entry_id}  deliveries {letter.deliveries}  {letter.error[:200]}")


@queues.command()
@click.argument("stream", type=click.Choice(ALL_STREAMS))
@click.option("--id", "ids", multiple=True, help="Dead-letter id to requeue (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Requeue every dead letter of STREAM.")
@redis_option
def requeue(stream: str, ids: tuple[str, ...], everything: bool, redis_url: str | None) -> None:
    """Move dead letters of STREAM back onto it (after fixing what made them fail)."""
    if bool(ids) == everything:
        raise click.UsageError("give either --id (one or more) or --all")
    try:
        moved = requeue_dead(_client(redis_url), stream, "all" if everything else list(ids))
    except BackPressureError as error:
        raise click.ClickException(f"{error}; let the consumers catch up and retry") from None
    click.echo(f"requeued {moved} dead letters onto {stream}")
