# `make demo` and `make test` each build .venv from scratch on a fresh machine.
# torch is pinned to 2.13.0 here only: that version installs the local CPU wheel instead of
# pulling several GB of CUDA packages. The project itself asks for torch>=2.4.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo lint test fast-test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,shap,ray]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/expnet demo --out runs/demo --seed 0

# ruff: the rule set in pyproject.toml over everything that is Python here; mypy: the packages
# [tool.mypy] files lists.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

fast-test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not integration"

clean:
	rm -rf $(VENV) runs
