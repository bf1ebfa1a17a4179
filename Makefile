# The two set-up commands of the README: `make demo` (the main job) and `make test` (the suite).
# Each creates or reuses .venv and installs what it needs with the pinned versions of constraints.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench bench-quick lint clean

# The package builds its native kernel (setup.py) with the venv's jaxlib headers and OpenBLAS,
# installed first and pinned, so the build needs no isolated environment of its own.
$(STAMP): pyproject.toml constraints.txt setup.py jaxrnn/native/lstm.cc
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt setuptools jaxlib scipy-openblas32
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt --no-build-isolation \
		-e '.[torch,test,plots,safetensors]'
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check jaxrnn torchref tests benchmarks
	$(PY) -m mypy jaxrnn torchref

test: lint
	$(PY) -m pytest -q -n auto --doctest-modules jaxrnn tests

demo: $(STAMP)
	$(PY) -m jaxrnn all --framework both --out runs/latest

bench: $(STAMP)
	$(PY) -m benchmarks

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) runs .pytest_cache
