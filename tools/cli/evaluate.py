"""`intervene eval`: harm, over-refusal and reasoning accuracy of a model, base vs one or more LoRA adapters.

    intervene eval --adapter policy-v1=runs/trainer/adapters/policy-v1 --limit 50
    intervene eval --model Qwen/Qwen3-8B --device cuda --benchmark strongreject --benchmark gsm8k --limit 0
    intervene eval --benchmark harm:my_prompts.csv --text-column goal --judge rules --pairs pairs.jsonl
    intervene eval --generation-address 127.0.0.1:50051 --adapter policy-v1     # a running generation service

Generation runs in-process on the transformers back end (the embedded SmolLM2 unless --model), greedy by default so
that base and adapter answer each prompt deterministically and their paired difference is not sampling noise
(--temperature 0.6 --top-p 0.95 gives the paper's sampling). Writes eval.json, eval.md and PNG plots to --out-dir
and prints the Markdown table; never prints prompts or outputs (--include-text keeps them in eval.json only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from shared.datasets import DatasetError, resolve_data_dir
from shared.evaluation.aggregate import INTERVAL_METHODS, POLICIES, Bootstrap
from shared.evaluation.benchmarks import DEFAULT_BENCHMARKS, Benchmark, BenchmarkSpec, load_benchmark, parse_benchmark
from shared.evaluation.report import JudgeRef, ReportContext
from shared.judging.registry import BACKENDS, GRADER_BACKENDS
from shared.protos.intervene.v1 import common_pb2
from tools.cli.judge import _llm_options, _options
from tools.stack.state import run_dir

DEFAULT_LIMIT = 100
JUDGE_CHOICES = (*BACKENDS, *GRADER_BACKENDS)


@dataclass(frozen=True)
class EvalPlan:
    """A checked evaluation: what to load and decode, and how to score and report it."""

    benchmarks: list[Benchmark]
    adapters: dict[str, str]
    sampling: common_pb2.SamplingParams
    judge_backend: str
    judge_options: Any
    out_dir: Path
    # The judge of the compliance and refusal sets, when not `judge_backend` (which may not detect refusals).
    refusal_judge_backend: str | None = None
    model: str | None = None
    device: str = "auto"
    batch_size: int = 16
    policy: str = "worst"
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    sample: dict[str, Any] = field(default_factory=dict)
    pairs_file: Path | None = None
    job: common_pb2.Job | None = None
    training_log: Path | None = None
    include_text: bool = False
    generation_address: str | None = None
    token_file: Path | None = None
    notes: tuple[str, ...] = ()
    progress: bool = True
    # A folder where each decoded prompt is kept, so that an interrupted evaluation resumes where it stopped.
    generation_cache: Path | None = None


def load_benchmarks(
    names: tuple[str, ...] | list[str],
    *,
    limit: int,
    seed: int,
    data_dir: Path | None,
    text_column: str = "",
    answer_column: str = "",
) -> list[Benchmark]:
    """The benchmarks by name or KIND:PATH; a click error says which one failed and what to do."""
    specs: list[BenchmarkSpec] = []
    try:
        for name in names:
            spec = parse_benchmark(name)
            if spec.name in {s.name for s in specs}:
                raise DatasetError("benchmark", f"benchmark {spec.name!r} is named twice")
            specs.append(spec)
        return [
            load_benchmark(
                spec, limit=limit, seed=seed, data_dir=data_dir, text_column=text_column, answer_column=answer_column
            )
            for spec in specs
        ]
    except DatasetError as error:
        message = f"{error.message} (or pass --data-dir)" if error.field == "dataset" else error.message
        raise click.UsageError(message) from None


def parse_adapters(values: tuple[str, ...], need_path: bool) -> dict[str, str]:
    """NAME=PATH pairs (NAME alone when the adapter is already loaded on a generation service)."""
    adapters: dict[str, str] = {}
    for value in values:
        name, _, path = value.partition("=")
        if not name or name == "base" or name in adapters:
            raise click.UsageError(f"--adapter {value!r}: give NAME=PATH with a unique NAME other than 'base'")
        if need_path and not path:
            raise click.UsageError(f"--adapter {value!r}: give the adapter's folder as NAME=PATH")
        if path and need_path and not (Path(path) / "adapter_config.json").is_file():
            raise click.UsageError(
                f"--adapter {value!r}: {path} is not a PEFT adapter folder (no adapter_config.json); give the folder "
                "`intervene train` wrote (OUTPUT_DIR/adapters/NAME)"
            )
        adapters[name] = path
    return adapters


def pairs_judges(path: Path) -> tuple[JudgeRef, ...]:
    """The judges (name, version) recorded in an exported pairs file's provenance columns."""
    from shared.training.data import read_rows

    try:
        rows = read_rows(path)
    except (FileNotFoundError, ValueError) as error:
        raise click.UsageError(f"--pairs: {error}") from error
    found = {(str(row.get("judge_name") or ""), str(row.get("judge_version") or "")) for row in rows}
    return tuple(JudgeRef(name, version) for name, version in sorted(found) if name)


