"""`intervene demo`: the whole loop on the embedded default, in minutes on a laptop's CPU.

It starts the local stack (Redis, pair store, judge, generation with the embedded SmolLM2-135M, intervention)
with small token budgets, submits a small prompt set written by the team (`demo-harmful`: harmful intents in
plain words, no specifics; `demo-benign`: look-alikes for over-refusal pairs), follows both jobs with a
progress bar per stage, prints the stage table and the intervention success by round, exports the pairs in TRL's
prompt/chosen/rejected format and stops the stack (unless --keep). Then, in this process, it trains a short suffix-DPO
LoRA run on those pairs and evaluates the base model against the adapter on a few held-out prompts (JailbreakBench
goals, XSTest safe prompts, GSM8K; the built-in demo sets when the data folder has no copy of them), printing the
before/after table and the paths of the report and its plots.

    intervene demo
    intervene demo --dataset advbench --limit 10      # a named set, an hf: set, or any CSV/JSONL file
    intervene demo --no-train --no-eval               # generate -> judge -> intervene -> store only
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
import grpc
from google.protobuf import json_format

from shared.datasets import local_copy, resolve_data_dir
from shared.evaluation.aggregate import Bootstrap
from shared.evaluation.plots import plot_success_by_round
from shared.judging.registry import JudgeOptions
from shared.pairs.export import FORMATS, write_pairs
from shared.protos.intervene.v1 import (
    common_pb2,
    intervention_pb2,
    intervention_pb2_grpc,
    pairstore_pb2,
    pairstore_pb2_grpc,
)
from tools.cli.endpoints import fail_on_rpc_error, open_channel
from tools.cli.evaluate import EvalPlan, execute, load_benchmarks, print_summary
from tools.cli.submit import inline_local_files, stage_table, watch
from tools.stack import local
from tools.stack.state import run_dir

# Budgets that keep the generate -> pairs part under 10 minutes on 2 CPU cores (SmolLM2-135M decodes ~20 tokens/s
# per sequence); training and the evaluation add a few minutes, so the whole demo stays under 20.
DEMO_REASONING_TOKENS = 64
DEMO_RESPONSE_TOKENS = 32
DEMO_TRAIN_STEPS = 12
DEMO_EVAL_LIMIT = 8
# Held-out sets the demo evaluates on; the built-in sets stand in when the data folder has no local copy of them
# (the demo never waits for the hub).
HELD_OUT_BENCHMARKS = ("jbb", "xstest-safe", "gsm8k")
BUILTIN_BENCHMARKS = ("demo-harmful", "demo-benign")


def demo_env(reasoning_tokens: int, response_tokens: int, judge: str) -> dict[str, str]:
    """Settings of the services for the demo: small default budgets, the chosen judge, logs as text."""
    return {
        "INTERVENE_JUDGE_BACKEND": judge,
        "INTERVENE_MAX_REASONING_TOKENS": str(reasoning_tokens),
        "INTERVENE_MAX_RESPONSE_TOKENS": str(response_tokens),
        "INTERVENE_LOG_FORMAT": "text",
        "INTERVENE_DRAIN_SECONDS": "1",
    }


def demo_benchmarks(data_dir: Path | None = None) -> tuple[tuple[str, ...], str]:
    """The benchmarks of the demo's evaluation and a note on where they come from."""
    root = resolve_data_dir(data_dir)
    if all(local_copy(name, root).is_file() for name in HELD_OUT_BENCHMARKS):
        return HELD_OUT_BENCHMARKS, f"held-out sets from {root}"
    return BUILTIN_BENCHMARKS, (
        f"{root} holds no {', '.join(HELD_OUT_BENCHMARKS)}: evaluated on the built-in demo sets, which are NOT held "
        "out (the harmful pairs came from the same demo-harmful prompts); "
        f"`intervene data fetch {' '.join(HELD_OUT_BENCHMARKS)} --out {root}` copies the held-out ones there"
    )


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
    help="Judge back end of the demo's judge service, and of its evaluation unless --eval-judge (both embedded).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Pairs file (default: RUN_DIR/demo-pairs.jsonl)."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--keep", is_flag=True, help="Leave the local stack running afterwards.")
