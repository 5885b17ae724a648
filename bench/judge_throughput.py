"""Steps per second of the step judges, each against a baseline run in the same process.

    .venv/bin/python bench/judge_throughput.py                 # quick: one core, ~1 minute
    .venv/bin/python bench/judge_throughput.py --repeat 20 --all-cores --contextual-steps 512

Workload: every trace of the judge corpus (train, dev, the three written pools and the embedded model's
hand-labelled traces), repeated `--repeat` times.
* splitter: `shared.judging.steps.split` alone (the floor every judge pays).
* rules: the rules judge, against a naive loop that searches every pattern of the same pattern file,
  each compiled alone with re.IGNORECASE,
  one by one (what compiling each group into one alternation saves). Target: >= 5,000 steps/s on one core.
* classifier: the shipped model (step, previous step and request embeddings plus hashed n-grams) with the
  static MiniLM encoder, warm (token vectors cached) and cold (first pass, token vectors computed), against
  the contextual encoder (a full MiniLM pass per step) on `--contextual-steps` steps. Target: >= 1,000
  steps/s on one core.
By default the process is pinned to one CPU core and torch to one thread (`--all-cores` lifts both).
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable

from shared.judging.base import TraceInput
from shared.judging.evaluate import CORPUS_DIR, corpus_inputs, load_corpus
from shared.judging.rules import RulesJudge
from shared.judging.steps import split


def _rate(steps: int, work: Callable[[], object]) -> tuple[float, float]:
    """(steps per wall-clock second, steps per CPU second of this process).

    On a shared machine other processes take turns on the pinned core, which lowers the wall-clock rate;
    the CPU-time rate is what the judge itself costs per core, so both are printed.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return steps / (time.perf_counter() - wall), steps / max(time.process_time() - cpu, 1e-9)


def naive_rules(judge: RulesJudge) -> Callable[[list[TraceInput]], None]:
    """Every pattern compiled on its own and searched one after another on every step."""
    compiled = [re.compile(source, re.IGNORECASE) for group in judge.patterns.step_groups for source in group.sources]

    def run(traces: list[TraceInput]) -> None:
        for trace in traces:
            for start, end in split(trace.reasoning):
                step = trace.reasoning[start:end]
                for pattern in compiled:
                    pattern.search(step)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="Times the corpus is judged per measurement.")
    parser.add_argument("--contextual-steps", type=int, default=64, help="Steps for the contextual baseline.")
    parser.add_argument("--all-cores", action="store_true", help="Do not pin to one core / one torch thread.")
    parser.add_argument("--skip-classifier", action="store_true", help="Rules only (no model load).")
    args = parser.parse_args()
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    names = ("train", "dev", "pools/pool-a", "pools/pool-b", "pools/test-c", "smollm2/train", "smollm2/eval")
    records = [record for name in names for record in load_corpus(CORPUS_DIR / f"{name}.jsonl")]
    traces = corpus_inputs(records) * args.repeat
    steps = sum(len(split(t.reasoning)) for t in traces)
    print(f"workload: {len(traces)} traces, {steps} steps; {cores} core(s)")

    split_rate, split_cpu = _rate(steps, lambda: [split(t.reasoning) for t in traces])
    rules = RulesJudge()
    rules_rate, rules_cpu = _rate(steps, lambda: rules.judge_batch(traces))
    naive_rate, naive_cpu = _rate(steps, lambda: naive_rules(rules)(traces))
    print("                           wall steps/s   CPU steps/s   ratio (CPU)")
    print(f"splitter alone            {split_rate:10.0f}   {split_cpu:11.0f}")
    print(f"naive per-pattern loop    {naive_rate:10.0f}   {naive_cpu:11.0f}   baseline of rules")
    print(
        f"rules (grouped patterns)  {rules_rate:10.0f}   {rules_cpu:11.0f}   {rules_cpu / naive_cpu:5.2f}x naive, "
        f"{rules_cpu / split_cpu:4.2f}x splitter; target >= 5000: wall {_met(rules_rate, 5000)}, "
        f"CPU {_met(rules_cpu, 5000)}"
    )
    if args.skip_classifier:
        return

    import torch

    from shared.judging.classifier import ClassifierJudge
    from shared.judging.embedding import SentenceEncoder, StaticEncoder

    if not args.all_cores:
        torch.set_num_threads(1)
    classifier = ClassifierJudge.load(encoder_instance=StaticEncoder())
    one_pass = corpus_inputs(records)
    one_pass_steps = sum(len(split(t.reasoning)) for t in one_pass)
    cold_rate, cold_cpu = _rate(one_pass_steps, lambda: classifier.judge_batch(one_pass))
    warm_rate, warm_cpu = _rate(steps, lambda: classifier.judge_batch(traces))
    contextual = SentenceEncoder()
    sentences = [t.reasoning[s:e].strip() for t in one_pass for s, e in split(t.reasoning)][: args.contextual_steps]
    contextual_rate, contextual_cpu = _rate(len(sentences), lambda: contextual.encode(sentences))
    print(f"contextual encoder alone  {contextual_rate:10.0f}   {contextual_cpu:11.0f}   baseline of classifier")
    print(
        f"classifier (static, warm) {warm_rate:10.0f}   {warm_cpu:11.0f}   "
        f"{warm_cpu / contextual_cpu:5.1f}x contextual; "
        f"target >= 1000: wall {_met(warm_rate, 1000)}, CPU {_met(warm_cpu, 1000)}"
    )
    print(f"classifier (static, cold) {cold_rate:10.0f}   {cold_cpu:11.0f}   first pass: token vectors computed")


def _met(value: float, target: float) -> str:
    return "met" if value >= target else "MISSED"


if __name__ == "__main__":
    main()
