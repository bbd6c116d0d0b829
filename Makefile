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

.PHONY: install test test-fast demo bench clean images e2e

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The offline infrastructure checks (render + validate manifests, lint Dockerfiles) run first.
test: $(STAMP) lint-infra
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but the tests marked slow: for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The training pipeline on kfp.local on synthetic data (pipelines/demo.py; options: --help).
demo: $(STAMP)
	$(BIN)/python -m skinattn_pipelines.demo --out $(DEMO_DIR)

# Benchmarks print JSON and a table each; figures are recorded in BENCHMARKS.md. Real images are read
# from $$SKINATTN_REAL_DATA (default ../shared/data) where a benchmark needs them.
bench: $(STAMP)
	@set -e; for script in benchmarks/bench_*.py; do \
		echo "== $$script"; SKINATTN_REAL_DATA=$${SKINATTN_REAL_DATA:-../shared/data} $(BIN)/python $$script; \
	done

# Container images (infra/containers/images.py): the CPU and CUDA component images and the serving image,
# with Docker or Podman, whichever is present (CONTAINER_ENGINE=docker|podman). Options: IMAGES_ARGS, e.g.
# IMAGES_ARGS="--only cpu --standin-bases --torch-index-url ''"; see `python -m infra.containers.images --help`.
IMAGES_ARGS ?=
images: $(STAMP)
	$(BIN)/python -m infra.containers.images $(IMAGES_ARGS)

# The product run inside the images it builds (infra/containers/e2e.py): training and batch-scoring pipelines
# with kfp.local.DockerRunner, data and registry on a local S3 server, the serving container probed over
# HTTP. Installs Podman with apt-get where no container engine is present. Part of the test command (.ci/run).
E2E_ARGS ?=
e2e: $(STAMP)
	$(BIN)/python -m infra.containers.e2e $(E2E_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .venv-infra build/infra-rendered build/e2e build/images

# Kept last: infra/lint.mk's first target is a file target and must not become the default goal.
include infra/lint.mk
