# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Setup: Debian packages (when root), a virtual environment, the CPU build of torch (so that no CUDA
# packages are pulled on a machine without a GPU), then crucible-ray itself with its extras.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
APT_PACKAGES := wordnet-base chromium dict-jargon
DEPS_STAMP := $(VENV)/.deps-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup system-deps install test test-fast lint demo findings bench clean

setup: system-deps install

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get install -y -q $$missing >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null)) \
	      || { echo "apt-get install$$missing failed"; exit 1; }; \
	  else echo "warning: Debian packages missing and not root:$$missing (WordNet tests and the WordNet world need wordnet-base)"; fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEPS_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q ".[st,test,datasets,mlflow,wandb]"
	touch $@

# The project itself is installed (not editable) so that tests run against what users get;
# reinstalling it without dependencies takes seconds.
install: $(DEPS_STAMP)
	$(BIN)/pip install -q --no-deps --no-build-isolation --force-reinstall . >/dev/null

test: setup
	$(BIN)/ruff check crucible_ray cli tests benchmarks cluster
	$(BIN)/mypy crucible_ray cli cluster/local_cluster.py
	$(BIN)/pytest -q --durations=30

test-fast: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check crucible_ray cli tests benchmarks cluster
	$(BIN)/mypy crucible_ray cli cluster/local_cluster.py

demo: setup
	$(BIN)/crucible-ray demo --output-dir demo-output

# The tables of docs/findings.md, regenerated (about 25 minutes on 2 cores): the demo's findings, the
# value of validation and the pass rates by miner setting, milestones of one run against separate runs
# (validation and milestones reuse the demo world and its feature cache).
findings: setup
	mkdir -p findings-output
	$(BIN)/crucible-ray demo --output-dir findings-output/demo | tee findings-output/demo.txt
	$(BIN)/python benchmarks/validation_value.py --world findings-output/demo/world | tee findings-output/validation_value.md
	$(BIN)/python benchmarks/milestones.py --world findings-output/demo/world --steps 250,1000 | tee findings-output/milestones.md

bench: setup
	$(BIN)/pip install -q ".[bench]"
	$(BIN)/python benchmarks/metrics.py
	$(BIN)/python benchmarks/mining.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/gpu.py $$($(BIN)/python -c "import torch; print('' if torch.cuda.is_available() else '--cpu')")

clean:
	rm -rf $(VENV) build *.egg-info demo-output findings-output
