"""One contract, every back end: transformers (here), vllm (under .venv-vllm) and openai (vLLM's server).

Real model (the embedded SmolLM2-135M-Instruct), tiny token budgets. Greedy decoding makes the branch
comparisons exact: the n branches decoded from one shared prefill must equal, token for token, continuations
that each re-encode their own full prefix.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from shared.generation.backends.base import GenerationBackend
from shared.protos.intervene.v1 import common_pb2, generation_pb2
from shared.rpc.errors import ServiceError

pytestmark = pytest.mark.slow

GREEDY = {"temperature": 0.0}


def _sampling(reasoning: int = 6, response: int = 4, **extra: object) -> common_pb2.SamplingParams:
    return common_pb2.SamplingParams(max_reasoning_tokens=reasoning, max_response_tokens=response, **extra)


def _prefix(backend: GenerationBackend, reasoning: str) -> str:
    context = backend.context(common_pb2.Prompt(text="What is the capital of France?"))
    return context + reasoning


def test_rollouts_carry_reasoning_and_response_separately(backend: GenerationBackend) -> None:
    request = generation_pb2.GenerateRequest(
        prompts=[common_pb2.Prompt(text="What is 2+2?")], n=1, sampling=_sampling(6, 4, **GREEDY)
    )
    [response] = backend.generate([request])
    [rollout] = response.rollouts
    assert rollout.context.endswith(backend.format.think_open)
    assert rollout.reasoning and rollout.response
    for text in (rollout.reasoning, rollout.response):
        assert backend.format.think_close not in text
    assert 0 < rollout.reasoning_tokens <= 6
    assert 0 < rollout.response_tokens <= 4
    assert rollout.finish_reason in {"stop", "length"}


def test_continuation_begins_exactly_after_the_prefix(backend: GenerationBackend) -> None:
    # The prefix ends inside a word: only a continuation of exactly this text completes it.
    request = generation_pb2.ContinueRequest(
        prefix=_prefix(backend, "The capital of France is Par"), in_reasoning=True, sampling=_sampling(3, 2, **GREEDY)
    )
    [response] = backend.continue_branches([request])
    [continuation] = response.continuations
    assert continuation.reasoning.startswith("is")
    assert continuation.response


def test_branches_from_one_prefill_equal_independent_continuations(backend: GenerationBackend) -> None:
    prefix = _prefix(backend, "The user asks about France. I recall that")
    branches = [
        generation_pb2.ContinueBranch(id="wait", text=" Wait, maybe"),
        generation_pb2.ContinueBranch(id="hmm", text=" Hmm,"),
        generation_pb2.ContinueBranch(id="glued", text="Paris"),
    ]
    shared = generation_pb2.ContinueRequest(
        prefix=prefix, branches=branches, n=2, in_reasoning=True, sampling=_sampling(5, 3, **GREEDY)
    )
    [together] = backend.continue_branches([shared])
    assert [(c.branch_id, c.sample_index) for c in together.continuations] == [
        (b.id, i) for b in branches for i in range(2)
    ]
    alone = backend.continue_branches(
        [
            generation_pb2.ContinueRequest(prefix=prefix + b.text, in_reasoning=True, sampling=shared.sampling)
            for b in branches
        ]
    )
    for index, response in enumerate(alone):
        [expected] = response.continuations
        for sample in together.continuations[2 * index : 2 * index + 2]:
            assert (sample.reasoning, sample.response) == (expected.reasoning, expected.response)
            assert sample.reasoning_tokens == expected.reasoning_tokens


def test_several_requests_batched_together_answer_as_alone(backend: GenerationBackend) -> None:
    requests = [
        generation_pb2.ContinueRequest(prefix=_prefix(backend, text), n=1, sampling=_sampling(0, 4, **GREEDY))
        for text in ("Paris is", "The answer is simple: the capital of France is")
    ]
    together = backend.continue_branches(requests)
    for request, response in zip(requests, together, strict=True):
        [alone] = backend.continue_branches([request])
        assert response.continuations[0].response == alone.continuations[0].response
        assert not response.continuations[0].reasoning


def test_seeded_sampling_is_reproducible(backend: GenerationBackend) -> None:
    request = generation_pb2.GenerateRequest(
        prompts=[common_pb2.Prompt(text="Tell me a word.")],
        n=2,
        sampling=_sampling(4, 2, temperature=1.0, top_p=0.95, seed=1234),
    )
    first, second = backend.generate([request]), backend.generate([request])
    pairs = [(r.reasoning, r.response) for r in first[0].rollouts]
    assert pairs == [(r.reasoning, r.response) for r in second[0].rollouts]


def test_adapters_load_under_new_names_only(backend: GenerationBackend, lora_dir: Path) -> None:
    name = f"policy-{backend.name}-v1"
    adapter = backend.load_adapter(name, str(lora_dir))
    assert adapter.name == name
    assert name in [a.name for a in backend.list_adapters()]
    with pytest.raises(ServiceError) as refused:
        backend.load_adapter(name, str(lora_dir))
    assert refused.value.code == grpc.StatusCode.ALREADY_EXISTS
    request = generation_pb2.GenerateRequest(
        prompts=[common_pb2.Prompt(text="Hi")], sampling=_sampling(2, 2, **GREEDY), adapter=name
    )
    [response] = backend.generate([request])
    assert response.rollouts[0].adapter == name
    with pytest.raises(ServiceError) as unknown:
        backend.generate([generation_pb2.GenerateRequest(prompts=request.prompts, adapter="policy-v404")])
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND


def test_unloaded_adapters_are_refused_and_their_names_stay_taken(backend: GenerationBackend, lora_dir: Path) -> None:
    name = f"unload-{backend.name}-v1"
    backend.load_adapter(name, str(lora_dir))
    assert backend.unload_adapter(name).name == name
    assert name not in [a.name for a in backend.list_adapters()]
    with pytest.raises(ServiceError) as unknown:
        backend.generate([generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text="Hi")], adapter=name)])
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(ServiceError) as reloaded:
        backend.load_adapter(name, str(lora_dir))
    assert reloaded.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert reloaded.value.message.startswith("name:") and "new versioned name" in reloaded.value.message
    with pytest.raises(ServiceError) as twice:
        backend.unload_adapter(name)
    assert twice.value.code == grpc.StatusCode.NOT_FOUND
    assert twice.value.message.startswith("name:")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text=" ")]), "prompts[0].text"),
        (generation_pb2.GenerateRequest(), "prompts"),
        (generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text="x")], n=99), "n"),
        (
            generation_pb2.GenerateRequest(
                prompts=[common_pb2.Prompt(text="x")], sampling=common_pb2.SamplingParams(temperature=3)
            ),
            "sampling.temperature",
        ),
        (
            generation_pb2.GenerateRequest(
                prompts=[common_pb2.Prompt(text="x")], sampling=common_pb2.SamplingParams(top_p=0)
            ),
            "sampling.top_p",
        ),
        (
            generation_pb2.GenerateRequest(
                prompts=[common_pb2.Prompt(text="x")], sampling=common_pb2.SamplingParams(max_response_tokens=10**6)
            ),
            "sampling.max_response_tokens",
        ),
        (generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text="word " * 3000)]), "prompts"),
        (generation_pb2.ContinueRequest(prefix=""), "prefix"),
        (generation_pb2.ContinueRequest(prefix="word " * 3000), "prefix"),
    ],
)
def test_bad_requests_name_the_field_and_limit(backend: GenerationBackend, request_: object, field: str) -> None:
    call = backend.generate if isinstance(request_, generation_pb2.GenerateRequest) else backend.continue_branches
    with pytest.raises(ServiceError) as refused:
        call([request_])
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.message.startswith(f"{field}:")
