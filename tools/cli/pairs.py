"""`intervene pairs stats | export`: read the pair store over gRPC."""

from __future__ import annotations

from pathlib import Path

import click
import grpc

from shared.pairs.export import FORMATS, write_pairs
from shared.protos.intervene.v1 import common_pb2, pairstore_pb2, pairstore_pb2_grpc
from tools.cli.endpoints import address_option, fail_on_rpc_error, open_channel, token_option

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


@pairs.command()
@click.option(
    "--file",
    "pairs_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An exported pairs file (JSONL or Parquet); default: the pair store (read-scope token).",
)
@click.option("--sample", type=click.IntRange(min=0), default=10, show_default=True, help="Pairs shown (0: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option(
    "--labels",
    type=click.Choice(["rules", "classifier"]),
    default="rules",
    show_default=True,
    help="Judge that labels the steps shown (run here; not the judge that built the pairs).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of the table.")
@click.option("--show-text", is_flag=True, help="Also print each pair's prompt, prefix, chosen and rejected (harmful).")
@filter_options
@address_option
@token_option
def inspect(pairs_file, sample, seed, labels, as_json, show_text, dataset, model, kind, job, address, token_file):
    """A sample of pairs with step labels, verdicts, similarity and provenance: what the model is being taught."""
    import json

    from shared.intervention.inspect import inspect_rows
    from shared.judging.registry import make_judge

    rows = _rows(pairs_file, _filter(dataset, model, kind, job), address, token_file)
    if pairs_file is not None:
        rows = [r for r in rows if (not kind or r.get("kind") == kind) and (not job or r.get("job_id") == job)]
        rows = [r for r in rows if (not dataset or r.get("dataset") == dataset)]
        rows = [r for r in rows if (not model or r.get("model") == model)]
    labeler = make_judge(labels)
    summary, views = inspect_rows(rows, labeler, sample=sample, seed=seed, show_text=show_text)
    labeler.close()
    if as_json:
        click.echo(json.dumps({"summary": summary.__dict__}))
        for item in views:
            click.echo(json.dumps(item.as_dict(), ensure_ascii=False))
        return
    click.echo(
        f"{summary.pairs} pairs ({', '.join(f'{k} {v}' for k, v in sorted(summary.by_kind.items())) or 'none'}); "
        f"harmful pairs from {summary.rollouts} rollouts, at most {summary.max_pairs_per_rollout} per rollout"
    )
    click.echo("by trigger: " + ", ".join(f"{k} {v}" for k, v in summary.by_trigger.items()))
    click.echo("by round:   " + ", ".join(f"{k} {v}" for k, v in summary.by_round.items()))
    click.echo(
        "steps: N neutral, C cue, U unsafe, T trigger, | the divergence step (labels by the "
        f"{labels} judge); verdicts: rejected reasoning/response, chosen reasoning/response"
    )
    header = (
        f"{'id':<13}{'kind':<13}{'rollout':<15}{'rnd':>3} {'trig':<6}{'h':>3} {'len p/c/r':<17}"
        f"{'sim':>5} {'rej-refuses':<12}{'verdicts':<21}{'chosen steps':<18}rejected steps"
    )
    click.echo(header)
    for item in views:
        lengths = f"{item.prefix_chars}/{item.chosen_chars}/{item.rejected_chars}"
        refuses = "yes" if item.rejected_refuses else "no"
        click.echo(
            f"{item.id:<13}{item.kind:<13}{item.rollout_id:<15}{item.round:>3} {item.trigger_id:<6}"
            f"{item.divergence_step:>3} {lengths:<17}{item.similarity:>5.2f} {refuses:<12}"
            f"{item.verdicts:<21}{item.chosen_labels:<18}{item.rejected_labels}"
        )
        if item.text is not None:
            for name, text in item.text.items():
                click.echo(f"    {name}: {text!r}")
    if views:
        click.echo(f"judge that built them: {', '.join(sorted({v.judge for v in views}))}")


def _rows(pairs_file: Path | None, request_filter, address, token_file) -> list[dict]:
    from shared.pairs.export import to_row

    if pairs_file is not None:
        from shared.training.data import read_rows

        try:
            return read_rows(pairs_file)
        except ValueError as error:
            raise click.UsageError(f"--file: {error}") from error
    with open_channel("pairstore", address, token_file, read_scope=True) as channel:
        try:
            replies = pairstore_pb2_grpc.PairStoreServiceStub(channel).ExportPairs(
                pairstore_pb2.ExportPairsRequest(filter=request_filter)
            )
            return [to_row(reply.pair) for reply in replies]
        except grpc.RpcError as error:
            raise fail_on_rpc_error(error, "pairstore") from None
