# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
PIP     := $(VPY) -m pip
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.neuroflow-setup
DEVSTAMP:= $(VENV)/.neuroflow-setup-dev
CONFIG  ?= configs/quickstart.yaml

.PHONY: setup setup-dev demo test test-slow bench clean

setup: $(STAMP)
setup-dev: $(DEVSTAMP)

# The stamps depend on the files that define the environment, so an edit re-runs set-up
# and an unchanged, complete environment is reused.
$(STAMP): pyproject.toml Makefile
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e .
	$(VPY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else 'torch was replaced: ' + v)"
	touch $@

$(DEVSTAMP): $(STAMP)
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps spikingjelly==2.0.0 norse==1.1.0 neurobench==2.3.0 sinabs==3.1.3 tonic==1.7.0 importRosbag==1.0.4
	$(PIP) install -q --no-build-isolation xylosim==0.1.3
	$(VPY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else 'torch was replaced: ' + v)"
	touch $@

demo: setup
	$(VENV)/bin/neuroflow train $(CONFIG) --overwrite

test: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VPY) -m pytest -q

test-slow: setup-dev
	$(VPY) -m pytest -q -m slow

bench: setup-dev
	$(VPY) benchmarks/bench_neurons.py
	$(VPY) benchmarks/bench_sparse_conv.py
	$(VPY) benchmarks/bench_e3dsnn_inference.py
	$(VPY) benchmarks/bench_attention.py
	$(VPY) benchmarks/bench_energy_overhead.py
	$(VPY) benchmarks/bench_nir.py
	$(VPY) benchmarks/bench_emulator.py
	$(VPY) benchmarks/bench_lsm.py

clean:
	rm -rf $(VENV) build *.egg-info
