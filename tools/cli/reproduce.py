"""`intervene reproduce`: the paper's protocol on the embedded default in one command, resumable.

    harmful training prompts (STAR-1, decontaminated against every evaluation set)
      + benign look-alikes for the over-refusal stage (a set that is never evaluated on)
    -> rollouts -> judge -> intervention (the 6 triggers, --max-rounds) -> pairs (with the pair checks)
    -> suffix DPO with LoRA (over-refusal pairs mixed in at --over-refusal-fraction)
    -> base vs adapter on held-out JailbreakBench, StrongREJECT, XSTest safe/unsafe and GSM8K (--eval-limit each),
       scored by a judge other than the one that built the pairs
    -> results.md (command, machine, wall time, pair counts, the table, the plots, what did not work)

Everything lives in --out-dir; `state.json` there records each finished stage. Run the same command again after a
kill and it continues: the jobs' state and pairs live in the run's Redis (AOF), so unfinished jobs are followed again
instead of resubmitted; the trainer resumes from its checkpoints; the evaluation's decoded prompts are cached
(`shared.evaluation.cache`). Changing a setting of a finished stage needs a new --out-dir (or --fresh).

It reuses the demo's code paths: `demo._generate_pairs` (local stack, jobs, export), `demo._train` (the in-process
trainer with its preflight, the decontamination check among them) and `evaluate.execute` (the evaluation report).
"""

from __future__ import annotations

import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click
from google.protobuf import json_format

from shared.datasets import DATASETS, DatasetError, load_prompts, resolve_data_dir
from shared.evaluation.aggregate import Bootstrap
from shared.protos.intervene.v1 import common_pb2, intervention_pb2
from tools.cli.demo import _generate_pairs, _train, demo_env
from tools.cli.evaluate import EvalPlan, execute, load_benchmarks, print_summary
from tools.cli.judge import _llm_options, _options
from tools.stack.state import run_dir

STAGES = ("pairs", "train", "eval")
EVAL_BENCHMARKS = ("jbb", "strongreject", "xstest-safe", "xstest-unsafe", "gsm8k")
# Training prompts are also checked against these (HarmBench test overlaps STAR-1 by 32 prompts).
DECONTAMINATE_AGAINST = ("jbb", "strongreject", "harmbench-test", "xstest-safe", "xstest-unsafe")
# The paper's over-refusal set when the data folder has it, else the built-in look-alikes; neither is evaluated on.
BENIGN_SETS = ("star1-benign", "benign-lookalikes")
# The defaults are pilot 6's measured configuration (docs/results.md): the closest to the paper's bars of the
# configurations tried that fits an hour on a 2-core CPU (about 53 min from a fresh folder). Reasoning budget: long
# enough that a trace turns toward complying before it is cut (the demo's 64 tokens are a few sentences).
REASONING_TOKENS = 96
RESPONSE_TOKENS = 48
OVER_REFUSAL_FRACTION = 0.25
# SmolLM2-135M complies from its first sentence, so its judged-unsafe traces rarely hold a cue from step 2 on (57 of 62
# in a 158-prompt run): cut those at their first unsafe step from 2 on, else at step 2, the paper's earliest cut.
UNCUED_CUT_STEP = 2


class RunState:
    """`state.json`: the settings of the run, the job ids once submitted, and each finished stage's record."""

    def __init__(self, folder: Path, config: dict[str, Any], fresh: bool) -> None:
        self.path = folder / "state.json"
        if fresh and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"config": config, "jobs": [], "done": {}, "seconds": {}}
        if self.path.is_file():
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            if stored.get("config") != config:
                changed = sorted(k for k in config if stored.get("config", {}).get(k) != config[k])
                raise click.UsageError(
                    f"{folder} holds a run with other settings ({', '.join(changed)}): give another --out-dir, "
                    "or --fresh to start this one over"
                )
            self.data = stored
        self.save()

    def save(self) -> None:
        staging = self.path.with_suffix(".tmp")
        staging.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        staging.replace(self.path)

    def done(self, stage: str) -> dict[str, Any] | None:
        return self.data["done"].get(stage)

    def finish(self, stage: str, record: dict[str, Any], seconds: float) -> None:
        self.data["done"][stage] = record
        self.data["seconds"][stage] = round(self.data["seconds"].get(stage, 0.0) + seconds, 1)
        self.save()


