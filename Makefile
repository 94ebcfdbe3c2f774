# Two commands on a fresh machine: `make run` (PPO training on digits) and `make test`. Both create .venv when missing. torch is installed first and pinned, so
# pip never resolves a bare `torch` (which would pull a multi-GB CUDA build on a CPU machine).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev

.PHONY: run test lint typecheck clean venv

venv: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

run: venv
	$(VENV)/bin/esper train ppo --preset digits

test: venv
	$(PY) -m pytest -n 2 --timeout 600

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy src/esper

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
