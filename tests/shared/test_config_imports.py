"""Settings depend on nothing they configure: importing `shared.config` loads none of the library packages whose
settings it holds (their modules import the settings, never the other way round)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG_MODULES = sorted(
    f"shared.config.{path.stem}" for path in (REPO / "shared" / "config").glob("*.py") if path.stem != "__init__"
)
# The library packages a settings module must not pull in.
OWNERS = ("shared.intervention", "shared.judging", "shared.generation", "shared.pairs", "shared.training")

PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
owners = tuple(sys.argv[2:])
print(" ".join(sorted(name for name in sys.modules if name.startswith(owners))))
"""


def imported_owners(module: str) -> list[str]:
    """The library modules a fresh interpreter has loaded after importing `module`."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module, *OWNERS], cwd=REPO, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_settings_modules_import_none_of_their_owners() -> None:
    assert "shared.config.intervention" in CONFIG_MODULES
    loaded = {module: found for module in CONFIG_MODULES if (found := imported_owners(module))}
    assert loaded == {}, f"settings modules that import library packages (move the shared value into config): {loaded}"


def test_the_probe_sees_an_owner_import() -> None:
    assert "shared.intervention.checks" in imported_owners("shared.intervention.checks")
