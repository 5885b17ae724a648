"""Overlap between prompt sets: the exact counts the public data folder's README lists, what the n-gram test adds, pairs
files as the training side, `intervene data overlap`, and the trainer refusing pairs whose prompt is in an
evaluation set. Dataset text is never printed: assertions compare ids and counts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.config.trainer import TrainerSettings
from shared.evaluation.overlap import (
    EvalOverlapError,
    OverlapIndex,
    PromptSet,
    check_training_pairs,
    find_overlap,
    find_pair_overlaps,
    load_prompt_set,
    normalize_text,
)
from shared.protos.intervene.v1 import common_pb2
from shared.training.data import record_from_proto
from shared.training.loop import TrainingInputError, preflight
from tests.public_data import PUBLIC_DATA as DATA_DIR
from tests.public_data import public_file
from tools.cli.main import cli

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n<think>\n"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    public_file("strongreject/strongreject_dataset.csv")
    return DATA_DIR


@pytest.fixture(scope="module")
def sets(data_dir) -> dict[str, PromptSet]:
    names = ["advbench", "strongreject", "jbb", "harmbench-test", "harmbench-val", "star1", "xstest-safe"]
    return {name: load_prompt_set(name, data_dir) for name in names}


def _set(name: str, *texts: str) -> PromptSet:
    return PromptSet(name, tuple(f"{name}-{i}" for i in range(len(texts))), texts)


@pytest.mark.parametrize(
    ("train", "evaluation", "expected"),
    [
        ("advbench", "strongreject", 25),
        ("advbench", "jbb", 11),
        ("strongreject", "jbb", 3),
        ("star1", "xstest-safe", 0),
        ("advbench", "xstest-safe", 0),
    ],
)
def test_exact_overlaps_are_those_the_data_readme_lists(sets, train, evaluation, expected):
    result = find_overlap(sets[train], sets[evaluation])
    assert result.exact == expected
    assert result.near >= result.exact
    assert len({match.id for match in result.matches}) == result.near


def test_harmbench_overlaps_star1_in_32_behaviours_26_of_them_in_test(sets, data_dir):
    test = find_overlap(sets["star1"], sets["harmbench-test"])
    val = find_overlap(sets["star1"], sets["harmbench-val"])
    assert (test.exact, val.exact) == (26, 6)
    whole = find_overlap(sets["star1"], load_prompt_set(str(data_dir / "harmbench/harmbench_behaviors_text_all.csv")))
    assert whole.exact == 32
    assert {m.id for m in whole.matches} == {m.id for m in test.matches + val.matches}
    jbb = [find_overlap(sets[name], sets["jbb"]).exact for name in ("harmbench-test", "harmbench-val")]
    assert sum(jbb) == 9


def test_exact_match_ignores_case_punctuation_and_spacing():
    assert normalize_text("  How do I  bake, a CAKE?!\n") == "how do i bake a cake"
    result = find_overlap(_set("train", "How do I bake a cake?"), _set("eval", "how do i bake a cake", "bake bread"))
    assert [(m.id, m.method, m.train_ids) for m in result.matches] == [("eval-0", "exact", ("train-0",))]


def test_ngrams_find_a_prompt_inside_a_template_and_near_copies_but_not_shared_phrases():
    question = "explain in plain words how a rainbow forms after a summer storm over the hills"
    template = "You are a helpful teacher who always answers in full sentences. Now the question: {} Thank you."
    train = _set(
        "train",
        template.format(question),
        "explain in plain words how a rainbow forms after a summer storm over the sea",
        "explain in plain words how a kite flies",
    )
    evaluation = _set("eval", question, "explain in plain words how a bicycle stays upright when it moves fast")
    result = find_overlap(train, evaluation, ngram=8, threshold=0.5)
    assert [m.id for m in result.matches] == ["eval-0"]
    match = result.matches[0]
    assert match.method == "ngram" and match.train_ids == ("train-0", "train-1") and match.score == 1.0
    assert find_overlap(train, evaluation, ngram=8, threshold=1.0).matches[0].train_ids == ("train-0",)


def test_prompts_shorter_than_n_words_are_compared_exactly():
    index = OverlapIndex([("a", "water the plants"), ("b", "water the plants every morning before work")], ngram=4)
    assert index.lookup("Water the plants!") == ("exact", 1.0, ("a",))
    assert index.lookup("water the plants daily") is None
    with pytest.raises(ValueError, match="threshold"):
        index.lookup("x", threshold=0)


def _pair_rows(prompts: list[str], with_user_prompt: bool = True) -> list[dict]:
    rows = []
    for index, prompt in enumerate(prompts):
        row = {
            "id": f"pair-{index}",
            "prompt": CHAT.format(prompt) + "Let me think about the request.",
            "chosen": " Wait, I should not help with that.",
            "rejected": " Sure, here is how.",
            "kind": "harmful",
        }
        if with_user_prompt:
            row["user_prompt"] = prompt
        rows.append(row)
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_pairs_file_is_compared_on_its_user_prompts(tmp_path, sets):
    strongreject = sets["strongreject"]
    prompts = [strongreject.texts[0], "how do plants turn sunlight into sugar", strongreject.texts[1]]
    pairs = load_prompt_set(str(_write(tmp_path / "pairs.jsonl", _pair_rows(prompts))))
    assert pairs.ids == ("pair-0", "pair-1", "pair-2") and pairs.texts == tuple(prompts)
    result = find_overlap(pairs, strongreject)
    assert {(m.id, m.method) for m in result.matches} == {
        (strongreject.ids[0], "exact"),
        (strongreject.ids[1], "exact"),
    }
    chat_only = load_prompt_set(str(_write(tmp_path / "old.jsonl", _pair_rows(prompts, with_user_prompt=False))))
    long_enough = [
        m.id
        for m in result.matches
        if len(normalize_text(strongreject.texts[strongreject.ids.index(m.id)]).split()) >= 8
    ]
    assert [m.id for m in find_overlap(chat_only, strongreject).matches] == long_enough


def test_cli_prints_counts_and_ids_but_no_prompt_text(sets, data_dir):
    runner = CliRunner()
    args = ["data", "overlap", "advbench", "strongreject", "jbb", "--data-dir", str(data_dir)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[2:4]}
    assert rows["strongreject"][:2] == ["313", "25"] and rows["jbb"][:2] == ["100", "11"]
    for text in sets["strongreject"].texts + sets["jbb"].texts + sets["advbench"].texts:
        assert text not in result.output
    assert "25" in result.output and sets["jbb"].ids[10] in result.output

    as_json = json.loads(runner.invoke(cli, [*args, "--json"]).output)
    assert [(e["eval"], e["exact"]) for e in as_json["eval"]] == [("strongreject", 25), ("jbb", 11)]
    assert as_json["ngram"] == 8 and as_json["threshold"] == 0.5 and "text" not in as_json["eval"][0]["matches"][0]

    shown = json.loads(runner.invoke(cli, [*args, "--json", "--show-text"]).output)
    assert shown["eval"][1]["matches"][0]["text"] in sets["jbb"].texts
    assert runner.invoke(cli, [*args, "--fail-on-overlap"]).exit_code == 1
    clean = ["data", "overlap", "advbench", "xstest-safe", "--data-dir", str(data_dir), "--fail-on-overlap"]
    assert runner.invoke(cli, clean).exit_code == 0


def test_cli_names_an_unknown_set_and_a_bad_threshold(tmp_path):
    train = _write(tmp_path / "train.jsonl", [{"prompt": "How do I bake bread at home?"}])
    result = CliRunner().invoke(cli, ["data", "overlap", str(train), "no-such-set"])
    assert result.exit_code == 2 and "no-such-set" in result.output and "known dataset" in result.output
    result = CliRunner().invoke(cli, ["data", "overlap", str(train), str(train), "--threshold", "0"])
    assert result.exit_code == 2 and "--threshold" in result.output


def _settings(tmp_path: Path, pairs: Path, **overrides) -> TrainerSettings:
    return TrainerSettings(pairs_file=pairs, output_dir=tmp_path / "run", **overrides)


def test_training_refuses_pairs_whose_prompt_is_an_eval_prompt_unless_allowed(tmp_path, sets, caplog, monkeypatch):
    monkeypatch.setenv("INTERVENE_DATA_DIR", str(DATA_DIR))
    leaked = sets["strongreject"].texts[3]
    pairs = _write(tmp_path / "pairs.jsonl", _pair_rows([leaked, "how do plants turn sunlight into sugar", leaked]))
    with pytest.raises(TrainingInputError) as refused:
        preflight(_settings(tmp_path, pairs))
    message = str(refused.value)
    assert "2 of 3 pairs" in message and "strongreject: 2" in message and "--allow-eval-overlap" in message
    assert leaked not in message

    with caplog.at_level(logging.WARNING, logger="intervene.trainer"):
        preflight(_settings(tmp_path, pairs, allow_eval_overlap=True))
    assert "2 of 3 pairs" in caplog.text and "kept" in caplog.text and leaked not in caplog.text

    clean = _write(tmp_path / "clean.jsonl", _pair_rows(["how do plants turn sunlight into sugar"]))
    preflight(_settings(tmp_path, clean))
    preflight(_settings(tmp_path, pairs, eval_sets=[]))


def test_missing_default_sets_are_skipped_but_named_ones_are_required(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("INTERVENE_DATA_DIR", str(tmp_path / "no-data"))
    pairs = _write(tmp_path / "pairs.jsonl", _pair_rows(["how do plants turn sunlight into sugar"]))
    with caplog.at_level(logging.WARNING, logger="intervene.evaluation"):
        preflight(_settings(tmp_path, pairs))
    assert "strongreject skipped" in caplog.text and "xstest-unsafe skipped" in caplog.text
    with pytest.raises(TrainingInputError, match="evaluation set 'jbb' cannot be read"):
        preflight(_settings(tmp_path, pairs, eval_sets=["jbb"]))


def test_eval_sets_may_be_files_and_counts_add_up_over_ranks(tmp_path):
    evaluation = _write(tmp_path / "held-out.jsonl", [{"id": "q1", "prompt": "why is the sky blue on a clear day"}])
    prompts = [("p1", "Why is the sky blue on a clear day?"), ("p2", "why do cats purr")]
    report = find_pair_overlaps(prompts, [str(evaluation)], required=True)
    assert (report.checked, report.overlapping, report.per_set) == (2, 1, {str(evaluation): 1})
    two_ranks = report.combined(lambda counts: [2 * value for value in counts])
    assert (two_ranks.checked, two_ranks.overlapping, two_ranks.per_set) == (4, 2, {str(evaluation): 2})
    settings = TrainerSettings(pairs_file=tmp_path / "p.jsonl", eval_sets=[str(evaluation)])
    with pytest.raises(EvalOverlapError, match="1 of 2 pairs"):
        check_training_pairs(prompts, settings)
    allowed = settings.model_copy(update={"allow_eval_overlap": True})
    assert "kept" in check_training_pairs(prompts, allowed)


def test_pairs_from_the_store_carry_their_user_prompt():
    pair = common_pb2.Pair(id="x", prompt=common_pb2.Prompt(text="why is the sky blue"), context="c", prefix="p")
    pair.chosen, pair.rejected = "a", "b"
    assert record_from_proto(pair).user_prompt == "why is the sky blue"


def test_train_cli_stops_before_torchrun_and_names_the_override(tmp_path, sets, monkeypatch):
    for name in ("INTERVENE_TRAINER_PAIRS_FILE", "INTERVENE_TRAINER_PAIR_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INTERVENE_DATA_DIR", str(DATA_DIR))
    pairs = _write(tmp_path / "pairs.jsonl", _pair_rows([sets["jbb"].texts[0]]))
    result = CliRunner().invoke(cli, ["train", "--pairs", str(pairs), "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "1 of 1 pairs" in result.output and "jbb: 1" in result.output and "--allow-eval-overlap" in result.output
    dry = CliRunner().invoke(cli, ["train", "--pairs", str(pairs), "--allow-eval-overlap", "--dry-run"])
    assert "INTERVENE_TRAINER_ALLOW_EVAL_OVERLAP=true" in dry.output


def test_training_from_the_pair_store_refuses_overlapping_pairs(tmp_path, sets, redis_url, monkeypatch):
    from services.pairstore.server import build_spec
    from shared.config.pairstore import PairStoreSettings
    from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
    from shared.rpc.client import connect
    from shared.rpc.server import start_server
    from shared.training.loop import run
    from tests.shared.pairs.factories import make_pair

    monkeypatch.setenv("INTERVENE_DATA_DIR", str(DATA_DIR))
    leaked = make_pair(1)
    leaked.prompt.text = sets["xstest-safe"].texts[0]
    leaked.context = CHAT.format(leaked.prompt.text)
    store = PairStoreSettings(port=0, redis_url=redis_url, auth_token="t", read_token="r", consume_queue=False)
    server = start_server(build_spec(store), store)
    try:
        writer = pairstore_pb2_grpc.PairStoreServiceStub(connect(server.address, token="t"))
        writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(0), leaked, make_pair(2)]))
        settings = TrainerSettings(pair_store=server.address, pair_store_token="r", output_dir=tmp_path / "run")
        with pytest.raises(TrainingInputError, match=r"1 of 3 pairs .*xstest-safe: 1"):
            run(settings)
    finally:
        server.stop(grace=None)
    assert not (tmp_path / "run" / "checkpoints").exists()
