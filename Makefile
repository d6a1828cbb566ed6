# Entry points, each self-contained on a fresh machine:
#   make demo   - create .venv, install, run `mirage demo`
#   make test   - create .venv, install, run the whole test suite (the docstrings' examples too)
#   make fast   - the fast lane: every test but the slow ones (-m "not slow")
#   make lint   - ruff check, ruff format --check, mypy
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# The CPU build of torch lies on this disk; installing it first keeps pip from pulling a
	# multi-GB CUDA build when a dependency asks for torch.
	$(PY) -m pip install --quiet torch==2.13.0
	# the test extra builds llama-cpp-python from source: give its cmake build every core
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install --quiet -e '.[all,test,lint]'
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/mirage demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n 2

fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n 2 -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/analyze_scale.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
