"""The services stay thin: each module under services/ is wiring or RPC handlers, at most 200 lines.

A service is `server.py` (process wiring: settings to library objects, workers, health) and `servicer.py` (RPC
handlers: validation and status codes); what their methods do belongs to the library (`shared/`), queue handlers
included (`shared/<package>/worker.py`, docs/design.md §3). Lines are
counted plainly, as `wc -l` does (blank lines, comments and docstrings included), so the number is the one a
reader sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[1] / "services"
MAX_LINES = 200


def service_modules() -> list[Path]:
    return sorted(SERVICES.rglob("*.py"))


def long_modules(paths: list[Path], limit: int = MAX_LINES) -> list[str]:
    """`path: N lines` for each module over `limit` lines."""
    lengths = {path: len(path.read_text().splitlines()) for path in paths}
    return [f"{path.relative_to(path.parents[2])}: {n} lines" for path, n in lengths.items() if n > limit]


def test_every_service_module_is_at_most_200_lines() -> None:
    modules = service_modules()
    assert len(modules) >= 10, f"found only {len(modules)} modules under {SERVICES}"
    too_long = long_modules(modules)
    assert not too_long, f"service modules over {MAX_LINES} lines (move method logic into shared/): {too_long}"


def test_a_long_module_is_named(tmp_path: Path) -> None:
    service = tmp_path / "services" / "example"
    service.mkdir(parents=True)
    (service / "server.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (service / "servicer.py").write_text("x = 1\n" * MAX_LINES)
    assert long_modules(sorted(service.glob("*.py"))) == [f"services/example/server.py: {MAX_LINES + 1} lines"]


@pytest.mark.parametrize("name", ["generation", "intervention", "judge", "pairstore"])
def test_each_server_has_its_wiring_and_handlers_only(name: str) -> None:
    modules = {path.name for path in (SERVICES / name).glob("*.py")}
    assert modules == {"__init__.py", "__main__.py", "server.py", "servicer.py"}, f"services/{name}: {sorted(modules)}"
