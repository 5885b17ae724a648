"""Turning a SubmitPrompts request into a job: prompts (inline, named set or file, optionally template-wrapped),
stored with the job's state in one step; the feeder (`feeder.py`) then queues one `rollout.requested` entry per
sample while few enough are in flight, starting at once.

Back-pressure: the job is refused whole (RESOURCE_EXHAUSTED, nothing written) when its rollouts, with those
queued and those of earlier jobs still waiting to be queued, would exceed the cap of `rollout.requested`. Two
submissions racing may both pass that check; the feeder still never puts more than the cap on the stream.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from shared.config.intervention import InterventionSettings
from shared.datasets import DatasetError, load_prompts, load_templates, wrap_with_templates
from shared.datasets.catalog import text_id
from shared.intervention.feeder import JobFeeder
from shared.intervention.ids import rollout_id
from shared.intervention.jobs import JobSpec, JobStore
from shared.observability import tracing
from shared.protos.intervene.v1 import common_pb2, intervention_pb2, queue_pb2
from shared.queues import WorkQueue


class InvalidRequest(ValueError):
    """A request field is wrong; `field` names it and the message says the limit or the fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class QueueFull(Exception):
    """rollout.requested has no room for the job's rollouts."""


@dataclass(frozen=True)
class SubmitLimits:
    max_prompt_chars: int
    max_prompts_per_job: int
    limit_samples_per_prompt: int
    benign_samples_per_prompt: int
    default_rounds: int
    limit_rounds: int
    # The data folder of named sets' local copies; None: the default (shared.datasets.folder).
    data_dir: Path | str | None
    rollout_window: int = 1024

    @classmethod
    def from_settings(cls, settings: InterventionSettings) -> SubmitLimits:
        """The limits the intervention service's settings set."""
        return cls(
            max_prompt_chars=settings.max_prompt_chars,
            max_prompts_per_job=settings.max_prompts_per_job,
            limit_samples_per_prompt=settings.limit_samples_per_prompt,
            benign_samples_per_prompt=settings.benign_samples_per_prompt,
            default_rounds=settings.max_rounds,
            limit_rounds=settings.limit_rounds,
            data_dir=settings.data_dir,
            rollout_window=settings.rollout_window,
        )


def check_prompt(prompt: common_pb2.Prompt, field: str, max_chars: int) -> None:
    if not prompt.text.strip():
        raise InvalidRequest(f"{field}.text", "is empty; give the request text")
    if len(prompt.text) > max_chars:
        raise InvalidRequest(f"{field}.text", f"is {len(prompt.text)} characters; the limit is {max_chars}")


def check_rounds(rounds: int, limits: SubmitLimits) -> int:
    if rounds < 0 or rounds > limits.limit_rounds:
        raise InvalidRequest("max_rounds", f"is {rounds}; it must be in [0, {limits.limit_rounds}] (0: the default)")
    return rounds or limits.default_rounds


def resolve_prompts(request: intervention_pb2.SubmitPromptsRequest, limits: SubmitLimits) -> list[common_pb2.Prompt]:
    """The job's prompts; InvalidRequest names the field at fault."""
    if request.prompts and request.dataset:
        raise InvalidRequest("dataset", "give inline prompts or a dataset, not both")
    if request.limit < 0:
        raise InvalidRequest("limit", f"is {request.limit}; it must be >= 0 (0: all)")
    if request.prompts:
        prompts = []
        for index, given in enumerate(request.prompts):
            prompt = common_pb2.Prompt()
            prompt.CopyFrom(given)
            prompt.id = prompt.id or text_id(prompt.text)
            prompt.dataset = prompt.dataset or "inline"
            prompts.append(prompt)
            check_prompt(prompt, f"prompts[{index}]", limits.max_prompt_chars)
        if request.limit:
            prompts = prompts[: request.limit]
    elif request.dataset:
        try:
            prompts = load_prompts(
                request.dataset,
                text_column=request.text_column,
                limit=request.limit,
                seed=request.seed,
                data_dir=limits.data_dir,
            )
        except DatasetError as error:
            raise InvalidRequest(error.field, error.message) from None
    else:
        raise InvalidRequest("prompts", "is empty and no dataset is named; give prompts or a dataset")
    if request.template_file:
        try:
            templates = load_templates(request.template_file, data_dir=limits.data_dir)
        except DatasetError as error:
            raise InvalidRequest(error.field, error.message) from None
        prompts = wrap_with_templates(prompts, templates, seed=request.seed)
    if not prompts:
        raise InvalidRequest("dataset", f"{request.dataset!r} holds no prompts")
    if len(prompts) > limits.max_prompts_per_job:
        raise InvalidRequest(
            "limit", f"the job has {len(prompts)} prompts; the limit is {limits.max_prompts_per_job}: set limit"
        )
    if len({p.id for p in prompts}) != len(prompts):
        raise InvalidRequest("prompts", "two prompts share an id; give unique ids (or none, to use text hashes)")
    for index, prompt in enumerate(prompts):
        if request.benign:
            prompt.benign = True
        check_prompt(prompt, f"prompts[{index}]", limits.max_prompt_chars)
    return prompts


def submit(
    request: intervention_pb2.SubmitPromptsRequest,
    limits: SubmitLimits,
    jobs: JobStore,
    queue: WorkQueue[queue_pb2.RolloutRequested],
) -> tuple[str, int]:
    """Validates, records and queues a job; returns (job id, prompts)."""
    prompts = resolve_prompts(request, limits)
    rounds = check_rounds(request.max_rounds, limits)
    samples = request.samples_per_prompt
    if samples < 0 or samples > limits.limit_samples_per_prompt:
        raise InvalidRequest(
            "samples_per_prompt", f"is {samples}; it must be in [0, {limits.limit_samples_per_prompt}] (0: default)"
        )
    if request.benign:
        samples = samples or limits.benign_samples_per_prompt
        if samples < 2:
            raise InvalidRequest("samples_per_prompt", "is 1; a benign job compares k >= 2 samples per prompt")
    samples = samples or 1
    job_id = "j-" + uuid.uuid4().hex[:16]
    rollouts = len(prompts) * samples
    feeder = JobFeeder(jobs, queue, limits.rollout_window)
    room = queue.settings.max_length - queue.client.xlen(queue.stream) - feeder.waiting()
    if rollouts > room:
        raise QueueFull(
            f"rollout.requested has room for {max(room, 0)} entries and the job needs {rollouts}: "
            "its consumers are behind; retry later or submit fewer prompts (limit)"
        )
    spec = JobSpec(
        name=request.name or (request.dataset or "inline"),
        prompts=len(prompts),
        rollouts=rollouts,
        samples_per_prompt=samples,
        max_rounds=rounds,
        benign=request.benign,
        adapter=request.adapter,
        sampling=json_format.MessageToJson(request.sampling, indent=None),
    )
    prompt_of = (
        {rollout_id(job_id, p.id, index): p.id for p in prompts for index in range(samples)} if request.benign else {}
    )
    jobs.create(job_id, spec, [prompt.SerializeToString() for prompt in prompts], prompt_of, tracing.carrier())
    feeder.feed()
    return job_id, len(prompts)
