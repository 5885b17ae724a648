"""The labelled corpus: shape, consistency with the splitter, and the train/dev separation."""

from __future__ import annotations

import pytest

from shared.judging.base import Label, first_cue
from shared.judging.evaluate import CORPUS_DIR, load_corpus
from shared.judging.steps import split
from tools.corpus import build, pools


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


POOLS = ("pools/pool-a.jsonl", "pools/pool-b.jsonl", "pools/test-c.jsonl", "smollm2/train.jsonl", "smollm2/eval.jsonl")


@pytest.mark.parametrize("name", POOLS)
def test_pool_records_agree_with_the_splitter(name: str) -> None:
    records = load_corpus(CORPUS_DIR / name)
    assert len(records) >= 50
    for record in records:
        assert [(s["start"], s["end"]) for s in record["steps"]] == split(record["reasoning"]), record["id"]
        assert record["first_cue"] == first_cue([Label(s["label"]) for s in record["steps"]]), record["id"]
        assert record["author"] and record["topic"]


def test_test_split_shares_no_author_topic_or_prompt_with_training() -> None:
    test = load_corpus(CORPUS_DIR / "pools/test-c.jsonl")
    training = [
        r
        for name in ("train.jsonl", "pools/pool-a.jsonl", "pools/pool-b.jsonl", "smollm2/train.jsonl")
        for r in load_corpus(CORPUS_DIR / name)
    ]
    assert {r["author"] for r in test} == {"test-c"}
    assert not {r["topic"] for r in test} & {r["topic"] for r in training}
    assert not {r["prompt"] for r in test} & {r["prompt"] for r in training}
    smollm2_eval = load_corpus(CORPUS_DIR / "smollm2/eval.jsonl")
    assert not {r["prompt"] for r in smollm2_eval} & {r["prompt"] for r in training}


def test_pool_conversion_reports_and_joins_a_mismatch() -> None:
    source = {
        "id": "x-1",
        "author": "x",
        "topic": "t",
        "kind": "comply",
        "prompt": "p",
        "request_harmful": True,
        "steps": [
            {"text": "They want it by Friday unless they get an A.", "label": "neutral"},
            {"text": "Alright, let me draft it.", "label": "compliance_cue"},
            {"text": "It would look official.", "label": "unsafe"},
        ],
        "paragraph_breaks": [],
        "response": "r",
        "first_cue": 2,
        "reasoning_verdict": "harmful",
        "response_verdict": "harmful",
        "response_refused": False,
    }
    record, notes = pools.convert(source, "x")
    assert [s["label"] for s in record["steps"]] == ["compliance_cue", "unsafe"]
    assert any("joins written steps [1, 2]" in note for note in notes)
    source["steps"][0]["text"] = "They want it by Friday."
    record, notes = pools.convert(source, "x")
    assert notes == [] and record["first_cue"] == 2 and record["reasoning"].count(" ") > 5
