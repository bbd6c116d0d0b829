# The README's two set-up commands are `make demo` and `make test`: each creates .venv and installs the
# project into it when needed, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.skinattn-installed
PYTEST_ARGS ?=
DEMO_DIR ?= demo-output

# No internet here: BentoML's usage tracking would wait on an unreachable host.
export BENTOML_DO_NOT_TRACK := True
export PYTHONUNBUFFERED := 1

.PHONY: install test test-fast demo bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but the tests marked slow: for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/skinattn demo --out $(DEMO_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
