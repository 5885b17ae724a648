"""The corpus builder's sentence files: the shipped ones load, and a malformed one is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tools.corpus.build import SENTENCES_DIR, load_sentences


@pytest.mark.parametrize("split_name", ["train", "dev"])
def test_shipped_sentences_load_with_every_phrasing(split_name: str) -> None:
    sentences = load_sentences(SENTENCES_DIR / f"{split_name}.yaml")
    assert sentences.topics and sentences.benign
    assert all(len(topic.details) >= 3 for topic in sentences.topics)
    assert sentences.pools.openers and sentences.pools.intent_cues and sentences.pools.refusal_responses


def test_a_misspelt_key_is_refused_naming_the_file_and_entry(tmp_path: Path) -> None:
    data = yaml.safe_load((SENTENCES_DIR / "dev.yaml").read_text(encoding="utf-8"))
    data["topics"][1]["detail"] = data["topics"][1].pop("details")
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev\.yaml: topics\[1\]: needs the keys .*'details'.*got .*'detail'"):
        load_sentences(path)


def test_a_missing_section_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"topics": [], "benign": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="needs exactly the sections topics, benign and phrasings"):
        load_sentences(path)
