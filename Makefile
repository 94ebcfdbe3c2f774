# Two commands on a fresh machine: `make run` (PPO training on digits) and `make test`. Both create
# .venv when missing. torch is installed first and pinned, so pip never resolves a bare `torch`
# (which would pull a multi-GB CUDA build on a CPU machine); every other package is installed at
# the exact version in requirements.lock, the versions the suite last passed on.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,ray,tensorboard,data
LOCK ?= requirements.lock
LATEST_VENV ?= .venv-latest

.PHONY: run test test-threads test-latest lock lint typecheck results-quick clean venv

venv: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --constraint $(LOCK) -e ".[$(EXTRAS)]"
	touch $@

run: venv
	$(VENV)/bin/esper train ppo --preset digits --backend process

test: venv
	$(PY) -m pytest -n 2 --timeout 600

# The suite must not depend on torch's thread count (reductions change order with it).
test-threads: venv
	ESPER_TEST_THREADS=1 $(PY) -m pytest -n 2 --timeout 600
	ESPER_TEST_THREADS=2 $(PY) -m pytest -n 2 --timeout 600

# The suite against the newest versions pip resolves today (torch stays pinned), in a venv of its
# own: drift in numpy, scikit-learn, pydantic or the dev tools shows here before it bites.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade -e ".[$(EXTRAS)]"
	$(LATEST_VENV)/bin/python -m pytest -n 2 --timeout 600 -p no:cacheprovider

# Refresh the lock: the newest versions, written only once the suite passes on them.
lock: test-latest
	{ echo "# Exact versions the suite passes on (torch: the Makefile's TORCH_SPEC). make lock"; \
	  $(LATEST_VENV)/bin/python -m pip freeze --exclude-editable --exclude torch \
		--exclude pip --exclude setuptools --exclude wheel; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)

# The README headline's digits rows in ~11 minutes on 2 cores: PPO from the digits preset, training
# seeds 0 and 1 (40 rounds each, both at once), then static, random, heuristic and both policies
# (untrained and final) on the 10 held-out seeds. Figures go under runs/quick-<time>/.
QUICK_DIR := runs/quick-$(shell date +%Y%m%d-%H%M%S)
results-quick: venv
	$(PY) benchmarks/learning.py --train digits --training-seeds 0,1 --curve 0,40 \
		--no-plan-search --runs-dir $(QUICK_DIR) --figure $(QUICK_DIR)/learning_curve.png

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

typecheck: venv
	$(VENV)/bin/mypy src/esper

clean:
	rm -rf $(VENV) $(LATEST_VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
