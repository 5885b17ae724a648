"""The per-stage (domain) metrics: what each stage of the pipeline did, as Prometheus counters.

They live in one registry per process (`REGISTRY`), because the code that counts (queue handlers, the
repository, the intervention loop) is library code shared by several services and owns no server; a service's
/metrics endpoint serves it beside the server's own gRPC metrics (`shared.rpc.metrics`). Every name has the
`intervene_` prefix, counters end in `_total`, and label values come from small fixed sets (stream and group
names, verdicts, outcomes, rounds up to INTERVENE_LIMIT_ROUNDS): never an id or text. docs/operations.md lists
them with the services that export each.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry(auto_describe=True)

ROLLOUTS_GENERATED = Counter(
    "intervene_rollouts_generated",
    "Rollouts and trigger continuations the generation service produced, by kind (rollout or continuation), path "
    "(queue or rpc) and finish reason (stop, length, error).",
    ["kind", "path", "finish_reason"],
    registry=REGISTRY,
)
GENERATION_TOKENS = Counter(
    "intervene_generation_tokens",
    "Tokens the generation service generated, by segment (reasoning or response); rate() is tokens per second.",
    ["segment"],
    registry=REGISTRY,
)
TRACES_JUDGED = Counter(
    "intervene_judge_traces",
    "Traces the judge judged, by judge back end and reasoning verdict (safe, harmful, undetermined).",
    ["judge", "verdict"],
    registry=REGISTRY,
)
STEPS_JUDGED = Counter(
    "intervene_judge_steps",
    "Reasoning steps (sentences) the judge labelled, by judge back end.",
    ["judge"],
    registry=REGISTRY,
)
CUES_FOUND = Counter(
    "intervene_judge_cues",
    "Traces in which the judge found a first compliance cue (h >= 2), by judge back end.",
    ["judge"],
    registry=REGISTRY,
)
INTERVENTIONS = Counter(
    "intervene_interventions",
    "Interventions (all trigger branches of one round on one rollout), by path (bulk or interactive), round and "
    "outcome (safe: a branch was judged safe and made pairs; unsafe: none was).",
    ["path", "round", "outcome"],
    registry=REGISTRY,
)
PAIRS_STORED = Counter(
    "intervene_pairs_stored",
    "Pairs the pair store wrote, by kind (harmful, over_refusal) and result (created, or existing: already stored).",
    ["kind", "result"],
    registry=REGISTRY,
)
PAIRS_REFUSED = Counter(
    "intervene_pairs_refused",
    "Pairs the pair store refused as invalid, by path (rpc: PutPairs, queue: pair.created).",
    ["path"],
    registry=REGISTRY,
)
SAFE_ROLLOUTS = Counter(
    "intervene_safe_rollouts",
    "SafeRollout calls by method and outcome: clean (first trace safe), corrected (an intervention made it safe), "
    "withheld (no safe trace: text withheld), failed_closed (a peer failed: nothing returned), deadline_exceeded, "
    "invalid_argument.",
    ["method", "outcome"],
    registry=REGISTRY,
)
QUEUE_ENTRIES = Counter(
    "intervene_queue_entries",
    "Queue entries this process handled, by stream, consumer group and result (acked, failed, blocked).",
    ["stream", "group", "result"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "intervene_queue_dead_lettered",
    "Entries this process moved to a stream's dead-letter stream.",
    ["stream"],
    registry=REGISTRY,
)

SAFE_ROLLOUT_OUTCOMES = ("clean", "corrected", "withheld", "failed_closed", "deadline_exceeded", "invalid_argument")


def count_rollout(kind: str, path: str, finish_reason: str, reasoning_tokens: int, response_tokens: int) -> None:
    """One generated rollout or continuation and its tokens."""
    ROLLOUTS_GENERATED.labels(kind=kind, path=path, finish_reason=finish_reason or "unknown").inc()
    if reasoning_tokens:
        GENERATION_TOKENS.labels(segment="reasoning").inc(reasoning_tokens)
    if response_tokens:
        GENERATION_TOKENS.labels(segment="response").inc(response_tokens)


_VERDICTS = {0: "unspecified", 1: "safe", 2: "harmful", 3: "undetermined"}


def count_judgements(judge: str, judgements: list) -> None:
    """Traces, steps and cues of a batch of judgements (`common_pb2.Judgement`s or the judges' own `Judgement`s)."""
    for judgement in judgements:
        verdict = judgement.reasoning_verdict
        name = _VERDICTS.get(verdict.to_proto() if hasattr(verdict, "to_proto") else int(verdict), "unspecified")
        TRACES_JUDGED.labels(judge=judge, verdict=name).inc()
        STEPS_JUDGED.labels(judge=judge).inc(len(judgement.steps))
        if judgement.first_cue:
            CUES_FOUND.labels(judge=judge).inc()
