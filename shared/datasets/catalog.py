"""Named prompt sets: each maps a file of `../shared/data` and its columns onto `common_pb2.Prompt`.

A name resolves against the data folder (`INTERVENE_DATA_DIR`, default `../shared/data`); anything that is
not a known name is read as a CSV/JSONL/JSON path with `text_column` holding the prompt (guessed from the
usual column names when not given). Rows keep the source's id (or get a hash of their text) and carry the
source's category columns as labels, so evaluation can break results down by them.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.datasets.files import SUFFIXES, DatasetError, read_rows
from shared.protos.intervene.v1 import common_pb2

# Columns tried in order when a file's text column is not named.
TEXT_COLUMNS = ("prompt", "text", "goal", "forbidden_prompt", "Behavior", "question", "problem", "instruction")
ID_COLUMNS = ("id", "BehaviorID", "unique_id", "index")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a named set lives and how its columns map onto a prompt."""

    path: str
    text_column: str
    id_column: str | None = None
    label_columns: tuple[str, ...] = ()
    benign: bool = False
    # Keeps only the rows this returns True for (XSTest's safe or contrast halves).
    keep: Callable[[dict[str, Any]], bool] | None = None
    # Builds the prompt text from a row, when it is more than one column (HarmBench's contextual behaviours).
    compose: Callable[[dict[str, Any]], str] | None = None
    description: str = ""
    # Shipped with the package (shared/datasets/builtin/) rather than found in the data folder.
    builtin: bool = False


def _harmbench_text(row: dict[str, Any]) -> str:
    # HarmBench's contextual behaviours put the context before the instruction, as its own evaluation does.
    context = (row.get("ContextString") or "").strip()
    behavior = str(row["Behavior"]).strip()
    return f"{context}\n\n---\n\n{behavior}" if context else behavior


_HARMBENCH_LABELS = ("FunctionalCategory", "SemanticCategory", "Tags")

BUILTIN_DIR = Path(__file__).parent / "builtin"

DATASETS: dict[str, DatasetSpec] = {
    "demo-harmful": DatasetSpec(
        "demo-harmful.jsonl",
        "prompt",
        "id",
        ("category",),
        builtin=True,
        description="8 harmful intents in plain words, no specifics (intervene demo)",
    ),
    "demo-benign": DatasetSpec(
        "demo-benign.jsonl",
        "prompt",
        "id",
        ("category",),
        benign=True,
        builtin=True,
        description="4 benign look-alikes (intervene demo)",
    ),
    "advbench": DatasetSpec(
        "advbench/harmful_behaviors.csv", "goal", description="AdvBench harmful behaviours (train)"
    ),
    "strongreject": DatasetSpec(
        "strongreject/strongreject_dataset.csv",
        "forbidden_prompt",
        label_columns=("category", "source"),
        description="StrongREJECT (held-out eval)",
    ),
    "strongreject-small": DatasetSpec(
        "strongreject/strongreject_small_dataset.csv",
        "forbidden_prompt",
        label_columns=("category", "source"),
        description="StrongREJECT small subset (held-out smoke eval)",
    ),
    "harmbench-val": DatasetSpec(
        "harmbench/harmbench_behaviors_text_val.csv",
        "Behavior",
        "BehaviorID",
        _HARMBENCH_LABELS,
        compose=_harmbench_text,
        description="HarmBench validation behaviours (dev)",
    ),
    "harmbench-test": DatasetSpec(
        "harmbench/harmbench_behaviors_text_test.csv",
        "Behavior",
        "BehaviorID",
        _HARMBENCH_LABELS,
        compose=_harmbench_text,
        description="HarmBench test behaviours (held-out eval)",
    ),
    "jbb": DatasetSpec(
        "jailbreakbench/jbb_behaviors_from_artifacts.csv",
        "goal",
        "index",
        ("behavior", "category"),
        description="JailbreakBench harmful behaviours (held-out eval)",
    ),
    "xstest-safe": DatasetSpec(
        "xstest/xstest_prompts.csv",
        "prompt",
        "id",
        ("type", "focus"),
        benign=True,
        keep=lambda row: row.get("label") == "safe",
        description="XSTest safe look-alikes (over-refusal)",
    ),
    "xstest-unsafe": DatasetSpec(
        "xstest/xstest_prompts.csv",
        "prompt",
        "id",
        ("type", "focus"),
        keep=lambda row: row.get("label") == "unsafe",
        description="XSTest unsafe contrast prompts",
    ),
    "star1": DatasetSpec(
        "star1/STAR-1.json", "question", "id", ("category", "source"), description="STAR-1 safety questions"
    ),
    "gsm8k": DatasetSpec("gsm8k/test.jsonl", "question", benign=True, description="GSM8K test (capability)"),
    "math500": DatasetSpec(
        "math500/test.jsonl", "problem", "unique_id", ("subject", "level"), benign=True, description="MATH-500"
    ),
    "aime2024": DatasetSpec("aime2024/test.jsonl", "problem", "id", benign=True, description="AIME 2024"),
}


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """`data_dir`, else INTERVENE_DATA_DIR, else `../shared/data`."""
    return Path(data_dir or os.environ.get("INTERVENE_DATA_DIR") or "../shared/data")


