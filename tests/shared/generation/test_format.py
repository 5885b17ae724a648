"""The reasoning format: contexts with the think block opened once, splitting, stop strings, seeds, settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config.generation import GenerationSettings
from shared.generation.format import ReasoningFormat, derive_seed, resolve_sampling, truncate_at_stop
from shared.models.embedded import embedded_model_dir
from shared.protos.intervene.v1 import common_pb2

SETTINGS = GenerationSettings(auth_disabled=True)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(embedded_model_dir()))


def test_a_template_without_think_gets_the_block_opened(tokenizer) -> None:
    fmt = ReasoningFormat.for_tokenizer(tokenizer, SETTINGS)
    assert not fmt.template_opens_think
    context = fmt.context(tokenizer, common_pb2.Prompt(text="Hi", system="Be brief."))
    assert context.endswith("<|im_start|>assistant\n<think>\n")
    assert "Be brief." in context


def test_a_template_that_opens_think_is_used_as_is(tokenizer) -> None:
    original = tokenizer.chat_template
    tokenizer.chat_template = original + "{% if add_generation_prompt %}{{ '<think>\\n' }}{% endif %}"
    try:
        fmt = ReasoningFormat.for_tokenizer(tokenizer, SETTINGS)
        context = fmt.context(tokenizer, common_pb2.Prompt(text="Hi"))
    finally:
        tokenizer.chat_template = original
    assert fmt.template_opens_think
    assert context.endswith("assistant\n<think>\n") and context.count("<think>") == 1


def test_split_separates_reasoning_and_response() -> None:
    fmt = ReasoningFormat()
    assert fmt.split("I think so.\n</think>\n\nYes.", True) == ("I think so.", "Yes.", True)
    assert fmt.split("still thinking", True) == ("still thinking", "", False)
    assert fmt.split(" verbatim </think> text", False) == ("", " verbatim </think> text", False)


def test_stop_strings_cut_at_the_first_match() -> None:
    assert truncate_at_stop("a END b STOP", ("STOP", "END")) == ("a ", True)
    assert truncate_at_stop("nothing", ("STOP",)) == ("nothing", False)


def test_seeds_are_derived_per_sequence() -> None:
    assert derive_seed(None, 0) is None
    assert derive_seed(7, 0) == derive_seed(7, 0) != derive_seed(7, 1)
    assert 0 <= derive_seed(7, 3, 2) < 2**63


def test_unset_sampling_fields_take_the_paper_defaults() -> None:
    sampling = resolve_sampling(common_pb2.SamplingParams(max_response_tokens=5), SETTINGS)
    assert (sampling.temperature, sampling.top_p, sampling.max_response_tokens, sampling.seed) == (0.6, 0.95, 5, None)
    assert resolve_sampling(common_pb2.SamplingParams(temperature=0.0), SETTINGS).greedy


def test_defaults_over_their_limits_are_refused() -> None:
    with pytest.raises(ValidationError, match="INTERVENE_LIMIT_RESPONSE_TOKENS"):
        GenerationSettings(auth_disabled=True, max_response_tokens=100, limit_response_tokens=10)
