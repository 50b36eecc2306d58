#!/usr/bin/env bash
# benchmarks/accelerator.py on a GPU machine that has JAX, PyTorch and timm but no Keras, in one command.
#
#   bash benchmarks/accelerator.sh wheels   # here, where PyPI answers: Keras and the packages it needs that the
#                                           # GPU machine lacks (namex, optree), as Python 3.12 wheels in .whl/
#   bash benchmarks/accelerator.sh run      # there, in the repository root with .whl/ beside it: installs them
#                                           # into /tmp/site, then the JAX run and the torch run (timm's rows),
#                                           # each within 4 minutes, their logs in $OUT (else here)
#
# Options after `run` go to accelerator.py (--batch, --rounds, --precisions ...).
set -uo pipefail
cd "$(dirname "$0")/.."
KERAS_VERSION=${KERAS_VERSION:-$(python3 -c 'import keras; print(keras.__version__)' 2>/dev/null || echo 3.15.1)}
case "${1:-}" in
  wheels)
    rm -rf .whl && mkdir -p .whl || exit 1
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "keras==$KERAS_VERSION" namex optree || exit 1
    # Keras' other needs (absl-py, h5py, ml-dtypes, numpy, packaging, rich) are on the GPU machine already.
    # .whl/ is git-ignored: name it in what travels to the GPU machine.
    ls .whl && du -sh .whl ;;
  run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    out=${OUT:-.}
    status=0
    for backend in jax torch; do
      KERAS_BACKEND=$backend timeout 240 python3 benchmarks/accelerator.py "${@:2}" 2>&1 \
        | tee "$out/accelerator-$backend.log" || { status=1; echo "accelerator.sh: the $backend run failed or ran out of time"; }
    done
    exit $status ;;
  *)
    echo "usage: bash benchmarks/accelerator.sh wheels | run [accelerator.py options]" >&2
    exit 2 ;;
esac
