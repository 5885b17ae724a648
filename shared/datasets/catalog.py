"""Named prompt sets: each maps a file of the data folder, or its Hugging Face Hub copy, onto `common_pb2.Prompt`.

A name resolves, in order, to its local copy under the data folder (`--data-dir`, `INTERVENE_DATA_DIR`, else
`~/.local/share/intervene/data`: see `folder.py`), then to its hub copy through `datasets.load_dataset` (the
repository, split, revision and column mapping are recorded below, so both give the local file's columns). The
local layout is one file per set, at `DatasetSpec.path`; `intervene data fetch NAME` writes it from the hub.
`hf:ORG/NAME[/CONFIG][@REV][:SPLIT]` names any other hub set (its local copy is `hf/ORG/NAME/CONFIG/SPLIT.jsonl`).
Anything else is read as a CSV/JSONL/JSON/Parquet path with `text_column` holding the prompt (guessed from the
usual column names when not given). Rows keep the source's id (or get a hash of their text) and carry the
source's category columns as labels, so evaluation can break results down by them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.datasets.files import SUFFIXES, DatasetError, read_rows
from shared.datasets.folder import DATA_DIR_ENV, resolve_data_dir
from shared.datasets.hub import HF_NAME_FORMAT, HubError, HubSource, load_hub_rows, parse_hf_name
from shared.protos.intervene.v1 import common_pb2

# Columns tried in order when a file's text column is not named.
TEXT_COLUMNS = ("prompt", "text", "goal", "forbidden_prompt", "Behavior", "question", "problem", "instruction")
ID_COLUMNS = ("id", "BehaviorID", "unique_id", "index")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a named set lives (local file, hub copy) and how its columns map onto a prompt."""

    path: str
    text_column: str
    id_column: str | None = None
    label_columns: tuple[str, ...] = ()
    benign: bool = False
    # Every prompt asks for something harmful (a judge may take that as known instead of guessing from the text).
    harmful: bool = False
    # Keeps only the rows this returns True for (XSTest's safe or contrast halves).
    keep: Callable[[dict[str, Any]], bool] | None = None
    # Builds the prompt text from a row, when it is more than one column (HarmBench's contextual behaviours).
    compose: Callable[[dict[str, Any]], str] | None = None
    description: str = ""
    # Shipped with the package (shared/datasets/builtin/) rather than found in the data folder.
    builtin: bool = False
    # The hub copy of the file: its parts' rows, concatenated, have the local file's columns.
    hub: tuple[HubSource, ...] = ()
    # Why a set has no hub copy, for the error when its local copy is missing.
    no_hub: str = ""


def _harmbench_text(row: dict[str, Any]) -> str:
    # HarmBench's contextual behaviours put the context before the instruction, as its own evaluation does.
    context = (row.get("ContextString") or "").strip()
    behavior = str(row["Behavior"]).strip()
    return f"{context}\n\n---\n\n{behavior}" if context else behavior


_HARMBENCH_LABELS = ("FunctionalCategory", "SemanticCategory", "Tags")
_HARMBENCH_SPLIT = (
    "no hub copy keeps HarmBench's val/test split (walledai/HarmBench has all 400 behaviours without BehaviorID; "
    "that is the `harmbench` set)"
)
_JBB_COLUMNS = {
    "Index": "index",
    "Goal": "goal",
    "Target": "target",
    "Behavior": "behavior",
    "Category": "category",
    "Source": "source",
}
# walledai's copies name the prompt column `prompt`; the local files keep the upstream names.
_XSTEST_HUB = (HubSource("walledai/XSTest", "test"),)
_HARMBENCH_HUB = tuple(
    HubSource(
        "walledai/HarmBench",
        "train",
        config,
        columns={"prompt": "Behavior", "context": "ContextString", "category": "SemanticCategory", "tags": "Tags"},
        constants={"FunctionalCategory": config},
    )
    for config in ("standard", "contextual", "copyright")
)

BUILTIN_DIR = Path(__file__).parent / "builtin"

