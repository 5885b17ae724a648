"""The job feeder: queues bulk jobs' rollouts onto `rollout.requested` while few enough are in flight.

SubmitPrompts stores a job's prompts (`jobs.JobStore.create`) instead of queueing every rollout at once; the
feeder then keeps at most `window` rollouts of all active jobs in flight (queued but not yet terminal: being
generated, judged or corrected), oldest job first, and pauses while any later stream holds a window's worth
of entries: a rollout is done once its pairs are on `pair.created`, so a pair store that falls behind would
otherwise let that stream grow. Every queue therefore holds O(window) entries whatever the jobs' sizes: a
50,000-prompt job waits as compact stored prompts, not as 50,000 queue entries, and a stage that falls behind
slows the feeder instead of growing a queue.

Exactly once: a job's `fed` cursor and the entries it stands for are written in one atomic step
(`WorkQueue.produce_guarded`), so a feeder killed at any point, a Redis restart, or two replicas feeding at
once never queue a rollout twice or skip one. Replicas share the window only approximately: each may queue
up to the room it saw, so two racing ones can overshoot it by one chunk each.
"""

from __future__ import annotations

from shared.intervention.ids import rollout_id
from shared.intervention.jobs import JobSpec, JobStore
from shared.observability import tracing
from shared.protos.intervene.v1 import common_pb2, queue_pb2
from shared.queues import ALL_STREAMS, ROLLOUT_REQUESTED, BackPressureError, WorkQueue

# Rollouts queued per atomic step (the most `produce_guarded` takes).
CHUNK = 1000
# The streams after rollout.requested: feeding pauses while one of them holds a window's worth of entries.
DOWNSTREAM = tuple(stream for stream in ALL_STREAMS if stream != ROLLOUT_REQUESTED)


class JobFeeder:
    """Queues the rollouts of active jobs while fewer than `window` are in flight."""

    def __init__(self, jobs: JobStore, queue: WorkQueue[queue_pb2.RolloutRequested], window: int) -> None:
        if window < 1:
            raise ValueError(f"the feeding window must be at least 1 rollout, not {window}")
        self.jobs = jobs
        self.queue = queue
        self.window = window

    def waiting(self) -> int:
        """Rollouts of active jobs not queued yet (what submission counts against the stream's cap)."""
        active = self.jobs.active()
        total = 0
        for job_id, (fed, _) in zip(active, self.jobs.progress(active), strict=True):
            spec = self.jobs.spec(job_id)
            total += spec.rollouts - fed if spec is not None else 0
        return total

    def congested(self) -> bool:
        """Whether a stream after rollout.requested holds a window's worth of entries (its stage is behind)."""
        pipe = self.queue.client.pipeline(transaction=False)
        for stream in DOWNSTREAM:
            pipe.xlen(stream)
        return max(pipe.execute()) >= self.window

    def feed(self) -> int:
        """One round over the active jobs, oldest first; returns how many rollouts it queued."""
        active = self.jobs.active()
        if not active or self.congested():
            return 0
        progress = self.jobs.progress(active)
        room = self.window - sum(max(fed - terminal, 0) for fed, terminal in progress)
        queued = 0
        for job_id, (fed, terminal) in zip(active, progress, strict=True):
            spec = self.jobs.spec(job_id)
            if spec is None or terminal >= spec.rollouts:
                self.jobs.retire(job_id)
                continue
            while room > 0 and fed < spec.rollouts:
                take = min(room, spec.rollouts - fed, CHUNK)
                requests = self._requests(job_id, spec, fed, take)
                if not requests:
                    break  # another feeder queued the rest and dropped the stored prompts
                try:
                    written = self.queue.produce_guarded(
                        requests,
                        self.jobs.key(job_id, "meta"),
                        "fed",
                        str(fed),
                        str(fed + take),
                    )
                except BackPressureError:
                    return queued  # rollout.requested is full: its consumers are behind
                if written is None:
                    break  # another feeder moved this job on; the next round reads where it stands
                fed, room, queued = fed + take, room - take, queued + take
            if fed >= spec.rollouts:
                self.jobs.fed_all(job_id)
        return queued

    def _requests(self, job_id: str, spec: JobSpec, first: int, count: int) -> list[queue_pb2.RolloutRequested]:
        """RolloutRequested entries of the job's rollouts first .. first + count - 1 (none once the stored prompts
        are gone)."""
        k = spec.samples_per_prompt
        prompt_first, prompt_last = first // k, (first + count - 1) // k
        stored = self.jobs.prompts(job_id, prompt_first, prompt_last)
        if len(stored) != prompt_last - prompt_first + 1:
            return []
        prompts = [common_pb2.Prompt.FromString(body) for body in stored]
        sampling = spec.sampling_params()
        # Each rollout continues the trace of the SubmitPrompts call, however much later it is queued.
        trace_context = self.jobs.trace_context(job_id) if tracing.enabled() else {}
        requests = []
        for index in range(first, first + count):
            prompt, sample = prompts[index // k - prompt_first], index % k
            requests.append(
                queue_pb2.RolloutRequested(
                    job_id=job_id,
                    rollout_id=rollout_id(job_id, prompt.id, sample),
                    prompt=prompt,
                    sampling=sampling,
                    sample_index=sample,
                    adapter=spec.adapter,
                    trace_context=trace_context,
                )
            )
        return requests
