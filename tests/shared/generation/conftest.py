"""Generation back ends for the contract suite, each loaded once per test run, and a tiny random LoRA adapter.

The `vllm` back end runs only where vLLM is importable (the .venv-vllm environment):
    .venv-vllm/bin/pytest -m vllm tests/shared/generation
The `openai` back end runs in any venv against vLLM's server started from .venv-vllm.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.generation.backends.base import GenerationBackend, create_backend
from shared.models.embedded import embedded_model_dir
from tests.fixtures.generation import backend_settings, make_lora, shared_transformers_backend
from tests.fixtures.vllm_server import vllm_openai_server  # noqa: F401 - a fixture used by name


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vllm: needs vLLM importable (run under .venv-vllm/bin/pytest -m vllm)")


@pytest.fixture(
    scope="session",
    params=["transformers", pytest.param("vllm", marks=pytest.mark.vllm), "openai"],
)
def backend(request: pytest.FixtureRequest) -> Iterator[GenerationBackend]:
    """Each back end in turn, on the embedded SmolLM2 model."""
    name = request.param
    if name == "vllm":
        yield request.getfixturevalue("vllm_backend")
        return
    if name == "openai":
        base_url = request.getfixturevalue("vllm_openai_server")
        settings = backend_settings(name, model=str(embedded_model_dir()), openai_base_url=base_url)
    else:
        yield shared_transformers_backend()
        return
    instance = create_backend(settings)
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def vllm_backend() -> Iterator[GenerationBackend]:
    """The vLLM back end on the embedded model: one engine for the whole run (it takes a minute to start)."""
    pytest.importorskip(
        "vllm", reason="vLLM is not installed here: bash scripts/install_vllm_cpu.sh; .venv-vllm/bin/pytest -m vllm"
    )
    instance = create_backend(backend_settings("vllm"))
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LoRA adapter folder for the embedded model."""
    return make_lora(tmp_path_factory.mktemp("lora") / "policy")
