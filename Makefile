# eagerbench: `make bench` runs the default suite on the CPU, `make test` runs the tests.
# Both create the virtual environment and install everything first; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Extra options for `make bench`, e.g. make bench ARGS="--iters 100"
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install bench bench-full models releases lint test test-fast report clean slurm-up slurm-down

help:  ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# --no-compile: a module is byte-compiled when first imported, not all 14,000 at install (half
# the install's time, and most are never imported)
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile -c requirements.lock -e '.[cpu,test,lint,models]'
	touch $(STAMP)

install: $(STAMP)  ## Create .venv and install eagerbench with PyTorch, TensorFlow and JAX (CPU)

bench: $(STAMP)  ## Run the default suite and verify on the CPU; tables, plots, README.md -> results/
	$(BIN)/eagerbench run --out results $(ARGS)
	$(BIN)/eagerbench verify --out results
	$(BIN)/python scripts/readme_excerpt.py

bench-full: $(STAMP)  ## The whole grid (every workload's further values, thp companions) -> runs/full/
	$(BIN)/eagerbench run --grid full --out runs/full $(ARGS)
	$(BIN)/eagerbench verify --out runs/full

# The model suite (workloads/zoo): five models per library, training and inference, at batch
# 1 (dispatch-bound here) and 16 (compute-bound), two processes per cell (the second loads the
# first's compiled graphs; the intervals need a spread between processes): 212 cells, most of the
# time in compiling (torch.compile's cold compile of one training step: 17-86 s here). Then a
# torch.utils.benchmark check of one cell, interleaved, beside the suite's interval.
models: $(STAMP)  ## The eager tax of real models (torchvision, timm, HF, Keras 3, Flax) -> results/models/
	$(BIN)/eagerbench run --grid models --repeat 2 --out results/models $(ARGS)
	$(BIN)/python scripts/models_timeit.py results/models
	$(BIN)/eagerbench report results/models > /dev/null

# The release matrix: every tensorflow-cpu minor from 2.12 (the first for Python 3.11), JAX
# from 0.4 to 0.10, and the PyTorch releases the disk allows (PyPI's Linux wheels are CUDA
# builds: about 5 GB each in uv's cache). The grid: the tiny-op dispatch cost (element-wise at
# 10 elements), the crossover (at 1e5) and l-BFGS at batch 10k, history 5, each with its twin.
TF_RELEASES    := 2.12.1 2.13.1 2.14.1 2.15.1 2.16.2 2.17.1 2.18.1 2.19.1 2.20.0 2.21.0
JAX_RELEASES   := 0.4.20 0.4.30 0.5.3 0.6.2 0.7.2 0.8.3 0.9.2 0.10.2
TORCH_RELEASES := 2.0.1 2.3.1 2.6.0 2.9.1 2.13.0
RELEASE_ENVS   := $(foreach v,$(TF_RELEASES),--env tensorflow-cpu==$(v)) \
                  $(foreach v,$(JAX_RELEASES),--env jax==$(v)) \
                  $(foreach v,$(TORCH_RELEASES),--env torch==$(v))
RELEASE_GRID   := -w elementwise --size 10,1e5 -w lbfgs --history 5 --batch 10000

releases: $(STAMP)  ## The eager tax across framework releases -> results/releases/ (about 45 min)
	$(BIN)/eagerbench run $(RELEASE_ENVS) $(RELEASE_GRID) --no-why --no-limits \
	    --out results/releases $(ARGS)
	$(BIN)/python scripts/releases_timeit.py results/releases
	$(BIN)/eagerbench report results/releases > /dev/null

lint: $(STAMP)  ## ruff (style, imports, likely bugs) and mypy (types) over the package and its tests
	$(BIN)/ruff check eagerbench workloads tests scripts examples
	$(BIN)/mypy

test: lint  ## Lint, then the test suite (every tier; Slurm tests skip without a local Slurm)
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