def text_id(text: str) -> str:
    """The id of a prompt that has none: a hash of its text."""
    return "h-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_prompts(
    name_or_path: str,
    *,
    text_column: str = "",
    limit: int = 0,
    seed: int = 0,
    data_dir: Path | str | None = None,
    benign: bool | None = None,
) -> list[common_pb2.Prompt]:
    """The prompts of a named set or of a file; `limit` > 0 samples that many with `seed` (kept in file order).

    `benign` overrides the set's own marking. Raises DatasetError for an unknown name, a missing file or a
    missing column.
    """
    spec = DATASETS.get(name_or_path)
    if spec is not None:
        path = (BUILTIN_DIR if spec.builtin else resolve_data_dir(data_dir)) / spec.path
        if not path.is_file():
            raise DatasetError(
                "dataset",
                f"dataset {name_or_path!r} should be at {path}, which does not exist: set INTERVENE_DATA_DIR to the "
                "folder holding the data sets",
            )
        dataset = name_or_path
    else:
        path = Path(name_or_path)
        if path.suffix.lower() not in SUFFIXES or not path.is_file():
            raise DatasetError(
                "dataset",
                f"{name_or_path[:80]!r} is neither a known dataset ({', '.join(dataset_names())}) "
                "nor a CSV/JSONL/JSON file",
            )
        dataset = path.stem
    rows = read_rows(path)
    if spec is not None and spec.keep is not None:
        rows = [row for row in rows if spec.keep(row)]
    column = text_column or (spec.text_column if spec else _guess_column(rows, path))
    if rows and column not in rows[0]:
        raise DatasetError(
            "text_column", f"{path} has no column {column!r}; its columns are {', '.join(map(str, rows[0]))}"
        )
    if limit and limit < len(rows):
        chosen = sorted(random.Random(seed).sample(range(len(rows)), limit))
        rows = [rows[index] for index in chosen]
    prompts = []
    for row in rows:
        text = (spec.compose(row) if spec and spec.compose and not text_column else str(row.get(column) or "")).strip()
        if not text:
            continue
        id_column = spec.id_column if spec else next((c for c in ID_COLUMNS if c in row), None)
        identifier = str(row[id_column]) if id_column and row.get(id_column) not in (None, "") else text_id(text)
        labels = {name: str(row[name]) for name in (spec.label_columns if spec else ()) if row.get(name)}
        prompts.append(
            common_pb2.Prompt(
                id=identifier,
                text=text,
                dataset=dataset,
                benign=spec.benign if benign is None and spec else bool(benign),
                labels=labels,
            )
        )
    return prompts


def _guess_column(rows: list[dict[str, Any]], path: Path) -> str:
    if not rows:
        return TEXT_COLUMNS[0]
    for column in TEXT_COLUMNS:
        if column in rows[0]:
            return column
    raise DatasetError(
        "text_column",
        f"cannot tell which column of {path} holds the prompt ({', '.join(map(str, rows[0]))}): pass text_column",
    )
