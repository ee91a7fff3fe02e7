# Two entry points for a fresh clone: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first, pinned, so pip takes the wheels this machine has on disk instead of resolving
# a different (multi-GB) build; override TORCH_SPEC for another platform or CUDA version.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.medclass-installed
# pytest-xdist workers for `make test`; each file's tests stay on one worker (its module fixtures are built once).
# On 2 cores two workers of one thread each took the suite from 583 s to 318 s; more need more memory (a few GB each).
TEST_WORKERS ?= 2

.PHONY: demo test bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medclass demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf runs .pytest_cache
