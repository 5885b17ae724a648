"""`intervene demo`: the whole loop on the embedded default, in minutes on a laptop's CPU.

It starts the local stack (Redis, pair store, judge, generation with the embedded SmolLM2-135M, intervention)
with small token budgets, submits a small prompt set written by the team (`demo-harmful`: harmful intents in
plain words, no specifics; `demo-benign`: look-alikes for over-refusal pairs), follows both jobs with a
progress bar per stage, prints the stage table and the intervention success by round (and plots it), exports
the pairs in TRL's prompt/chosen/rejected format and stops the stack (unless --keep).

    intervene demo
    intervene demo --dataset advbench --limit 10      # a set of ../shared/data, or any CSV/JSONL file
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import click
import grpc

from shared.cli.endpoints import fail_on_rpc_error, open_channel
from shared.cli.submit import dataset_argument, stage_table, watch
from shared.pairs.export import FORMATS, write_pairs
from shared.protos.intervene.v1 import (
    common_pb2,
    intervention_pb2,
    intervention_pb2_grpc,
    pairstore_pb2,
    pairstore_pb2_grpc,
)
from shared.stack import local
from shared.stack.state import run_dir

# Budgets that keep the demo under 10 minutes on 2 CPU cores (SmolLM2-135M decodes ~20 tokens/s per sequence).
DEMO_REASONING_TOKENS = 64
DEMO_RESPONSE_TOKENS = 32


def demo_env(reasoning_tokens: int, response_tokens: int, judge: str) -> dict[str, str]:
    """Settings of the services for the demo: small default budgets, the chosen judge, logs as text."""
    return {
        "INTERVENE_JUDGE_BACKEND": judge,
        "INTERVENE_MAX_REASONING_TOKENS": str(reasoning_tokens),
        "INTERVENE_MAX_RESPONSE_TOKENS": str(response_tokens),
        "INTERVENE_LOG_FORMAT": "text",
        "INTERVENE_DRAIN_SECONDS": "1",
    }


@click.command()
@click.option("--dataset", default="demo-harmful", show_default=True, help="Harmful prompts: a name or CSV/JSONL file.")
@click.option("--text-column", default="", help="Column holding the prompt in a CSV/JSONL file.")
@click.option("--limit", type=int, default=8, show_default=True, help="Prompts to take from the set (0: all).")
@click.option("--benign-dataset", default="demo-benign", show_default=True, help="Benign look-alikes ('' skips).")
@click.option("--benign-samples", type=int, default=2, show_default=True, help="Rollouts per benign prompt.")
@click.option("--max-rounds", type=int, default=2, show_default=True, help="Intervention rounds.")
@click.option("--reasoning-tokens", type=int, default=DEMO_REASONING_TOKENS, show_default=True)
@click.option("--response-tokens", type=int, default=DEMO_RESPONSE_TOKENS, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling and prompt choice.")
@click.option(
    "--judge",
    type=click.Choice(["classifier", "rules"]),
    default="classifier",
    show_default=True,
    # The rules patterns recognise almost none of SmolLM2's compliance cues; the classifier finds some.
    help="Judge back end of the demo's judge service (both embedded, CPU-only).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Pairs file (default: RUN_DIR/demo-pairs.jsonl)."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--keep", is_flag=True, help="Leave the local stack running afterwards.")
def demo(
    dataset: str,
    text_column: str,
    limit: int,
    benign_dataset: str,
    benign_samples: int,
    max_rounds: int,
    reasoning_tokens: int,
    response_tokens: int,
    seed: int,
    judge: str,
    out: Path | None,
    fmt: str,
    keep: bool,
) -> None:
    """Run the whole loop on the embedded default: prompts -> rollouts -> judge -> interventions -> pairs."""
    folder = run_dir()
    out = out or folder / f"demo-pairs.{fmt}"
    started = time.monotonic()
    click.echo(f"starting the local stack in {folder} ...")
    try:
        local.up(
            folder,
            env=demo_env(reasoning_tokens, response_tokens, judge),
            on_started=lambda name, address: click.echo(f"  {name:<13} SERVING  {address}"),
        )
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    try:
        sampling = common_pb2.SamplingParams(
            max_reasoning_tokens=reasoning_tokens, max_response_tokens=response_tokens, seed=seed
        )
        requests = [
            intervention_pb2.SubmitPromptsRequest(
                dataset=dataset_argument(dataset),
                text_column=text_column,
                limit=limit,
                seed=seed,
                max_rounds=max_rounds,
                sampling=sampling,
                name=f"demo {dataset}",
            )
        ]
        if benign_dataset:
            requests.append(
                intervention_pb2.SubmitPromptsRequest(
                    dataset=dataset_argument(benign_dataset),
                    benign=True,
                    samples_per_prompt=benign_samples,
                    seed=seed,
                    sampling=sampling,
                    name=f"demo {benign_dataset} (over-refusal)",
                )
            )
        jobs = _run_jobs(requests)
        for job in jobs:
            click.echo(stage_table(job))
        count = _export(jobs, out, fmt)
        click.echo(f"exported {count} pairs (TRL prompt/chosen/rejected) to {out}")
        plot = _plot(jobs[0], out.with_name("demo-success-by-round.png"))
        if plot is not None:
            click.echo(f"plotted intervention success by round to {plot}")
        click.echo(f"demo finished in {time.monotonic() - started:.0f}s")
    finally:
        if not keep:
            click.echo("stopped: " + ", ".join(local.down(folder)))


def _run_jobs(requests: list[intervention_pb2.SubmitPromptsRequest]) -> list[common_pb2.Job]:
    with open_channel("intervention", None, None) as channel:
        stub = intervention_pb2_grpc.InterventionServiceStub(channel)
        try:
            ids = []
            for request in requests:
                reply = stub.SubmitPrompts(request, timeout=60)
                click.echo(f"submitted {request.name}: job {reply.job_id}, {reply.prompts} prompts")
                ids.append(reply.job_id)
            jobs = []
            for job_id, request in zip(ids, requests, strict=True):
                click.echo(f"following {request.name}:")
                jobs.append(watch(stub, job_id, timeout=3600))
            return jobs
        except grpc.RpcError as error:
            raise fail_on_rpc_error(error, "intervention") from None


def _export(jobs: list[common_pb2.Job], out: Path, fmt: str) -> int:
    with open_channel("pairstore", None, None, read_scope=True) as channel:
        stub = pairstore_pb2_grpc.PairStoreServiceStub(channel)
        try:
            streams = [
                stub.ExportPairs(pairstore_pb2.ExportPairsRequest(filter=pairstore_pb2.PairFilter(job_id=job.id)))
                for job in jobs
            ]
            return write_pairs((reply.pair for reply in itertools.chain(*streams)), out, fmt)
        except grpc.RpcError as error:
            raise fail_on_rpc_error(error, "pairstore") from None


def _plot(job: common_pb2.Job, path: Path) -> Path | None:
    """A bar chart of intervention success by round; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rounds = [stats.round for stats in job.rounds]
    shares = [100 * stats.succeeded / stats.tried if stats.tried else 0 for stats in job.rounds]
    figure, axis = plt.subplots(figsize=(5, 3))
    axis.bar([str(r) for r in rounds], shares, color="#3a7d44")
    axis.set_xlabel("intervention round")
    axis.set_ylabel("rollouts made safe (%)")
    axis.set_ylim(0, 100)
    axis.set_title(f"{job.name}: success by round")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
