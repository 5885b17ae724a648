"""The layout's dependency rule: the library (shared/) and the services (services/) never import the tools.

tools/ holds what an operator runs (the `intervene` console script, the local stack, the training launchers, the
corpus builder); it imports the library, so the library stays the method and its plumbing, usable without them.
Every module is read with `ast`, so an import inside a function counts as much as one at the top, and so does
`importlib.import_module` or `__import__` of a literal name.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = "tools"


def imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `tree`, wherever it stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _is_dynamic_import(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("import_module", "__import__")


def tool_imports(root: Path, package: str) -> list[str]:
    """'path:line module imports name' for each import of the tools by a module of `package` under `root`."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root)
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in sorted(imported_names(tree)):
            if name == TOOLS or name.startswith(f"{TOOLS}."):
                found.append(f"{relative}:{line} {module} imports {name}")
    return found


@pytest.mark.parametrize("package", ["shared", "services"])
def test_no_module_imports_the_tools(package: str) -> None:
    found = tool_imports(REPO, package)
    assert not found, f"{package}/ must not import {TOOLS}/ (move what it needs into shared/):\n" + "\n".join(found)


def test_every_form_of_import_is_found(tmp_path: Path) -> None:
    folder = tmp_path / "shared" / "area"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("import tools\n")
    (folder / "module.py").write_text(
        "import importlib\n"
        "from shared.base import tools\n"
        "import toolsmith\n"
        "from tools.cli import main\n"
        "def later():\n"
        "    import tools.stack.local as local\n"
        "    return importlib.import_module('tools.launch'), __import__('tools.corpus')\n"
    )
    assert tool_imports(tmp_path, "shared") == [
        "shared/area/__init__.py:1 shared.area imports tools",
        "shared/area/module.py:4 shared.area.module imports tools.cli",
        "shared/area/module.py:6 shared.area.module imports tools.stack.local",
        "shared/area/module.py:7 shared.area.module imports tools.corpus",
        "shared/area/module.py:7 shared.area.module imports tools.launch",
    ]


def package_edges(root: Path) -> dict[tuple[str, str], list[str]]:
    """(importer, imported) → 'path:line' for each import between two packages of shared/ (shared.<name>)."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted((root / "shared").rglob("*.py")):
        relative = path.relative_to(root)
        if len(relative.parts) < 3:
            continue
        importer = relative.parts[1].removesuffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in imported_names(tree):
            parts = name.split(".")
            if len(parts) >= 2 and parts[0] == "shared" and parts[1] not in (importer, "protos"):
                edges.setdefault((importer, parts[1]), []).append(f"{relative}:{line}")
    return edges


def package_cycle(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """One cycle of packages (first package repeated at the end), or [] when the packages form layers."""
    graph: dict[str, set[str]] = {}
    for importer, imported in edges:
        graph.setdefault(importer, set()).add(imported)
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_packages_of_the_library_form_layers() -> None:
    edges = package_edges(REPO)
    cycle = package_cycle(edges)
    where = [f"{a} -> {b}: {', '.join(edges[(a, b)])}" for a, b in itertools.pairwise(cycle)]
    assert not cycle, "an import runs back up between packages of shared/:\n" + "\n".join(where)


def test_a_cycle_between_packages_is_found(tmp_path: Path) -> None:
    for package, source in {
        "low": "import shared.protos\n",
        "middle": "from shared.low import thing\n",
        "high": "def later():\n    from shared.middle import x\n",
    }.items():
        (tmp_path / "shared" / package).mkdir(parents=True)
        (tmp_path / "shared" / package / "module.py").write_text(source)
    assert package_cycle(package_edges(tmp_path)) == []
    (tmp_path / "shared" / "low" / "back.py").write_text("from shared.high import y\n")
    assert package_cycle(package_edges(tmp_path)) == ["high", "middle", "low", "high"]
    assert package_edges(tmp_path)[("low", "high")] == ["shared/low/back.py:1"]
