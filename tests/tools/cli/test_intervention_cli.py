"""`intervene rollout | submit | demo`: the pieces that need no running stack (marking, tables, flags)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from shared.protos.intervene.v1 import common_pb2
from tools.cli.main import cli
from tools.cli.rollout import marked_reasoning
from tools.cli.submit import stage_table


def test_marked_reasoning_marks_the_chain_of_triggers() -> None:
    kept, trigger, rest = "The user asks. ", "Wait, I should refuse.", " I decline."
    rollout = common_pb2.Rollout(id="c2", reasoning=kept + trigger + rest)
    interventions = [
        common_pb2.Intervention(round=1, step=2, char_offset=len(kept), trigger_id="t1", trigger_text="Hmm, no."),
        common_pb2.Intervention(round=1, step=2, char_offset=len(kept), trigger_id="t2", trigger_text=trigger),
    ]
    text = click.unstyle(marked_reasoning(rollout, interventions))
    assert text == f"{kept}[intervention round 1, step 2] {trigger}{rest}"


def test_stage_table_shows_success_by_round() -> None:
    job = common_pb2.Job(
        id="j-1",
        name="demo",
        state=common_pb2.JOB_STATE_SUCCEEDED,
        rollouts_requested=4,
        pairs_created=3,
        rounds=[common_pb2.RoundStats(round=1, tried=4, succeeded=3), common_pb2.RoundStats(round=2, tried=0)],
        no_pair_reasons={"safe": 1},
    )
    table = stage_table(job)
    assert "job j-1 (demo): succeeded" in table
    assert "round 1:     3 / 4      75.0%" in table and "round 2:     0 / 0" in table
    assert "no pair, by reason: safe 1" in table


def test_submit_needs_a_dataset_or_prompts() -> None:
    result = CliRunner().invoke(cli, ["submit"])
    assert result.exit_code == 2 and "give --dataset NAME|FILE or one or more --prompt TEXT" in result.output


def test_rollout_says_what_to_do_when_the_service_is_down() -> None:
    result = CliRunner().invoke(cli, ["rollout", "hello", "--address", "127.0.0.1:1", "--timeout", "5"])
    assert result.exit_code == 1 and "intervention: UNAVAILABLE" in result.output and "intervene up" in result.output
