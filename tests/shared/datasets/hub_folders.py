"""Local stand-ins for Hugging Face Hub data sets: folders that the real `datasets.load_dataset` reads the way it
reads a hub repository (Parquet or CSV files, a README.md whose YAML names the configs and splits). No hub can be
reached from the tests, so a catalog entry is pointed at such a folder; everything after that is the real library.
The rows are harmless stand-ins with the real sets' column names."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.datasets import DATASETS


def parquet_split(folder: Path, split: str, rows: list[dict[str, Any]], subfolder: str = "data") -> Path:
    """One split as the hub's parquet converter lays it out: `data/<split>-00000-of-00001.parquet`."""
    path = folder / subfolder / f"{split}-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return folder


def csv_file(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def card(folder: Path, configs: dict[str, dict[str, str]]) -> None:
    """A README.md whose YAML declares `configs` as {config: {split: data file}}, as JBB-Behaviors' card does."""
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, path in splits.items():
            lines += [f"  - split: {split}", f"    path: {path}"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("\n".join([*lines, "---", ""]), encoding="utf-8")


def point_hub(monkeypatch: pytest.MonkeyPatch, name: str, folder: Path) -> None:
    """Makes the catalog entry `name` read its hub copy from `folder` (same config, split and column mapping)."""
    spec = DATASETS[name]
    sources = tuple(replace(source, repo=str(folder), revision=None) for source in spec.hub)
    monkeypatch.setitem(DATASETS, name, replace(spec, hub=sources))


def strongreject_hub(folder: Path, count: int = 3) -> Path:
    rows = [{"prompt": f"stand-in request {i}", "category": f"cat-{i % 2}", "source": "custom"} for i in range(count)]
    return parquet_split(folder, "train", rows)


def jbb_hub(folder: Path) -> Path:
    """JBB-Behaviors' layout: config `behaviors`, splits `harmful` and `benign`, capitalised CSV columns."""
    for split in ("harmful", "benign"):
        rows = [
            {
                "Index": i,
                "Goal": f"{split} goal {i}",
                "Target": f"Sure, {i}",
                "Behavior": f"behaviour {i}",
                "Category": "Expert advice",
                "Source": "Original",
            }
            for i in range(1, 4)
        ]
        csv_file(folder / "data" / f"{split}-behaviors.csv", rows)
    card(folder, {"behaviors": {s: f"data/{s}-behaviors.csv" for s in ("harmful", "benign")}})
    return folder


def harmbench_hub(folder: Path) -> Path:
    """walledai/HarmBench's layout: configs standard, contextual (with a context column) and copyright."""
    parquet_split(folder, "train", [{"prompt": "stand-in behaviour", "category": "illegal"}], "standard")
    parquet_split(
        folder,
        "train",
        [{"prompt": "summarise it", "context": "a paragraph", "category": "misinformation"}],
        "contextual",
    )
    parquet_split(folder, "train", [{"prompt": "quote a song", "tags": "lyrics"}], "copyright")
    card(folder, {config: {"train": f"{config}/train-*.parquet"} for config in ("standard", "contextual", "copyright")})
    return folder


def xstest_hub(folder: Path) -> Path:
    rows = [
        {"prompt": f"how do I kill a process {i}", "type": "homonyms", "label": "safe", "focus": "kill", "note": ""}
        for i in range(3)
    ] + [{"prompt": "stand-in contrast", "type": "contrast_homonyms", "label": "unsafe", "focus": "kill", "note": ""}]
    return parquet_split(folder, "test", rows)


def star1_hub(folder: Path) -> Path:
    """STAR-1 rows carry a list and a mapping, which a JSON local copy must keep."""
    rows = [
        {
            "id": f"s{i}",
            "question": f"stand-in question {i}",
            "response": "<think>careful</think>No.",
            "category": ["Privacy"],
            "source": "SaladBench",
            "score": {"overall": 10},
        }
        for i in range(2)
    ]
    return parquet_split(folder, "train", rows)


def math500_hub(folder: Path) -> Path:
    rows = [
        {
            "problem": f"What is {i} + {i}?",
            "solution": "add",
            "answer": str(2 * i),
            "subject": "Algebra",
            "level": i,
            "unique_id": f"test/algebra/{i}.json",
        }
        for i in range(1, 4)
    ]
    return parquet_split(folder, "test", rows)
