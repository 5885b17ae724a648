from shared.protos.intervene.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Trace(_message.Message):
    __slots__ = ("rollout_id", "prompt", "reasoning", "response")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    prompt: str
    reasoning: str
    response: str
    def __init__(self, rollout_id: _Optional[str] = ..., prompt: _Optional[str] = ..., reasoning: _Optional[str] = ..., response: _Optional[str] = ...) -> None: ...

class JudgeTraceRequest(_message.Message):
    __slots__ = ("trace",)
    TRACE_FIELD_NUMBER: _ClassVar[int]
    trace: Trace
    def __init__(self, trace: _Optional[_Union[Trace, _Mapping]] = ...) -> None: ...

class JudgeTraceResponse(_message.Message):
    __slots__ = ("judgement",)
    JUDGEMENT_FIELD_NUMBER: _ClassVar[int]
    judgement: _common_pb2.Judgement
    def __init__(self, judgement: _Optional[_Union[_common_pb2.Judgement, _Mapping]] = ...) -> None: ...

class JudgeStepsRequest(_message.Message):
    __slots__ = ("traces",)
    TRACES_FIELD_NUMBER: _ClassVar[int]
    traces: _containers.RepeatedCompositeFieldContainer[Trace]
    def __init__(self, traces: _Optional[_Iterable[_Union[Trace, _Mapping]]] = ...) -> None: ...

class JudgeStepsResponse(_message.Message):
    __slots__ = ("judgements",)
    JUDGEMENTS_FIELD_NUMBER: _ClassVar[int]
    judgements: _containers.RepeatedCompositeFieldContainer[_common_pb2.Judgement]
    def __init__(self, judgements: _Optional[_Iterable[_Union[_common_pb2.Judgement, _Mapping]]] = ...) -> None: ...
