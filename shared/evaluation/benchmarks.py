"""The evaluation's benchmarks: which prompt set each is, what it measures and, for the reasoning sets, the answers.

A benchmark is a named set of `shared.datasets` (its local copy in the data folder, else its Hugging Face Hub copy) or
any CSV/JSONL/JSON/Parquet file or `hf:` set given as `KIND:PATH` (kinds: harm, compliance, refusal, gsm8k, math;
`--text-column` and `--answer-column` map its columns). `jailbreak` is the JailbreakBench goals of the same sample
wrapped in the held-out jailbreak templates (`jailbreak_prompts.csv`), so it compares directly with `jbb` on the
same goals.

Reasoning sets get DeepSeek-R1's evaluation instruction (answer in \\boxed{}), which the answer extraction reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.datasets import DATASETS, DatasetError, dataset_rows, load_prompts, load_templates, wrap_with_templates
from shared.datasets.catalog import ID_COLUMNS, TEXT_COLUMNS, text_id
from shared.evaluation.aggregate import Kind
from shared.protos.intervene.v1 import common_pb2

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark's prompts come from and what it measures."""

    name: str
    kind: Kind
    dataset: str
    answer_column: str = ""
    templates: str = ""
    description: str = ""


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("strongreject", Kind.HARM, "strongreject", description="StrongREJECT forbidden prompts"),
        BenchmarkSpec("jbb", Kind.HARM, "jbb", description="JailbreakBench harmful behaviours"),
        BenchmarkSpec("harmbench-test", Kind.HARM, "harmbench-test", description="HarmBench test behaviours"),
        BenchmarkSpec(
            "jailbreak",
            Kind.HARM,
            "jbb",
            templates="jailbreak-heldout",
            description="the jbb goals wrapped in held-out jailbreak templates",
        ),
        BenchmarkSpec("xstest-safe", Kind.COMPLIANCE, "xstest-safe", description="XSTest safe look-alikes"),
        BenchmarkSpec("xstest-unsafe", Kind.REFUSAL, "xstest-unsafe", description="XSTest unsafe contrasts"),
        BenchmarkSpec("gsm8k", Kind.GSM8K, "gsm8k", answer_column="answer", description="GSM8K test"),
        BenchmarkSpec("math500", Kind.MATH, "math500", answer_column="answer", description="MATH-500"),
        # The demo's built-in sets, for a machine without the public sets (not held out from the demo's pairs).
        BenchmarkSpec("demo-harmful", Kind.HARM, "demo-harmful", description="built-in demo harmful intents"),
        BenchmarkSpec("demo-benign", Kind.COMPLIANCE, "demo-benign", description="built-in demo look-alikes"),
    )
}
DEFAULT_BENCHMARKS = (
    "strongreject",
    "jbb",
    "harmbench-test",
    "jailbreak",
    "xstest-safe",
    "xstest-unsafe",
    "gsm8k",
    "math500",
)
_KIND_ALIASES = {"harmful": Kind.HARM, "benign": Kind.COMPLIANCE, **{kind.value: kind for kind in Kind}}


@dataclass(frozen=True)
class EvalItem:
    """One prompt of a benchmark, with its reference answer on the reasoning sets."""

    prompt: common_pb2.Prompt
    reference: str | None = None


@dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark: its spec and the sampled items."""

    spec: BenchmarkSpec
    items: list[EvalItem]


def parse_benchmark(argument: str) -> BenchmarkSpec:
    """A benchmark name, or `KIND:PATH` for a file; DatasetError (field `benchmark`) says what is accepted."""
    if argument in BENCHMARKS:
        return BENCHMARKS[argument]
    kind_name, separator, path = argument.partition(":")
    if separator and kind_name in _KIND_ALIASES and path:
        kind = _KIND_ALIASES[kind_name]
        name = path.removeprefix("hf:") if path.startswith("hf:") else Path(path).stem
        return BenchmarkSpec(name, kind, path, description=f"{kind.value} prompts from {path}")
    raise DatasetError(
        "benchmark",
        f"unknown benchmark {argument!r}: give one of {', '.join(BENCHMARKS)}, or KIND:PATH for a CSV/JSONL file or "
        "an hf: set "
        f"(KIND: {', '.join(kind.value for kind in Kind)})",
    )


def load_benchmark(
    spec: BenchmarkSpec,
    *,
    limit: int = 0,
    seed: int = 0,
    data_dir: Path | str | None = None,
    text_column: str = "",
    answer_column: str = "",
) -> Benchmark:
    """The benchmark's prompts (`limit` > 0 samples that many with `seed`); DatasetError when it cannot be read.

    `text_column` and `answer_column` apply to file benchmarks only; named sets know their columns.
    """
    named = spec.dataset in DATASETS
    text_column = "" if named else text_column
    answer_column = spec.answer_column or ("" if named else answer_column)
    prompts = load_prompts(spec.dataset, text_column=text_column, limit=limit, seed=seed, data_dir=data_dir)
    if spec.templates:
        prompts = wrap_with_templates(prompts, load_templates(spec.templates, data_dir), seed=seed)
    if spec.kind.judged:
        return Benchmark(spec, [EvalItem(prompt) for prompt in prompts])
    answers = _answers(spec.dataset, data_dir, text_column, answer_column or "answer")
    items = []
    for prompt in prompts:
        reference = answers.get(prompt.id)
        if reference is None:
            raise DatasetError("answer_column", f"prompt {prompt.id} of {spec.dataset} has no reference answer")
        items.append(EvalItem(_with_instruction(prompt), _reference(spec.kind, reference)))
    return Benchmark(spec, items)


def _answers(dataset: str, data_dir: Path | str | None, text_column: str, answer_column: str) -> dict[str, str]:
    """Reference answers by prompt id, ids made the way `shared.datasets.load_prompts` makes them."""
    spec = DATASETS.get(dataset)
    if spec is not None:
        column, id_column = spec.text_column, spec.id_column
    else:
        column, id_column = text_column, None
    # Read again rather than kept from load_prompts: the hub path hits the `datasets` cache, a file is small.
    rows, origin = dataset_rows(dataset, data_dir)
    if rows and answer_column not in rows[0]:
        raise DatasetError(
            "answer_column",
            f"{origin} has no answer column {answer_column!r}; its columns are {', '.join(map(str, rows[0]))}",
        )
    if not column:
        column = next((c for c in TEXT_COLUMNS if rows and c in rows[0]), "")
    answers = {}
    for row in rows:
        key_column = id_column or next((c for c in ID_COLUMNS if c in row), None)
        text = str(row.get(column) or "").strip()
        key = str(row[key_column]) if key_column and row.get(key_column) not in (None, "") else text_id(text)
        answers[key] = str(row[answer_column])
    return answers


def _with_instruction(prompt: common_pb2.Prompt) -> common_pb2.Prompt:
    copy = common_pb2.Prompt()
    copy.CopyFrom(prompt)
    copy.text = f"{prompt.text}\n\n{MATH_INSTRUCTION}"
    return copy


def _reference(kind: Kind, answer: str) -> str:
    from shared.evaluation.answers import extract_gsm8k_reference

    return extract_gsm8k_reference(answer) if kind is Kind.GSM8K else answer.strip()
