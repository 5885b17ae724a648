"""`intervene submit`: queue a prompt set as a bulk job and follow it stage by stage until it is done.

    intervene submit --dataset advbench --limit 20
    intervene submit --dataset prompts.csv --text-column question --template-file jailbreak-train
    intervene submit --dataset xstest-safe --benign --samples 4 --limit 50

Dataset names resolve on the service (its INTERVENE_DATA_DIR); a file that exists here is sent as an
absolute path, which works when the service runs on this machine (the local stack).
"""

from __future__ import annotations

from pathlib import Path

import click
import grpc
from tqdm import tqdm

from shared.cli.endpoints import address_option, fail_on_rpc_error, open_channel, token_option
from shared.cli.rollout import sampling_options, sampling_params
from shared.protos.intervene.v1 import common_pb2, intervention_pb2, intervention_pb2_grpc

# (label, Job field of progress, Job field of its total or None when it has none up front)
STAGES = (
    ("rollouts generated", "rollouts_generated", "rollouts_requested"),
    ("rollouts judged", "rollouts_judged", "rollouts_requested"),
    ("interventions", "interventions_tried", None),
    ("continuations judged", "continuations_judged", None),
    ("pairs", "pairs_created", None),
)


def watch(stub: intervention_pb2_grpc.InterventionServiceStub, job_id: str, timeout: float) -> common_pb2.Job:
    """Follows a job with one progress bar per stage until it is done; returns its last counts."""
    bars = [tqdm(desc=f"{label:<21}", total=None, unit="", leave=True, dynamic_ncols=True) for label, _, _ in STAGES]
    job = common_pb2.Job()
    try:
        for reply in stub.WatchJob(intervention_pb2.WatchJobRequest(job_id=job_id), timeout=timeout):
            job = reply.job
            for bar, (_, field, total_field) in zip(bars, STAGES, strict=True):
                if total_field is not None:
                    bar.total = getattr(job, total_field)
                bar.n = getattr(job, field)
                bar.refresh()
    finally:
        for bar in bars:
            bar.close()
    return job


def stage_table(job: common_pb2.Job) -> str:
    """The job's counts per stage, its success by round and why rollouts yielded no pair."""
    state = common_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
    lines = [
        f"job {job.id} ({job.name}): {state}",
        f"  {'prompts':<24}{job.prompts:>8}",
        f"  {'rollouts requested':<24}{job.rollouts_requested:>8}",
        f"  {'rollouts generated':<24}{job.rollouts_generated:>8}",
        f"  {'rollouts judged':<24}{job.rollouts_judged:>8}",
        f"  {'rollouts unsafe':<24}{job.rollouts_unsafe:>8}",
        f"  {'interventions tried':<24}{job.interventions_tried:>8}",
        f"  {'continuations generated':<24}{job.continuations_generated:>8}",
        f"  {'continuations judged':<24}{job.continuations_judged:>8}",
        f"  {'pairs created':<24}{job.pairs_created:>8}",
        f"  {'failed items':<24}{job.failed_items:>8}",
        "intervention success by round (rollouts made safe / intervened on):",
    ]
    for stats in job.rounds:
        share = f"{100 * stats.succeeded / stats.tried:5.1f}%" if stats.tried else "    -"
        lines.append(f"  round {stats.round}: {stats.succeeded:>5} / {stats.tried:<5} {share}")
    if job.no_pair_reasons:
        lines.append("no pair, by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(job.no_pair_reasons.items())))
    if job.pairs_dropped:
        lines.append(
            "safe branches dropped by the pair checks: "
            + ", ".join(f"{k} {v}" for k, v in sorted(job.pairs_dropped.items()))
        )
    return "\n".join(lines)


def dataset_argument(dataset: str) -> str:
    """A local file becomes an absolute path (the service resolves relative ones in its own folder)."""
    path = Path(dataset)
    return str(path.resolve()) if path.suffix and path.is_file() else dataset


@click.command()
@click.option("--dataset", help="A dataset name (advbench, strongreject, xstest-safe, ...) or a CSV/JSONL file.")
@click.option("--prompt", "prompts", multiple=True, help="An inline prompt (repeatable; instead of --dataset).")
@click.option("--text-column", default="", help="Column holding the prompt in a CSV/JSONL file.")
@click.option("--limit", type=int, default=0, help="Sample this many prompts (0: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --limit sample and templates.")
@click.option("--template-file", default="", help="Jailbreak templates with [INSERT PROMPT HERE] (file or name).")
@click.option("--benign", is_flag=True, help="Benign look-alikes: make helpful-over-refusal pairs.")
@click.option("--samples", type=int, default=0, help="Rollouts per prompt (0: 1, or the benign default).")
@click.option("--max-rounds", type=int, default=0, help="Intervention rounds (0: the service's default).")
@click.option("--name", default="", help="A name for the job.")
@click.option("--no-wait", is_flag=True, help="Print the job id and return.")
@click.option("--timeout", type=float, default=24 * 3600, show_default=True, help="Seconds to follow the job.")
@sampling_options
@address_option
@token_option
def submit(
    dataset: str | None,
    prompts: tuple[str, ...],
    text_column: str,
    limit: int,
    seed: int,
    template_file: str,
    benign: bool,
    samples: int,
    max_rounds: int,
    name: str,
    no_wait: bool,
    timeout: float,
    temperature: float | None,
    max_reasoning_tokens: int | None,
    max_response_tokens: int | None,
    sampling_seed: int | None,
    address: str | None,
    token_file: Path | None,
) -> None:
    """Submit a prompt set as a bulk job; show progress per stage until it is done."""
    if bool(dataset) == bool(prompts):
        raise click.UsageError("give --dataset NAME|FILE or one or more --prompt TEXT")
    request = intervention_pb2.SubmitPromptsRequest(
        prompts=[common_pb2.Prompt(text=text) for text in prompts],
        dataset=dataset_argument(dataset) if dataset else "",
        text_column=text_column,
        template_file=dataset_argument(template_file) if template_file else "",
        limit=limit,
        seed=seed,
        benign=benign,
        samples_per_prompt=samples,
        max_rounds=max_rounds,
        name=name,
        sampling=sampling_params(temperature, max_reasoning_tokens, max_response_tokens, sampling_seed),
    )
    with open_channel("intervention", address, token_file) as channel:
        stub = intervention_pb2_grpc.InterventionServiceStub(channel)
        try:
            reply = stub.SubmitPrompts(request, timeout=120)
            click.echo(f"job {reply.job_id}: {reply.prompts} prompts queued")
            if no_wait:
                return
            job = watch(stub, reply.job_id, timeout)
        except grpc.RpcError as error:
            raise fail_on_rpc_error(error, "intervention") from None
    click.echo(stage_table(job))
