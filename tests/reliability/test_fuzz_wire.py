"""Hostile request bytes for any protobuf message, built from its descriptor, and checks that they are what
they claim to be.

The Python protobuf runtime refuses to serialize invalid UTF-8, out-of-range enums or truncated messages, so
the fuzzer writes the wire format itself: every field of the descriptor (nested messages, maps and repeated
fields included) with random values, plus the attacks a client can put on the wire — invalid UTF-8 in string
fields, negative and 64-bit extremes in every integer, NaN and infinities, unknown field numbers and wire
types, groups nested thousands deep, truncated bytes, plain garbage, and strings of a few MB on either side
of the server's message limit. `hostile_request(descriptor, limit)` draws one such request.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.protos.intervene.v1 import common_pb2, intervention_pb2, judge_pb2, pairstore_pb2

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
MAX_DEPTH = 4
PARSER_DEPTH_LIMIT = 100
"""protobuf's default recursion limit: deeper nesting must be refused, shallower parsed."""
LONG_TEXT = 100
"""Strings at least this long are recorded: an error message must not echo them back to the client."""

_VARINT_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_ENUM,
    FieldDescriptor.TYPE_BOOL,
}
_ZIGZAG_TYPES = {FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64}
_FIXED32_TYPES = {FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_FLOAT}
_FIXED64_TYPES = {FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_DOUBLE}
_EXTREME_INTS = [0, 1, -1, 2, 7, 2**31 - 1, -(2**31), 2**31, 2**32 - 1, 2**63 - 1, -(2**63), 2**64 - 1, 10**9]
_SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "advbench",
    "default-v1",
    "../../../../etc/passwd",
    "/etc/passwd",
    "/dev/zero",
    "prompts.csv",
    "[INSERT PROMPT HERE]",
    "%s%s%n{0}{}",
    "\u202e\ufeff\U0001f600",
    "<think>\n</think>",
    "j-0000000000000000",
    "policy-v1",
]


