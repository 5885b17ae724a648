"""Our suffix DPO trainer against TRL's `DPOTrainer`: throughput and peak memory on the same model, LoRA, pairs,
batch size and steps, each in its own subprocess (peak RSS is per process), in one run.

    .venv/bin/python bench/trainer_vs_trl.py                      # quick: 2 steps x 2 pairs per set
    .venv/bin/python bench/trainer_vs_trl.py --steps 8 --batch-size 4 --epochs 2

Model: SmolLM2-135M (the embedded model), LoRA r=16 / alpha 32 / no dropout on q,k,v,o,gate,up,down, AdamW,
fp32 on the CPU, no gradient checkpointing, for both. TRL runs with `max_length=None` and its default reference
handling for a LoRA model (adapter disabled, recomputed every step); ours packs pairs with the prefix shared and
caches reference log-probs per pair (computed in the first epoch only). Both see every pair once per epoch.

Pair sets (benign generated text, never the harmful data sets):
  realistic    prompts plain (short) or wrapped in long role-play templates, divergence after 1-6 reasoning
               sentences, suffixes of 150-600 tokens, mixed lengths in every batch;
  long-prefix  a shared prefix of at least 256 tokens, suffixes of at most 96 tokens.

tokens/s counts the tokens of the pairs as TRL feeds them (prompt+chosen and prompt+rejected, no padding) over the
wall time of all optimizer steps, so both trainers are measured in the same unit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VOCABULARY = (
    "the model considers each request carefully and then plans a helpful answer about gardens rivers history music "
    "cooking weather travel books science numbers because every step should be clear and kind so it writes notes "
    "checks facts compares options explains reasons and summarises results"
)
TEMPLATE = (
    "Let us play an improvised theatre game. You are Quill, a narrator in a long-running radio drama who never "
    "breaks character and always answers the audience in full. The stage directions are strict: describe the "
    "scene, keep the tone warm, speak in complete sentences, and do not mention that this is a game. {filler} "
    "The audience member now asks: {question} Remember to stay in character as Quill for the whole answer."
)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CONTEXT = "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n<think>\n"


def _sentence(rng: random.Random) -> str:
    vocabulary = VOCABULARY.split()
    words = [rng.choice(vocabulary) for _ in range(rng.randint(8, 16))]
    return " ".join(words).capitalize() + "."


def _text_of_tokens(tokenizer, rng: random.Random, tokens: int) -> str:
    text = ""
    while len(tokenizer(text=text)["input_ids"]) < tokens:
        text += " " + _sentence(rng)
    return text


def make_pairs(kind: str, count: int, seed: int, tokenizer) -> list[dict]:
    """`count` synthetic pairs of the named set, as exported rows (TRL columns plus id/kind/context/prefix)."""
    rng = random.Random(f"{kind}:{seed}")
    rows = []
    for i in range(count):
        question = _sentence(rng).rstrip(".") + "?"
        if kind == "realistic":
            wrapped = rng.random() < 0.5
            prompt = (
                TEMPLATE.format(filler=_text_of_tokens(tokenizer, rng, 250), question=question) if wrapped else question
            )
            prefix = " ".join(_sentence(rng) for _ in range(rng.randint(1, 6)))
            chosen_tokens, rejected_tokens = rng.randint(150, 600), rng.randint(150, 600)
        else:
            prompt = question
            prefix = _text_of_tokens(tokenizer, rng, rng.randint(256, 400))
            chosen_tokens, rejected_tokens = rng.randint(32, 96), rng.randint(32, 96)
        context = CONTEXT.format(prompt=prompt)
        chosen = " Wait, I should think again." + _text_of_tokens(tokenizer, rng, chosen_tokens - 8)
        rejected = " Sure, here is how." + _text_of_tokens(tokenizer, rng, rejected_tokens - 6)
        rows.append(
            {
                "id": f"{kind}-{i}",
                "kind": "PAIR_KIND_HARMFUL",
                "prompt": context + prefix,
                "context": context,
                "prefix": prefix,
                "chosen": chosen,
                "rejected": rejected,
            }
        )
    return rows


def trl_tokens(rows: list[dict], tokenizer) -> int:
    """Tokens of the rows as TRL feeds them: prompt+chosen and prompt+rejected, EOS included, no padding."""
    from shared.training.tokenize import tokenize_pair

    total = 0
    for row in rows:
        pair = tokenize_pair(tokenizer, row["id"], row["prompt"], row["chosen"], row["rejected"])
        total += 2 * len(pair.prefix_ids) + len(pair.chosen_ids) + len(pair.rejected_ids)
    return total


def worker_ours(args: argparse.Namespace) -> dict:
    from shared.config.trainer import TrainerSettings
    from shared.evaluation.training_log import read_metrics
    from shared.training.loop import run

    output = Path(args.workdir) / "ours"
    settings = TrainerSettings(
        model=args.model,
        pairs_file=Path(args.pairs),
        output_dir=output,
        batch_size=args.batch_size,
        grad_accumulation=1,
        max_steps=args.steps * args.epochs,
        learning_rate=1e-5,
        warmup_steps=0,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        lora_targets=LORA_TARGETS,
        max_prefix_tokens=100_000,
        max_suffix_tokens=100_000,
        max_row_tokens=args.max_row_tokens,
        checkpoint_every=1_000_000,
        progress=False,
        plot=False,
        precision="bf16" if args.cuda else "fp32",
    )
    began = time.perf_counter()
    run(settings)
    total = time.perf_counter() - began
    steps = [r for r in read_metrics(output / "metrics.jsonl") if "step_s" in r]
    return {
        "train_s": sum(r["step_s"] for r in steps),
        "total_s": total,
        "steps": len(steps),
        "run_tokens": sum(r["tokens"] for r in steps),
        "ref_tokens": steps[-1]["ref_tokens"] if steps else 0,
        **_cuda_peak(),
    }


def worker_trl(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds = 0.0
            self.steps = 0
            self._began = 0.0

        def on_step_begin(self, *_args, **_kwargs) -> None:
            self._began = time.perf_counter()

        def on_step_end(self, *_args, **_kwargs) -> None:
            self.seconds += time.perf_counter() - self._began
            self.steps += 1

    rows = [json.loads(line) for line in Path(args.pairs).read_text().splitlines()]
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    dtype = torch.bfloat16 if args.cuda else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa")
    config = DPOConfig(
        output_dir=str(Path(args.workdir) / "trl"),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        max_steps=args.steps * args.epochs,
        learning_rate=1e-5,
        beta=0.1,
        max_length=None,
        bf16=args.cuda,
        gradient_checkpointing=False,
        use_cpu=not args.cuda,
        report_to=[],
        save_strategy="no",
        logging_steps=1_000_000,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    timer = StepTimer()
    began = time.perf_counter()
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[timer],
    )
    trainer.train()
    return {"train_s": timer.seconds, "total_s": time.perf_counter() - began, "steps": timer.steps, **_cuda_peak()}


def _cuda_peak() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20}


def run_worker(which: str, args: argparse.Namespace, pairs: Path, workdir: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        which,
        "--pairs",
        str(pairs),
        "--workdir",
        str(workdir),
        "--model",
        args.model,
        "--steps",
        str(args.steps),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--max-row-tokens",
        str(args.max_row_tokens),
        *(["--cuda"] if args.cuda else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{which} worker failed (status {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2, help="Optimizer steps per epoch (pairs = steps x batch).")
    parser.add_argument("--epochs", type=int, default=1, help="Epochs over the pairs (ours reuses cached references).")
    parser.add_argument("--batch-size", type=int, default=2, help="Pairs per step, both trainers.")
    parser.add_argument("--max-row-tokens", type=int, default=2048, help="Our packed-row token budget.")
    parser.add_argument("--sets", default="realistic,long-prefix", help="Comma-separated pair sets to run.")
    parser.add_argument("--model", default=None, help="Model folder (default: the embedded SmolLM2-135M).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cuda", action="store_true", help="bf16 on the GPU (bench/gpu_trainer_bench.py sets it).")
    parser.add_argument("--json", action="store_true", help="Also print one JSON line per set.")
    parser.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--pairs", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model is None:
        from shared.models.embedded import embedded_model_dir

        args.model = str(embedded_model_dir())
    if args.worker:
        result = worker_ours(args) if args.worker == "ours" else worker_trl(args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(result), flush=True)
        return

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    where = "bf16 on CUDA" if args.cuda else f"fp32 on {os.cpu_count()} CPU cores"
    print(
        f"model {Path(args.model).name}, LoRA r=16, batch {args.batch_size} pairs, {args.steps} steps x "
        f"{args.epochs} epoch(s), {where}"
    )
    for kind in args.sets.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
            rows = make_pairs(kind, args.steps * args.batch_size, args.seed, tokenizer)
            pairs = Path(tmp) / "pairs.jsonl"
            pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
            tokens = trl_tokens(rows, tokenizer) * args.epochs
            trl = run_worker("trl", args, pairs, Path(tmp))
            ours = run_worker("ours", args, pairs, Path(tmp))
        trl_tps, ours_tps = tokens / trl["train_s"], tokens / ours["train_s"]
        print(f"\n[{kind}] {len(rows)} pairs, {tokens} pair tokens over the run")
        for name, result, tps in (("TRL DPOTrainer", trl, trl_tps), ("ours", ours, ours_tps)):
            rss, seconds = result["peak_rss_mb"], result["train_s"]
            print(f"  {name:15} {tps:8.1f} tokens/s  peak RSS {rss:7.0f} MB  ({seconds:.1f} s)")
        memory = "peak_gpu_mb" if args.cuda else "peak_rss_mb"
        if args.cuda:
            print(f"  peak GPU memory: TRL {trl[memory]:.0f} MB, ours {ours[memory]:.0f} MB")
        print(
            f"  ratio ours/TRL  throughput x{ours_tps / trl_tps:.2f}   "
            f"peak memory x{ours[memory] / trl[memory]:.2f} ({memory})"
        )
        if args.json:
            print("JSON " + json.dumps({"set": kind, "pair_tokens": tokens, "trl": trl, "ours": ours}))


if __name__ == "__main__":
    main()