DATASETS: dict[str, DatasetSpec] = {
    "demo-harmful": DatasetSpec(
        "demo-harmful.jsonl",
        "prompt",
        "id",
        ("category",),
        builtin=True,
        description="8 harmful intents in plain words, no specifics (intervene demo)",
        harmful=True,
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
    "benign-lookalikes": DatasetSpec(
        "benign-lookalikes.jsonl",
        "prompt",
        "id",
        ("category",),
        benign=True,
        builtin=True,
        description="160 benign prompts that look harmful, in 8 categories, written for this project (over-refusal "
        "training; never evaluated on, checked against XSTest)",
    ),
    "advbench": DatasetSpec(
        "advbench/harmful_behaviors.csv",
        "goal",
        description="AdvBench harmful behaviours (train)",
        hub=(HubSource("walledai/AdvBench", "train", columns={"prompt": "goal"}),),
        harmful=True,
    ),
    "strongreject": DatasetSpec(
        "strongreject/strongreject_dataset.csv",
        "forbidden_prompt",
        label_columns=("category", "source"),
        description="StrongREJECT (held-out eval)",
        hub=(
            HubSource(
                "walledai/StrongREJECT",
                "train",
                revision="df54272b395ce9e584d2f8140519935425d8549f",
                columns={"prompt": "forbidden_prompt"},
            ),
        ),
        harmful=True,
    ),
    "strongreject-small": DatasetSpec(
        "strongreject/strongreject_small_dataset.csv",
        "forbidden_prompt",
        label_columns=("category", "source"),
        description="StrongREJECT small subset (held-out smoke eval)",
        no_hub="the 60-prompt subset is not on the hub (only the full set, `strongreject`)",
        harmful=True,
    ),
    "harmbench": DatasetSpec(
        "harmbench/harmbench_behaviors_text_all.csv",
        "Behavior",
        "BehaviorID",
        _HARMBENCH_LABELS,
        compose=_harmbench_text,
        description="HarmBench text behaviours, val and test together",
        hub=_HARMBENCH_HUB,
        harmful=True,
    ),
    "harmbench-val": DatasetSpec(
        "harmbench/harmbench_behaviors_text_val.csv",
        "Behavior",
        "BehaviorID",
        _HARMBENCH_LABELS,
        compose=_harmbench_text,
        description="HarmBench validation behaviours (dev)",
        no_hub=_HARMBENCH_SPLIT,
        harmful=True,
    ),
    "harmbench-test": DatasetSpec(
        "harmbench/harmbench_behaviors_text_test.csv",
        "Behavior",
        "BehaviorID",
        _HARMBENCH_LABELS,
        compose=_harmbench_text,
        description="HarmBench test behaviours (held-out eval)",
        no_hub=_HARMBENCH_SPLIT,
        harmful=True,
    ),
    "jbb": DatasetSpec(
        "jailbreakbench/jbb_behaviors_from_artifacts.csv",
        "goal",
        "index",
        ("behavior", "category"),
        description="JailbreakBench harmful behaviours (held-out eval)",
        hub=(
            HubSource(
                "JailbreakBench/JBB-Behaviors",
                "harmful",
                "behaviors",
                "d8d87b8fdcb7806e3b4e45fffb2bc24aa6b17f32",
                _JBB_COLUMNS,
            ),
        ),
        harmful=True,
    ),
    "jbb-benign": DatasetSpec(
        "jailbreakbench/benign-behaviors.csv",
        "goal",
        "index",
        ("behavior", "category"),
        benign=True,
        description="JailbreakBench benign look-alike behaviours (over-refusal)",
        hub=(
            HubSource(
                "JailbreakBench/JBB-Behaviors",
                "benign",
                "behaviors",
                "d8d87b8fdcb7806e3b4e45fffb2bc24aa6b17f32",
                _JBB_COLUMNS,
            ),
        ),
    ),
    "xstest-safe": DatasetSpec(
        "xstest/xstest_prompts.csv",
        "prompt",
        "id",
        ("type", "focus"),
        benign=True,
        keep=lambda row: row.get("label") == "safe",
        description="XSTest safe look-alikes (over-refusal)",
        hub=_XSTEST_HUB,
    ),
    "xstest-unsafe": DatasetSpec(
        "xstest/xstest_prompts.csv",
        "prompt",
        "id",
        ("type", "focus"),
        keep=lambda row: row.get("label") == "unsafe",
        description="XSTest unsafe contrast prompts",
        hub=_XSTEST_HUB,
        harmful=True,
    ),
    "star1": DatasetSpec(
        "star1/STAR-1.json",
        "question",
        "id",
        ("category", "source"),
        description="STAR-1 safety questions",
        hub=(HubSource("UCSC-VLAA/STAR-1", "train"),),
        harmful=True,
    ),
    "star1-benign": DatasetSpec(
        "star1/STAR-benign-915.json",
        "question",
        "id",
        ("category", "source"),
        benign=True,
        description="STAR-benign-915 look-alike questions (over-refusal)",
        hub=(HubSource("UCSC-VLAA/STAR-benign-915", "train"),),
    ),
    "gsm8k": DatasetSpec(
        "gsm8k/test.jsonl",
        "question",
        benign=True,
        description="GSM8K test (capability)",
        hub=(HubSource("openai/gsm8k", "test", "main"),),
    ),
    "math500": DatasetSpec(
        "math500/test.jsonl",
        "problem",
        "unique_id",
        ("subject", "level"),
        benign=True,
        description="MATH-500",
        hub=(HubSource("HuggingFaceH4/MATH-500", "test"),),
    ),
    "aime2024": DatasetSpec(
        "aime2024/test.jsonl",
        "problem",
        "id",
        benign=True,
        description="AIME 2024",
        hub=(HubSource("HuggingFaceH4/aime_2024", "train"),),
    ),
}


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def text_id(text: str) -> str:
    """The id of a prompt that has none: a hash of its text."""
    return "h-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def hub_copy_path(source: HubSource) -> str:
    """Where the local copy of an `hf:` set lives under the data folder."""
    split = (source.split or "all").replace("/", "_") + (f"@{source.revision}" if source.revision else "")
    return f"hf/{source.repo}/{source.config or 'default'}/{split}.jsonl"


def local_copy(name: str, data_dir: Path | str | None = None) -> Path | None:
    """The local file a named or `hf:` set reads first, whether or not it exists; None for anything else."""
    spec = DATASETS.get(name)
    if spec is not None:
        return BUILTIN_DIR / spec.path if spec.builtin else resolve_data_dir(data_dir) / spec.path
    source = _hub_name(name)
    return resolve_data_dir(data_dir) / hub_copy_path(source) if source else None


def hub_sources(name: str) -> tuple[HubSource, ...]:
    """The hub parts a named or `hf:` set falls back to (none for a file or a set without a hub copy)."""
    spec = DATASETS.get(name)
    if spec is not None:
        return spec.hub
    source = _hub_name(name)
    return (source,) if source else ()


def read_hub(name: str, sources: tuple[HubSource, ...]) -> list[dict[str, Any]]:
    """The rows of every part, in order; DatasetError names the set and carries the hub's message."""
    rows: list[dict[str, Any]] = []
    for source in sources:
        try:
            rows.extend(load_hub_rows(source))
        except HubError as error:
            raise DatasetError("dataset", _hub_failure(name, source, str(error))) from None
    return rows


def dataset_rows(name_or_path: str, data_dir: Path | str | None = None) -> tuple[list[dict[str, Any]], str]:
    """The rows of a named set, an `hf:` set or a file, and where they came from (a path or a hub id)."""
    local = local_copy(name_or_path, data_dir)
    if local is not None:
        if local.is_file():
            return read_rows(local), str(local)
        sources = hub_sources(name_or_path)
        if not sources:
            raise DatasetError("dataset", _missing(name_or_path, local, data_dir, DATASETS[name_or_path].no_hub))
        try:
            return read_hub(name_or_path, sources), ", ".join(source.describe() for source in sources)
        except DatasetError as error:
            raise DatasetError("dataset", _missing(name_or_path, local, data_dir, error.message)) from None
    path = Path(name_or_path)
    if path.suffix.lower() not in SUFFIXES or not path.is_file():
        raise DatasetError(
            "dataset",
            f"{name_or_path[:80]!r} is neither a known dataset ({', '.join(dataset_names())}), a hub set "
            f"({HF_NAME_FORMAT}) nor a {'/'.join(s.lstrip('.').upper() for s in SUFFIXES)} file",
        )
    return read_rows(path), str(path)


def load_prompts(
    name_or_path: str,
    *,
    text_column: str = "",
    limit: int = 0,
    seed: int = 0,
    data_dir: Path | str | None = None,
    benign: bool | None = None,
) -> list[common_pb2.Prompt]:
    """The prompts of a named set, a hub set or a file; `limit` > 0 samples that many with `seed` (kept in order).

    `benign` overrides the set's own marking. Raises DatasetError for an unknown name, a set that is neither copied
    here nor readable from the hub, a missing file or a missing column.
    """
    spec = DATASETS.get(name_or_path)
    rows, origin = dataset_rows(name_or_path, data_dir)
    if spec is not None:
        dataset = name_or_path
    elif name_or_path.startswith("hf:"):
        dataset = name_or_path.removeprefix("hf:")
    else:
        dataset = Path(name_or_path).stem
    if spec is not None and spec.keep is not None:
        rows = [row for row in rows if spec.keep(row)]
    column = text_column or (spec.text_column if spec else _guess_column(rows, origin))
    if rows and column not in rows[0]:
        raise DatasetError(
            "text_column", f"{origin} has no column {column!r}; its columns are {', '.join(map(str, rows[0]))}"
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


def _hub_name(name: str) -> HubSource | None:
    try:
        return parse_hf_name(name)
    except ValueError as error:
        raise DatasetError("dataset", str(error)) from None


def _hub_failure(name: str, source: HubSource, message: str) -> str:
    what = "set" if name.startswith("hf:") else "copy"
    return f"the Hugging Face Hub {what} {source.describe()} could not be read ({message})"


def _missing(name: str, local: Path, data_dir: Path | str | None, why_not_hub: str) -> str:
    """One message: the set, the folder searched, why the hub did not serve it and the command that fixes it."""
    folder = resolve_data_dir(data_dir)
    fix = (
        f"On a machine that reaches the hub run `intervene data fetch {name} --out DIR` and copy DIR into the data "
        f"folder (or pass --data-dir / set {DATA_DIR_ENV} to it)"
    )
    if hub_sources(name):
        fix += "; for a gated set, accept its terms on the hub and set HF_TOKEN"
    else:
        fix = f"Put the file at {local}"
    return (
        f"dataset {name!r} has no local copy at {local} (data folder {folder}: --data-dir or {DATA_DIR_ENV}), and "
        f"{why_not_hub}. {fix}."
    )


def _guess_column(rows: list[dict[str, Any]], origin: str) -> str:
    if not rows:
        return TEXT_COLUMNS[0]
    for column in TEXT_COLUMNS:
        if column in rows[0]:
            return column
    raise DatasetError(
        "text_column",
        f"cannot tell which column of {origin} holds the prompt ({', '.join(map(str, rows[0]))}): pass text_column",
    )