@click.option("--no-train", is_flag=True, help="Skip the LoRA run (the evaluation then covers the base model only).")
@click.option("--no-eval", is_flag=True, help="Skip the before/after evaluation.")
@click.option("--train-steps", type=click.IntRange(min=1), default=DEMO_TRAIN_STEPS, show_default=True)
@click.option(
    "--eval-limit",
    type=click.IntRange(min=1),
    default=DEMO_EVAL_LIMIT,
    show_default=True,
    help="Prompts per benchmark.",
)
@click.option(
    "--eval-judge",
    type=click.Choice(["classifier", "rules"]),
    help="Judge of the evaluation (default: --judge; the report warns when it also built the pairs).",
)
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
    no_train: bool,
    no_eval: bool,
    train_steps: int,
    eval_limit: int,
    eval_judge: str | None,
) -> None:
    """Run the whole loop on the embedded default: prompts -> rollouts -> judge -> interventions -> pairs -> LoRA
    training -> evaluation before and after."""
    folder = run_dir()
    out = out or folder / f"demo-pairs.{fmt}"
    work = folder / "demo" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started = time.monotonic()
    if not no_eval:  # read before the long part, so a bad data folder fails at once
        benchmark_names, note = demo_benchmarks()
        benchmarks = load_benchmarks(benchmark_names, limit=eval_limit, seed=seed, data_dir=None)
    jobs, count = _generate_pairs(
        folder,
        env=demo_env(reasoning_tokens, response_tokens, judge),
        requests=_requests(
            dataset,
            text_column,
            limit,
            benign_dataset,
            benign_samples,
            max_rounds,
            reasoning_tokens,
            response_tokens,
            seed,
        ),
        out=out,
        fmt=fmt,
        keep=keep,
    )
    job_path = out.with_name("demo-job.json")
    job_path.write_text(json_format.MessageToJson(jobs[0]), encoding="utf-8")
    click.echo(f"pairs ready after {time.monotonic() - started:.0f}s; job counts in {job_path}")
    if no_eval:
        plot = plot_success_by_round(jobs[0], out.with_name("demo-success-by-round.png"))
        if plot is not None:
            click.echo(f"plotted intervention success by round to {plot}")
    adapter, training_log = (None, None) if no_train else _train(out, count, work / "trainer", train_steps, seed)
    if not no_eval:
        click.echo(f"evaluating on {', '.join(benchmark_names)} ({eval_limit} prompts each): {note}")
        plan = EvalPlan(
            benchmarks=benchmarks,
            adapters={adapter.name: str(adapter)} if adapter else {},
            sampling=common_pb2.SamplingParams(
                temperature=0.0,
                top_p=1.0,
                max_reasoning_tokens=reasoning_tokens,
                max_response_tokens=response_tokens,
                seed=seed,
            ),
            judge_backend=eval_judge or judge,
            judge_options=JudgeOptions(),
            out_dir=work / "eval",
            batch_size=min(64, eval_limit * len(benchmarks)),
            bootstrap=Bootstrap(seed=seed),
            sample={"limit": eval_limit, "seed": seed, "data_dir": str(resolve_data_dir(None))},
            pairs_file=out if count else None,
            job=jobs[0],
            training_log=training_log,
            notes=(note,),
        )
        print_summary(*execute(plan))
    click.echo(f"demo finished in {time.monotonic() - started:.0f}s")


def _requests(
    dataset: str,
    text_column: str,
    limit: int,
    benign_dataset: str,
    benign_samples: int,
    max_rounds: int,
    reasoning_tokens: int,
    response_tokens: int,
    seed: int,
) -> list[intervention_pb2.SubmitPromptsRequest]:
    sampling = common_pb2.SamplingParams(
        max_reasoning_tokens=reasoning_tokens, max_response_tokens=response_tokens, seed=seed
    )
    requests = [
        intervention_pb2.SubmitPromptsRequest(
            dataset=dataset,
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
                dataset=benign_dataset,
                benign=True,
                samples_per_prompt=benign_samples,
                seed=seed,
                sampling=sampling,
                name=f"demo {benign_dataset} (over-refusal)",
            )
        )
    return [inline_local_files(request) for request in requests]


