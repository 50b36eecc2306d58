# Quick start: `make demo` trains the main job, `make test` runs the tests.
# Both create .venv (on first use) and install the package with its test extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-tf test-jax bench clean

# uv resolves the same packages as pip and installs them in parallel: 20 s instead of two minutes
# on the 2-core CI machine. pip stays the fallback (uv ignores pip's configuration: a private index
# that only pip knows still works).
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv && $(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[test]' \
		|| $(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keras-resnext train

test: test-tf test-jax

# Two workers (pytest-xdist): much of a test's time is single-threaded Python (building graphs,
# starting processes), so two cores run two tests side by side; an idle worker takes queued tests
# from the busy one (worksteal). The main job is trained once for both (tests/conftest.py).
PYTEST := $(PY) -m pytest -q -n 2 --dist worksteal --durations=15

test-tf: $(STAMP)
	$(PYTEST)

# The portable subset again on the JAX backend.
test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PYTEST) -m portable

bench: $(STAMP)
	$(PY) benchmarks/speed.py --onnx

clean:
	rm -rf $(VENV) runs .pytest_cache