def decontaminate(
    prompts: list[common_pb2.Prompt], against: tuple[str, ...], data_dir: Path | None
) -> tuple[list[common_pb2.Prompt], dict[str, int], list[str]]:
    """The training prompts that overlap no prompt of the evaluation sets (exact or 8-gram overlap, the same test
    as `intervene data overlap`), the count dropped per set, and the sets that could not be read."""
    from shared.evaluation.overlap import PromptSet, find_overlap, load_prompt_set

    train = PromptSet("train", tuple(p.id for p in prompts), tuple(p.text for p in prompts))
    dropped: set[str] = set()
    by_set: dict[str, int] = {}
    missing = []
    for name in against:
        try:
            evaluation = load_prompt_set(name, data_dir)
        except DatasetError:
            missing.append(name)
            continue
        found = find_overlap(evaluation, train)
        if found.matches:
            by_set[name] = len(found.matches)
            dropped |= {match.id for match in found.matches}
    return [p for p in prompts if p.id not in dropped], by_set, missing


def _benign_default() -> str:
    root = resolve_data_dir(None)
    for name in BENIGN_SETS:
        spec = DATASETS.get(name)
        if spec is not None and (spec.builtin or (root / spec.path).is_file()):
            return name
    return BENIGN_SETS[-1]


def _eval_judge(requested: str | None, pairs_judge: str, llm_url: str | None) -> tuple[str, str]:
    """The evaluation judge and a sentence on why it was chosen."""
    if requested:
        return requested, f"{requested} (chosen with --eval-judge)"
    if llm_url:
        return (
            "strongreject",
            "strongreject (StrongREJECT's rubric on the --llm-url endpoint; its refusal item for XSTest)",
        )
    other = "rules" if pairs_judge != "rules" else "classifier"
    weakness = {
        "rules": "the rules judge matches phrases and misses paraphrased compliance (its harm rates are lower bounds)",
        "classifier": "the classifier judge is a small head on sentence embeddings trained on our own labelled corpus",
    }[other]
    return other, (
        f"{other}: no grader endpoint was given, so the best available judge other than the one that built the "
        f"pairs ({pairs_judge}). It is weak: {weakness}; pass --llm-url/--llm-model (a strong chat model) for "
        "StrongREJECT's rubric"
    )


