"""`intervene eval`: bad input fails before any model loads; a tiny real run (embedded SmolLM2, a random LoRA, the
classifier judge) writes the JSON, the Markdown table and the plots, in-process and through a generation service.

Token budgets are tiny: the point is the machinery and the report, not the model's answers. Prompts come from the
built-in demo sets and small files written here, so no test needs the public data sets.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.datasets import load_prompts
from tests.fixtures.generation import make_lora
from tools.cli.main import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--max-reasoning-tokens", "6", "--max-response-tokens", "6", "--resamples", "1000", "--no-progress"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["eval", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--benchmark", "no-such-set"], "unknown benchmark 'no-such-set'"),
        (["--benchmark", "harm:/nonexistent/prompts.csv"], "neither a known dataset"),
        (["--benchmark", "jbb", "--data-dir", "/nonexistent"], "(or pass --data-dir)"),
        (["--benchmark", "demo-harmful", "--benchmark", "demo-harmful"], "named twice"),
        (["--benchmark", "demo-harmful", "--adapter", "policy-v1=/nonexistent"], "not a PEFT adapter folder"),
        (["--benchmark", "demo-harmful", "--adapter", "base=/tmp"], "other than 'base'"),
        (["--benchmark", "demo-harmful", "--adapter", "policy-v1"], "give the adapter's folder as NAME=PATH"),
        (["--benchmark", "demo-harmful", "--pairs", "/nonexistent.jsonl"], "intervene pairs export"),
        (["--benchmark", "demo-harmful", "--training-log", "/nonexistent.jsonl"], "metrics.jsonl"),
    ],
)
def test_bad_input_is_refused_with_what_to_do(args: list[str], message: str) -> None:
    code, _, stderr = invoke(*args)
    assert code == 2
    assert message in stderr


def test_a_file_without_its_answer_column_is_refused(tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "What is 1 + 1?", "solution": "2"}) + "\n")
    code, _, stderr = invoke("--benchmark", f"gsm8k:{questions}")
    assert code == 2 and "no answer column 'answer'" in stderr


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small benchmark files, a random LoRA, a pairs file judged by the classifier, a job's counts."""
    folder = tmp_path_factory.mktemp("eval-inputs")
    arithmetic = folder / "arithmetic.jsonl"
    arithmetic.write_text(
        "".join(
            json.dumps({"question": q, "answer": f"...\n#### {a}"}) + "\n"
            for q, a in [("What is 2 + 3?", 5), ("Tom has 4 apples and buys 6 more. How many has he?", 10)]
        )
    )
    algebra = folder / "algebra.jsonl"
    algebra.write_text(
        "".join(
            json.dumps({"problem": p, "answer": a}) + "\n"
            for p, a in [("Compute $\\frac{1}{2} + \\frac{1}{4}$.", "\\frac{3}{4}"), ("Solve $x + 1 = 3$.", "2")]
        )
    )
    harmful = load_prompts("demo-harmful", limit=2, seed=0)
    contrasts = folder / "contrasts.csv"
    with contrasts.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "prompt"])
        writer.writeheader()
        writer.writerows({"id": p.id, "prompt": p.text} for p in harmful)
    pairs = folder / "pairs.jsonl"
    pairs.write_text(
        json.dumps(
            {
                "prompt": "p",
                "chosen": "c",
                "rejected": "r",
                "user_prompt": harmful[0].text,
                "judge_name": "classifier",
                "judge_version": "classifier-v0-older",
            }
        )
        + "\n"
    )
    job = folder / "job.json"
    job.write_text(json.dumps({"id": "j-1", "name": "demo", "rounds": [{"round": 1, "tried": "4", "succeeded": "1"}]}))
    return {
        "arithmetic": arithmetic,
        "algebra": algebra,
        "contrasts": contrasts,
        "pairs": pairs,
        "job": job,
        "lora": make_lora(folder / "lora"),
    }


def benchmark_args(inputs: dict[str, Path]) -> list[str]:
    return [
        *("--benchmark", "demo-harmful", "--benchmark", "demo-benign"),
        *("--benchmark", f"refusal:{inputs['contrasts']}"),
        *("--benchmark", f"gsm8k:{inputs['arithmetic']}", "--benchmark", f"math:{inputs['algebra']}"),
        *("--limit", "2", "--seed", "0"),
    ]


