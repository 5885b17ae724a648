"""Benchmarks by name or KIND:PATH: kinds, samples, the wrapped jailbreak set, reference answers (no text shown)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.datasets import DatasetError
from shared.evaluation.aggregate import Kind
from shared.evaluation.benchmarks import (
    BENCHMARKS,
    DEFAULT_BENCHMARKS,
    MATH_INSTRUCTION,
    load_benchmark,
    parse_benchmark,
)
from tests.public_data import needs_public_data

needs_data = needs_public_data("strongreject", "jbb", "harmbench-test", "xstest-safe", "gsm8k", "math500")


def test_names_and_files_parse_to_kinds() -> None:
    assert {BENCHMARKS[name].kind for name in DEFAULT_BENCHMARKS} == set(Kind)
    assert parse_benchmark("xstest-unsafe").kind is Kind.REFUSAL
    spec = parse_benchmark("harmful:/data/my prompts.csv")
    assert (spec.name, spec.kind, spec.dataset) == ("my prompts", Kind.HARM, "/data/my prompts.csv")
    assert parse_benchmark("math:x.jsonl").kind is Kind.MATH


@pytest.mark.parametrize("argument", ["nope", "poetry:x.csv", "harm:", "strongreject-tiny"])
def test_unknown_benchmarks_are_refused_with_the_choices(argument: str) -> None:
    with pytest.raises(DatasetError, match="KIND:PATH") as error:
        parse_benchmark(argument)
    assert error.value.field == "benchmark"


def test_a_file_benchmark_maps_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "sums.jsonl"
    path.write_text(
        "".join(json.dumps({"q": f"What is {a} + {a}?", "gold": f"#### {2 * a}"}) + "\n" for a in range(1, 6))
    )
    bench = load_benchmark(parse_benchmark(f"gsm8k:{path}"), limit=3, seed=1, text_column="q", answer_column="gold")
    assert len(bench.items) == 3
    for item in bench.items:
        number = int(item.prompt.text.split()[2])
        assert item.prompt.text.endswith(MATH_INSTRUCTION)
        assert item.reference == str(2 * number)


def test_builtin_sets_load_without_the_data_folder() -> None:
    bench = load_benchmark(BENCHMARKS["demo-harmful"], limit=3, seed=0, data_dir="/nonexistent")
    assert len(bench.items) == 3 and all(item.reference is None for item in bench.items)


@needs_data
def test_the_jailbreak_set_wraps_the_same_goals_as_jbb() -> None:
    plain = load_benchmark(BENCHMARKS["jbb"], limit=5, seed=2)
    wrapped = load_benchmark(BENCHMARKS["jailbreak"], limit=5, seed=2)
    assert [item.prompt.id.split("@")[0] for item in wrapped.items] == [item.prompt.id for item in plain.items]
    for goal, item in zip(plain.items, wrapped.items, strict=True):
        assert item.prompt.template and goal.prompt.text in item.prompt.text
        assert len(item.prompt.text) > len(goal.prompt.text)


@needs_data
def test_reasoning_sets_carry_reference_answers() -> None:
    gsm8k = load_benchmark(BENCHMARKS["gsm8k"], limit=20, seed=0)
    assert all(item.reference and item.reference.lstrip("-").replace(".", "").isdigit() for item in gsm8k.items)
    math500 = load_benchmark(BENCHMARKS["math500"], limit=20, seed=0)
    assert all(item.reference for item in math500.items)
    assert all(item.prompt.text.endswith(MATH_INSTRUCTION) for item in math500.items)
    assert len({item.prompt.id for item in math500.items}) == 20


@needs_data
def test_every_default_benchmark_loads_a_sample() -> None:
    for name in DEFAULT_BENCHMARKS:
        bench = load_benchmark(BENCHMARKS[name], limit=4, seed=0)
        assert len(bench.items) == 4, name