@click.command()
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder (default RUN_DIR/reproduce); the same folder resumes.",
)
@click.option("--fresh", is_flag=True, help="Delete --out-dir and start over.")
@click.option("--dataset", default="star1", show_default=True, help="Harmful training prompts (a set or file).")
@click.option("--limit", type=click.IntRange(min=0), default=130, show_default=True, help="Training prompts (0: all).")
@click.option("--benign-dataset", default=None, help=f"Over-refusal prompts (default: the first of {BENIGN_SETS}).")
@click.option(
    "--benign-limit", type=click.IntRange(min=0), default=40, show_default=True, help="Benign prompts (0: all)."
)
@click.option(
    "--benign-samples", type=click.IntRange(min=2), default=2, show_default=True, help="Rollouts per benign prompt."
)
@click.option(
    "--samples", type=click.IntRange(min=1), default=1, show_default=True, help="Rollouts per harmful prompt."
)
@click.option("--max-rounds", type=click.IntRange(min=1), default=1, show_default=True, help="Intervention rounds.")
@click.option("--reasoning-tokens", type=click.IntRange(min=1), default=REASONING_TOKENS, show_default=True)
@click.option("--response-tokens", type=click.IntRange(min=1), default=RESPONSE_TOKENS, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of prompt samples, sampling and training.")
@click.option(
    "--judge",
    type=click.Choice(["classifier", "rules"]),
    default="rules",
    show_default=True,
    help="Judge that finds cues and builds the pairs.",
)
@click.option(
    "--triggers",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Triggers tried per intervention, in pool order (the paper's 6; fewer costs fewer continuations).",
)
@click.option(
    "--uncued-cut-step",
    type=click.IntRange(min=0),
    default=UNCUED_CUT_STEP,
    show_default=True,
    help="Cut unsafe traces without a cue from step 2 on at their first unsafe step, else at this step (0: skip).",
)
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True)
@click.option("--train-steps", type=click.IntRange(min=0), default=0, help="Optimizer steps (0: from --epochs).")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Peak learning rate (LoRA).")
@click.option("--beta", type=float, default=0.1, show_default=True, help="DPO beta.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Pairs per micro-batch.")
@click.option("--grad-accumulation", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--over-refusal-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=OVER_REFUSAL_FRACTION,
    show_default=True,
    help="Share of over-refusal pairs in each epoch.",
)
@click.option("--eval-limit", type=click.IntRange(min=1), default=100, show_default=True, help="Prompts per benchmark.")
@click.option(
    "--eval-benchmark",
    "eval_benchmarks",
    multiple=True,
    help=f"Evaluation benchmark (repeat; default {', '.join(EVAL_BENCHMARKS)}).",
)
@click.option(
    "--eval-judge", help="Evaluation judge (default: a grader with --llm-url, else a judge other than --judge)."
)
@click.option("--refusal-judge", help="Judge of the XSTest sets when --eval-judge does not detect refusals.")
@_llm_options
@click.option("--stop-after", type=click.Choice(STAGES), help="Stop once this stage is done (resume later).")
def reproduce(**options: Any) -> None:
    """The paper's protocol on the embedded default: pairs from STAR-1, suffix DPO, held-out evaluation, results.md."""
    started_all = time.monotonic()
    command = "intervene reproduce " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    folder = options["out_dir"] or run_dir() / "reproduce"
    benign = options["benign_dataset"] or _benign_default()
    eval_names = tuple(options["eval_benchmarks"]) or EVAL_BENCHMARKS
    eval_judge, eval_judge_note = _eval_judge(options["eval_judge"], options["judge"], options["llm_url"])
    config = {
        "dataset": options["dataset"],
        "limit": options["limit"],
        "benign_dataset": benign,
        "benign_limit": options["benign_limit"],
        "benign_samples": options["benign_samples"],
        "samples": options["samples"],
        "max_rounds": options["max_rounds"],
        "reasoning_tokens": options["reasoning_tokens"],
        "response_tokens": options["response_tokens"],
        "seed": options["seed"],
        "judge": options["judge"],
        "triggers": options["triggers"],
        "uncued_cut_step": options["uncued_cut_step"],
        "epochs": options["epochs"],
        "train_steps": options["train_steps"],
        "lr": options["lr"],
        "beta": options["beta"],
        "batch_size": options["batch_size"],
        "grad_accumulation": options["grad_accumulation"],
        "over_refusal_fraction": options["over_refusal_fraction"],
        "eval_limit": options["eval_limit"],
        "eval_benchmarks": list(eval_names),
        "eval_judge": eval_judge,
        "refusal_judge": options["refusal_judge"],
    }
    state = RunState(folder, config, options["fresh"])
    benchmarks = load_benchmarks(eval_names, limit=options["eval_limit"], seed=options["seed"], data_dir=None)
    pairs_file = folder / "pairs.jsonl"

    if state.done("pairs") is None:
        began = time.monotonic()
        record = _pairs_stage(folder, state, options, benign, pairs_file)
        state.finish("pairs", record, time.monotonic() - began)
    else:
        click.echo(f"pairs: done in an earlier run ({state.done('pairs')['pairs']} pairs in {pairs_file})")
    if options["stop_after"] == "pairs":
        click.echo(f"stopped after the pairs stage; run the same command to continue ({folder})")
        return

    pairs_record = state.done("pairs")
    adapter, training_log = None, None
    if state.done("train") is None:
        began = time.monotonic()
        adapter, training_log = _train_stage(folder, options, pairs_file, pairs_record["pairs"])
        state.finish(
            "train",
            {"adapter": str(adapter) if adapter else None, "log": str(training_log) if training_log else None},
            time.monotonic() - began,
        )
    else:
        record = state.done("train")
        click.echo(f"train: done in an earlier run (adapter {record['adapter']})")
        adapter = Path(record["adapter"]) if record["adapter"] else None
        training_log = Path(record["log"]) if record["log"] else None
    if options["stop_after"] == "train":
        click.echo(f"stopped after the train stage; run the same command to continue ({folder})")
        return

    began = time.monotonic()
    document, files = _eval_stage(
        folder, options, benchmarks, adapter, training_log, pairs_file, pairs_record, eval_judge, eval_judge_note
    )
    state.finish("eval", {"report": str(files.json)}, time.monotonic() - began)
    print_summary(document, files)
    results = _write_results(folder, state, command, document, files, eval_judge_note, time.monotonic() - started_all)
    click.echo(f"results: {results}")


def _pairs_stage(folder: Path, state: RunState, options: dict[str, Any], benign: str, out: Path) -> dict[str, Any]:
    prompts = load_prompts(options["dataset"], limit=options["limit"], seed=options["seed"])
    kept, by_set, missing = decontaminate(prompts, DECONTAMINATE_AGAINST, None)
    click.echo(
        f"training prompts: {len(kept)} of {len(prompts)} from {options['dataset']} "
        f"({len(prompts) - len(kept)} dropped for overlapping an evaluation set: {by_set or 'none'})"
    )
    if missing:
        click.echo(f"warning: could not check against {', '.join(missing)} (not in the data folder)", err=True)
    if not kept:
        raise click.ClickException("no training prompts are left after decontamination")
    sampling = common_pb2.SamplingParams(
        max_reasoning_tokens=options["reasoning_tokens"],
        max_response_tokens=options["response_tokens"],
        seed=options["seed"],
    )
    requests = [
        intervention_pb2.SubmitPromptsRequest(
            prompts=kept,
            samples_per_prompt=options["samples"],
            max_rounds=options["max_rounds"],
            sampling=sampling,
            name=f"reproduce {options['dataset']}",
        ),
        intervention_pb2.SubmitPromptsRequest(
            dataset=benign,
            limit=options["benign_limit"],
            seed=options["seed"],
            benign=True,
            samples_per_prompt=options["benign_samples"],
            sampling=sampling,
            name=f"reproduce {benign} (over-refusal)",
        ),
    ]

    def remember(ids: list[str]) -> None:
        state.data["jobs"] = ids
        state.save()

    # The local stack runs in the run folder, as the demo's does (the CLI's clients find it there); its Redis data
    # (AOF) stays there between runs, which is what lets a killed run follow its jobs again.
    jobs, count = _generate_pairs(
        run_dir(),
        env={
            **demo_env(options["reasoning_tokens"], options["response_tokens"], options["judge"]),
            "INTERVENE_UNCUED_CUT_STEP": str(options["uncued_cut_step"]),
            "INTERVENE_TRIGGERS_PER_ROLLOUT": str(options["triggers"]),
            "INTERVENE_OVER_REFUSAL_CONTRAST": "true",
        },
        requests=requests,
        out=out,
        fmt="jsonl",
        keep=False,
        job_ids=state.data["jobs"] or None,
        on_submitted=remember,
    )
    (folder / "jobs.json").write_text(
        json.dumps([json_format.MessageToDict(job) for job in jobs], indent=2) + "\n", encoding="utf-8"
    )
    return {
        "pairs": count,
        "prompts": len(prompts),
        "kept": len(kept),
        "decontamination": by_set,
        "unchecked": missing,
    }


def _train_stage(folder: Path, options: dict[str, Any], pairs: Path, count: int) -> tuple[Path | None, Path | None]:
    per_step = options["batch_size"] * options["grad_accumulation"]
    steps = options["train_steps"] or max(1, math.ceil(options["epochs"] * count / per_step))
    return _train(
        pairs,
        count,
        folder / "trainer",
        steps,
        options["seed"],
        adapter_name="reproduce-policy-v1",
        batch_size=min(options["batch_size"], max(1, count)),
        grad_accumulation=options["grad_accumulation"],
        learning_rate=options["lr"],
        beta=options["beta"],
        warmup_steps=max(1, steps // 10),  # the paper's warm-up ratio 0.1
        checkpoint_every=max(1, steps // 5),
        over_refusal_fraction=options["over_refusal_fraction"] or None,
    )


def _eval_stage(
    folder: Path,
    options: dict[str, Any],
    benchmarks: list,
    adapter: Path | None,
    training_log: Path | None,
    pairs_file: Path,
    pairs_record: dict[str, Any],
    eval_judge: str,
    eval_judge_note: str,
):
    jobs_path = folder / "jobs.json"
    job = None
    if jobs_path.is_file():
        job = json_format.ParseDict(json.loads(jobs_path.read_text())[0], common_pb2.Job())
    plan = EvalPlan(
        benchmarks=benchmarks,
        adapters={adapter.name: str(adapter)} if adapter else {},
        sampling=common_pb2.SamplingParams(
            temperature=0.0,
            top_p=1.0,
            max_reasoning_tokens=options["reasoning_tokens"],
            max_response_tokens=options["response_tokens"],
            seed=options["seed"],
        ),
        judge_backend=eval_judge,
        refusal_judge_backend=options["refusal_judge"],
        judge_options=_options(
            llm_base_url=options["llm_url"],
            llm_model=options["llm_model"],
            llm_timeout_seconds=options["llm_timeout"],
            llm_retries=options["llm_retries"],
        ),
        out_dir=folder / "eval",
        batch_size=min(32, options["eval_limit"] * len(benchmarks)),
        bootstrap=Bootstrap(seed=options["seed"]),
        sample={"limit": options["eval_limit"], "seed": options["seed"], "data_dir": str(resolve_data_dir(None))},
        pairs_file=pairs_file if pairs_record["pairs"] else None,
        job=job,
        training_log=training_log,
        notes=(f"evaluation judge: {eval_judge_note}",),
        generation_cache=folder / "eval-cache",
    )
    (folder / "eval").mkdir(parents=True, exist_ok=True)
    click.echo(f"evaluating on {', '.join(b.spec.name for b in benchmarks)} ({options['eval_limit']} prompts each)")
    return execute(plan)


def _write_results(
    folder: Path, state: RunState, command: str, document, files, eval_judge_note: str, seconds: float
) -> Path:
    from shared.evaluation.results import RunInfo, machine, render_results
    from shared.evaluation.targets import check_targets
    from shared.intervention.inspect import summarize
    from shared.training.data import read_rows

    pairs_file = folder / "pairs.jsonl"
    rows = read_rows(pairs_file) if pairs_file.is_file() else []
    summary = summarize(rows)
    harmful = [r for r in rows if r.get("kind") == "harmful"]
    jobs = json.loads((folder / "jobs.json").read_text()) if (folder / "jobs.json").is_file() else []
    generations = sum(int(j.get("rolloutsGenerated", 0)) + int(j.get("continuationsGenerated", 0)) for j in jobs[:1])
    pairs_record = state.done("pairs") or {}
    problems = list(document.get("warnings", []))
    for name, bench in document["benchmarks"].items():
        for label, metrics in bench["metrics"].items():
            for metric, summary_row in metrics.items():
                if summary_row.get("undetermined"):
                    problems.append(
                        f"{name} {metric} ({label}): {summary_row['undetermined']} of {summary_row['items']} "
                        "undetermined (counted as the worst outcome)"
                    )
    targets = check_targets(document, sum(state.data["seconds"].values()))
    problems += [f"target missed: {target.name}: {target.detail}" for target in targets if not target.met]
    if not pairs_record.get("pairs"):
        problems.append("no pairs were made, so no adapter was trained")
    if pairs_record.get("unchecked"):
        problems.append(f"decontamination could not check {', '.join(pairs_record['unchecked'])}")
    info = RunInfo(
        command=command,
        machine=machine(),
        seconds=dict(state.data["seconds"]),
        invocation_seconds=seconds,
        config=state.data["config"],
        jobs=jobs,
        pairs={
            "total": summary.pairs,
            "by_kind": summary.by_kind,
            "rollouts": summary.rollouts,
            "max_per_rollout": summary.max_pairs_per_rollout,
            "by_round": dict(_count(harmful, "round")),
            "by_trigger": dict(_count(harmful, "trigger_id")),
            "generations": generations,
        },
        decontamination={
            "prompts": pairs_record.get("prompts", 0),
            "dropped": pairs_record.get("prompts", 0) - pairs_record.get("kept", 0),
            "by_set": pairs_record.get("decontamination"),
            "trainer_check": "passed (training stops on any overlap)"
            if (state.done("train") or {}).get("adapter")
            else "not run (nothing was trained)",
        },
        evaluation=document,
        plots=[str(plot) for plot in files.plots],
        judges={
            "pairs built by": f"{state.data['config']['judge']} (the judge service of the local stack)",
            "evaluation scored by": eval_judge_note,
        },
        problems=problems,
        targets=[target.line() for target in targets],
    )
    path = folder / "results.md"
    path.write_text(render_results(info), encoding="utf-8")
    return path


def _count(rows: list[dict], column: str) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for row in rows:
        key = str(row.get(column) or "-")
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items())
