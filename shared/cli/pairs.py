"""`intervene pairs stats | export`: read the pair store over gRPC."""

from __future__ import annotations

from pathlib import Path

import click
import grpc

from shared.cli.endpoints import address_option, fail_on_rpc_error, open_channel, token_option
from shared.pairs.export import FORMATS, write_pairs
from shared.protos.intervene.v1 import common_pb2, pairstore_pb2, pairstore_pb2_grpc

_KINDS = {"harmful": common_pb2.PAIR_KIND_HARMFUL, "over_refusal": common_pb2.PAIR_KIND_OVER_REFUSAL}


@click.group()
def pairs() -> None:
    """Inspect and export the stored preference pairs."""


def _filter(dataset: str | None, model: str | None, kind: str | None, job: str | None) -> pairstore_pb2.PairFilter:
    return pairstore_pb2.PairFilter(
        dataset=dataset or "", model=model or "", kind=_KINDS[kind] if kind else 0, job_id=job or ""
    )


def filter_options(command):
    for option in (
        click.option("--dataset", help="Only pairs from this dataset."),
        click.option("--model", help="Only pairs produced by this model."),
        click.option("--kind", type=click.Choice(list(_KINDS)), help="Only pairs of this kind."),
        click.option("--job", help="Only pairs of this job id."),
    ):
        command = option(command)
    return command


@pairs.command()
@filter_options
@address_option
@token_option
def stats(dataset, model, kind, job, address, token_file) -> None:
    """Count stored pairs, in total and by dataset, model and kind."""
    with open_channel("pairstore", address, token_file) as channel:
        try:
            reply = pairstore_pb2_grpc.PairStoreServiceStub(channel).Stats(
                pairstore_pb2.StatsRequest(filter=_filter(dataset, model, kind, job)), timeout=30
            )
        except grpc.RpcError as error:
            raise fail_on_rpc_error(error, "pairstore") from None
    click.echo(f"total      {reply.total}")
    for title, counts in (("dataset", reply.by_dataset), ("model", reply.by_model), ("kind", reply.by_kind)):
        for name, count in sorted(counts.items()):
            click.echo(f"{title:<10} {name or '(none)'}: {count}")
    click.echo(f"snapshot   {reply.snapshot_id}")


@pairs.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="File to write.")
@click.option("--shard", default=0, show_default=True, help="Shard to export.")
@click.option("--num-shards", default=1, show_default=True, help="Number of shards.")
@filter_options
@address_option
@token_option
def export(fmt, out, shard, num_shards, dataset, model, kind, job, address, token_file) -> None:
    """Export pairs in TRL's prompt/chosen/rejected format (needs the read-scope token)."""
    request = pairstore_pb2.ExportPairsRequest(
        filter=_filter(dataset, model, kind, job), shard=shard, num_shards=num_shards
    )
    with open_channel("pairstore", address, token_file, read_scope=True) as channel:
        try:
            replies = pairstore_pb2_grpc.PairStoreServiceStub(channel).ExportPairs(request)
            count = write_pairs((reply.pair for reply in replies), out, fmt)
        except grpc.RpcError as error:
            raise fail_on_rpc_error(error, "pairstore") from None
    click.echo(f"wrote {count} pairs to {out}")
