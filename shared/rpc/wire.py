"""Finds the string field that holds invalid UTF-8 in a serialized request, so the error can name it.

protobuf refuses such a request as a whole ("String field had bad UTF-8") without saying where;
`decoding.RequestDecodingInterceptor` answers INVALID_ARGUMENT with the field's path (`trace.reasoning`,
`traces[3].response`).
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def bad_utf8_field(data: bytes, descriptor: Descriptor, prefix: str = "") -> str | None:
    """The path of the first string field of `data` that is not valid UTF-8; None if there is none
    (or the bytes are malformed in some other way)."""
    counts: dict[int, int] = {}
    position = 0
    try:
        while position < len(data):
            key, position = _varint(data, position)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                _, position = _varint(data, position)
                continue
            if wire_type == 1:
                position += 8
                continue
            if wire_type == 5:
                position += 4
                continue
            if wire_type != 2:
                return None
            length, position = _varint(data, position)
            payload = data[position : position + length]
            position += length
            field = descriptor.fields_by_number.get(number)
            if field is None:
                continue
            name = prefix + field.name
            if field.is_repeated:
                index = counts.get(number, 0)
                counts[number] = index + 1
                name = f"{name}[{index}]"
            if field.type == FieldDescriptor.TYPE_STRING:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    return name
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                found = bad_utf8_field(payload, field.message_type, name + ".")
                if found is not None:
                    return found
    except ValueError:
        return None
    return None
