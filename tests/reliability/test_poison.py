"""Poison entries in every consumed stream go to dead-letter streams with their error while a job keeps flowing;
`intervene queues` (the real CLI) shows lag and dead letters, and requeues dead letters onto their stream.

Two kinds of poison per stream: bytes that are no message of the stream's type (dead-lettered on their first
delivery, by every consumer group of the stream: no retry can change their bytes), and well-formed messages their
consumer refuses (a trace over the judge's size limit, an invalid pair, an entry of a job that does not exist),
which fail on each delivery and are dead-lettered after INTERVENE_QUEUE_MAX_DELIVERIES. The generation stage
answers a request it refuses with an error result instead of failing it (so that a job counts that rollout as
failed instead of waiting for it); the error result of a request of no job is then refused where jobs are
looked up.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis
from google.protobuf.message import DecodeError, Message

from shared.protos.intervene.v1 import common_pb2, queue_pb2
from shared.queues import DeadLetter, dead_letters
from shared.queues.codec import type_name
from shared.queues.names import MESSAGE_TYPES
from tests.reliability.drill import MAX_DELIVERIES, PROMPTS, Baseline, DrillStack, check_no_loss

pytestmark = pytest.mark.slow

NO_JOB = "j-poison-no-such-job"
MARKER = "poison-body-marker"
TOO_LONG = "x" * 200_001  # the judge's INTERVENE_MAX_TRACE_CHARS is 200000
NO_JOB_ERROR = "no job 'j-poison-no-such-job'"
TOO_LONG_ERROR = "the limit is 200000"
# The consumer groups of each stream.
GROUPS = {
    "rollout.requested": ["generation"],
    "rollout.generated": ["judge", "intervention-progress"],
    "rollout.judged": ["intervention"],
    "continuation.requested": ["generation"],
    "continuation.generated": ["judge", "intervention-progress"],
    "continuation.judged": ["intervention"],
    "pair.created": ["pairstore"],
}

REFUSED_ROLLOUT = "r-poison-refused-rollout"
REFUSED_CONTINUATION = "r-poison-refused-continuation"
# Requests generation refuses -> the judged stream where their error results are dead-lettered, and their rollout.
GENERATION_REFUSALS = {
    "rollout.requested": ("rollout.judged", REFUSED_ROLLOUT),
    "continuation.requested": ("continuation.judged", REFUSED_CONTINUATION),
}


def refused_messages() -> dict[str, Message]:
    """Per stream: a well-formed message of its type that its consumer refuses."""
    too_long = common_pb2.Rollout(id="r-poison-long", prompt=common_pb2.Prompt(text=MARKER), reasoning=TOO_LONG)
    no_prefix = queue_pb2.ContinuationRequested(job_id=NO_JOB, origin_rollout_id="r-poison-long")
    return {
        "rollout.requested": queue_pb2.RolloutRequested(
            job_id=NO_JOB, rollout_id=REFUSED_ROLLOUT, prompt=common_pb2.Prompt(text=" ")
        ),
        "rollout.generated": queue_pb2.RolloutGenerated(job_id=NO_JOB, rollout=too_long),
        "rollout.judged": queue_pb2.RolloutJudged(job_id=NO_JOB, rollout=too_long),
        "continuation.requested": queue_pb2.ContinuationRequested(
            job_id=NO_JOB, origin_rollout_id=REFUSED_CONTINUATION
        ),
        "continuation.generated": queue_pb2.ContinuationGenerated(
            job_id=NO_JOB, request=no_prefix, continuations=[too_long]
        ),
        "continuation.judged": queue_pb2.ContinuationJudged(job_id=NO_JOB, request=no_prefix),
        "pair.created": queue_pb2.PairCreated(pair=common_pb2.Pair(prompt=common_pb2.Prompt(text=MARKER))),
    }


# (stream, group) -> the error a refused message of that stream is dead-lettered with there.
REFUSED_ERRORS = {
    ("rollout.generated", "judge"): TOO_LONG_ERROR,
    ("rollout.generated", "intervention-progress"): NO_JOB_ERROR,
    ("rollout.judged", "intervention"): NO_JOB_ERROR,
    ("continuation.generated", "judge"): TOO_LONG_ERROR,
    ("continuation.generated", "intervention-progress"): NO_JOB_ERROR,
    ("continuation.judged", "intervention"): NO_JOB_ERROR,
    ("pair.created", "pairstore"): "pair.context: must not be empty",
}


def intervene(stack: DrillStack, *args: str) -> str:
    """Runs the real `intervene` CLI against the drill stack's Redis; returns its output."""
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", "queues", *args, "--redis-url", stack.state.redis_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def queues_table(stack: DrillStack) -> dict[str, tuple[int, int, str]]:
    """`intervene queues` as stream -> (length, dead letters, groups column)."""
    rows = {}
    for line in intervene(stack).splitlines()[1:]:
        stream, length, dead, groups = line.split(maxsplit=3)
        rows[stream] = (int(length), int(dead), groups)
    return rows


