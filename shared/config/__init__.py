"""Typed settings, read from `INTERVENE_*` environment variables: one pydantic-settings class per service.

Each service's class lives in its own module here and extends `ServiceSettings` from `base`.
"""

from shared.config.base import QueueSettings, ServiceSettings

__all__ = ["QueueSettings", "ServiceSettings"]
