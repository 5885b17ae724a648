"""Queue handlers of the intervention service (the bulk pipeline): the decisions of `decisions.py`, one queue stage
at a time.

    rollout.judged        -> checked_cut -> one continuation.requested with every trigger branch (round 1)
                             (benign jobs: gather the k samples of a prompt -> over-refusal pairs; with
                             benign_contrast, none refused -> one sample's trigger branches)
    continuation.judged   -> checked_pairs (safe branches that pass the pair checks, capped per rollout)
                             -> pair.created; none safe -> next_parent -> round r+1
                             (benign jobs: helpful suffix ≻ a trigger branch, refused first -> pair.created)
    rollout.generated, continuation.generated (a second consumer group) -> per-stage counts, generation errors
    <stream>.dead         -> the rollouts whose entries a stage gave up on become terminal ("failed")

Every handler is idempotent: counts are set cardinalities (`jobs.JobStore`), pair ids are content hashes
(the pair store keeps one copy), and a continuation request is produced again on a redelivery only when the
first delivery died between producing it and recording it (the generation stage then decodes it twice, and
the duplicate's pairs and counts collapse into the first's). An entry that names no known job fails, so after
`max_deliveries` it waits in its stream's dead-letter stream with the reason (`intervene queues dead`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.intervention.checks import PairChecks
from shared.intervention.decisions import (
    DEFAULT_REASONING_CLOSE,
    Branch,
    Cut,
    NoPairReason,
    PairProvenance,
    checked_cut,
    checked_pairs,
    contrast_cut,
    contrast_pair,
    is_safe,
    next_parent,
    over_refusal_pairs,
    over_refusal_reasons,
)
from shared.intervention.ids import continuation_id, rollout_id
from shared.intervention.jobs import JobSpec, JobStore
from shared.intervention.triggers import Trigger
from shared.observability import domain
from shared.protos.intervene.v1 import common_pb2, queue_pb2
from shared.queues import (
    ALL_STREAMS,
    CONTINUATION_REQUESTED,
    MESSAGE_TYPES,
    PAIR_CREATED,
    ROLLOUT_GENERATED,
    ROLLOUT_JUDGED,
    ROLLOUT_REQUESTED,
    Delivery,
    WorkQueue,
    dead_letter_stream,
)

log = logging.getLogger(__name__)

# The streams whose dead letters end a rollout: all but pair.created (`_job_and_origin` reads their bodies).
DEAD_LETTER_SOURCES = tuple(stream for stream in ALL_STREAMS if stream != PAIR_CREATED)


@dataclass(frozen=True)
class PipelineConfig:
    """The triggers every intervention tries (all branches of one request), and what pairs record."""

    triggers: tuple[Trigger, ...]
    trigger_pool: str
    reasoning_close: str = DEFAULT_REASONING_CLOSE
    checks: PairChecks = field(default_factory=PairChecks)
    # `cut_for`'s uncued_step: where to cut an unsafe original trace that has no cue (0: make no pair).
    uncued_cut_step: int = 0
    # Over-refusal jobs whose samples never refused: branch one with the triggers for a contrast pair.
    benign_contrast: bool = False


class Pipeline:
    """The handlers of the intervention stage; give each to a `Worker` on its stream."""

    def __init__(
        self,
        jobs: JobStore,
        continuations: WorkQueue[queue_pb2.ContinuationRequested],
        pairs: WorkQueue[queue_pb2.PairCreated],
        config: PipelineConfig,
    ) -> None:
        if not config.triggers:
            raise ValueError("the pipeline needs at least one trigger")
        self.jobs = jobs
        self.continuations = continuations
        self.pairs = pairs
        self.config = config
        self._dead_lock = threading.Lock()

    # rollout.judged

    def on_rollout_judged(self, delivery: Delivery[queue_pb2.RolloutJudged]) -> None:
        message = delivery.message
        job_id, rollout, judgement = message.job_id, message.rollout, message.judgement
        spec = self._known(job_id)
        if rollout.finish_reason == "error" or not message.HasField("judgement"):
            # Generation failed and the judge passed it through unjudged.
            self._fail(job_id, [rollout.id], NoPairReason.GENERATION_FAILED)
            return
        self.jobs.add(job_id, "judged", rollout.id)
        if spec.benign:
            self._gather_sample(job_id, spec.samples_per_prompt, message)
            return
        cut = checked_cut(rollout, judgement, self.config.checks, self.config.uncued_cut_step)
        if cut is not NoPairReason.SAFE:
            self.jobs.add(job_id, "unsafe", rollout.id)
        if isinstance(cut, Cut) and spec.max_rounds >= 1:
            self._request_round(job_id, spec, rollout, judgement, cut, 1, rollout.id)
        else:
            self._finish(job_id, {rollout.id: cut if isinstance(cut, NoPairReason) else NoPairReason.NO_CUE})

    def _request_round(
        self,
        job_id: str,
        spec: JobSpec,
        parent: common_pb2.Rollout,
        parent_judgement: common_pb2.Judgement,
        cut: Cut,
        round_: int,
        origin_id: str,
    ) -> None:
        tried = f"round:{round_}:tried"
        if self.jobs.has(job_id, tried, origin_id):
            return
        request = queue_pb2.ContinuationRequested(
            job_id=job_id,
            parent=parent,
            parent_judgement=parent_judgement,
            kept_reasoning=cut.kept(parent),
            round=round_,
            cut_step=cut.step,
            cut_offset=cut.offset,
            branches=[
                queue_pb2.ContinuationBranch(
                    trigger_id=t.id, trigger_text=t.text, continuation_id=continuation_id(parent.id, t.id, round_)
                )
                for t in self.config.triggers
            ],
            sampling=spec.sampling_params(),
            adapter=spec.adapter,
            origin_rollout_id=origin_id,
        )
        self.continuations.produce(request)
        self.jobs.add(job_id, tried, origin_id)

    # Over-refusal jobs: k samples of one benign prompt.

    def _gather_sample(self, job_id: str, samples: int, message: queue_pb2.RolloutJudged) -> None:
        rollout = message.rollout
        if not is_safe(message.judgement):
            self.jobs.add(job_id, "unsafe", rollout.id)
        prompt_id = self.jobs.prompt_of(job_id, rollout.id) or rollout.prompt.id
        index = _sample_index(job_id, prompt_id, rollout.id, samples)
        gathered = self.jobs.put_sample(job_id, prompt_id, index, message.SerializeToString())
        self._close_group(job_id, prompt_id, samples, gathered)

    def _close_group(self, job_id: str, prompt_id: str, samples: int, gathered: dict[int, bytes]) -> None:
        """Pairs a benign prompt's samples once each one was judged or failed."""
        ids = [rollout_id(job_id, prompt_id, index) for index in range(samples)]
        missing = [i for i in range(samples) if i not in gathered]
        if missing:
            outcomes = self.jobs.terminal_of(job_id, [ids[i] for i in missing])
            if any(outcome is None for outcome in outcomes):
                return
        judged = [queue_pb2.RolloutJudged.FromString(gathered[i]) for i in sorted(gathered)]
        rollouts = [m.rollout for m in judged]
        judgements = [m.judgement for m in judged]
        pairs = over_refusal_pairs(rollouts, judgements, job_id, self.config.reasoning_close)
        self._emit_pairs(job_id, pairs)
        reasons = over_refusal_reasons(rollouts, judgements, pairs)
        contrast = contrast_cut(rollouts, judgements) if self.config.benign_contrast and not pairs else None
        if contrast is not None:
            # The branched sample stays open until its branches are judged (`_close_contrast`).
            index, cut = contrast
            origin = rollouts[index]
            del reasons[origin.id]
            self._request_round(job_id, self._known(job_id), origin, judgements[index], cut, 1, origin.id)
        self._finish(job_id, reasons)

    def _close_contrast(
        self, job_id: str, request: queue_pb2.ContinuationRequested, cut: Cut, branches: list[Branch]
    ) -> None:
        """The benign sample's contrast pair: its helpful suffix over a trigger branch, one that refused first."""
        ordered = sorted(branches, key=lambda b: not b.judgement.response_refused)
        found = (contrast_pair(request.parent, cut, b, job_id, self.config.reasoning_close) for b in ordered)
        pairs = [pair for pair in found if pair is not None][:1]
        self._emit_pairs(job_id, pairs)
        self._finish(job_id, {request.origin_rollout_id: None if pairs else NoPairReason.NO_REFUSAL})

    # continuation.judged

    def on_continuation_judged(self, delivery: Delivery[queue_pb2.ContinuationJudged]) -> None:
        message = delivery.message
        request = message.request
        job_id = message.job_id or request.job_id
        origin = request.origin_rollout_id
        spec = self._known(job_id)
        continuations, judgements = list(message.continuations), list(message.judgements)
        if not continuations or len(continuations) != len(request.branches) or len(judgements) != len(continuations):
            self._fail(job_id, [origin], NoPairReason.GENERATION_FAILED)
            return
        self.jobs.add(job_id, "cont_judged", *(c.id for c in continuations))
        cut = Cut(step=request.cut_step, offset=request.cut_offset)
        provenance = PairProvenance(job_id=job_id, trigger_pool=self.config.trigger_pool, origin_rollout_id=origin)
        branches = [
            Branch(Trigger(b.trigger_id, b.trigger_text), c, j)
            for b, c, j in zip(request.branches, continuations, judgements, strict=True)
        ]
        if spec.benign:
            self._close_contrast(job_id, request, cut, branches)
            return
        checked = checked_pairs(
            request.parent,
            request.parent_judgement,
            cut,
            branches,
            provenance,
            self.config.reasoning_close,
            self.config.checks,
        )
        for check, ids in checked.dropped.items():
            self.jobs.add(job_id, f"dropped:{check.value}", *ids)
        # Counted per handling: a redelivered entry (at-least-once) counts again.
        outcome = "safe" if checked.any_safe else "unsafe"
        domain.INTERVENTIONS.labels(path="bulk", round=str(request.round), outcome=outcome).inc()
        if checked.any_safe:
            # Made safe in this round (the success the paper counts), whether or not a pair passed the checks.
            self.jobs.add(job_id, f"round:{request.round}:ok", origin)
            self._emit_pairs(job_id, checked.pairs)
            self._finish(job_id, {origin: None if checked.pairs else NoPairReason.PAIRS_DROPPED})
            return
        following = (
            next_parent(continuations, judgements, self.config.checks) if request.round < spec.max_rounds else None
        )
        if following is None:
            self._finish(job_id, {origin: NoPairReason.ALL_BRANCHES_UNSAFE})
            return
        parent, parent_judgement, next_cut = following
        self._request_round(job_id, spec, parent, parent_judgement, next_cut, request.round + 1, origin)

    # Progress: the second consumer group on the generated streams.

    def on_rollouts_generated(self, deliveries: Sequence[Delivery[queue_pb2.RolloutGenerated]]) -> dict[str, str]:
        failed: dict[str, list[str]] = {}
        seen: dict[str, list[str]] = {}
        unknown: dict[str, str] = {}
        for delivery in deliveries:
            message = delivery.message
            if self.jobs.spec(message.job_id) is None:
                unknown[delivery.entry_id] = _unknown_job(message.job_id)
                continue
            target = failed if message.error else seen
            target.setdefault(message.job_id, []).append(message.rollout.id)
        for job_id, ids in seen.items():
            self.jobs.add(job_id, "generated", *ids)
        for job_id, ids in failed.items():
            self._fail(job_id, ids, NoPairReason.GENERATION_FAILED)
        return unknown

    def on_continuations_generated(
        self, deliveries: Sequence[Delivery[queue_pb2.ContinuationGenerated]]
    ) -> dict[str, str]:
        unknown: dict[str, str] = {}
        for delivery in deliveries:
            message = delivery.message
            job_id = message.job_id or message.request.job_id
            if self.jobs.spec(job_id) is None:
                unknown[delivery.entry_id] = _unknown_job(job_id)
            elif message.error:
                self._fail(job_id, [message.request.origin_rollout_id], NoPairReason.GENERATION_FAILED)
            else:
                self.jobs.add(job_id, "cont_generated", *(c.id for c in message.continuations))
        return unknown

    # Dead letters: a stage gave up on an entry, so its rollout can never finish otherwise.

    def sweep_dead_letters(self, batch: int = 200) -> int:
        """Marks the rollouts of new dead letters failed; returns how many letters were read.

        A cursor per stream in Redis remembers what was swept, so replicas share the work; a letter swept
        twice (two replicas racing) changes nothing, as outcomes are written once.
        """
        read = 0
        with self._dead_lock:
            for stream in DEAD_LETTER_SOURCES:
                cursor_key = f"{self.jobs.prefix}:dead-cursor:{stream}"
                cursor = self.jobs.client.get(cursor_key)
                start = f"({cursor.decode()}" if cursor else "-"
                letters = self.jobs.client.xrange(dead_letter_stream(stream), min=start, count=batch)
                for _, fields in letters:
                    self._fail_letter(stream, fields.get(b"body", b""))
                if letters:
                    self.jobs.client.set(cursor_key, letters[-1][0])
                read += len(letters)
        return read

    def _fail_letter(self, stream: str, body: bytes) -> None:
        try:
            message = MESSAGE_TYPES[stream].FromString(body)
        except Exception:
            log.warning("an undecodable dead letter of %s names no rollout; skipped", stream)
            return
        job_id, origin = _job_and_origin(stream, message)
        if job_id and origin and self.jobs.spec(job_id) is not None:
            self._fail(job_id, [origin])

    # Shared steps.

    def _known(self, job_id: str) -> JobSpec:
        """The job's spec; an entry of a job that does not exist (expired, or never submitted) fails, so that
        after `max_deliveries` it waits in the dead-letter stream with the reason instead of vanishing."""
        spec = self.jobs.spec(job_id)
        if spec is None:
            raise LookupError(_unknown_job(job_id))
        return spec

    def _fail(self, job_id: str, ids: list[str], reason: NoPairReason = NoPairReason.FAILED) -> None:
        """Ends rollouts as failed; a benign prompt whose other samples are in gets its pairs now."""
        spec = self.jobs.spec(job_id)
        if spec is None:
            return
        self._finish(job_id, dict.fromkeys(ids, reason), failed=True)
        if spec.benign:
            for rollout in ids:
                prompt_id = self.jobs.prompt_of(job_id, rollout)
                if prompt_id is not None:
                    gathered = self.jobs.samples(job_id, prompt_id)
                    self._close_group(job_id, prompt_id, spec.samples_per_prompt, gathered)

    def _emit_pairs(self, job_id: str, pairs: list[common_pb2.Pair]) -> None:
        if not pairs:
            return
        entry_ids = self.pairs.produce_many([queue_pb2.PairCreated(pair=pair) for pair in pairs])
        self.jobs.add(job_id, "pairs", *(pair.id for pair in pairs))
        self.jobs.note_pair_entry(job_id, entry_ids[-1])

    def _finish(self, job_id: str, outcomes: dict[str, NoPairReason | None], failed: bool = False) -> None:
        self.jobs.finish(job_id, outcomes, failed=failed)


def _unknown_job(job_id: str) -> str:
    return f"no job {job_id[:80]!r} (never submitted, or expired)"


def _sample_index(job_id: str, prompt_id: str, rollout: str, samples: int) -> int:
    for index in range(samples):
        if rollout_id(job_id, prompt_id, index) == rollout:
            return index
    raise ValueError(f"rollout {rollout} is none of the {samples} samples of prompt {prompt_id} in job {job_id}")


def _job_and_origin(stream: str, message) -> tuple[str, str]:
    if stream == ROLLOUT_REQUESTED:
        return message.job_id, message.rollout_id
    if stream in (ROLLOUT_GENERATED, ROLLOUT_JUDGED):
        return message.job_id, message.rollout.id
    if stream == CONTINUATION_REQUESTED:
        return message.job_id, message.origin_rollout_id
    return message.job_id or message.request.job_id, message.request.origin_rollout_id