def overlap_warnings(pairs_file: Path, benchmarks: list[Benchmark]) -> tuple[str, ...]:
    """A warning per benchmark whose sampled prompts appear in the training pairs (exact or n-gram overlap)."""
    from shared.evaluation.overlap import PromptSet, find_overlap, load_prompt_set

    try:
        train = load_prompt_set(str(pairs_file))
    except DatasetError as error:
        raise click.UsageError(f"--pairs: {error.message}") from error
    warnings = []
    for benchmark in benchmarks:
        prompts = [item.prompt for item in benchmark.items]
        found = find_overlap(
            train, PromptSet(benchmark.spec.name, tuple(p.id for p in prompts), tuple(p.text for p in prompts))
        )
        if found.matches:
            warnings.append(
                f"{len(found.matches)} of {len(prompts)} prompts of {benchmark.spec.name} overlap the training pairs "
                f"of {pairs_file}: they are not held out"
            )
    return tuple(warnings)


def read_job(path: Path) -> common_pb2.Job:
    """A job's counts from JSON (the protobuf JSON form of `Job`, as `intervene demo` writes it)."""
    from google.protobuf import json_format

    try:
        return json_format.Parse(path.read_text(encoding="utf-8"), common_pb2.Job(), ignore_unknown_fields=True)
    except (OSError, json_format.ParseError) as error:
        raise click.UsageError(f"--job {path}: not a job JSON file ({error})") from error


def execute(plan: EvalPlan) -> tuple[dict[str, Any], Any]:
    """Load the model (or connect), run every benchmark, write the report folder; returns (document, files)."""
    from shared.evaluation.outputs import write_report
    from shared.evaluation.report import build_document
    from shared.evaluation.runner import RunOptions, run_evaluation
    from shared.judging.registry import make_judge

    needs_judge = any(b.spec.kind.judged for b in plan.benchmarks)
    try:
        judge = make_judge(plan.judge_backend, plan.judge_options) if needs_judge else None
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        raise click.UsageError(f"--judge {plan.judge_backend}: {error}") from error
    refusal_judge = None
    if plan.refusal_judge_backend and needs_judge:
        try:
            refusal_judge = make_judge(plan.refusal_judge_backend, plan.judge_options)
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            raise click.UsageError(f"--refusal-judge {plan.refusal_judge_backend}: {error}") from error
    # The pairs are read before the model runs, so that a bad file fails at once.
    context = ReportContext(
        judge_backend=plan.judge_backend if needs_judge else "",
        sampling=_sampling_dict(plan.sampling),
        sample=plan.sample,
        policy=plan.policy,
        bootstrap=plan.bootstrap,
        adapters=plan.adapters,
        pairs_judges=pairs_judges(plan.pairs_file) if plan.pairs_file else (),
        pairs_source=str(plan.pairs_file or ""),
        notes=plan.notes,
        warnings=overlap_warnings(plan.pairs_file, plan.benchmarks) if plan.pairs_file else (),
    )
    options = RunOptions(plan.sampling, plan.batch_size, plan.include_text, plan.progress)
    with _generator(plan) as decode:
        generate = decode
        if plan.generation_cache is not None:
            from shared.evaluation.cache import cached_generate

            generate = cached_generate(decode, plan.generation_cache)
        try:
            run = run_evaluation(generate, judge, plan.benchmarks, list(plan.adapters), options, refusal_judge)
        except ValueError as error:
            raise click.UsageError(str(error)) from error
        if plan.generation_cache is not None:
            cache = generate.cache  # type: ignore[attr-defined]
            click.echo(f"generation cache: {cache.hits} prompts from {plan.generation_cache}, {cache.misses} decoded")
    for used in (judge, refusal_judge):
        if used is not None:
            used.close()
    document = build_document(run, context)
    files = write_report(document, plan.out_dir, job=plan.job, training_log=plan.training_log)
    return document, files


