"""Settings of the pair store service (`INTERVENE_*`)."""

from __future__ import annotations

from pydantic import Field

from shared.config.base import ServiceSettings


class PairStoreSettings(ServiceSettings):
    """The pair store service."""

    port: int = Field(50054, ge=0, le=65535, description="gRPC port of the pair store.")
    key_prefix: str = Field("intervene:pairs", description="Prefix of every Redis key the pair store writes.")
    max_page_size: int = Field(1000, ge=1, description="Largest ListPairs page.")
    max_pairs_per_put: int = Field(1000, ge=1, description="Most pairs one PutPairs call may carry.")
    max_field_chars: int = Field(
        1_000_000, ge=1, description="Longest text field (prompt, prefix, chosen, rejected) a pair may have."
    )
    consume_queue: bool = Field(True, description="Run the `pair.created` queue consumer beside the server.")
