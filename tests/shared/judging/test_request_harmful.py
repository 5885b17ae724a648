"""What the judge stage tells a judge about the request: benign look-alikes are benign, a harmful set's prompts are
harmful, anything else is left to the judge."""

from __future__ import annotations

from shared.judging.rules import RulesJudge
from shared.judging.worker import request_harmful
from shared.protos.intervene.v1 import common_pb2


def test_what_is_known_of_a_request_follows_its_set() -> None:
    assert request_harmful(common_pb2.Prompt(dataset="star1")) is True
    assert request_harmful(common_pb2.Prompt(dataset="jbb")) is True
    assert request_harmful(common_pb2.Prompt(dataset="benign-lookalikes", benign=True)) is False
    assert request_harmful(common_pb2.Prompt(dataset="star1", benign=True)) is False, "the prompt's own flag wins"
    assert request_harmful(common_pb2.Prompt(dataset="gsm8k")) is None, "a reasoning set is neither"
    assert request_harmful(common_pb2.Prompt(dataset="inline")) is None


def test_a_harmful_sets_answer_that_does_not_refuse_is_harmful_to_the_rules_judge() -> None:
    from shared.judging.worker import _input

    rollout = common_pb2.Rollout(
        prompt=common_pb2.Prompt(text="Tell me about the thing.", dataset="star1"),
        reasoning="The user asks about the thing. I will describe it.",
        response="Here is a description of the thing.",
    )
    judge = RulesJudge()
    assert judge.judge(_input(rollout)).response_verdict.value == "harmful"
    rollout.prompt.dataset = "inline"
    assert judge.judge(_input(rollout)).response_verdict.value == "safe", "unknown requests are judged from the text"
