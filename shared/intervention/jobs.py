"""Per-job state of the bulk pipeline in Redis, idempotent under at-least-once delivery.

Every count is the cardinality of a set of ids (rollout ids, continuation ids, pair ids), so a redelivered
queue entry adds nothing it already added. A rollout's outcome is written once (HSETNX in a Lua step that
also bumps its reason's count), so a rollout is terminal exactly once whatever path reached it first.

Keys, all under `<prefix>:<job id>:` and all expiring `ttl` seconds after their last write:

    meta             hash: name, created_at, spec (JobSpec as JSON), finished_at, fed (rollouts queued so far),
                     trace_context (JSON: the W3C trace context of the SubmitPrompts call, while tracing is on)
    prompts          list of the job's Prompt messages (serialized), until every rollout is queued
    generated judged unsafe            sets of rollout ids per stage
    cont_generated cont_judged         sets of continuation ids
    round:<r>:tried  round:<r>:ok      sets of original rollout ids intervened on in round r / made safe in it
    dropped:<check>  sets of continuation ids whose pair a check of `checks.py` dropped
    pairs            set of pair ids produced (meta's last_pair_entry: the newest pair.created entry id)
    terminal         hash: rollout id -> "paired" or its no-pair reason
    reasons          hash: no-pair reason -> count
    failed           set of rollout ids that failed (generation error, dead letter)
    prompt_of        hash: rollout id -> prompt id (over-refusal jobs: their samples are judged per prompt)
    group:<prompt>   hash: sample index -> RolloutJudged bytes (over-refusal jobs)

and `<prefix>:active`, a sorted set of the jobs not yet finished, oldest first: the feeder (`feeder.py`) queues
their rollouts in that order. Rollout r of a job is sample r % k of prompt r // k (k samples per prompt).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis

from shared.intervention.checks import BRANCH_CHECKS
from shared.intervention.decisions import NoPairReason
from shared.protos.intervene.v1 import common_pb2
from shared.queues.names import PAIR_CREATED

PAIRED = "paired"

# KEYS: terminal hash, reasons hash, failed set. ARGV: ttl, failed flag, (rollout id, outcome)...
# -> ids newly terminal
_FINISH = """
local ttl = tonumber(ARGV[1])
local newly = {}
for i = 3, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    newly[#newly + 1] = ARGV[i]
    if ARGV[i + 1] ~= 'paired' then redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1) end
    if ARGV[2] == '1' then redis.call('SADD', KEYS[3], ARGV[i]) end
  end
end
for k = 1, 3 do if redis.call('EXISTS', KEYS[k]) == 1 then redis.call('EXPIRE', KEYS[k], ttl) end end
return newly
"""


# KEYS: meta hash. ARGV: stream entry id. Keeps the newest id (ids compare as (ms, seq)).
_NOTE_ENTRY = """
local current = redis.call('HGET', KEYS[1], 'last_pair_entry')
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
if current then
  local cm, cs = parts(current)
  local nm, ns = parts(ARGV[1])
  if nm < cm or (nm == cm and ns <= cs) then return 0 end
end
redis.call('HSET', KEYS[1], 'last_pair_entry', ARGV[1])
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class JobSpec:
    """What a job asked for; fixed at submission and read by the workers."""

    name: str
    prompts: int
    rollouts: int
    samples_per_prompt: int
    max_rounds: int
    benign: bool
    adapter: str
    sampling: str  # SamplingParams, protobuf JSON

    def sampling_params(self) -> common_pb2.SamplingParams:
        from google.protobuf import json_format

        return json_format.Parse(self.sampling or "{}", common_pb2.SamplingParams())