def varint(value: int) -> bytes:
    """The base-128 varint of `value`; negative numbers as their 64-bit two's complement, as protobuf does."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return key(number, LENGTH) + varint(len(payload)) + payload


@dataclass
class Notes:
    """What a draw put in a request: long strings (never to be echoed back) and whether any part of it is
    deliberately malformed (invalid UTF-8, a wire type that does not exist), so that it may fail to parse."""

    long_texts: list[str] = field(default_factory=list)
    malformed: bool = False


@dataclass
class Request:
    """A drawn request: its bytes, what kind of attack it is, and what `Notes` recorded while drawing it."""

    payload: bytes
    kind: str
    notes: Notes = field(default_factory=Notes)

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep megabytes out of the report
        head = self.payload[:120]
        return f"Request(kind={self.kind!r}, {len(self.payload)} bytes, starts {head!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _text(draw: st.DrawFn, notes: Notes) -> bytes:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        notes.malformed = True
        raw = draw(st.binary(min_size=1, max_size=40))
        # Invalid UTF-8 on purpose: a lone continuation byte, a truncated sequence, an overlong encoding.
        return raw + draw(st.sampled_from([b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80"]))
    if choice == 1:
        return draw(st.sampled_from(_SPECIAL_TEXT)).encode()
    text = draw(st.text(min_size=LONG_TEXT, max_size=400) if choice == 2 else st.text(max_size=30))
    if len(text) >= LONG_TEXT:
        notes.long_texts.append(text)
    return text.encode("utf-8", "surrogatepass")


def _scalar(draw: st.DrawFn, descriptor: FieldDescriptor) -> tuple[int, bytes]:
    """(wire type, encoded value) of one scalar."""
    kind = descriptor.type
    if kind in _VARINT_TYPES or kind in _ZIGZAG_TYPES:
        number = draw(st.one_of(st.sampled_from(_EXTREME_INTS), st.integers(-(2**63), 2**64 - 1)))
        if kind in _ZIGZAG_TYPES:
            number = (number << 1) ^ (number >> 63)
        return VARINT, varint(number)
    floats = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e38, -1.0]), st.floats(width=32))
    if kind in _FIXED32_TYPES:
        if kind == FieldDescriptor.TYPE_FLOAT:
            return FIXED32, struct.pack("<f", draw(floats))
        return FIXED32, draw(st.binary(min_size=4, max_size=4))
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return FIXED64, struct.pack("<d", draw(floats))
    return FIXED64, draw(st.binary(min_size=8, max_size=8))


def _field(draw: st.DrawFn, descriptor: FieldDescriptor, depth: int, notes: Notes) -> bytes:
    number = descriptor.number
    if descriptor.type == FieldDescriptor.TYPE_MESSAGE:
        return length_delimited(number, _message(draw, descriptor.message_type, depth + 1, notes))
    if descriptor.type == FieldDescriptor.TYPE_STRING:
        return length_delimited(number, _text(draw, notes))
    if descriptor.type == FieldDescriptor.TYPE_BYTES:
        return length_delimited(number, draw(st.binary(max_size=64)))
    wire_type, value = _scalar(draw, descriptor)
    return key(number, wire_type) + value


def _packed(draw: st.DrawFn, descriptor: FieldDescriptor) -> bytes:
    values = [_scalar(draw, descriptor)[1] for _ in range(draw(st.integers(0, 4)))]
    return length_delimited(descriptor.number, b"".join(values))


def _unknown_field(draw: st.DrawFn, descriptor: Descriptor, notes: Notes) -> bytes:
    numbers = st.one_of(st.integers(1, 40), st.integers(1000, 2**29 - 1))
    number = draw(numbers.filter(lambda n: n not in descriptor.fields_by_number))
    wire_type = draw(st.sampled_from([VARINT, FIXED64, LENGTH, FIXED32, START_GROUP, 6, 7]))
    if wire_type == VARINT:
        return key(number, wire_type) + varint(draw(st.integers(0, 2**64 - 1)))
    if wire_type == FIXED64:
        return key(number, wire_type) + draw(st.binary(min_size=8, max_size=8))
    if wire_type == FIXED32:
        return key(number, wire_type) + draw(st.binary(min_size=4, max_size=4))
    if wire_type == LENGTH:
        return length_delimited(number, draw(st.binary(max_size=32)))
    if wire_type == START_GROUP:
        return key(number, START_GROUP) + key(number, END_GROUP)
    notes.malformed = True  # wire types 6 and 7 do not exist
    return key(number, wire_type)


def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int, notes: Notes) -> bytes:
    out = bytearray()
    if depth > MAX_DEPTH:
        return bytes(out)
    for fd in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if (
            fd.is_repeated
            and fd.type not in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_STRING)
            and draw(st.booleans())
        ):
            out += _packed(draw, fd)
            continue
        for _ in range(draw(st.integers(1, 3)) if fd.is_repeated else 1):
            out += _field(draw, fd, depth, notes)
    if draw(st.integers(0, 4)) == 0:
        out += _unknown_field(draw, descriptor, notes)
    return bytes(out)


def string_paths(descriptor: Descriptor, depth: int = 0) -> list[list[FieldDescriptor]]:
    """Every chain of fields from `descriptor` that ends in a string field (repeated or not), to some depth."""
    paths: list[list[FieldDescriptor]] = []
    for fd in descriptor.fields:
        if fd.type == FieldDescriptor.TYPE_STRING:
            paths.append([fd])
        elif fd.type == FieldDescriptor.TYPE_MESSAGE and depth < MAX_DEPTH:
            paths.extend([fd, *rest] for rest in string_paths(fd.message_type, depth + 1))
    return paths


def nest(path: list[FieldDescriptor], payload: bytes) -> bytes:
    """`payload` as the value of the last field of `path`, inside the messages the path walks through."""
    for fd in reversed(path):
        payload = length_delimited(fd.number, payload)
    return payload


def _deep_groups(depth: int) -> bytes:
    """An unknown field made of `depth` nested groups: the parser recurses once per level."""
    return key(999, START_GROUP) * depth + key(999, END_GROUP) * depth


@st.composite
def hostile_request(draw: st.DrawFn, descriptor: Descriptor, message_limit: int) -> Request:
    """One request for a message of type `descriptor`; `message_limit` is the server's largest message."""
    notes = Notes()
    kind = draw(
        st.sampled_from(
            ["fields", "fields", "fields", "fields", "truncated", "garbage", "deep", "huge", "over_limit", "empty"]
        )
    )
    if kind == "empty":
        return Request(b"", kind, notes)
    if kind == "garbage":
        return Request(draw(st.binary(min_size=1, max_size=200)), kind, Notes(malformed=True))
    body = _message(draw, descriptor, 0, notes)
    if kind == "deep":
        depth = draw(st.sampled_from([64, 101, 1000, 100_000]))
        notes.malformed = notes.malformed or depth > PARSER_DEPTH_LIMIT
        return Request(body + _deep_groups(depth), f"deep-{depth}", notes)
    if kind == "truncated" and len(body) >= 2:
        notes.malformed = True
        return Request(body[: draw(st.integers(1, len(body) - 1))], kind, notes)
    paths = string_paths(descriptor)
    if kind in ("huge", "over_limit") and paths:
        path = draw(st.sampled_from(paths))
        size = message_limit - 4096 if kind == "huge" else message_limit + 4096
        filler = draw(st.sampled_from(["a", "é", " ", "Wait, I will help. "]))
        text = filler * (size // len(filler.encode()))
        notes.long_texts.append(text)
        return Request(body + nest(path, text.encode()), kind, notes)
    return Request(body, "fields", notes)


REQUEST_TYPES = [
    pairstore_pb2.PutPairsRequest,
    intervention_pb2.SubmitPromptsRequest,
    intervention_pb2.SafeRolloutRequest,
    judge_pb2.JudgeStepsRequest,
    common_pb2.SamplingParams,
]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_only_deliberately_malformed_requests_fail_to_parse(data: st.DataObject) -> None:
    """The encoder writes what protobuf reads: a draw fails to parse only where it meant to be malformed, and a
    huge draw is a message of about the size asked for."""
    message_type = data.draw(st.sampled_from(REQUEST_TYPES))
    request = data.draw(hostile_request(message_type.DESCRIPTOR, 1 << 20))
    try:
        message = message_type.FromString(request.payload)
    except DecodeError:
        assert request.notes.malformed, request
        return
    if request.kind in ("huge", "over_limit"):
        assert message.ByteSize() >= (1 << 20) - 4096


def test_encoding_matches_protobuf() -> None:
    """The hand-written encoder agrees with protobuf's own on negative, zigzag, nested and packed values."""
    sampling = common_pb2.SamplingParams(temperature=0.5, max_reasoning_tokens=-5, seed=2**64 - 1, stop=["a", "bc"])
    prompt = common_pb2.Prompt(text="hi", labels={"k": "v"})
    request = intervention_pb2.SubmitPromptsRequest(prompts=[prompt], limit=-1, sampling=sampling)
    fields = intervention_pb2.SubmitPromptsRequest.DESCRIPTOR.fields_by_name
    sampling_fields = common_pb2.SamplingParams.DESCRIPTOR.fields_by_name
    labels = common_pb2.Prompt.DESCRIPTOR.fields_by_name["labels"]
    encoded_prompt = length_delimited(2, b"hi") + length_delimited(labels.number, nest([], b"\x0a\x01k\x12\x01v"))
    encoded_sampling = (
        key(sampling_fields["temperature"].number, FIXED32)
        + struct.pack("<f", 0.5)
        + key(sampling_fields["max_reasoning_tokens"].number, VARINT)
        + varint(-5)
        + key(sampling_fields["seed"].number, VARINT)
        + varint(2**64 - 1)
        + length_delimited(6, b"a")
        + length_delimited(6, b"bc")
    )
    ours = (
        length_delimited(fields["prompts"].number, encoded_prompt)
        + key(fields["limit"].number, VARINT)
        + varint(-1)
        + length_delimited(fields["sampling"].number, encoded_sampling)
    )
    assert intervention_pb2.SubmitPromptsRequest.FromString(ours) == request
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    path = [fields["prompts"], common_pb2.Prompt.DESCRIPTOR.fields_by_name["text"]]
    assert path in string_paths(intervention_pb2.SubmitPromptsRequest.DESCRIPTOR)
    assert intervention_pb2.SubmitPromptsRequest.FromString(nest(path, b"deep")).prompts[0].text == "deep"
