"""The safety-trigger pool: versioned data files of sentences that replace a compliance cue.

A pool is JSON `{"name", "version", "triggers": [{"id", "text"}, ...]}`; the default ships as
`triggers/default-v1.json`. Any path works too, so a cluster can mount its own pool from a ConfigMap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

_BUILT_IN = Path(__file__).parent / "triggers"
DEFAULT_POOL = "default-v1"


@dataclass(frozen=True)
class Trigger:
    id: str
    text: str


@dataclass(frozen=True)
class TriggerPool:
    name: str
    version: str
    triggers: tuple[Trigger, ...]

    @property
    def label(self) -> str:
        """`name-version`, recorded in every pair's provenance."""
        return f"{self.name}-{self.version}"

    def select(self, ids: list[str] | None = None, limit: int | None = None) -> list[Trigger]:
        """The triggers with `ids` (in that order; all by default), at most `limit` of them."""
        if ids:
            by_id = {trigger.id: trigger for trigger in self.triggers}
            unknown = [identifier for identifier in ids if identifier not in by_id]
            if unknown:
                raise KeyError(f"unknown trigger ids {unknown}; the pool {self.label} has {sorted(by_id)}")
            chosen = [by_id[identifier] for identifier in ids]
        else:
            chosen = list(self.triggers)
        return chosen[:limit] if limit else chosen


def load_pool(name_or_path: str = DEFAULT_POOL) -> TriggerPool:
    """Loads a built-in pool by name (`default-v1`) or a pool file by path."""
    path = _BUILT_IN / f"{name_or_path}.json"
    if not path.exists():
        path = Path(name_or_path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        built_in = sorted(p.stem for p in _BUILT_IN.glob("*.json"))
        raise ValueError(f"no trigger pool {name_or_path!r}: give a file path or one of {built_in}") from None
    triggers = tuple(Trigger(id=str(t["id"]), text=str(t["text"])) for t in raw["triggers"])
    if not triggers or len({t.id for t in triggers}) != len(triggers):
        raise ValueError(f"trigger pool {path} must hold at least one trigger and unique ids")
    if any(not t.text.strip() for t in triggers):
        raise ValueError(f"trigger pool {path} has an empty trigger text")
    return TriggerPool(name=str(raw["name"]), version=str(raw["version"]), triggers=triggers)
