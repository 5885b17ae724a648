"""Where a named set is read from: its local copy in the data folder first, else its Hugging Face Hub copy through the
real `datasets.load_dataset` (pointed at local folders laid out like hub repositories: no hub is reachable, and
HF_HUB_OFFLINE=1 keeps anything from going out), `hf:` names, the default data folder, and the errors that say what
to do. Assertions compare ids, counts and stand-in texts; no public set's text is printed."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from shared.datasets import DATASETS, DatasetError, default_data_dir, load_prompts, load_templates, resolve_data_dir
from shared.datasets.hub import forget_unreachable, parse_hf_name
from tests.shared.datasets.hub_folders import (
    csv_file,
    harmbench_hub,
    jbb_hub,
    parquet_split,
    point_hub,
    strongreject_hub,
    xstest_hub,
)


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty `datasets` cache of its own and a hub not yet marked unreachable."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    forget_unreachable()
    yield
    forget_unreachable()


def test_the_local_copy_wins_over_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    point_hub(monkeypatch, "strongreject", strongreject_hub(tmp_path / "hub", count=3))
    local = tmp_path / "data"
    csv_file(
        local / "strongreject" / "strongreject_dataset.csv",
        [{"category": "local", "source": "custom", "forbidden_prompt": "local request"}],
    )
    assert [p.text for p in load_prompts("strongreject", data_dir=local)] == ["local request"]

    from_hub = load_prompts("strongreject", data_dir=tmp_path / "empty")
    assert [p.text for p in from_hub] == [f"stand-in request {i}" for i in range(3)]
    assert from_hub[1].labels == {"category": "cat-1", "source": "custom"} and from_hub[1].dataset == "strongreject"


def test_hub_configs_splits_and_column_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = jbb_hub(tmp_path / "jbb")
    point_hub(monkeypatch, "jbb", folder)
    point_hub(monkeypatch, "jbb-benign", folder)
    harmful = load_prompts("jbb", data_dir=tmp_path / "empty")
    first = harmful[0]
    assert len(harmful) == 3 and (first.id, first.text, first.labels["behavior"], first.benign) == (
        "1",
        "harmful goal 1",
        "behaviour 1",
        False,
    )
    benign = load_prompts("jbb-benign", data_dir=tmp_path / "empty")
    assert [p.text for p in benign] == [f"benign goal {i}" for i in range(1, 4)] and all(p.benign for p in benign)

    point_hub(monkeypatch, "harmbench", harmbench_hub(tmp_path / "harmbench"))
    behaviours = load_prompts("harmbench", data_dir=tmp_path / "empty")
    assert [p.labels["FunctionalCategory"] for p in behaviours] == ["standard", "contextual", "copyright"]
    assert behaviours[1].text == "a paragraph\n\n---\n\nsummarise it"  # context first, as HarmBench evaluates it
    assert behaviours[2].labels["Tags"] == "lyrics"


def test_hub_rows_go_through_the_sets_own_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = xstest_hub(tmp_path / "xstest")
    point_hub(monkeypatch, "xstest-safe", folder)
    point_hub(monkeypatch, "xstest-unsafe", folder)
    safe = load_prompts("xstest-safe", data_dir=tmp_path / "empty", limit=2, seed=1)
    assert len(safe) == 2 and all(p.benign and p.labels["type"] == "homonyms" for p in safe)
    assert [p.text for p in load_prompts("xstest-unsafe", data_dir=tmp_path / "empty")] == ["stand-in contrast"]


def test_a_missing_set_names_itself_the_folder_and_the_fetch_command(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    with pytest.raises(DatasetError) as error:
        load_prompts("strongreject", data_dir=empty)
    message = error.value.message
    assert error.value.field == "dataset"
    assert "'strongreject'" in message and str(empty / "strongreject" / "strongreject_dataset.csv") in message
    assert "walledai/StrongREJECT" in message and "OfflineModeIsEnabled" in message  # the hub's own words
    assert "intervene data fetch strongreject --out DIR" in message and "HF_TOKEN" in message

    with pytest.raises(DatasetError, match="no hub copy keeps HarmBench's val/test split") as no_hub:
        load_prompts("harmbench-test", data_dir=empty)
    assert f"Put the file at {empty / 'harmbench' / 'harmbench_behaviors_text_test.csv'}" in no_hub.value.message

    with pytest.raises(DatasetError, match="have no Hugging Face Hub copy") as templates:
        load_templates("jailbreak-heldout", data_dir=empty)
    assert templates.value.field == "template_file" and str(empty) in templates.value.message


def test_an_unreachable_hub_is_tried_once_per_process(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="OfflineModeIsEnabled"):
        load_prompts("advbench", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="not reachable earlier in this process"):
        load_prompts("gsm8k", data_dir=tmp_path)


def test_hf_names_read_any_hub_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `datasets` reads a relative ORG/NAME that exists as a folder the way it reads that hub repository.
    monkeypatch.chdir(tmp_path)
    parquet_split(tmp_path / "acme" / "prompts", "test", [{"id": "a", "text": "first"}, {"id": "b", "text": "second"}])
    parquet_split(tmp_path / "acme" / "prompts", "train", [{"id": "c", "text": "third"}])
    prompts = load_prompts("hf:acme/prompts:test", data_dir=tmp_path / "empty")
    assert [(p.id, p.text, p.dataset) for p in prompts] == [
        ("a", "first", "acme/prompts:test"),
        ("b", "second", "acme/prompts:test"),
    ]

    with pytest.raises(DatasetError) as unknown_split:
        load_prompts("hf:acme/prompts:validation", data_dir=tmp_path / "empty")
    message = unknown_split.value.message
    assert "Unknown split" in message and "'hf:acme/prompts:validation'" in message
    assert str(tmp_path / "empty") in message and "intervene data fetch hf:acme/prompts:validation" in message

    with pytest.raises(DatasetError, match="it has the splits"):
        load_prompts("hf:acme/prompts", data_dir=tmp_path / "empty")
    with pytest.raises(DatasetError, match="is not a hub name"):
        load_prompts("hf:no-organisation", data_dir=tmp_path / "empty")
    with pytest.raises(DatasetError, match="OfflineModeIsEnabled") as unknown_id:
        load_prompts("hf:acme/no-such-set:train", data_dir=tmp_path / "empty")
    assert "intervene data fetch hf:acme/no-such-set:train" in unknown_id.value.message


def test_hf_names_parse_config_revision_and_split() -> None:
    source = parse_hf_name("hf:openai/gsm8k/main@abc123:test")
    assert (source.repo, source.config, source.revision, source.split) == ("openai/gsm8k", "main", "abc123", "test")
    assert parse_hf_name("hf:org/name").split is None and parse_hf_name("advbench") is None


def test_parquet_files_are_prompt_files(tmp_path: Path) -> None:
    path = (
        parquet_split(tmp_path, "mine", [{"question": "why is the sky blue"}]) / "data" / "mine-00000-of-00001.parquet"
    )
    assert [p.text for p in load_prompts(str(path))] == ["why is the sky blue"]


def test_the_default_data_folder_does_not_follow_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTERVENE_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    first = resolve_data_dir()
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir() == first == tmp_path / "home" / ".local" / "share" / "intervene" / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "intervene" / "data"
    monkeypatch.setenv("INTERVENE_DATA_DIR", "~/sets")
    assert resolve_data_dir() == tmp_path / "home" / "sets"
    assert resolve_data_dir(tmp_path / "given") == tmp_path / "given"


def test_every_public_set_has_a_hub_copy_or_says_why_not() -> None:
    for name, spec in DATASETS.items():
        assert spec.builtin or bool(spec.hub) != bool(spec.no_hub), name
        assert all(source.split for source in spec.hub), f"{name}: a hub copy names its split"
