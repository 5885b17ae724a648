"""GPU variant of bench/trainer_vs_trl.py: bf16 on CUDA, a random-weight model of Qwen2.5-0.5B's shape (nothing is
downloaded), our trainer against TRL's `DPOTrainer` on the same pairs; prints tokens/s of both, the ratio, peak GPU
memory and our model FLOPs utilisation (MFU).

    .venv/bin/python bench/gpu_trainer_bench.py                       # realistic + long-prefix, 8 steps x 8 pairs
    .venv/bin/python bench/gpu_trainer_bench.py --steps 16 --batch-size 16 --peak-tflops 989

The tokenizer only turns the generated benign text into ids: the embedded SmolLM2 tokenizer (its 49,152 ids all
exist in Qwen's 151,936-entry vocabulary), or any folder given with --tokenizer. MFU counts 6 FLOPs per parameter
per trained token (forward, and backward through activations and LoRA weights; frozen weights need no weight
gradient, so this slightly overstates the work) plus 2 per parameter per reference token, over the tokens our
trainer actually runs (packed, prefix once), against --peak-tflops (dense bf16: H100/H200 SXM 989).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QWEN25_05B_SHAPE = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}


def make_model(folder: Path, tokenizer_dir: str) -> int:
    """Save a random-weight Qwen2 model of Qwen2.5-0.5B's shape with `tokenizer_dir`'s tokenizer; returns params."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen2Config(
        **QWEN25_05B_SHAPE,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sets", default="realistic,long-prefix")
    parser.add_argument("--tokenizer", default=None, help="Tokenizer folder (default: the embedded SmolLM2's).")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="Dense bf16 peak of the GPU, TFLOP/s.")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark is for a GPU machine (bench/trainer_vs_trl.py runs on the CPU)")
    if args.tokenizer is None:
        from shared.models.embedded import embedded_model_dir

        args.tokenizer = str(embedded_model_dir())
    print(f"GPU: {torch.cuda.get_device_name(0)}")
    with tempfile.TemporaryDirectory(prefix="qwen25-05b-shape-") as tmp:
        params = make_model(Path(tmp), args.tokenizer)
        print(f"random-weight Qwen2.5-0.5B shape: {params / 1e6:.0f} M parameters, bf16")
        command = [
            sys.executable,
            str(REPO / "bench" / "trainer_vs_trl.py"),
            "--cuda",
            "--model",
            tmp,
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--sets",
            args.sets,
            "--json",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        print(done.stdout, end="")
        if done.returncode != 0:
            sys.exit(done.stderr[-4000:])
    for line in done.stdout.splitlines():
        if not line.startswith("JSON "):
            continue
        result = json.loads(line.removeprefix("JSON "))
        ours = result["ours"]
        flops = 6 * params * ours["run_tokens"] + 2 * params * ours["ref_tokens"]
        mfu = flops / ours["train_s"] / (args.peak_tflops * 1e12)
        print(f"[{result['set']}] our MFU {100 * mfu:.1f}% of {args.peak_tflops:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