def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:.0f}s"
        time.sleep(0.2)


def letters(client: redis.Redis, stream: str, entry_id: str, group: str | None = None) -> list[DeadLetter]:
    """The dead letters of one entry of `stream` (in one consumer group, or all)."""
    return [
        letter
        for letter in dead_letters(client, stream, count=1000)
        if letter.entry_id == entry_id and group in (None, letter.group)
    ]


def results_of(client: redis.Redis, stream: str, origin: str) -> list[DeadLetter]:
    """The dead letters of the judged stream `stream` that carry the result of rollout `origin`."""
    message_type = MESSAGE_TYPES[stream]
    found = []
    for letter in dead_letters(client, stream, count=1000):
        try:
            message = message_type.FromString(letter.body)
        except DecodeError:
            continue  # the undecodable poison
        rollout = message.rollout.id if stream == "rollout.judged" else message.request.origin_rollout_id
        if rollout == origin:
            found.append(letter)
    return found


def inject(client: redis.Redis) -> tuple[dict[str, str], dict[str, str]]:
    """Writes the two poisons into every stream; returns their entry ids by stream (undecodable, refused)."""
    undecodable, refused = {}, {}
    for stream, message in refused_messages().items():
        kind = type_name(MESSAGE_TYPES[stream])
        undecodable[stream] = client.xadd(stream, {"body": b"\xff\xfe not protobuf", "type": kind}).decode()
        refused[stream] = client.xadd(stream, {"body": message.SerializeToString(), "type": kind}).decode()
    return undecodable, refused


def test_poison_is_dead_lettered_while_the_job_flows_and_can_be_requeued(
    drill_stack: DrillStack, baseline: Baseline
) -> None:
    client = drill_stack.redis(timeout_s=10)
    assert drill_stack.dead_letters() == {}, "an earlier drill left dead letters"
    generation = drill_stack.state.services["generation"].pid
    os.kill(generation, signal.SIGSTOP)  # the job's rollouts wait in rollout.requested: a lag to show
    try:
        job_id = drill_stack.submit(PROMPTS, "poisoned")
        waiting = queues_table(drill_stack)["rollout.requested"]
        # lag/pending/consumers; every replica that ever consumed counts, killed ones included
        assert waiting[0] == len(PROMPTS) and re.search(rf"\bgeneration {len(PROMPTS)}/0/\d+", waiting[2]), waiting
        undecodable, refused = inject(client)
    finally:
        os.kill(generation, signal.SIGCONT)

    drill_stack.wait_until(job_id, lambda job: job.state != common_pb2.JOB_STATE_RUNNING)
    job = drill_stack.job(job_id)
    assert job is not None
    check_no_loss(drill_stack, job, baseline, "poison in every stream")

    for (stream, group), error in REFUSED_ERRORS.items():
        eventually(lambda s=stream, g=group: bool(letters(client, s, refused[s], g)), f"{stream} poison dead")
        [letter] = letters(client, stream, refused[stream], group)
        assert letter.deliveries == MAX_DELIVERIES and error in letter.error, letter
    for stream, entry in undecodable.items():
        found = letters(client, stream, entry)
        assert sorted(x.group for x in found) == sorted(GROUPS[stream]), found
        assert all(x.deliveries == 1 and "is not a valid" in x.error for x in found), found
    for stream, (downstream, origin) in GENERATION_REFUSALS.items():
        # Generation acked the refused request with an error result, which no job claims further on.
        assert client.xrange(stream, refused[stream], refused[stream]) == [] and not letters(
            client, stream, refused[stream]
        )
        eventually(lambda d=downstream, o=origin: bool(results_of(client, d, o)), f"{stream} poison's result dead")
        assert all(NO_JOB_ERROR in letter.error for letter in results_of(client, downstream, origin))
    check_cli(drill_stack, client)


def check_cli(stack: DrillStack, client: redis.Redis) -> None:
    table = queues_table(stack)
    for stream in MESSAGE_TYPES:
        assert table[stream][1] == len(dead_letters(client, stream, 1000)) > 0, (stream, table[stream])
    listed = intervene(stack, "dead", "pair.created")
    assert f"deliveries {MAX_DELIVERIES}  " in listed and "must not be empty" in listed and "is not a valid" in listed
    assert MARKER not in listed, "dead letters are listed without their bodies"

    before = {letter.entry_id for letter in dead_letters(client, "pair.created", 1000)}
    found = [(x.entry_id, x.group, x.deliveries, x.error) for x in dead_letters(client, "pair.created", 1000)]
    assert len(found) == 2, found
    assert intervene(stack, "requeue", "pair.created", "--all").strip() == "requeued 2 dead letters onto pair.created"
    # Still poison: the pair store takes them again, as new entries, and gives up on them again.
    eventually(
        lambda: len({x.entry_id for x in dead_letters(client, "pair.created", 1000)} - before) == 2,
        "the requeued letters consumed and dead again",
    )
    assert sorted(x.deliveries for x in dead_letters(client, "pair.created", 1000)) == [1, MAX_DELIVERIES]
