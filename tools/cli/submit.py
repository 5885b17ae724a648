"""`intervene submit`: queue a prompt set as a bulk job and follow it stage by stage until it is done.

    intervene submit --dataset advbench --limit 20
    intervene submit --dataset prompts.csv --text-column question --template-file jailbreak-train
    intervene submit --dataset xstest-safe --benign --samples 4 --limit 50

Dataset names (and `hf:` sets) resolve on the service: its data folder, else the Hugging Face Hub. A --dataset or
--template-file that is a file on this machine is read here and its prompts are sent inline in the request (a
service on a cluster cannot read this machine's disk); the sample (--limit, --seed) and the template wrapping are
then done here too, the same way the service does them.
"""

from __future__ import annotations

from pathlib import Path

import click
import grpc
from tqdm import tqdm

from shared.datasets import DATASETS, DatasetError, load_prompts, load_templates, wrap_with_templates
from shared.datasets.catalog import text_id
from shared.protos.intervene.v1 import common_pb2, intervention_pb2, intervention_pb2_grpc
from shared.rpc.client import DEFAULT_MAX_MESSAGE_BYTES
from tools.cli.endpoints import address_option, fail_on_rpc_error, open_channel, token_option
from tools.cli.rollout import sampling_options, sampling_params

_OPTIONS = {"dataset": "--dataset", "text_column": "--text-column", "template_file": "--template-file"}

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


def is_local_file(value: str) -> bool:
    """True for a path to a file on this machine (not a dataset name, an hf: set or a template name)."""
    return bool(value) and value not in DATASETS and not value.startswith("hf:") and Path(value).is_file()


def inline_local_files(
    request: intervention_pb2.SubmitPromptsRequest, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> intervention_pb2.SubmitPromptsRequest:
    """The request with the prompts of a local --dataset / --template-file read here and sent inline.

    Unchanged when neither is a local file. click.UsageError names the option at fault, or says what to do when the
    prompts are too large for one request.
    """
    if not (is_local_file(request.dataset) or is_local_file(request.template_file)):
        return request
    if request.limit < 0:
        raise click.UsageError(f"--limit: is {request.limit}; it must be >= 0 (0: all)")
    try:
        if request.dataset:
            prompts = load_prompts(
                request.dataset, text_column=request.text_column, limit=request.limit, seed=request.seed
            )
        else:  # --prompt texts wrapped in a local template file: ids first, as the service gives them
            prompts = [_with_id(given) for given in request.prompts[: request.limit or None]]
        if request.template_file:
            prompts = wrap_with_templates(prompts, load_templates(request.template_file), seed=request.seed)
    except DatasetError as error:
        raise click.UsageError(f"{_OPTIONS.get(error.field, error.field)}: {error.message}") from None
    inline = intervention_pb2.SubmitPromptsRequest()
    inline.CopyFrom(request)
    inline.ClearField("prompts")
    inline.prompts.extend(prompts)
    inline.dataset, inline.text_column, inline.template_file, inline.limit = "", "", "", 0
    inline.name = request.name or (Path(request.dataset).stem if request.dataset else "")
    size = inline.ByteSize()
    if size > max_bytes:
        raise click.UsageError(
            f"--dataset: the {len(prompts)} prompts of {request.dataset} come to {size / 2**20:.1f} MiB, over the "
            f"{max_bytes / 2**20:.0f} MiB one request may carry: sample fewer with --limit, split the file, or copy it "
            "to the service's data folder and give its path there"
        )
    return inline


def _with_id(given: common_pb2.Prompt) -> common_pb2.Prompt:
    prompt = common_pb2.Prompt()
    prompt.CopyFrom(given)
    prompt.id = prompt.id or text_id(prompt.text)
    return prompt


@click.command()
@click.option(
    "--dataset",
    help="A dataset name (advbench, strongreject, xstest-safe, ...), an hf:ORG/NAME[:SPLIT] set, or a "
    "CSV/JSONL/JSON/Parquet file on this machine (read here, sent inline).",
)
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
        dataset=dataset or "",
        text_column=text_column,
        template_file=template_file,
        limit=limit,
        seed=seed,
        benign=benign,
        samples_per_prompt=samples,
        max_rounds=max_rounds,
        name=name,
        sampling=sampling_params(temperature, max_reasoning_tokens, max_response_tokens, sampling_seed),
    )
    request = inline_local_files(request)
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
