"""Dataset loaders by name and file, and jailbreak-template wrapping (no prompt text is printed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.datasets import DATASETS, SLOT, DatasetError, load_prompts, load_templates, wrap_with_templates
from tests.public_data import needs_public_data


@needs_public_data("advbench", "harmbench-val", "jbb", "xstest-safe")
@pytest.mark.parametrize(
    ("name", "rows", "benign"),
    [("advbench", 520, False), ("harmbench-val", 80, False), ("jbb", 100, False), ("xstest-safe", 250, True)],
)
def test_named_sets_map_their_columns(name: str, rows: int, benign: bool) -> None:
    prompts = load_prompts(name)
    assert len(prompts) == rows
    assert all(p.text.strip() and p.id and p.dataset == name and p.benign == benign for p in prompts)
    assert len({p.id for p in prompts}) >= rows - 10  # HarmBench repeats a few behaviours


@needs_public_data("strongreject")
def test_limit_samples_reproducibly_in_file_order() -> None:
    first = [p.id for p in load_prompts("strongreject", limit=10, seed=3)]
    again = [p.id for p in load_prompts("strongreject", limit=10, seed=3)]
    other = [p.id for p in load_prompts("strongreject", limit=10, seed=4)]
    everything = [p.id for p in load_prompts("strongreject")]
    assert first == again != other and len(first) == 10
    assert first == sorted(first, key=everything.index)
    assert all(p.labels["category"] for p in load_prompts("strongreject", limit=5))


def test_builtin_demo_sets_ship_with_the_package() -> None:
    assert len(load_prompts("demo-harmful", data_dir="/nonexistent")) == 8
    assert all(p.benign for p in load_prompts("demo-benign", data_dir="/nonexistent"))
    assert {"demo-harmful", "demo-benign"} <= set(DATASETS)


def test_files_columns_and_errors(tmp_path: Path) -> None:
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text("id,question\n1,first\n2,second\n3,\n")
    prompts = load_prompts(str(csv_file))
    assert [(p.id, p.text, p.dataset) for p in prompts] == [("1", "first", "mine"), ("2", "second", "mine")]
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text('{"body": "hello"}\n')
    assert load_prompts(str(jsonl), text_column="body", benign=True)[0].benign
    with pytest.raises(DatasetError, match="cannot tell which column") as error:
        load_prompts(str(jsonl))
    assert error.value.field == "text_column"
    with pytest.raises(DatasetError, match="has no column 'nope'"):
        load_prompts(str(csv_file), text_column="nope")
    with pytest.raises(DatasetError, match="neither a known dataset"):
        load_prompts("no-such-set")


def test_templates_wrap_and_need_the_slot(tmp_path: Path) -> None:
    lone = tmp_path / "lone.txt"
    lone.write_text("no slot here")
    with pytest.raises(DatasetError, match="holds the slot") as error:
        load_templates(str(lone))
    assert error.value.field == "template_file"
    many = tmp_path / "many.csv"
    many.write_text(f'name,prompt\na,"Say {SLOT} now"\nb,"missing"\n')
    templates = load_templates(str(many))
    assert [t.name for t in templates] == ["a"]
    prompts = load_prompts("demo-benign")
    wrapped = wrap_with_templates(prompts, templates, seed=1)
    assert wrapped[0].text == f"Say {prompts[0].text} now" and wrapped[0].template == "a"
    assert wrapped[0].id == f"{prompts[0].id}@a" and prompts[0].template == ""
