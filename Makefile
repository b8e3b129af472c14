# eagerbench: `make bench` runs the default suite on the CPU, `make test` runs the tests.
# Both create the virtual environment and install everything first; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Extra options for `make bench`, e.g. make bench ARGS="--iters 100"
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install bench bench-full test test-fast report clean slurm-up slurm-down

help:  ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[cpu,test]'
	touch $(STAMP)

install: $(STAMP)  ## Create .venv and install eagerbench with PyTorch, TensorFlow and JAX (CPU)

bench: $(STAMP)  ## Run the default suite and verify on the CPU; tables, plots, README.md -> results/
	$(BIN)/eagerbench run --out results $(ARGS)
	$(BIN)/eagerbench verify --out results
	$(BIN)/python scripts/readme_excerpt.py

bench-full: $(STAMP)  ## The whole grid (every workload's further values, thp companions) -> runs/full/
	$(BIN)/eagerbench run --grid full --out runs/full $(ARGS)
	$(BIN)/eagerbench verify --out runs/full

test: $(STAMP)  ## Run the test suite (every tier; Slurm tests skip without a local Slurm)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slurm and not timing" tests
	$(BIN)/python -m pytest -q -m "slurm or timing" tests

test-fast: $(STAMP)  ## The framework-free tier: no framework imported, no process spawned
	EAGERBENCH_FAST_TIER=1 $(BIN)/python -m pytest -q tests \
	    -m "not framework and not compile and not process and not slurm and not timing"

report: $(STAMP)  ## Rebuild results/ tables, plots and pages from results/raw.jsonl (and the README's excerpt)
	$(BIN)/eagerbench report results
	$(BIN)/python scripts/readme_excerpt.py

slurm-up:  ## Start a single-node Slurm on localhost (apt-get as root): the Slurm tests then run
	scripts/slurm_local.sh up

slurm-down:  ## Stop it and remove its state
	scripts/slurm_local.sh down

clean:  ## Remove the virtual environment, ad-hoc runs and caches (keeps results/)
	rm -rf $(VENV) runs .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
