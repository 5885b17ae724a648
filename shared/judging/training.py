"""The classifier judge's training set, its grouped cross-validation, and the rebuild of the shipped model.

Sources (all training-side; nothing here reads an evaluation split):
* `corpus/train.jsonl`: the composed corpus (author `corpus-build`);
* `corpus/pools/pool-a.jsonl`, `pool-b.jsonl`: traces written from the guide alone by two outside writers;
* `corpus/smollm2/train.jsonl`: the embedded model's own traces, labelled by hand;
* STAR-1's safe traces outside the held-out 300 (`gold.star1_split`): partial labels, "no cue, nothing unsafe".

Cross-validation leaves one author out at a time (its topics are also dropped from training), so a
score says how a judge does on a writer and topics it has not seen; the STAR-1 negatives are folded
by id. Hyperparameters are chosen by it, never by the evaluation splits (corpus dev, pools/test-c,
smollm2/eval, the STAR-1 held-out 300).

    .venv/bin/python -m shared.judging.training build   # rewrites shared/judging/models/classifier-v2.json
    .venv/bin/python -m shared.judging.training cv      # grouped cross-validation of the candidates

The build is deterministic: the same sources give the same file (run it on one machine: BLAS
summation order may differ across CPUs in the last digits).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shared.judging import classifier, gold
from shared.judging.base import TraceInput
from shared.judging.classifier import Hyperparameters
from shared.judging.evaluate import CORPUS_DIR, load_corpus
from shared.judging.steps import split

MODEL_PATH = Path(__file__).resolve().parent / "models" / f"{classifier.DEFAULT_MODEL}.json"
LABELLED_SOURCES = ("train.jsonl", "pools/pool-a.jsonl", "pools/pool-b.jsonl", "smollm2/train.jsonl")
SHIPPED = Hyperparameters(negative_weight=0.1)  # chosen by `cv` (README, Judges)


def labelled_records(corpus_dir: Path = CORPUS_DIR) -> list[dict]:
    """Every fully labelled training trace, each with its author."""
    records = []
    for name in LABELLED_SOURCES:
        path = corpus_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"training source {path} is missing")
        for record in load_corpus(path):
            records.append({**record, "author": record.get("author", "corpus-build")})
    return records


def star1_negatives(data_dir: Path | None = None) -> list[dict]:
    """STAR-1's training-side safe traces as partially labelled records (no cue, nothing unsafe)."""
    train, _ = gold.star1_split(gold.star1(gold.data_dir(data_dir)))
    return [
        {
            "id": f"star1-{trace.id}",
            "author": "star1",
            "topic": f"star1-{trace.id}",
            "prompt": trace.prompt,
            "request_harmful": True,
            "partial": "no_cue",
            "steps": [{"text": trace.reasoning[s:e].strip()} for s, e in split(trace.reasoning)],
        }
        for trace in train
    ]


def training_set(corpus_dir: Path = CORPUS_DIR, data_dir: Path | None = None) -> list[dict]:
    """What the shipped model is trained on."""
    return labelled_records(corpus_dir) + star1_negatives(data_dir)


def _inputs(records: Sequence[dict]) -> list[TraceInput]:
    return [
        TraceInput(
            reasoning=" ".join(s["text"] for s in r["steps"]) if "reasoning" not in r else r["reasoning"],
            prompt=r.get("prompt", ""),
            request_harmful=r.get("request_harmful"),
        )
        for r in records
    ]


def cross_validate(records: Sequence[dict], hyper: Hyperparameters, encoder, star1_folds: int = 4) -> dict:
    """Leave-one-author-out h exact match (topics of the held-out author dropped from training) and the
    false-cue rate on STAR-1 negatives folded by id."""
    labelled = [r for r in records if r.get("partial") is None]
    negatives = [r for r in records if r.get("partial") == "no_cue"]
    authors = sorted({r["author"] for r in labelled})
    scores: dict[str, float] = {}
    false_cues = []
    for fold, author in enumerate(authors):
        held = [r for r in labelled if r["author"] == author]
        topics = {r["topic"] for r in held}
        neg_held = [r for i, r in enumerate(negatives) if i % len(authors) == fold]
        train = [r for r in labelled if r["author"] != author and r["topic"] not in topics]
        train += [r for i, r in enumerate(negatives) if i % len(authors) != fold]
        judge, _ = classifier.fit(train, encoder=encoder, hyper=hyper)
        judged = judge.judge_batch(_inputs(held))
        scores[author] = float(np.mean([j.first_cue == r["first_cue"] for j, r in zip(judged, held, strict=True)]))
        if neg_held:
            false_cues += [j.first_cue != 0 for j in judge.judge_batch(_inputs(neg_held))]
    return {
        "h_exact_by_author": {a: round(s, 3) for a, s in scores.items()},
        "h_exact_mean": round(float(np.mean(list(scores.values()))), 3),
        "star1_false_cue_rate": round(float(np.mean(false_cues)), 3) if false_cues else None,
    }


# The candidates compared (README's Judges section has their cross-validation figures).
CANDIDATES = [
    Hyperparameters(),
    Hyperparameters(negative_weight=0.1),
    Hyperparameters(l2=1e-4, sparse_l2=1e-4),
    Hyperparameters(negative_weight=0.1, l2=1e-4, sparse_l2=1e-4),
]


def build(out: Path = MODEL_PATH, hyper: Hyperparameters = SHIPPED) -> dict:
    """Train on the whole training set and write the model file."""
    records = training_set()
    _, document = classifier.fit(
        records,
        hyper=hyper,
        source="shared.judging.training: " + ", ".join([*LABELLED_SOURCES, "star1 (training side, partial labels)"]),
    )
    classifier.save(document, out)
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "cv"])
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args()
    if args.command == "build":
        document = build(args.out)
        print(f"wrote {args.out} ({document['version']}, {document['trained_on']})")
        return
    from shared.judging.embedding import StaticEncoder

    encoder = StaticEncoder()
    records = training_set()
    for hyper in CANDIDATES:
        print(json.dumps({"hyper": hyper.__dict__, **cross_validate(records, hyper, encoder)}), flush=True)


if __name__ == "__main__":
    main()
