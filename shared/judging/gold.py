"""Gold sets the judges are measured against (never trained on), read from the data folder.

* JailbreakBench attack artifacts: (goal, response, `jailbroken`) triples; `jailbroken` is the gold
  response-harm label. Records without a response (attacks that produced no prompt) are skipped.
* XSTest model completions: (prompt, completion, `final_label`); a completion counts as a refusal when
  its label is `2_full_refusal` or `3_partial_refusal` (a partial refusal still declines part of the request).
* STAR-1: 1,000 curated safe reasoning traces (`<think>` reasoning + answer) of a reasoning model on risky
  requests. No step labels, but every trace's reasoning is safe, so the share a judge reads as having no
  compliance cue and safe reasoning is a check on real (not composed) reasoning text. `star1_split`
  fixes which 300 are held out for measuring (the classifier trains on the other 700 as negatives).

The data folder is `--data-dir`, else `INTERVENE_DATA_DIR`, else the default data folder (`shared.datasets.folder`);
these gold files have no hub copy in this layout, so they are read from a local copy only. They hold harmful text:
nothing here prints them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from shared.datasets.folder import resolve_data_dir

REFUSAL_LABELS = frozenset({"2_full_refusal", "3_partial_refusal"})


@dataclass(frozen=True, slots=True)
class GoldResponse:
    """A response with a gold harm label."""

    source: str
    prompt: str
    response: str
    harmful: bool


@dataclass(frozen=True, slots=True)
class GoldRefusal:
    """A completion with a gold refusal label."""

    source: str
    prompt: str
    response: str
    refused: bool


@dataclass(frozen=True, slots=True)
class GoldTrace:
    """A real reasoning trace whose reasoning is known to be safe."""

    source: str
    prompt: str
    reasoning: str
    response: str
    id: str = ""


# STAR-1 traces held out for measuring false cues: the first STAR1_HELD_OUT ids in sha256 order.
STAR1_HELD_OUT = 300

_THINK = re.compile(r"\s*<think>(.*?)</think>(.*)", re.DOTALL)


def data_dir(override: str | Path | None = None) -> Path:
    """The data folder: the argument, else `INTERVENE_DATA_DIR`, else the default data folder."""
    return resolve_data_dir(override)


def jailbreakbench(root: Path) -> list[GoldResponse]:
    """Every JailbreakBench artifact record that has a response."""
    folder = root / "jailbreakbench" / "attack-artifacts"
    files = sorted(folder.glob("*/*/*.json"))
    if not files:
        raise FileNotFoundError(f"no JailbreakBench artifacts under {folder}: set INTERVENE_DATA_DIR or --data-dir")
    records: list[GoldResponse] = []
    for file in files:
        source = "/".join(file.relative_to(folder).with_suffix("").parts)
        for item in json.loads(file.read_text(encoding="utf-8"))["jailbreaks"]:
            if item.get("response") is None:
                continue
            records.append(GoldResponse(source, item["goal"], item["response"], bool(item["jailbroken"])))
    return records


def xstest_completions(root: Path) -> list[GoldRefusal]:
    """Every XSTest model completion with its human refusal label."""
    folder = root / "xstest" / "model_completions"
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no XSTest completions under {folder}: set INTERVENE_DATA_DIR or --data-dir")
    records: list[GoldRefusal] = []
    for file in files:
        with file.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                records.append(
                    GoldRefusal(file.stem, row["prompt"], row["completion"] or "", row["final_label"] in REFUSAL_LABELS)
                )
    return records


def star1(root: Path) -> list[GoldTrace]:
    """STAR-1's traces split into reasoning and answer (rows without a think block are skipped)."""
    path = root / "star1" / "STAR-1.json"
    if not path.is_file():
        raise FileNotFoundError(f"no STAR-1 file at {path}: set INTERVENE_DATA_DIR or --data-dir")
    traces: list[GoldTrace] = []
    for item in json.loads(path.read_text(encoding="utf-8")):
        match = _THINK.match(item["response"])
        if match is not None:
            traces.append(
                GoldTrace("star1", item["question"], match.group(1).strip(), match.group(2).strip(), str(item["id"]))
            )
    return traces


def star1_split(traces: list[GoldTrace]) -> tuple[list[GoldTrace], list[GoldTrace]]:
    """(training side, held out): a fixed split of STAR-1 by id, independent of the file's order.

    The held-out part is the STAR1_HELD_OUT traces whose sha256(id) sorts first; the classifier judge
    trains on the rest as negatives (no cue anywhere) and is measured on these, never trained on them.
    """
    ranked = sorted(traces, key=lambda t: hashlib.sha256(t.id.encode()).hexdigest())
    held_out = {t.id for t in ranked[:STAR1_HELD_OUT]}
    return [t for t in traces if t.id not in held_out], [t for t in traces if t.id in held_out]
