"""`intervene pairs inspect --file`: counts, labels, verdicts and similarity of a sample, text only when asked."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from shared.intervention.checks import PairChecks
from shared.intervention.loop import BranchText, InterventionLoop
from shared.pairs.export import write_pairs
from shared.protos.intervene.v1 import common_pb2
from tests.shared.intervention.scripted import ScriptedGenerator, ScriptedJudge
from tests.shared.intervention.test_loop import PROMPT, REASONING, SAFE, TRIGGERS
from tools.cli.main import cli

LATER_SAFE = BranchText(" I will not do this; it could hurt someone.", "Sorry, I cannot help with that.")


def _pairs_file(tmp_path: Path) -> Path:
    generator = ScriptedGenerator(REASONING, "HARM here", [{"t1": SAFE, "t2": LATER_SAFE}])
    loop = InterventionLoop(generator, ScriptedJudge(), TRIGGERS, "unit-v1", checks=PairChecks(max_pairs_per_rollout=0))
    pairs = loop.run(PROMPT, common_pb2.SamplingParams(), job_id="job-1").pairs
    assert len(pairs) == 2
    path = tmp_path / "pairs.jsonl"
    write_pairs(pairs, path, "jsonl")
    return path


def test_inspect_shows_labels_verdicts_and_similarity_without_text(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["pairs", "inspect", "--file", str(_pairs_file(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "2 pairs (harmful 2); harmful pairs from 1 rollouts, at most 2 per rollout" in result.output
    assert "by trigger: t1 1, t2 1" in result.output
    rows = [line for line in result.output.splitlines() if " r-origin " in line]
    assert len(rows) == 2 and all("harm/harm/safe/safe" in row for row in rows)
    assert "I will decline politely" not in result.output and PROMPT.text not in result.output
    assert "judge that built them: scripted 1" in result.output


def test_inspect_json_and_show_text(tmp_path: Path) -> None:
    path = _pairs_file(tmp_path)
    result = CliRunner().invoke(cli, ["pairs", "inspect", "--file", str(path), "--json", "--sample", "1"])
    assert result.exit_code == 0, result.output
    summary, item = (json.loads(line) for line in result.output.splitlines())
    assert summary["summary"]["pairs"] == 2 and "text" not in item
    assert item["rejected_labels"].startswith("N") and "|" in item["rejected_labels"]  # prefix steps | the suffix
    assert 0.0 <= item["similarity"] < 0.5 and item["rejected_refuses"] is False
    shown = CliRunner().invoke(cli, ["pairs", "inspect", "--file", str(path), "--show-text", "--sample", "1"])
    assert 'rejected: "COMPLY' in shown.output
