"""What a training run is, independent of where it runs: the `TrainJob` every launcher back end takes.

The trainer reads its settings from INTERVENE_TRAINER_* variables (shared/config/trainer.py), locally and
in a pod alike, so a job carries them as environment: `settings_env` turns the fields a user set (in the
environment or with `--set`) into those variables, the same names and formats pydantic-settings parses back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shared.config.trainer import TrainerSettings

ENV_PREFIX = "INTERVENE_TRAINER_"
TRAINER_MODULE = "services.trainer"
# Pod names add "-worker-<index>" to the job name and must stay within 63 characters.
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")


@dataclass(frozen=True)
class TrainJob:
    """One training run: torchrun on `nodes` x `nproc_per_node` processes of `module`, with `env`."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    nodes: int = 1
    nproc_per_node: int = 1
    module: str = TRAINER_MODULE

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"job name {self.name!r} is invalid: use 1-40 lowercase letters, digits and '-', "
                "starting with a letter (pod names append '-worker-N')"
            )
        if self.nodes < 1:
            raise ValueError(f"nodes must be at least 1, got {self.nodes}")
        if self.nproc_per_node < 1:
            raise ValueError(f"nproc_per_node must be at least 1, got {self.nproc_per_node}")


def env_value(value: Any) -> str:
    """A setting's value in the form pydantic-settings parses from the environment (JSON for lists and maps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict | tuple):
        return json.dumps(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def settings_env(settings: TrainerSettings, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, str]:
    """INTERVENE_TRAINER_* variables for every field the user set, except `exclude`, unset ones and secrets.

    Secret fields (tokens) are never written as literals: a job reads them from mounted files.
    """
    env = {}
    for name in sorted(settings.model_fields_set - set(exclude)):
        value = getattr(settings, name)
        if value is None or isinstance(value, SecretStr):
            continue
        env[ENV_PREFIX + name.upper()] = env_value(value)
    return env


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`FIELD=VALUE` pairs of `--set`, checked against TrainerSettings' fields (JSON for list values)."""
    known = TrainerSettings.model_fields
    overrides: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip().lower().removeprefix(ENV_PREFIX.lower())
        if not sep or not name:
            raise ValueError(f"--set {pair!r}: expected FIELD=VALUE, e.g. --set beta=0.2")
        if name not in known:
            raise ValueError(
                f"--set {pair!r}: {name!r} is not a trainer setting; the fields are those of "
                f"shared/config/trainer.py (INTERVENE_TRAINER_*), e.g. {', '.join(sorted(known)[:6])}, ..."
            )
        overrides[name] = json.loads(raw) if raw.lstrip().startswith(("[", "{")) else raw
    return overrides
