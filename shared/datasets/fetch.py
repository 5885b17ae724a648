"""`intervene data fetch`: local copies of hub sets, written in the data folder's layout, for clusters without hub
access (fetch on a machine that has it, copy the folder to the cluster's data volume, point INTERVENE_DATA_DIR at it).

Each named set is written to its `DatasetSpec.path` in that file's format (CSV, JSONL or a JSON list) with the local
file's column names, so the catalog reads the copy exactly as it reads the hub; `hf:` sets go to
`hf/ORG/NAME/CONFIG/SPLIT.jsonl`. A file is written whole to a temporary name and then renamed, so an interrupted
fetch never leaves half a copy that would shadow the hub.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.datasets.catalog import DATASETS, hub_copy_path, hub_sources, read_hub
from shared.datasets.files import DatasetError
from shared.datasets.hub import HF_NAME_FORMAT, parse_hf_name
from shared.datasets.templates import NAMED_TEMPLATES, NO_HUB_TEMPLATES


@dataclass(frozen=True)
class Fetched:
    """One local copy written by `fetch`."""

    name: str
    path: Path
    rows: int
    source: str


def fetch(name: str, out: Path) -> Fetched:
    """Reads `name` from the hub and writes its local copy under `out`; DatasetError says why it cannot."""
    spec = DATASETS.get(name)
    if name in NAMED_TEMPLATES:
        raise DatasetError("dataset", f"{name!r} cannot be fetched: {NO_HUB_TEMPLATES}")
    if spec is not None and spec.builtin:
        raise DatasetError("dataset", f"{name!r} ships with the package; there is nothing to fetch")
    if spec is not None:
        relative = spec.path
    else:
        try:
            source = parse_hf_name(name)
        except ValueError as error:
            raise DatasetError("dataset", str(error)) from None
        if source is None:
            raise DatasetError(
                "dataset",
                f"cannot fetch {name[:80]!r}: give a dataset name ({', '.join(sorted(DATASETS))}) or {HF_NAME_FORMAT}",
            )
        relative = hub_copy_path(source)
    sources = hub_sources(name)
    if not sources:
        raise DatasetError(
            "dataset", f"{name!r} cannot be fetched: {spec.no_hub if spec else 'it has no hub copy'}; copy its file"
        )
    try:
        rows = read_hub(name, sources)
    except DatasetError as error:
        raise DatasetError(
            "dataset",
            f"{error.message}: fetching needs the hub (check the network or HF_ENDPOINT, unset HF_HUB_OFFLINE, and set "
            "HF_TOKEN for a gated set)",
        ) from None
    path = out / relative
    write_rows(path, rows)
    return Fetched(name, path, len(rows), ", ".join(source.describe() for source in sources))


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Writes rows as the file's suffix says (.csv with a header, .jsonl, .json list), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    suffix = path.suffix.lower()
    try:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            if suffix == ".csv":
                columns = list(dict.fromkeys(key for row in rows for key in row))
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
            elif suffix == ".jsonl":
                handle.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
            elif suffix == ".json":
                json.dump(rows, handle, ensure_ascii=False, indent=1, default=str)
            else:
                raise DatasetError("dataset", f"cannot write {path}: only .csv, .jsonl and .json copies are written")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def _cell(value: Any) -> str:
    """A CSV cell: text as is, lists and mappings as JSON, None as empty."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
