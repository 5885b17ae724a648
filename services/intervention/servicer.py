"""The InterventionService RPCs: validation and status codes over `shared.intervention`."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator

import grpc

from shared.config.intervention import InterventionSettings
from shared.intervention.counting import counted
from shared.intervention.interactive import Deadline, DeadlineExceeded, RolloutPlan, SafeRolloutRunner, shown
from shared.intervention.jobs import JobStore
from shared.intervention.loop import Outcome
from shared.intervention.submission import InvalidRequest, QueueFull, SubmitLimits, check_prompt, check_rounds, submit
from shared.intervention.triggers import TriggerPool
from shared.protos.intervene.v1 import common_pb2, intervention_pb2, intervention_pb2_grpc, queue_pb2
from shared.queues import WorkQueue
from shared.rpc.errors import ServiceError

log = logging.getLogger("intervene.intervention")

StorePairs = Callable[[list[common_pb2.Pair]], None]


class InterventionServicer(intervention_pb2_grpc.InterventionServiceServicer):
    def __init__(
        self,
        settings: InterventionSettings,
        pool: TriggerPool,
        jobs: JobStore,
        requests: WorkQueue[queue_pb2.RolloutRequested],
        runner: SafeRolloutRunner,
        store_pairs: StorePairs,
        before_submit: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.jobs = jobs
        self.requests = requests
        self.runner = runner
        self.store_pairs = store_pairs
        self.before_submit = before_submit
        self.limits = SubmitLimits.from_settings(settings)

    # Safe rollouts.

    def _plan(self, spec: intervention_pb2.SafeRolloutSpec) -> RolloutPlan:
        try:
            check_prompt(spec.prompt, "spec.prompt", self.settings.max_prompt_chars)
            rounds = check_rounds(spec.max_rounds, self.limits)
        except InvalidRequest as error:
            raise ServiceError.invalid_argument(error.field, error.message) from None
        try:
            triggers = self.pool.select(list(spec.trigger_ids) or None, self.settings.triggers_per_rollout or None)
        except KeyError as error:
            raise ServiceError.invalid_argument("spec.trigger_ids", str(error.args[0])) from None
        prompt = common_pb2.Prompt()
        prompt.CopyFrom(spec.prompt)
        prompt.id = prompt.id or "interactive"
        prompt.dataset = prompt.dataset or "interactive"
        return RolloutPlan(prompt, spec.sampling, triggers, rounds, spec.adapter)

    def _deadline(self, context: grpc.ServicerContext) -> Deadline:
        remaining = context.time_remaining()
        # gRPC reports a huge number when the client set no deadline.
        if remaining is not None and remaining > 10 * 365 * 24 * 3600:
            remaining = None
        if remaining is not None and remaining < self.settings.min_deadline_seconds:
            raise ServiceError.deadline_exceeded(
                f"the call's deadline leaves {remaining:.2f}s; a safe rollout needs at least "
                f"{self.settings.min_deadline_seconds}s (INTERVENE_MIN_DEADLINE_SECONDS): set a longer deadline"
            )
        return Deadline.after(remaining, self.settings.peer_timeout_seconds)

    def _response(self, outcome: Outcome, spec: intervention_pb2.SafeRolloutSpec):
        pair_ids = [pair.id for pair in outcome.pairs]
        if outcome.pairs and (not spec.HasField("store_pairs") or spec.store_pairs):
            self.store_pairs(outcome.pairs)
        rollout, judgement = shown(outcome)
        return intervention_pb2.SafeRolloutResponse(
            rollout=rollout,
            judgement=judgement,
            interventions=outcome.interventions,
            pair_ids=pair_ids,
            withheld=outcome.withheld,
        )

    def SafeRollout(self, request: intervention_pb2.SafeRolloutRequest, context: grpc.ServicerContext):
        with counted("SafeRollout") as outcomes:
            plan = self._plan(request.spec)
            deadline = self._deadline(context)
            try:
                outcome = self.runner.run(plan, deadline, _call_id())
            except DeadlineExceeded as error:
                raise ServiceError.deadline_exceeded(str(error)) from None
            except grpc.RpcError as error:
                raise _peer_error(error) from None
            outcomes.append(outcome)
            return self._response(outcome, request.spec)

    def SafeRolloutStream(
        self, request: intervention_pb2.SafeRolloutStreamRequest, context: grpc.ServicerContext
    ) -> Iterator[intervention_pb2.SafeRolloutStreamResponse]:
        with counted("SafeRolloutStream") as outcomes:
            plan = self._plan(request.spec)
            deadline = self._deadline(context)
            sink: list[Outcome] = []
            try:
                yield from self.runner.stream(plan, deadline, _call_id(), sink)
            except DeadlineExceeded as error:
                raise ServiceError.deadline_exceeded(str(error)) from None
            except grpc.RpcError as error:
                raise _peer_error(error) from None
            outcomes.append(sink[0])
            yield intervention_pb2.SafeRolloutStreamResponse(result=self._response(sink[0], request.spec))

    # Bulk jobs.

    def SubmitPrompts(self, request: intervention_pb2.SubmitPromptsRequest, context: grpc.ServicerContext):
        self.before_submit()
        try:
            job_id, prompts = submit(request, self.limits, self.jobs, self.requests)
        except InvalidRequest as error:
            raise ServiceError.invalid_argument(error.field, error.message) from None
        except QueueFull as error:
            raise ServiceError.resource_exhausted(str(error)) from None
        log.info("job %s: %d prompts queued", job_id, prompts, extra={"job_id": job_id})
        return intervention_pb2.SubmitPromptsResponse(job_id=job_id, prompts=prompts)

    def _job(self, job_id: str) -> common_pb2.Job:
        if not job_id:
            raise ServiceError.invalid_argument("job_id", "is empty")
        job = self.jobs.status(job_id, self.settings.pairstore_group)
        if job is None:
            raise ServiceError.not_found(f"no job {job_id[:80]!r} (jobs expire {self.settings.job_ttl_seconds}s after)")
        return job

    def GetJob(self, request: intervention_pb2.GetJobRequest, context: grpc.ServicerContext):
        return intervention_pb2.GetJobResponse(job=self._job(request.job_id))

    def WatchJob(
        self, request: intervention_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[intervention_pb2.WatchJobResponse]:
        last = None
        gone = threading.Event()
        context.add_callback(gone.set)
        while context.is_active():
            job = self._job(request.job_id)
            if job != last:
                yield intervention_pb2.WatchJobResponse(job=job)
                last = job
            if job.state != common_pb2.JOB_STATE_RUNNING:
                return
            gone.wait(self.settings.watch_interval_seconds)


def _call_id() -> str:
    return "s-" + uuid.uuid4().hex[:16]


def _peer_error(error: grpc.RpcError) -> ServiceError:
    """A failed generation or judge call: UNAVAILABLE (retry) unless it ran out of the client's time."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ServiceError.deadline_exceeded(f"a generation or judge call ran out of the deadline: {details}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ServiceError.invalid_argument("spec", f"refused downstream: {details}")
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
        # The request names something the peer lacks (an adapter that is not loaded): retrying will not help.
        return ServiceError(code, f"spec: refused downstream: {details}")
    # Fail closed: no trace is returned when a peer (the judge above all) could not answer.
    return ServiceError.unavailable(f"a peer failed ({code.name if code else 'error'}: {details}); nothing returned")
