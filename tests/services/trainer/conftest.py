"""A tiny random-weight Llama with the SmolLM2 tokenizer saved as a model folder, benign pairs, and a runner for
`python -m services.trainer` / torchrun in subprocesses."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from shared.models.tiny import tiny_model

REPO = Path(__file__).resolve().parents[3]
WORDS = [
    "the",
    "a",
    "model",
    "reason",
    "step",
    "think",
    "about",
    "plan",
    "safe",
    "help",
    "answer",
    "question",
    "because",
    "then",
    "next",
    "so",
    "we",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def benign_rows(n: int, seed: int = 0) -> list[dict]:
    """Exported-pair rows with benign filler text (never the harmful data sets)."""
    rng = random.Random(seed)

    def sentence(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)) + "."

    rows = []
    for i in range(n):
        context = f"<|im_start|>user\nQuestion {i}: {sentence(6)}<|im_end|>\n<|im_start|>assistant\n<think>\n"
        prefix = " ".join(sentence(5) for _ in range(rng.randint(0, 3)))
        rows.append(
            {
                "id": f"pair-{i}",
                "prompt": context + prefix,
                "context": context,
                "prefix": prefix,
                "chosen": " Wait, " + sentence(8),
                "rejected": " Sure, " + sentence(10),
                "kind": "PAIR_KIND_OVER_REFUSAL" if i % 4 == 0 else "PAIR_KIND_HARMFUL",
            }
        )
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def trainer_env(model_dir: Path, pairs: Path, output: Path, **overrides: object) -> dict[str, str]:
    """Environment of a small, fast run (LoRA on q/v, batches of 2 pairs, 2 micro-batches per step)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERVENE_TRAINER_", "PET_"))}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    settings = {
        "model": str(model_dir),
        "pairs_file": str(pairs),
        "output_dir": str(output),
        "batch_size": 2,
        "grad_accumulation": 2,
        "lora_targets": '["q_proj","v_proj"]',
        "lora_dropout": 0.1,
        "max_steps": 4,
        "checkpoint_every": 2,
        "progress": "false",
        "plot": "false",
    }
    settings.update(overrides)
    env.update({f"INTERVENE_TRAINER_{k.upper()}": str(v) for k, v in settings.items()})
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(REPO)
    return env


def run_trainer(env: dict[str, str], torchrun_args: list[str] | None = None, timeout: float = 240):
    """Run the trainer (under torchrun when `torchrun_args` is given); returns the CompletedProcess."""
    if torchrun_args is None:
        command = [sys.executable, "-m", "services.trainer"]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", *torchrun_args, "-m", "services.trainer"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def final_record(output: Path) -> dict:
    lines = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return next(r for r in reversed(lines) if r.get("final"))
