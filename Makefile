# The two set-up commands of the README: `make demo` (the main job) and `make test` (the suite).
# Each creates or reuses .venv and installs what it needs with the pinned versions of constraints.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench bench-quick lint clean asan

# The package builds its native kernel (setup.py) with the venv's jaxlib headers and OpenBLAS,
# installed first and pinned, so the build needs no isolated environment of its own.
$(STAMP): pyproject.toml constraints.txt setup.py jaxrnn/native/lstm.cc jaxrnn/native/lstm_simd.inc
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

# The native kernel's tests on an AddressSanitizer build of it (JAXRNN_NATIVE_LIBRARY picks that build).
ASAN_SO := build/asan/_lstm_kernel_asan.so
asan: $(STAMP)
	mkdir -p build/asan
	g++ -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address -mavx2 -mfma -pthread -fPIC -shared \
		-isystem "$$($(PY) -c 'import jax; print(jax.ffi.include_dir())')" \
		-I"$$($(PY) -c 'import scipy_openblas32 as s; print(s.get_include_dir())')" jaxrnn/native/lstm.cc \
		-L"$$($(PY) -c 'import scipy_openblas32 as s; print(s.get_lib_dir())')" -lscipy_openblas -o $(ASAN_SO)
	LD_PRELOAD="$$(g++ -print-file-name=libasan.so) $$(g++ -print-file-name=libstdc++.so)" ASAN_OPTIONS=detect_leaks=0 JAXRNN_NATIVE_LIBRARY=$(ASAN_SO) \
		$(PY) -m pytest -q -p no:xdist tests/native

bench: $(STAMP)
	$(PY) -m benchmarks

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) runs .pytest_cache
