"""What the services and queues cost: N rollouts through the local stack vs the same algorithm in one process.

    .venv/bin/python bench/pipeline_overhead.py                      # 16 rollouts at the demo's budgets
    .venv/bin/python bench/pipeline_overhead.py --rollouts 4 --reasoning-tokens 32 --response-tokens 16 --repeats 3
    .venv/bin/python bench/pipeline_overhead.py --judge rules        # the rules judge: few cues, few interventions

Services: the local stack (Redis, pair store, judge, generation on the embedded SmolLM2-135M, intervention)
runs a bulk job of N prompts: rollout.requested -> generation -> judge -> intervention -> continuations ->
pairs, timed from SubmitPrompts until GetJob says SUCCEEDED (the pair store holds every pair).
In-process: the same back ends (`shared.generation` transformers back end, the same judge) in this process,
the same decisions (`InterventionLoop`): one batched Generate of the N prompts, then judge and correct each
(one rollout after another: the loop continues one rollout's trigger branches at a time, while the bulk pipeline
batches the branches of every rollout waiting in the queue, so with enough rollouts the services can be faster).
Decoding is greedy with the same budgets, so both paths decode the same tokens; the script checks that they
reached the same numbers of unsafe rollouts, interventions and pairs. The judge is the embedded classifier by
default (as in `intervene demo`): it finds cues in SmolLM2's reasoning, so the timed work includes interventions
(trigger branches continued and judged), not only generation and judging. Model loading, service start-up and
one warm-up run of each path are not timed; the paths then alternate `--repeats` times and the medians are
compared.
Overhead share = (services - in-process) / services; the target is <= 10%.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from shared.config.generation import GenerationSettings
from shared.datasets import load_prompts
from shared.generation.backends.base import create_backend
from shared.intervention.inprocess import BackendGenerator, BackendJudge
from shared.intervention.loop import InterventionLoop
from shared.intervention.triggers import load_pool
from shared.judging.registry import BACKENDS, make_judge
from shared.protos.intervene.v1 import common_pb2, intervention_pb2, intervention_pb2_grpc
from shared.rpc.client import connect
from tools.stack import local


def prompts_for(count: int) -> list[common_pb2.Prompt]:
    base = load_prompts("demo-harmful")
    prompts = []
    for index in range(count):
        prompt = common_pb2.Prompt()
        prompt.CopyFrom(base[index % len(base)])
        prompt.id = f"{prompt.id}-{index}"
        prompts.append(prompt)
    return prompts


class Services:
    """The local stack and a client of its intervention service."""

    def __init__(self, folder: Path, judge: str) -> None:
        env = {
            "INTERVENE_LOG_FORMAT": "text",
            "INTERVENE_DRAIN_SECONDS": "1",
            "INTERVENE_QUEUE_BLOCK_MS": "50",
            "INTERVENE_JUDGE_BACKEND": judge,
        }
        self.folder = folder
        state = local.up(folder, env=env, on_started=lambda name, address: print(f"  {name} serving on {address}"))
        token = Path(state.token_file).read_text().strip()
        self.stub = intervention_pb2_grpc.InterventionServiceStub(connect(state.address("intervention"), token=token))

    def run(
        self, prompts: list[common_pb2.Prompt], sampling: common_pb2.SamplingParams, rounds: int
    ) -> tuple[float, common_pb2.Job]:
        """Seconds from SubmitPrompts until GetJob says the job is done, and the job."""
        started = time.perf_counter()
        request = intervention_pb2.SubmitPromptsRequest(prompts=prompts, sampling=sampling, max_rounds=rounds)
        reply = self.stub.SubmitPrompts(request, timeout=60)
        while True:
            job = self.stub.GetJob(intervention_pb2.GetJobRequest(job_id=reply.job_id), timeout=30).job
            if job.state != common_pb2.JOB_STATE_RUNNING:
                return time.perf_counter() - started, job
            time.sleep(0.05)

    def close(self) -> None:
        local.down(self.folder)


class InProcess:
    """The same back ends and decisions in this process."""

    def __init__(self, rounds: int, judge: str) -> None:
        self.generator = BackendGenerator(create_backend(GenerationSettings(auth_disabled=True)))
        self.judge = BackendJudge(make_judge(judge))
        pool = load_pool()
        self.loop = InterventionLoop(self.generator, self.judge, pool.select(), pool.label, max_rounds=rounds)

    def run(
        self, prompts: list[common_pb2.Prompt], sampling: common_pb2.SamplingParams
    ) -> tuple[float, tuple[int, int, int]]:
        """Seconds for the batch, and (unsafe rollouts, interventions tried, pairs)."""
        started = time.perf_counter()
        rollouts = self.generator.generate_many(prompts, sampling)
        judgements = self.judge.judge(rollouts)
        outcomes = [self.loop.correct(r, j, sampling) for r, j in zip(rollouts, judgements, strict=True)]
        elapsed = time.perf_counter() - started
        unsafe = sum(1 for o in outcomes if o.no_pair_reason != "safe")
        # GetJob's "interventions tried" counts rollouts cut per round, not trigger branches.
        tried = sum(len({record.round for record in o.interventions}) for o in outcomes)
        return elapsed, (unsafe, tried, sum(len(o.pairs) for o in outcomes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=16, help="Prompts in the job (one rollout each).")
    parser.add_argument("--reasoning-tokens", type=int, default=64)
    parser.add_argument("--response-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="Alternating runs of both paths; medians are shown.")
    parser.add_argument("--judge", choices=BACKENDS[:2], default="classifier", help="Judge back end of both paths.")
    args = parser.parse_args()
    prompts = prompts_for(args.rollouts)
    sampling = common_pb2.SamplingParams(
        temperature=0.0, max_reasoning_tokens=args.reasoning_tokens, max_response_tokens=args.response_tokens
    )
    with tempfile.TemporaryDirectory(prefix="intervene-bench-") as folder:
        print("starting the local stack ...")
        services = Services(Path(folder), args.judge)
        try:
            in_process = InProcess(args.rounds, args.judge)
            # Warm-up of both paths: the first decode of a fresh process pays one-off set-up costs.
            services.run(prompts[:1], sampling, args.rounds)
            in_process.run(prompts[:1], sampling)
            # Alternating runs, so that load from elsewhere on the machine falls on both paths alike.
            service_times, local_times = [], []
            for repeat in range(args.repeats):
                service_s, job = services.run(prompts, sampling, args.rounds)
                local_s, local_counts = in_process.run(prompts, sampling)
                service_times.append(service_s)
                local_times.append(local_s)
                print(f"  run {repeat + 1}: services {service_s:.2f} s, in-process {local_s:.2f} s")
        finally:
            services.close()
    services_s, local_s = statistics.median(service_times), statistics.median(local_times)
    print(f"{args.rollouts} rollouts, {args.reasoning_tokens}+{args.response_tokens} tokens, median of {args.repeats}:")
    service_counts = (job.rollouts_unsafe, job.interventions_tried, job.pairs_created)
    print(f"judge {args.judge}; counts are (unsafe rollouts, rollouts cut per round, pairs)")
    print(f"services    {services_s:8.2f} s  {service_counts}")
    print(f"in-process  {local_s:8.2f} s  {local_counts}")
    print(f"ratio services / in-process: {services_s / local_s:.3f}")
    print(f"overhead share: {100 * (services_s - local_s) / services_s:.1f}% (target <= 10%)")
    if service_counts != local_counts:
        print("note: the two paths reached different outcomes; the timings compare different work")


if __name__ == "__main__":
    main()
