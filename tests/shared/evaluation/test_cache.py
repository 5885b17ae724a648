"""The evaluation's generation cache: a second run decodes nothing, a partly cached batch decodes only the rest,
another adapter or sampling is another key, and a torn last record (a kill mid-write) is dropped on load."""

from __future__ import annotations

from pathlib import Path

from shared.evaluation.cache import GenerationCache, cached_generate
from shared.protos.intervene.v1 import common_pb2, generation_pb2


class CountingDecoder:
    """Stands in for a generation back end: answers each prompt with a rollout naming it, and counts the work."""

    def __init__(self) -> None:
        self.decoded: list[str] = []

    def __call__(self, requests):
        replies = []
        for request in requests:
            self.decoded += [p.id for p in request.prompts]
            rollouts = [common_pb2.Rollout(id=f"{p.id}@{request.adapter}", response=p.text) for p in request.prompts]
            replies.append(generation_pb2.GenerateResponse(rollouts=rollouts))
        return replies


def _request(ids: list[str], adapter: str = "", max_tokens: int = 8) -> generation_pb2.GenerateRequest:
    return generation_pb2.GenerateRequest(
        prompts=[common_pb2.Prompt(id=i, text=f"text {i}") for i in ids],
        n=1,
        sampling=common_pb2.SamplingParams(max_response_tokens=max_tokens),
        adapter=adapter,
    )


def test_cached_prompts_are_not_decoded_again(tmp_path: Path) -> None:
    decoder = CountingDecoder()
    generate = cached_generate(decoder, tmp_path)
    [first] = generate([_request(["a", "b"])])
    [again] = cached_generate(decoder, tmp_path)([_request(["b", "c", "a"])])  # a new process: read from disk
    assert decoder.decoded == ["a", "b", "c"]
    assert [r.id for r in again.rollouts] == ["b@", "c@", "a@"] and list(first.rollouts) == [
        again.rollouts[2],
        again.rollouts[0],
    ]
    generate([_request(["a"], adapter="policy-v1"), _request(["a"], max_tokens=9)])
    assert decoder.decoded[-2:] == ["a", "a"], "another adapter or sampling is decoded, not taken from the cache"


def test_a_torn_record_is_dropped(tmp_path: Path) -> None:
    cached_generate(CountingDecoder(), tmp_path)([_request(["a", "b"])])
    path = tmp_path / "rollouts.bin"
    path.write_bytes(path.read_bytes()[:-3])
    assert len(GenerationCache(tmp_path).rollouts) == 1