class _generator:
    """The `generate` callable of the plan: an in-process back end, or a channel to a generation service."""

    def __init__(self, plan: EvalPlan) -> None:
        self.plan = plan
        self._close = lambda: None

    def __enter__(self):
        plan = self.plan
        if plan.generation_address:
            return self._remote(plan)
        from shared.config.generation import GenerationSettings
        from shared.generation.backends.base import create_backend

        settings = GenerationSettings(
            auth_disabled=True,
            consume_queue=False,
            model=plan.model,
            device=plan.device,
            max_batch_sequences=plan.batch_size,
            adapters={},
        )
        backend = create_backend(settings)
        self._close = backend.close
        for name, path in plan.adapters.items():
            backend.load_adapter(name, path)
        return backend.generate

    def _remote(self, plan: EvalPlan):
        import grpc

        from shared.evaluation.runner import remote_generate
        from shared.protos.intervene.v1 import generation_pb2, generation_pb2_grpc
        from tools.cli.endpoints import fail_on_rpc_error, open_channel

        channel = open_channel("generation", plan.generation_address, plan.token_file)
        self._close = channel.close
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        try:
            loaded = {a.name for a in stub.ListAdapters(generation_pb2.ListAdaptersRequest(), timeout=30).adapters}
            for name, path in plan.adapters.items():
                if name in loaded:
                    continue
                if not path:
                    raise click.UsageError(
                        f"--adapter {name}: not loaded on the generation service ({', '.join(sorted(loaded)) or 'none'}"
                        " loaded); give NAME=PATH to load it"
                    )
                stub.LoadAdapter(generation_pb2.LoadAdapterRequest(name=name, path=path), timeout=600)
        except grpc.RpcError as error:
            raise fail_on_rpc_error(error, "generation") from None
        generate = remote_generate(channel, timeout=3600)

        def guarded(requests):
            try:
                return generate(requests)
            except grpc.RpcError as error:
                raise fail_on_rpc_error(error, "generation") from None

        return guarded

    def __exit__(self, *exc: object) -> None:
        self._close()


def _sampling_dict(sampling: common_pb2.SamplingParams) -> dict[str, Any]:
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "seed": sampling.seed if sampling.HasField("seed") else None,
        "max_reasoning_tokens": sampling.max_reasoning_tokens,
        "max_response_tokens": sampling.max_response_tokens,
    }