class JobStore:
    """Reads and writes the state of bulk jobs."""

    def __init__(self, client: redis.Redis, prefix: str = "intervene:jobs", ttl_seconds: int = 7 * 24 * 3600) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self._finish = client.register_script(_FINISH)
        self._note_entry = client.register_script(_NOTE_ENTRY)
        self._specs: dict[str, JobSpec] = {}

    def key(self, job_id: str, name: str) -> str:
        return f"{self.prefix}:{job_id}:{name}"

    # Submission.

    def create(
        self,
        job_id: str,
        spec: JobSpec,
        prompts: list[bytes],
        prompt_of: dict[str, str],
        trace_context: dict[str, str] | None = None,
    ) -> None:
        """Records a job and its prompts in one step, before any of its entries is queued (so a worker never sees
        an entry of an unknown job), and makes it active. `trace_context` is the submission's trace, which every
        rollout the feeder queues continues."""
        created = time.time()
        pipe = self.client.pipeline(transaction=True)
        meta = self.key(job_id, "meta")
        fields = {"spec": json.dumps(asdict(spec)), "created_at": f"{created:.6f}", "fed": "0"}
        if trace_context:
            fields["trace_context"] = json.dumps(trace_context)
        pipe.hset(meta, mapping=fields)
        for start in range(0, len(prompts), 10_000):
            pipe.rpush(self.key(job_id, "prompts"), *prompts[start : start + 10_000])
        if prompt_of:
            pipe.hset(self.key(job_id, "prompt_of"), mapping=prompt_of)
        for name in ("meta", "prompts", "prompt_of"):
            pipe.expire(self.key(job_id, name), self.ttl)
        pipe.zadd(self.active_key, {job_id: created})
        pipe.execute()

    # Feeding (see `feeder.py`).

    @property
    def active_key(self) -> str:
        return f"{self.prefix}:active"

    def active(self) -> list[str]:
        """The jobs not yet finished, oldest first."""
        return [_text(job_id) for job_id in self.client.zrange(self.active_key, 0, -1)]

    def progress(self, job_ids: list[str]) -> list[tuple[int, int]]:
        """(rollouts queued, rollouts terminal) of each job."""
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.key(job_id, "meta"), "fed")
            pipe.hlen(self.key(job_id, "terminal"))
        replies = pipe.execute()
        return [(int(fed or 0), terminal) for fed, terminal in zip(replies[0::2], replies[1::2], strict=True)]

    def prompts(self, job_id: str, first: int, last: int) -> list[bytes]:
        """The job's stored prompts `first`..`last` (inclusive)."""
        return self.client.lrange(self.key(job_id, "prompts"), first, last)

    def trace_context(self, job_id: str) -> dict[str, str]:
        """The W3C trace context the job was submitted in ({} when tracing was off)."""
        raw = self.client.hget(self.key(job_id, "meta"), "trace_context")
        return json.loads(raw) if raw else {}

    def fed_all(self, job_id: str) -> None:
        """Every rollout is queued: the stored prompts are no longer needed."""
        self.client.delete(self.key(job_id, "prompts"))

    def retire(self, job_id: str) -> None:
        """The job is finished (or gone): it no longer takes part in feeding."""
        self.client.zrem(self.active_key, job_id)

    def spec(self, job_id: str) -> JobSpec | None:
        """The job's spec (cached: it never changes), None for an unknown job."""
        cached = self._specs.get(job_id)
        if cached is not None:
            return cached
        raw = self.client.hget(self.key(job_id, "meta"), "spec")
        if raw is None:
            return None
        spec = JobSpec(**json.loads(raw))
        self._specs[job_id] = spec
        return spec

    # Progress.

    def add(self, job_id: str, stage: str, *ids: str) -> None:
        """Adds ids to a stage's set (generated, judged, unsafe, cont_generated, ...)."""
        if ids:
            key = self.key(job_id, stage)
            pipe = self.client.pipeline(transaction=False)
            pipe.sadd(key, *ids)
            pipe.expire(key, self.ttl)
            pipe.execute()

    def has(self, job_id: str, stage: str, member: str) -> bool:
        return bool(self.client.sismember(self.key(job_id, stage), member))

    def finish(self, job_id: str, outcomes: dict[str, NoPairReason | None], failed: bool = False) -> list[str]:
        """Marks rollouts terminal (None: paired) unless they already are; returns those newly terminal."""
        if not outcomes:
            return []
        args: list[str | int] = [self.ttl, "1" if failed else "0"]
        for rollout_id, reason in outcomes.items():
            args += [rollout_id, PAIRED if reason is None else reason.value]
        keys = [self.key(job_id, "terminal"), self.key(job_id, "reasons"), self.key(job_id, "failed")]
        return [item.decode() if isinstance(item, bytes) else item for item in self._finish(keys=keys, args=args)]

    def prompt_of(self, job_id: str, rollout_id: str) -> str | None:
        value = self.client.hget(self.key(job_id, "prompt_of"), rollout_id)
        return value.decode() if isinstance(value, bytes) else value

    def put_sample(self, job_id: str, prompt_id: str, sample_index: int, body: bytes) -> dict[int, bytes]:
        """Records one judged sample of a benign prompt; returns every sample recorded so far."""
        key = self.key(job_id, f"group:{prompt_id}")
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, str(sample_index), body)
        pipe.expire(key, self.ttl)
        pipe.hgetall(key)
        samples = pipe.execute()[-1]
        return {int(index): value for index, value in samples.items()}

    def samples(self, job_id: str, prompt_id: str) -> dict[int, bytes]:
        """The judged samples of a benign prompt recorded so far."""
        samples = self.client.hgetall(self.key(job_id, f"group:{prompt_id}"))
        return {int(index): value for index, value in samples.items()}

    def pair_ids(self, job_id: str) -> set[str]:
        """Ids of the pairs the job produced (the pair store keeps each once, whichever job produced it first)."""
        return {_text(member) for member in self.client.smembers(self.key(job_id, "pairs"))}

    def terminal_of(self, job_id: str, rollout_ids: list[str]) -> list[str | None]:
        values = self.client.hmget(self.key(job_id, "terminal"), rollout_ids)
        return [value.decode() if isinstance(value, bytes) else value for value in values]

    def note_pair_entry(self, job_id: str, entry_id: str) -> None:
        """Remembers the newest pair.created entry of the job."""
        self._note_entry(keys=[self.key(job_id, "meta")], args=[entry_id])

    def pairs_stored(self, job_id: str, stream: str, group: str) -> bool:
        """Whether the pair store's consumer group has handled every pair.created entry of the job.

        Handled means acknowledged after the pair was written (or dead-lettered). Pair ids are content hashes,
        so the store may hold a job's pair under another job's provenance: counting by job would not tell.
        """
        last = self.client.hget(self.key(job_id, "meta"), "last_pair_entry")
        if last is None:
            return True
        last_id = last.decode()
        try:
            groups = self.client.xinfo_groups(stream)
        except redis.exceptions.ResponseError:
            return False
        group_info = next((g for g in groups if _text(g["name"]) == group), None)
        if group_info is None or _id_key(_text(group_info["last-delivered-id"])) < _id_key(last_id):
            return False
        return not self.client.xpending_range(stream, group, min="-", max=last_id, count=1)

    def mark_finished(self, job_id: str) -> None:
        self.client.hsetnx(self.key(job_id, "meta"), "finished_at", f"{time.time():.6f}")

    def status(self, job_id: str, pairstore_group: str) -> common_pb2.Job | None:
        """The job as clients see it (GetJob, WatchJob): done only once the pair store's consumer group has
        taken every pair of the job, not when they were queued to it; the first read that finds it so records
        `finished_at`."""
        job = self.read(job_id)
        if job is None or job.state == common_pb2.JOB_STATE_RUNNING:
            return job
        if not self.pairs_stored(job_id, PAIR_CREATED, pairstore_group):
            job.state = common_pb2.JOB_STATE_RUNNING
            job.ClearField("finished_at")
        elif not job.HasField("finished_at"):
            self.mark_finished(job_id)
            job = self.read(job_id)
        return job

    # Reading.

    def read(self, job_id: str) -> common_pb2.Job | None:
        """The job's counts; state RUNNING until every rollout is terminal (see `pairs_stored` for the rest)."""
        spec = self.spec(job_id)
        if spec is None:
            return None
        sets = ["generated", "judged", "unsafe", "cont_generated", "cont_judged", "pairs", "failed"]
        sets += [f"dropped:{check.value}" for check in BRANCH_CHECKS]
        rounds = range(1, spec.max_rounds + 1)
        pipe = self.client.pipeline(transaction=False)
        for name in sets:
            pipe.scard(self.key(job_id, name))
        for round_ in rounds:
            pipe.scard(self.key(job_id, f"round:{round_}:tried"))
            pipe.scard(self.key(job_id, f"round:{round_}:ok"))
        pipe.hlen(self.key(job_id, "terminal"))
        pipe.hgetall(self.key(job_id, "reasons"))
        pipe.hmget(self.key(job_id, "meta"), ["created_at", "finished_at"])
        replies = pipe.execute()
        counts = dict(zip(sets, replies[: len(sets)], strict=True))
        round_replies = replies[len(sets) : len(sets) + 2 * len(rounds)]
        terminal, reasons, (created_at, finished_at) = replies[len(sets) + 2 * len(rounds) :]
        job = common_pb2.Job(
            id=job_id,
            name=spec.name,
            prompts=spec.prompts,
            rollouts_requested=spec.rollouts,
            rollouts_generated=counts["generated"],
            rollouts_judged=counts["judged"],
            rollouts_unsafe=counts["unsafe"],
            interventions_tried=sum(round_replies[0::2]),
            continuations_generated=counts["cont_generated"],
            continuations_judged=counts["cont_judged"],
            pairs_created=counts["pairs"],
            failed_items=counts["failed"],
            rounds=[
                common_pb2.RoundStats(round=round_, tried=tried, succeeded=ok)
                for round_, tried, ok in zip(rounds, round_replies[0::2], round_replies[1::2], strict=True)
            ],
            no_pair_reasons={name.decode(): int(count) for name, count in reasons.items()},
            pairs_dropped={
                check.value: counts[f"dropped:{check.value}"]
                for check in BRANCH_CHECKS
                if counts[f"dropped:{check.value}"]
            },
            state=common_pb2.JOB_STATE_RUNNING,
        )
        if created_at:
            job.created_at.FromNanoseconds(int(float(created_at) * 1e9))
        if terminal >= spec.rollouts:
            job.state = common_pb2.JOB_STATE_FAILED if counts["failed"] >= terminal else common_pb2.JOB_STATE_SUCCEEDED
            if finished_at:
                job.finished_at.FromNanoseconds(int(float(finished_at) * 1e9))
        return job
