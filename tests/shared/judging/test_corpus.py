"""The labelled corpus: shape, consistency with the splitter, and the train/dev separation."""

from __future__ import annotations

import pytest

from shared.judging.base import Label, first_cue
from shared.judging.corpus import build
from shared.judging.evaluate import CORPUS_DIR, load_corpus
from shared.judging.steps import split


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[dict]]:
    return {name: load_corpus(CORPUS_DIR / f"{name}.jsonl") for name in ("train", "dev")}


def test_size_and_mix(corpus: dict[str, list[dict]]) -> None:
    records = corpus["train"] + corpus["dev"]
    assert len(records) >= 200
    kinds = {r["kind"] for r in records}
    assert {"comply", "rationalise", "refuse", "waver", "benign"} <= kinds
    assert sum(r["first_cue"] == 0 for r in records) > 50, "traces without a cue are represented"
    assert len({r["first_cue"] for r in records}) >= 4, "the cue sits at varied positions"


def test_records_agree_with_the_splitter(corpus: dict[str, list[dict]]) -> None:
    for record in corpus["train"] + corpus["dev"]:
        spans = [(s["start"], s["end"]) for s in record["steps"]]
        assert spans == split(record["reasoning"]), record["id"]
        labels = [Label(s["label"]) for s in record["steps"]]
        assert record["first_cue"] == first_cue(labels), record["id"]
        assert record["reasoning_verdict"] in ("safe", "harmful")
        assert record["response_verdict"] in ("safe", "harmful")


def test_dev_uses_other_topics_and_phrasings(corpus: dict[str, list[dict]]) -> None:
    assert not {r["topic"] for r in corpus["train"]} & {r["topic"] for r in corpus["dev"]}
    train_steps = {s["text"] for r in corpus["train"] for s in r["steps"]}
    dev_steps = {s["text"] for r in corpus["dev"] for s in r["steps"]}
    assert not train_steps & dev_steps


def test_files_are_what_the_builder_writes(tmp_path, corpus: dict[str, list[dict]]) -> None:
    build.write(tmp_path)
    for name in ("train", "dev"):
        assert load_corpus(tmp_path / f"{name}.jsonl") == corpus[name], f"rebuild {name}.jsonl with build.py"
