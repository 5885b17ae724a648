"""Chat templates that open the think block themselves give the same Rollout as one that does not.

The tokenizers are real: the embedded SmolLM2 tokenizer saved to a folder with the chat template replaced by an
R1 distill's or Qwen3's (tests/fixtures/templates.py).
"""

from __future__ import annotations

import pytest

from shared.generation.backends.base import GenerationBackend, create_backend
from shared.protos.intervene.v1 import common_pb2, generation_pb2
from tests.fixtures.generation import backend_settings, shared_transformers_backend
from tests.fixtures.templates import QWEN3_TEMPLATE, R1_TEMPLATE, tokenizer_dir

# With a system turn SmolLM2's own template renders the same turns as these (without, it adds its default one).
PROMPT = common_pb2.Prompt(text="What is 2 + 3?", system="Be brief.")
SAMPLING = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=12, max_response_tokens=8)


@pytest.fixture(scope="module", params=["r1", "qwen3"])
def templated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    template = R1_TEMPLATE if request.param == "r1" else QWEN3_TEMPLATE
    folder = tokenizer_dir(tmp_path_factory.mktemp(request.param), template)
    backend = create_backend(backend_settings("transformers", tokenizer=str(folder)))
    yield request.param, backend
    backend.close()


def _rollout(backend: GenerationBackend) -> common_pb2.Rollout:
    request = generation_pb2.GenerateRequest(prompts=[PROMPT], n=1, sampling=SAMPLING)
    return backend.generate([request])[0].rollouts[0]


def test_detection_follows_the_template(templated) -> None:
    name, backend = templated
    assert backend.format.template_opens_think is (name == "r1")
    context = backend.context(PROMPT)
    assert context.endswith("<|im_start|>assistant\n<think>\n") and context.count("<think>") == 1


def test_the_rollout_has_reasoning_and_response_apart_as_without_think_in_the_template(templated) -> None:
    _, backend = templated
    plain = _rollout(shared_transformers_backend())
    rollout = _rollout(backend)
    assert rollout.context == plain.context
    assert rollout.reasoning and "<think>" not in rollout.reasoning and "</think>" not in rollout.response
    assert (rollout.reasoning, rollout.response, rollout.reasoning_tokens, rollout.reasoning_closed) == (
        plain.reasoning,
        plain.response,
        plain.reasoning_tokens,
        plain.reasoning_closed,
    )


def test_qwen3_with_thinking_off_renders_an_empty_block_that_is_not_mistaken_for_an_open_one(tmp_path) -> None:
    from transformers import AutoTokenizer

    from shared.generation.format import template_opens_think

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir(tmp_path, QWEN3_TEMPLATE)))
    messages = [{"role": "user", "content": "Hi"}]
    off = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert off.endswith("<think>\n\n</think>\n\n")
    assert not template_opens_think(tokenizer, "<think>\n")
