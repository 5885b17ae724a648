"""Where local copies of the named data sets live: one data folder per machine, the same wherever a command runs.

The folder is `--data-dir` when a command takes one, else `INTERVENE_DATA_DIR`, else `$XDG_DATA_HOME/intervene/data`
(`~/.local/share/intervene/data` when XDG_DATA_HOME is unset). It never depends on the current directory, so a
service, a trainer pod and a shell find the same copies; `intervene data fetch NAME --out DIR` writes them there.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "INTERVENE_DATA_DIR"


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/intervene/data`, else `~/.local/share/intervene/data`."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "intervene" / "data"


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """`data_dir`, else INTERVENE_DATA_DIR, else the default data folder; `~` is expanded."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or default_data_dir()
    return Path(chosen).expanduser()
