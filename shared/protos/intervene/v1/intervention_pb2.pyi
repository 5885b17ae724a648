from shared.protos.intervene.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SafeRolloutSpec(_message.Message):
    __slots__ = ("prompt", "sampling", "max_rounds", "trigger_ids", "store_pairs", "adapter")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_IDS_FIELD_NUMBER: _ClassVar[int]
    STORE_PAIRS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    prompt: _common_pb2.Prompt
    sampling: _common_pb2.SamplingParams
    max_rounds: int
    trigger_ids: _containers.RepeatedScalarFieldContainer[str]
    store_pairs: bool
    adapter: str
    def __init__(self, prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., max_rounds: _Optional[int] = ..., trigger_ids: _Optional[_Iterable[str]] = ..., store_pairs: _Optional[bool] = ..., adapter: _Optional[str] = ...) -> None: ...

class SafeRolloutRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: SafeRolloutSpec
    def __init__(self, spec: _Optional[_Union[SafeRolloutSpec, _Mapping]] = ...) -> None: ...

class SafeRolloutResponse(_message.Message):
    __slots__ = ("rollout", "judgement", "interventions", "pair_ids", "withheld")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    JUDGEMENT_FIELD_NUMBER: _ClassVar[int]
    INTERVENTIONS_FIELD_NUMBER: _ClassVar[int]
    PAIR_IDS_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    rollout: _common_pb2.Rollout
    judgement: _common_pb2.Judgement
    interventions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Intervention]
    pair_ids: _containers.RepeatedScalarFieldContainer[str]
    withheld: bool
    def __init__(self, rollout: _Optional[_Union[_common_pb2.Rollout, _Mapping]] = ..., judgement: _Optional[_Union[_common_pb2.Judgement, _Mapping]] = ..., interventions: _Optional[_Iterable[_Union[_common_pb2.Intervention, _Mapping]]] = ..., pair_ids: _Optional[_Iterable[str]] = ..., withheld: _Optional[bool] = ...) -> None: ...

class SafeRolloutStreamRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: SafeRolloutSpec
    def __init__(self, spec: _Optional[_Union[SafeRolloutSpec, _Mapping]] = ...) -> None: ...

class SafeRolloutStreamResponse(_message.Message):
    __slots__ = ("delta", "intervention", "result")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    INTERVENTION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    delta: TraceDelta
    intervention: _common_pb2.Intervention
    result: SafeRolloutResponse
    def __init__(self, delta: _Optional[_Union[TraceDelta, _Mapping]] = ..., intervention: _Optional[_Union[_common_pb2.Intervention, _Mapping]] = ..., result: _Optional[_Union[SafeRolloutResponse, _Mapping]] = ...) -> None: ...

class TraceDelta(_message.Message):
    __slots__ = ("text", "segment")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    text: str
    segment: _common_pb2.Segment
    def __init__(self, text: _Optional[str] = ..., segment: _Optional[_Union[_common_pb2.Segment, str]] = ...) -> None: ...

class SubmitPromptsRequest(_message.Message):
    __slots__ = ("prompts", "dataset", "text_column", "template_file", "limit", "samples_per_prompt", "sampling", "max_rounds", "benign", "name", "adapter", "seed")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TEXT_COLUMN_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FILE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    BENIGN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedCompositeFieldContainer[_common_pb2.Prompt]
    dataset: str
    text_column: str
    template_file: str
    limit: int
    samples_per_prompt: int
    sampling: _common_pb2.SamplingParams
    max_rounds: int
    benign: bool
    name: str
    adapter: str
    seed: int
    def __init__(self, prompts: _Optional[_Iterable[_Union[_common_pb2.Prompt, _Mapping]]] = ..., dataset: _Optional[str] = ..., text_column: _Optional[str] = ..., template_file: _Optional[str] = ..., limit: _Optional[int] = ..., samples_per_prompt: _Optional[int] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., max_rounds: _Optional[int] = ..., benign: _Optional[bool] = ..., name: _Optional[str] = ..., adapter: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class SubmitPromptsResponse(_message.Message):
    __slots__ = ("job_id", "prompts")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    prompts: int
    def __init__(self, job_id: _Optional[str] = ..., prompts: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...