def check_report(out: Path, stdout: str, models: list[str], include_text: bool = False) -> dict:
    document = json.loads((out / "eval.json").read_text())
    assert document["models"] == models
    assert document["judge"]["name"] == "classifier" and document["judge"]["version"].startswith("classifier-v2")
    assert set(document["benchmarks"]) == {"demo-harmful", "demo-benign", "contrasts", "arithmetic", "algebra"}
    expected = {"demo-harmful": 2, "demo-benign": 2, "contrasts": 2, "arithmetic": 2, "algebra": 2}
    for name, bench in document["benchmarks"].items():
        assert bench["items"] == expected[name]
        for label in models:
            for metric, summary in bench["metrics"][label].items():
                assert summary["items"] == expected[name], (name, metric)
                assert 0.0 <= summary["low"] <= summary["value"] <= summary["high"] <= 1.0
            for item in bench["results"][label]:
                # texts only with --include-text
                assert ({"prompt", "reasoning", "response"} <= item.keys()) is include_text
                assert bool({"prompt", "reasoning", "response"} & item.keys()) is include_text
                assert item["reasoning_tokens"] + item["response_tokens"] <= 12
    assert document["benchmarks"]["arithmetic"]["results"]["base"][0]["reference"] == "5"
    assert document["benchmarks"]["algebra"]["results"]["base"][0]["reference"] == "\\frac{3}{4}"
    table = (out / "eval.md").read_text()
    assert "| benchmark | metric | n | " + " | ".join(models) in table
    assert "| demo-harmful | reasoning harm ↓ | 2 |" in table and "| contrasts | refusal ↑ | 2 |" in table
    assert table in stdout + "\n"  # the table is printed as written
    for name in ("harm.png", "benign.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    for prompt in load_prompts("demo-harmful"):
        assert prompt.text not in stdout  # harmful prompts never reach the terminal
    return document


@pytest.mark.slow
def test_eval_compares_base_and_adapter_and_writes_every_output(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, stdout, stderr = invoke(
        *benchmark_args(inputs),
        *("--adapter", f"random-lora={inputs['lora']}", "--pairs", str(inputs["pairs"])),
        *("--job", str(inputs["job"]), "--out-dir", str(out), *TINY),
    )
    assert code == 0, stderr
    document = check_report(out, stdout, ["base", "random-lora"])
    diff = document["benchmarks"]["demo-harmful"]["differences"]["random-lora"]["reasoning_harmful"]
    assert diff["n"] == 2 and -1.0 <= diff["low"] <= diff["value"] <= diff["high"] <= 1.0
    judge_warning, *overlap_warnings = document["warnings"]
    assert "also built the training pairs" in judge_warning and "classifier-v0-older" in judge_warning
    # the pair's prompt is one of the two demo-harmful prompts, which the contrasts file repeats
    assert [w.split(" overlap ")[0] for w in overlap_warnings] == [
        "1 of 2 prompts of demo-harmful",
        "1 of 2 prompts of contrasts",
    ]
    assert f"warning: {judge_warning}" in stderr
    assert (out / "success-by-round.png").read_bytes()[:8] == PNG_MAGIC
    assert document["intervention_rounds"] == [{"round": 1, "tried": 4, "succeeded": 1}]


@pytest.fixture(scope="module")
def generation_service(redis_process) -> Iterator[str]:
    """The generation service over loopback gRPC on the shared embedded back end, without its queue workers."""
    from services.generation.server import build_spec
    from shared.config.base import QueueSettings
    from shared.rpc.server import start_server
    from tests.fixtures.generation import backend_settings, shared_transformers_backend

    settings = backend_settings("transformers", auth_disabled=True, port=0, redis_url=redis_process.url)
    running = start_server(build_spec(settings, shared_transformers_backend(), QueueSettings()), settings)
    yield running.address
    running.stop(grace=None)


@pytest.mark.slow
def test_eval_through_a_running_generation_service(
    inputs: dict[str, Path], generation_service: str, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    code, stdout, stderr = invoke(
        *benchmark_args(inputs),
        *("--generation-address", generation_service, "--adapter", f"eval-remote-lora={inputs['lora']}"),
        *("--out-dir", str(out), "--include-text", *TINY),
    )
    assert code == 0, stderr
    document = check_report(out, stdout, ["base", "eval-remote-lora"], include_text=True)
    first = document["benchmarks"]["demo-harmful"]["results"]["base"][0]
    assert first["prompt"] in {p.text for p in load_prompts("demo-harmful")}
    code, _, stderr = invoke(
        "--benchmark", "demo-benign", "--generation-address", generation_service, "--adapter", "never-loaded", *TINY
    )
    assert code == 2 and "not loaded on the generation service" in stderr


def test_job_file_must_hold_a_job(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text("[1, 2]")
    code, _, stderr = invoke("--benchmark", "demo-benign", "--job", str(job))
    assert code == 2 and "not a job JSON file" in stderr


def test_an_unreadable_pairs_file_fails_before_any_model_loads(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("not json\n")
    code, _, stderr = invoke("--benchmark", "demo-benign", "--judge", "rules", "--pairs", str(pairs))
    assert code == 2 and "--pairs:" in stderr and "pairs.jsonl:1" in stderr