def print_summary(document: dict[str, Any], files: Any) -> None:
    """The Markdown table on stdout, warnings on stderr, then where the files are."""
    from shared.evaluation.report import render_markdown

    for warning in document["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(render_markdown(document))
    click.echo(f"report: {files.json}  {files.markdown}")
    for plot in files.plots:
        click.echo(f"plot: {plot}")


@click.command("eval")
@click.option("--model", help="Model folder or hub id (default: the embedded SmolLM2-135M-Instruct).")
@click.option("--adapter", "adapters", multiple=True, metavar="NAME=PATH", help="A LoRA adapter to compare (repeat).")
@click.option(
    "--benchmark",
    "benchmarks",
    multiple=True,
    metavar="NAME|KIND:PATH",
    help=f"A benchmark (repeat; default: {', '.join(DEFAULT_BENCHMARKS)}) or KIND:PATH, KIND one of harm, "
    "compliance, refusal, gsm8k, math.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Prompts per benchmark (0: all).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the prompt sample, sampling and bootstrap."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Data folder of the named sets' local copies (default: $INTERVENE_DATA_DIR, else "
    "~/.local/share/intervene/data); a set not copied there is read from the Hugging Face Hub.",
)
@click.option("--text-column", default="", help="Prompt column of KIND:PATH files (guessed when unset).")
@click.option("--answer-column", default="", help="Reference-answer column of gsm8k:/math: files (default: answer).")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True, help="0 is greedy.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True)
@click.option("--max-reasoning-tokens", type=click.IntRange(min=0), default=512, show_default=True)
@click.option("--max-response-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--batch-size", type=click.IntRange(1, 64), default=16, show_default=True, help="Prompts decoded together."
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (in-process back end).")
@click.option(
    "--judge",
    "judge_backend",
    type=click.Choice(JUDGE_CHOICES),
    default="classifier",
    show_default=True,
    help="Judge back end that scores harm and refusal; strongreject, harmbench and llamaguard are the published "
    "graders over --llm-url / --llm-model.",
)
@click.option(
    "--refusal-judge",
    type=click.Choice(JUDGE_CHOICES),
    help="Judge of the XSTest compliance/refusal sets (needed with harmbench or llamaguard, which do not detect "
    "refusals).",
)
@click.option("--patterns", default=None, help="Rules pattern set of the rules judge.")
@click.option("--judge-model", type=click.Path(path_type=Path, dir_okay=False), help="Classifier judge model file.")
@click.option("--encoder", default=None, help="Sentence encoder of the classifier judge.")
@_llm_options
@click.option(
    "--undetermined",
    type=click.Choice(POLICIES),
    default="worst",
    show_default=True,
    help="Undetermined verdicts: counted as the worst outcome, or left out of the rates.",
)
@click.option(
    "--intervals",
    type=click.Choice(INTERVAL_METHODS),
    default="wilson",
    show_default=True,
    help="Wilson score intervals (Newcombe's paired interval for Δ), or the percentile bootstrap.",
)
@click.option(
    "--resamples", type=click.IntRange(min=1000), default=2000, show_default=True, help="Bootstrap resamples."
)
@click.option(
    "--pairs",
    "pairs_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Exported training pairs: warn on their judge and prompts.",
)
@click.option(
    "--job",
    "job_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Job JSON (demo-job.json): plot success by round.",
)
@click.option(
    "--training-log",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trainer metrics.jsonl: plot training curves.",
)
@click.option(
    "--out-dir", type=click.Path(path_type=Path, file_okay=False), help="Report folder (default: RUN_DIR/eval/TIME)."
)
@click.option("--include-text", is_flag=True, help="Keep prompts, reasoning and responses in eval.json (harmful).")
@click.option("--generation-address", help="A running generation service (host:port) instead of loading the model.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Its bearer token.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def evaluate(
    model: str | None,
    adapters: tuple[str, ...],
    benchmarks: tuple[str, ...],
    limit: int,
    seed: int,
    data_dir: Path | None,
    text_column: str,
    answer_column: str,
    temperature: float,
    top_p: float,
    max_reasoning_tokens: int,
    max_response_tokens: int,
    batch_size: int,
    device: str,
    judge_backend: str,
    refusal_judge: str | None,
    patterns: str | None,
    judge_model: Path | None,
    encoder: str | None,
    llm_url: str | None,
    llm_model: str | None,
    llm_api_key_env: str,
    llm_timeout: float,
    llm_retries: int,
    undetermined: str,
    intervals: str,
    resamples: int,
    pairs_file: Path | None,
    job_file: Path | None,
    training_log: Path | None,
    out_dir: Path | None,
    include_text: bool,
    generation_address: str | None,
    token_file: Path | None,
    no_progress: bool,
) -> None:
    """Harm of reasoning and response, XSTest compliance/refusal, GSM8K/MATH-500 accuracy: base vs adapters."""
    if training_log is not None and not training_log.is_file():
        raise click.UsageError(
            f"--training-log {training_log}: no such file (the trainer writes OUTPUT_DIR/metrics.jsonl)"
        )
    if pairs_file is not None and not pairs_file.is_file():
        raise click.UsageError(f"--pairs {pairs_file}: no such file (export pairs with `intervene pairs export`)")
    plan = EvalPlan(
        benchmarks=load_benchmarks(
            benchmarks or DEFAULT_BENCHMARKS,
            limit=limit,
            seed=seed,
            data_dir=data_dir,
            text_column=text_column,
            answer_column=answer_column,
        ),
        adapters=parse_adapters(adapters, need_path=not generation_address),
        sampling=common_pb2.SamplingParams(
            temperature=temperature,
            top_p=top_p if temperature else 1.0,
            max_reasoning_tokens=max_reasoning_tokens,
            max_response_tokens=max_response_tokens,
            seed=seed,
        ),
        judge_backend=judge_backend,
        refusal_judge_backend=refusal_judge,
        judge_options=_options(
            rules_patterns=patterns,
            classifier_model=judge_model,
            classifier_encoder=encoder,
            llm_base_url=llm_url,
            llm_model=llm_model,
            llm_api_key=os.environ.get(llm_api_key_env) or None,
            llm_timeout_seconds=llm_timeout,
            llm_retries=llm_retries,
        ),
        out_dir=out_dir or run_dir() / "eval" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        model=model,
        device=device,
        batch_size=batch_size,
        policy=undetermined,
        bootstrap=Bootstrap(resamples=resamples, seed=seed, method=intervals),
        sample={"limit": limit, "seed": seed, "data_dir": str(resolve_data_dir(data_dir))},
        pairs_file=pairs_file,
        job=read_job(job_file) if job_file else None,
        training_log=training_log,
        include_text=include_text,
        generation_address=generation_address,
        token_file=token_file,
        progress=not no_progress,
    )
    document, files = execute(plan)
    print_summary(document, files)
