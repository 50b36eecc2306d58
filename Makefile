# Quick start: `make demo` trains the main job, `make test` runs the tests.
# Both create .venv (on first use) and install the package with its test extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-tf test-jax bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keras-resnext train

test: test-tf test-jax

test-tf: $(STAMP)
	$(PY) -m pytest -q --durations=15

# The portable subset again on the JAX backend.
test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PY) -m pytest -q -m portable --durations=15

bench: $(STAMP)
	$(PY) benchmarks/speed.py --onnx

clean:
	rm -rf $(VENV) runs .pytest_cache
