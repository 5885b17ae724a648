"""Turns traces written by outside writers (the guide's format: steps as sentences) into corpus records.

The writers of `shared/judging/corpus/pools/*.jsonl` saw only the writing guide (its README.md), never this
corpus or its generator. Their format gives each trace as labelled sentences plus `paragraph_breaks`; a corpus
record needs the reasoning text and each step's offsets by the one splitter (`shared.judging.steps.split`).
So the reasoning is the sentences joined by a space (a blank line after each paragraph break), it is
split again, and the splitter's steps must be the writer's sentences. Where they are not, the trace is
reported; `reconcile` only joins or splits steps to follow the splitter (a joined step keeps the most
telling label of its parts, cue over unsafe over trigger over neutral; a split step repeats its label)
and never relabels anything else.

    .venv/bin/python -m tools.corpus.pools SOURCE.jsonl OUT.jsonl --split NAME
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from shared.judging.base import Label, first_cue
from shared.judging.steps import split

_RANK = {Label.COMPLIANCE_CUE: 3, Label.UNSAFE: 2, Label.SAFETY_TRIGGER: 1, Label.NEUTRAL: 0}


def reasoning_of(steps: list[dict], paragraph_breaks: Iterable[int]) -> tuple[str, list[tuple[int, int]]]:
    """The reasoning text of written steps and each written step's (start, end) in it."""
    breaks = set(paragraph_breaks)
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    position = 0
    for index, step in enumerate(steps):
        text = " ".join(step["text"].split())
        spans.append((position, position + len(text)))
        separator = "" if index == len(steps) - 1 else "\n\n" if index in breaks else " "
        parts.append(text + separator)
        position += len(text) + len(separator)
    return "".join(parts), spans


def reconcile(reasoning: str, written: list[tuple[int, int]], labels: list[Label]) -> tuple[list[Label], list[str]]:
    """Labels for the splitter's steps of `reasoning`, and a note per mismatch with the written steps."""
    notes: list[str] = []
    out: list[Label] = []
    for number, (start, end) in enumerate(split(reasoning), start=1):
        core = (start, start + len(reasoning[start:end].rstrip()))
        parts = [i for i, (s, e) in enumerate(written) if s < core[1] and e > core[0]]
        if len(parts) > 1:
            notes.append(f"splitter step {number} joins written steps {[p + 1 for p in parts]}")
        elif written[parts[0]] != core:
            notes.append(f"splitter step {number} is part of written step {parts[0] + 1}")
        out.append(max((labels[p] for p in parts), key=_RANK.__getitem__))
    return out, notes


def convert(source: dict, split_name: str) -> tuple[dict, list[str]]:
    """One corpus record from one written trace, and the mismatch notes."""
    reasoning, written = reasoning_of(source["steps"], source.get("paragraph_breaks", []))
    labels, notes = reconcile(reasoning, written, [Label(s["label"]) for s in source["steps"]])
    h = first_cue(labels)
    if h != source["first_cue"]:
        notes.append(f"first_cue {source['first_cue']} as written, {h} from the labels")
    steps = [
        {"index": i, "start": s, "end": e, "text": reasoning[s:e].strip(), "label": label.value}
        for i, ((s, e), label) in enumerate(zip(split(reasoning), labels, strict=True), start=1)
    ]
    record = {
        "id": source["id"],
        "split": split_name,
        "author": source["author"],
        "style": source.get("style", ""),
        "topic": source["topic"],
        "kind": source["kind"],
        "prompt": source["prompt"],
        "request_harmful": bool(source["request_harmful"]),
        "reasoning": reasoning,
        "response": source["response"],
        "steps": steps,
        "first_cue": h,
        "reasoning_verdict": source["reasoning_verdict"],
        "response_verdict": source["response_verdict"],
        "response_refused": bool(source["response_refused"]),
    }
    return record, notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--split", required=True, help="Split name written into each record.")
    args = parser.parse_args(argv)
    records, problems = [], 0
    for line_number, line in enumerate(args.source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            source = json.loads(line)
        except json.JSONDecodeError as error:
            print(f"{args.source}:{line_number}: not JSON ({error}); skipped", file=sys.stderr)
            problems += 1
            continue
        record, notes = convert(source, args.split)
        for note in notes:
            print(f"{record['id']}: {note}", file=sys.stderr)
        problems += bool(notes)
        records.append(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} records to {args.out}; {problems} with a mismatch or a bad line")


if __name__ == "__main__":
    main()
