# Two entry points, both self-contained on a fresh machine:
#   make demo   - create .venv, install, run `mirage demo`
#   make test   - create .venv, install, run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# The CPU build of torch lies on this disk; installing it first keeps pip from pulling a
	# multi-GB CUDA build when a dependency asks for torch.
	$(PY) -m pip install --quiet torch==2.13.0
	# the test extra builds llama-cpp-python from source: give its cmake build every core
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install --quiet -e '.[all,test]'
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/mirage demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n 2

bench: $(STAMP)
	$(PY) benchmarks/analyze_scale.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
