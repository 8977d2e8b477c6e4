# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Each sets up its own virtual environment (.venv) with an editable install (see DESIGN.md:
# the top-level folders map to braggscope.* subpackages, which needs `pip install -e`).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, as the CPU wheel already on the machine: a bare requirement would pull CUDA
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/braggscope demo --out demo_output

# PyNX (the PyNX backend and the benchmark's peer) from Debian's package; its tests skip without it
.deps/pynx:
	-.ci/get-pynx

# LaueTools (the Laue forward model's reference) without its GUI dependencies (wxPython, ...):
# --no-deps plus what its simulation imports; its tests skip if this fails
$(VENV)/.lauetools: $(VENV)/.installed
	-$(BIN)/pip install -q --no-deps "lauetools==3.2.19" && $(BIN)/pip install -q pyyaml networkx && touch $@

test: $(VENV)/.installed .deps/pynx $(VENV)/.lauetools
	PYTHONPATH=$(CURDIR)/.deps/pynx $(BIN)/python -m pytest

bench: $(VENV)/.installed .deps/pynx $(VENV)/.lauetools
	PYTHONPATH=$(CURDIR)/.deps/pynx $(BIN)/braggscope bench simulate
	PYTHONPATH=$(CURDIR)/.deps/pynx $(BIN)/braggscope bench retrieval
	$(BIN)/pip install -q cdiutils  # the strain benchmark's peers: cdiutils, and bcdi without its pins (NumPy 1.26, Python < 3.12)
	$(BIN)/pip install -q --no-deps bcdi==0.2.3
	$(BIN)/braggscope bench strain
	$(BIN)/braggscope bench strain_tensor
	$(BIN)/braggscope bench identify
	$(BIN)/braggscope bench neural_retrieval
	$(BIN)/braggscope bench acquisition
	$(BIN)/braggscope bench pattern_classifier
	$(BIN)/braggscope bench tem
	$(BIN)/braggscope bench laue
	$(BIN)/braggscope bench pipeline

clean:
	rm -rf $(VENV) demo_output *.egg-info .deps
