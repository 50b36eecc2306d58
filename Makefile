# Quick start: `make demo` trains the main job, `make test` runs the tests.
# Both create .venv (on first use) and install the package with its test extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-tf test-jax bench docs docs-serve api-check api-record clean

# uv resolves the same packages as pip and installs them in parallel: 33 s instead of two minutes
# on the 2-core CI machine. --compile-bytecode writes the .pyc files as pip does: where
# PYTHONDONTWRITEBYTECODE is set (as on CI) every process would otherwise compile TensorFlow's
# Python again, 21 s per start instead of 8. pip stays the fallback (uv ignores pip's
# configuration: a private index that only pip knows still works).
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv && $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[test]' \
		|| $(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keras-resnext train

test: test-tf test-jax

# Three workers (pytest-xdist) on the 2-core CI machine: much of a test's time is single-threaded
# Python (building graphs, starting processes), so with two workers the cores were 88% busy; a third
# fills the gaps (the whole .ci/run 35:20 -> 32:33 there, memory at most 9.7 GiB of 24). Tests go
# out one at a time in collection order, slow ones first (tests/conftest.py), so the long ones start
# early on every worker; worksteal's first split gave them all to one. The main job is trained once.
PYTEST := $(PY) -m pytest -q -n 3 --dist load --maxschedchunk 1 --durations=15

test-tf: $(STAMP)
	$(PYTEST)

# The portable subset again on the JAX backend (tests marked backend_independent are left out: the
# TensorFlow half has run them).
test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PYTEST) -m portable

# The site, from docs/ and the docstrings: --strict makes a broken link or an unresolved
# reference an error.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[test,docs]' \
		|| $(PY) -m pip install --quiet -e '.[test,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs build --strict

docs-serve: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs serve

# The public API against the last release (griffe): a removal or a changed signature fails unless
# CHANGELOG.md names it under "Breaking". The release's API is read from .ci/api/v<version>.json,
# which api-record writes when the release is tagged: a clone without tags checks the same.
api-check: $(STAMP)
	$(PY) .ci/api_changes.py

api-record: $(STAMP)
	$(PY) .ci/api_changes.py --record

bench: $(STAMP)
	$(PY) benchmarks/speed.py --onnx

clean:
	rm -rf $(VENV) runs site .pytest_cache
