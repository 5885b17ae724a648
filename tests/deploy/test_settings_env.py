"""The environment the manifests give each container is what its settings class reads: every INTERVENE_*
name is a field (pydantic-settings ignores unknown names, so a typo would silently do nothing), and the
values parse and pass the class's validation. Secret files are stood in by temporary files."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from shared.config.trainer import TrainerSettings
from tests.deploy.manifests import K8S, VALUE_SETS, containers, helm_template, kustomize

SECRET_DIRS = ("/var/run/secrets/intervene/", "/var/run/secrets/intervene-judge/")


@functools.cache
def rendered(name: str) -> tuple[dict, ...]:
    return tuple(helm_template(VALUE_SETS[name]))


def settings_class(component: str) -> type[BaseSettings]:
    """The settings class of a service: the BaseSettings subclass defined in shared/config/<component>.py."""
    try:
        module = importlib.import_module(f"shared.config.{component}")
    except ModuleNotFoundError:
        pytest.skip(f"shared/config/{component}.py does not exist yet")
    (cls,) = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, BaseSettings) and c.__module__ == module.__name__
    ]
    return cls


def load(cls: type[BaseSettings], env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Check every name against `cls`'s fields, then build `cls` from exactly this environment."""
    prefix = cls.model_config["env_prefix"]
    fields = {prefix + name.upper() for name in cls.model_fields}
    unknown = sorted(set(env) - fields)
    assert not unknown, f"{cls.__name__} has no fields for {unknown}"
    for name in [n for n in os.environ if n.startswith("INTERVENE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if value.startswith(SECRET_DIRS):
            stand_in = tmp_path / Path(value).name
            stand_in.write_text("stand-in-secret")
            value = str(stand_in)
        monkeypatch.setenv(name, value)
    cls()


def intervene_env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"] if e["name"].startswith("INTERVENE_")}


SERVICES = ("generation", "judge", "intervention", "pairstore")
CASES = [(name, component) for name in sorted(VALUE_SETS) for component in SERVICES]


@pytest.mark.parametrize(("value_set", "component"), CASES)
def test_service_env_matches_its_settings(
    value_set: str, component: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(component)
    (deployment,) = [
        d
        for d in rendered(value_set)
        if d["kind"] == "Deployment" and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    (container,) = containers(deployment)
    load(cls, intervene_env(container), tmp_path, monkeypatch)


def trainer_jobs() -> list[tuple[str, dict]]:
    jobs = [
        (f"chart:{n}", d) for n in ("no-gpu", "training-multi-node") for d in rendered(n) if d["kind"] == "PyTorchJob"
    ]
    for overlay in ("single-node", "multi-node"):
        jobs += [(f"k8s:{overlay}", d) for d in kustomize(K8S / "overlays" / overlay) if d["kind"] == "PyTorchJob"]
    return jobs


def test_trainer_env_matches_trainer_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = trainer_jobs()
    assert len(jobs) == 4
    for source, job in jobs:
        for container in containers(job):
            try:
                load(TrainerSettings, intervene_env(container), tmp_path, monkeypatch)
            except Exception as error:
                raise AssertionError(f"{source}: {error}") from error
