"""Reading rows from CSV, JSONL, JSON and Parquet files, with errors that name the file and what to fix."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

# Fields of the public sets can be long (HarmBench context strings, jailbreak templates).
csv.field_size_limit(16 * 1024 * 1024)

SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


class DatasetError(ValueError):
    """A dataset that cannot be read: unknown name, missing file, bad format or column. `field` is the
    request field to blame (dataset, text_column, template_file)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def read_rows(path: Path, field: str = "dataset") -> list[dict[str, Any]]:
    """Every row of a CSV (with a header), JSONL (one object a line), JSON (a list of objects) or Parquet file."""
    if not path.is_file():
        raise DatasetError(field, f"no file {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                return list(csv.DictReader(handle))
        if suffix == ".jsonl":
            with path.open(encoding="utf-8") as handle:
                return [
                    _object(json.loads(line), path, number) for number, line in enumerate(handle, 1) if line.strip()
                ]
        if suffix == ".json":
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, list):
                raise DatasetError(field, f"{path} holds a JSON {type(raw).__name__}; a list of objects is needed")
            return [_object(row, path, number) for number, row in enumerate(raw, 1)]
        if suffix == ".parquet":
            return _parquet_rows(path, field)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        raise DatasetError(field, f"cannot read {path}: {error}") from None
    raise DatasetError(field, f"{path} is none of {', '.join(SUFFIXES)}; convert it to CSV or JSONL")


def _parquet_rows(path: Path, field: str) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as error:
        raise DatasetError(field, f"cannot read {path} as Parquet: {error}") from None


def _object(row: Any, path: Path, number: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DatasetError("dataset", f"{path} row {number} is not a JSON object")
    return row