def _generate_pairs(
    folder: Path,
    env: dict[str, str],
    requests: list[intervention_pb2.SubmitPromptsRequest],
    out: Path,
    fmt: str,
    keep: bool,
    job_ids: list[str] | None = None,
    on_submitted: Callable[[list[str]], None] | None = None,
) -> tuple[list[common_pb2.Job], int]:
    """Start the local stack, run the jobs, export their pairs and stop the stack (unless `keep`).

    With `job_ids` (jobs submitted by an earlier, interrupted run whose Redis data is in `folder`), follows those
    instead of submitting; `on_submitted` gets the ids as soon as the jobs exist, so a killed run can resume them.
    """
    if job_ids:
        local.down(folder)  # a killed run leaves its stack up; Redis (AOF) keeps the jobs across the restart
    click.echo(f"starting the local stack in {folder} ...")
    try:
        local.up(folder, env=env, on_started=lambda name, address: click.echo(f"  {name:<13} SERVING  {address}"))
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    try:
        jobs = _run_jobs(requests, job_ids, on_submitted)
        for job in jobs:
            click.echo(stage_table(job))
        count = _export(jobs, out, fmt)
        click.echo(f"exported {count} pairs (TRL prompt/chosen/rejected) to {out}")
        return jobs, count
    finally:
        if not keep:
            click.echo("stopped: " + ", ".join(local.down(folder)))


def _train(
    pairs: Path, count: int, output_dir: Path, steps: int, seed: int, **overrides: object
) -> tuple[Path | None, Path | None]:
    """A short suffix-DPO LoRA run on the demo's pairs, in this process; (adapter folder, metrics) or (None, None).

    `overrides` replace the demo's trainer settings (`intervene reproduce` passes its own)."""
    if count == 0:
        click.echo("no pairs to train on: skipping training (the evaluation covers the base model only)")
        return None, None
    from shared.config.trainer import TrainerSettings
    from shared.training.loop import TrainingInputError, preflight, run

    fields: dict[str, object] = {
        "pairs_file": pairs,
        "output_dir": output_dir,
        "adapter_name": "demo-policy-v1",
        "max_steps": steps,
        # Few pairs: small batches so that one step fits them; a LoRA learning rate that moves in a dozen steps.
        "batch_size": min(2, count),
        "grad_accumulation": 1,
        "learning_rate": 2e-4,
        "warmup_steps": 1,
        "checkpoint_every": steps,
        "seed": seed,
    }
    settings = TrainerSettings(**{**fields, **overrides})
    click.echo(f"training a LoRA adapter on {count} pairs ({steps} suffix-DPO steps) in {output_dir} ...")
    began = time.monotonic()
    try:
        preflight(settings)  # the checks `intervene train` makes, the evaluation-set overlap among them
        result = run(settings)
    except TrainingInputError as error:
        click.echo(f"skipping training: {error}")
        return None, None
    click.echo(f"trained {result.adapter_dir} in {time.monotonic() - began:.0f}s (curves: {result.plot_path})")
    return result.adapter_dir, result.metrics_path


def _run_jobs(
    requests: list[intervention_pb2.SubmitPromptsRequest],
    job_ids: list[str] | None = None,
    on_submitted: Callable[[list[str]], None] | None = None,
) -> list[common_pb2.Job]:
    with open_channel("intervention", None, None) as channel:
        stub = intervention_pb2_grpc.InterventionServiceStub(channel)
        try:
            ids = list(job_ids or [])
            if ids:
                click.echo(f"resuming jobs {', '.join(ids)}")
            for request in requests if not ids else []:
                reply = stub.SubmitPrompts(request, timeout=60)
                click.echo(f"submitted {request.name}: job {reply.job_id}, {reply.prompts} prompts")
                ids.append(reply.job_id)
            if on_submitted is not None:
                on_submitted(ids)
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
