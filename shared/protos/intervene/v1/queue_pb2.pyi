from shared.protos.intervene.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RolloutRequested(_message.Message):
    __slots__ = ("job_id", "rollout_id", "prompt", "sampling", "sample_index", "adapter", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    rollout_id: str
    prompt: _common_pb2.Prompt
    sampling: _common_pb2.SamplingParams
    sample_index: int
    adapter: str
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., rollout_id: _Optional[str] = ..., prompt: _Optional[_Union[_common_pb2.Prompt, _Mapping]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., sample_index: _Optional[int] = ..., adapter: _Optional[str] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RolloutGenerated(_message.Message):
    __slots__ = ("job_id", "rollout", "error", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    rollout: _common_pb2.Rollout
    error: str
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., rollout: _Optional[_Union[_common_pb2.Rollout, _Mapping]] = ..., error: _Optional[str] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RolloutJudged(_message.Message):
    __slots__ = ("job_id", "rollout", "judgement", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    JUDGEMENT_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    rollout: _common_pb2.Rollout
    judgement: _common_pb2.Judgement
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., rollout: _Optional[_Union[_common_pb2.Rollout, _Mapping]] = ..., judgement: _Optional[_Union[_common_pb2.Judgement, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ContinuationBranch(_message.Message):
    __slots__ = ("trigger_id", "trigger_text", "continuation_id")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_ID_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    trigger_text: str
    continuation_id: str
    def __init__(self, trigger_id: _Optional[str] = ..., trigger_text: _Optional[str] = ..., continuation_id: _Optional[str] = ...) -> None: ...

class ContinuationRequested(_message.Message):
    __slots__ = ("job_id", "parent", "kept_reasoning", "round", "cut_step", "cut_offset", "branches", "sampling", "adapter", "origin_rollout_id", "parent_judgement", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    KEPT_REASONING_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    CUT_STEP_FIELD_NUMBER: _ClassVar[int]
    CUT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    BRANCHES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_JUDGEMENT_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    parent: _common_pb2.Rollout
    kept_reasoning: str
    round: int
    cut_step: int
    cut_offset: int
    branches: _containers.RepeatedCompositeFieldContainer[ContinuationBranch]
    sampling: _common_pb2.SamplingParams
    adapter: str
    origin_rollout_id: str
    parent_judgement: _common_pb2.Judgement
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., parent: _Optional[_Union[_common_pb2.Rollout, _Mapping]] = ..., kept_reasoning: _Optional[str] = ..., round: _Optional[int] = ..., cut_step: _Optional[int] = ..., cut_offset: _Optional[int] = ..., branches: _Optional[_Iterable[_Union[ContinuationBranch, _Mapping]]] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., adapter: _Optional[str] = ..., origin_rollout_id: _Optional[str] = ..., parent_judgement: _Optional[_Union[_common_pb2.Judgement, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ContinuationGenerated(_message.Message):
    __slots__ = ("job_id", "request", "continuations", "error", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    CONTINUATIONS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    request: ContinuationRequested
    continuations: _containers.RepeatedCompositeFieldContainer[_common_pb2.Rollout]
    error: str
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., request: _Optional[_Union[ContinuationRequested, _Mapping]] = ..., continuations: _Optional[_Iterable[_Union[_common_pb2.Rollout, _Mapping]]] = ..., error: _Optional[str] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ContinuationJudged(_message.Message):
    __slots__ = ("job_id", "request", "continuations", "judgements", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    CONTINUATIONS_FIELD_NUMBER: _ClassVar[int]
    JUDGEMENTS_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    request: ContinuationRequested
    continuations: _containers.RepeatedCompositeFieldContainer[_common_pb2.Rollout]
    judgements: _containers.RepeatedCompositeFieldContainer[_common_pb2.Judgement]
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., request: _Optional[_Union[ContinuationRequested, _Mapping]] = ..., continuations: _Optional[_Iterable[_Union[_common_pb2.Rollout, _Mapping]]] = ..., judgements: _Optional[_Iterable[_Union[_common_pb2.Judgement, _Mapping]]] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PairCreated(_message.Message):
    __slots__ = ("pair", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAIR_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    pair: _common_pb2.Pair
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, pair: _Optional[_Union[_common_pb2.Pair, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...
