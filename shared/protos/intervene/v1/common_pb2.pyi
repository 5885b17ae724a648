import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Segment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEGMENT_UNSPECIFIED: _ClassVar[Segment]
    SEGMENT_REASONING: _ClassVar[Segment]
    SEGMENT_RESPONSE: _ClassVar[Segment]

class StepLabel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_LABEL_UNSPECIFIED: _ClassVar[StepLabel]
    STEP_LABEL_NEUTRAL: _ClassVar[StepLabel]
    STEP_LABEL_COMPLIANCE_CUE: _ClassVar[StepLabel]
    STEP_LABEL_UNSAFE: _ClassVar[StepLabel]
    STEP_LABEL_SAFETY_TRIGGER: _ClassVar[StepLabel]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_SAFE: _ClassVar[Verdict]
    VERDICT_HARMFUL: _ClassVar[Verdict]
    VERDICT_UNDETERMINED: _ClassVar[Verdict]

class PairKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAIR_KIND_UNSPECIFIED: _ClassVar[PairKind]
    PAIR_KIND_HARMFUL: _ClassVar[PairKind]
    PAIR_KIND_OVER_REFUSAL: _ClassVar[PairKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
SEGMENT_UNSPECIFIED: Segment
SEGMENT_REASONING: Segment
SEGMENT_RESPONSE: Segment
STEP_LABEL_UNSPECIFIED: StepLabel
STEP_LABEL_NEUTRAL: StepLabel
STEP_LABEL_COMPLIANCE_CUE: StepLabel
STEP_LABEL_UNSAFE: StepLabel
STEP_LABEL_SAFETY_TRIGGER: StepLabel
VERDICT_UNSPECIFIED: Verdict
VERDICT_SAFE: Verdict
VERDICT_HARMFUL: Verdict
VERDICT_UNDETERMINED: Verdict
PAIR_KIND_UNSPECIFIED: PairKind
PAIR_KIND_HARMFUL: PairKind
PAIR_KIND_OVER_REFUSAL: PairKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState

class Prompt(_message.Message):
    __slots__ = ("id", "text", "system", "dataset", "benign", "template", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BENIGN_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    system: str
    dataset: str
    benign: bool
    template: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., system: _Optional[str] = ..., dataset: _Optional[str] = ..., benign: _Optional[bool] = ..., template: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_p", "max_reasoning_tokens", "max_response_tokens", "seed", "stop")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESPONSE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_reasoning_tokens: int
    max_response_tokens: int
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_reasoning_tokens: _Optional[int] = ..., max_response_tokens: _Optional[int] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class Rollout(_message.Message):
    __slots__ = ("id", "prompt", "context", "reasoning", "response", "reasoning_closed", "model", "adapter", "reasoning_tokens", "response_tokens", "finish_reason", "created_at", "round", "parent_id", "trigger_id", "given_reasoning_chars")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    REASONING_CLOSED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    GIVEN_REASONING_CHARS_FIELD_NUMBER: _ClassVar[int]
    id: str
    prompt: Prompt
    context: str
    reasoning: str
    response: str
    reasoning_closed: bool
    model: str
    adapter: str
    reasoning_tokens: int
    response_tokens: int
    finish_reason: str
    created_at: _timestamp_pb2.Timestamp
    round: int
    parent_id: str
    trigger_id: str
    given_reasoning_chars: int
    def __init__(self, id: _Optional[str] = ..., prompt: _Optional[_Union[Prompt, _Mapping]] = ..., context: _Optional[str] = ..., reasoning: _Optional[str] = ..., response: _Optional[str] = ..., reasoning_closed: _Optional[bool] = ..., model: _Optional[str] = ..., adapter: _Optional[str] = ..., reasoning_tokens: _Optional[int] = ..., response_tokens: _Optional[int] = ..., finish_reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., round: _Optional[int] = ..., parent_id: _Optional[str] = ..., trigger_id: _Optional[str] = ..., given_reasoning_chars: _Optional[int] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("index", "start", "end", "label", "score")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    index: int
    start: int
    end: int
    label: StepLabel
    score: float
    def __init__(self, index: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., label: _Optional[_Union[StepLabel, str]] = ..., score: _Optional[float] = ...) -> None: ...

class Judgement(_message.Message):
    __slots__ = ("rollout_id", "steps", "first_cue", "reasoning_verdict", "response_verdict", "response_refused", "reasoning_score", "response_score", "judge_name", "judge_version", "judged_at", "decided_by")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FIRST_CUE_FIELD_NUMBER: _ClassVar[int]
    REASONING_VERDICT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_VERDICT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_REFUSED_FIELD_NUMBER: _ClassVar[int]
    REASONING_SCORE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SCORE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_NAME_FIELD_NUMBER: _ClassVar[int]
    JUDGE_VERSION_FIELD_NUMBER: _ClassVar[int]
    JUDGED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    first_cue: int
    reasoning_verdict: Verdict
    response_verdict: Verdict
    response_refused: bool
    reasoning_score: float
    response_score: float
    judge_name: str
    judge_version: str
    judged_at: _timestamp_pb2.Timestamp
    decided_by: str
    def __init__(self, rollout_id: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., first_cue: _Optional[int] = ..., reasoning_verdict: _Optional[_Union[Verdict, str]] = ..., response_verdict: _Optional[_Union[Verdict, str]] = ..., response_refused: _Optional[bool] = ..., reasoning_score: _Optional[float] = ..., response_score: _Optional[float] = ..., judge_name: _Optional[str] = ..., judge_version: _Optional[str] = ..., judged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_by: _Optional[str] = ...) -> None: ...

class Intervention(_message.Message):
    __slots__ = ("round", "step", "char_offset", "trigger_id", "trigger_text", "continuation_id", "reasoning_verdict", "response_verdict", "success")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    CHAR_OFFSET_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASONING_VERDICT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_VERDICT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    round: int
    step: int
    char_offset: int
    trigger_id: str
    trigger_text: str
    continuation_id: str
    reasoning_verdict: Verdict
    response_verdict: Verdict
    success: bool
    def __init__(self, round: _Optional[int] = ..., step: _Optional[int] = ..., char_offset: _Optional[int] = ..., trigger_id: _Optional[str] = ..., trigger_text: _Optional[str] = ..., continuation_id: _Optional[str] = ..., reasoning_verdict: _Optional[_Union[Verdict, str]] = ..., response_verdict: _Optional[_Union[Verdict, str]] = ..., success: _Optional[bool] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("rollout_id", "continuation_id", "divergence_step", "divergence_offset", "trigger_id", "round", "model", "adapter", "judge_name", "judge_version", "rejected_reasoning_verdict", "rejected_response_verdict", "chosen_reasoning_verdict", "chosen_response_verdict", "rollout_created_at", "created_at", "job_id", "trigger_pool_version")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_ID_FIELD_NUMBER: _ClassVar[int]
    DIVERGENCE_STEP_FIELD_NUMBER: _ClassVar[int]
    DIVERGENCE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    JUDGE_NAME_FIELD_NUMBER: _ClassVar[int]
    JUDGE_VERSION_FIELD_NUMBER: _ClassVar[int]
    REJECTED_REASONING_VERDICT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_RESPONSE_VERDICT_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_REASONING_VERDICT_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_RESPONSE_VERDICT_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_POOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    continuation_id: str
    divergence_step: int
    divergence_offset: int
    trigger_id: str
    round: int
    model: str
    adapter: str
    judge_name: str
    judge_version: str
    rejected_reasoning_verdict: Verdict
    rejected_response_verdict: Verdict
    chosen_reasoning_verdict: Verdict
    chosen_response_verdict: Verdict
    rollout_created_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    job_id: str
    trigger_pool_version: str
    def __init__(self, rollout_id: _Optional[str] = ..., continuation_id: _Optional[str] = ..., divergence_step: _Optional[int] = ..., divergence_offset: _Optional[int] = ..., trigger_id: _Optional[str] = ..., round: _Optional[int] = ..., model: _Optional[str] = ..., adapter: _Optional[str] = ..., judge_name: _Optional[str] = ..., judge_version: _Optional[str] = ..., rejected_reasoning_verdict: _Optional[_Union[Verdict, str]] = ..., rejected_response_verdict: _Optional[_Union[Verdict, str]] = ..., chosen_reasoning_verdict: _Optional[_Union[Verdict, str]] = ..., chosen_response_verdict: _Optional[_Union[Verdict, str]] = ..., rollout_created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_id: _Optional[str] = ..., trigger_pool_version: _Optional[str] = ...) -> None: ...

class Pair(_message.Message):
    __slots__ = ("id", "prompt", "context", "prefix", "chosen", "rejected", "kind", "provenance")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    prompt: Prompt
    context: str
    prefix: str
    chosen: str
    rejected: str
    kind: PairKind
    provenance: Provenance
    def __init__(self, id: _Optional[str] = ..., prompt: _Optional[_Union[Prompt, _Mapping]] = ..., context: _Optional[str] = ..., prefix: _Optional[str] = ..., chosen: _Optional[str] = ..., rejected: _Optional[str] = ..., kind: _Optional[_Union[PairKind, str]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ...) -> None: ...

class RoundStats(_message.Message):
    __slots__ = ("round", "tried", "succeeded")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TRIED_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    round: int
    tried: int
    succeeded: int
    def __init__(self, round: _Optional[int] = ..., tried: _Optional[int] = ..., succeeded: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "name", "state", "prompts", "rollouts_requested", "rollouts_generated", "rollouts_judged", "rollouts_unsafe", "interventions_tried", "continuations_generated", "continuations_judged", "pairs_created", "failed_items", "rounds", "no_pair_reasons", "created_at", "finished_at", "pairs_dropped")
    class NoPairReasonsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PairsDroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_JUDGED_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_UNSAFE_FIELD_NUMBER: _ClassVar[int]
    INTERVENTIONS_TRIED_FIELD_NUMBER: _ClassVar[int]
    CONTINUATIONS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    CONTINUATIONS_JUDGED_FIELD_NUMBER: _ClassVar[int]
    PAIRS_CREATED_FIELD_NUMBER: _ClassVar[int]
    FAILED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    NO_PAIR_REASONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    PAIRS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: JobState
    prompts: int
    rollouts_requested: int
    rollouts_generated: int
    rollouts_judged: int
    rollouts_unsafe: int
    interventions_tried: int
    continuations_generated: int
    continuations_judged: int
    pairs_created: int
    failed_items: int
    rounds: _containers.RepeatedCompositeFieldContainer[RoundStats]
    no_pair_reasons: _containers.ScalarMap[str, int]
    created_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    pairs_dropped: _containers.ScalarMap[str, int]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., prompts: _Optional[int] = ..., rollouts_requested: _Optional[int] = ..., rollouts_generated: _Optional[int] = ..., rollouts_judged: _Optional[int] = ..., rollouts_unsafe: _Optional[int] = ..., interventions_tried: _Optional[int] = ..., continuations_generated: _Optional[int] = ..., continuations_judged: _Optional[int] = ..., pairs_created: _Optional[int] = ..., failed_items: _Optional[int] = ..., rounds: _Optional[_Iterable[_Union[RoundStats, _Mapping]]] = ..., no_pair_reasons: _Optional[_Mapping[str, int]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pairs_dropped: _Optional[_Mapping[str, int]] = ...) -> None: ...
