"""Request-size checks beyond gRPC's own message limit.

`grpc.max_receive_message_length` (settings.max_message_bytes) already refuses oversized messages with
RESOURCE_EXHAUSTED before a servicer runs; `check_text_field` gives the finer, per-field limits that the
protos document (a prompt's characters, a trace's characters) a uniform INVALID_ARGUMENT message.
"""

from __future__ import annotations

from shared.rpc.errors import ServiceError


def check_text_field(field_name: str, value: str, max_chars: int) -> None:
    """Raises INVALID_ARGUMENT naming `field_name` and `max_chars` when `value` is longer than `max_chars`."""
    if len(value) > max_chars:
        raise ServiceError.invalid_argument(
            field_name, f"is {len(value)} characters; the limit is {max_chars} characters"
        )
