"""What measuring each candidate's speed adds to a search: the same search with and without it.

Runs `jobs.tune` on the embedded digits (1 epoch, the grid of 4 cardinalities at 20M MACs,
one seed each) with `measure_speed=True` and `False`, alternately, `--rounds` times each,
in this process (each search in a fresh folder), and prints the median search time of each
and their ratio. The first search of the process (TensorFlow's warm-up) is not counted.

    python benchmarks/tune_cost.py [--rounds 3] [--precision auto]

Label the figures with the CPU they ran on (`keras-resnext info`).
"""

import argparse
import contextlib
import io
import statistics
import tempfile

import keras_resnext  # noqa: F401  (oneDNN on before TensorFlow loads)
from keras_resnext import jobs


def search(folder, measure_speed, precision):
    with contextlib.redirect_stdout(io.StringIO()):
        summary = jobs.tune("digits", budget="20M", max_trials=4, epochs=1, output=folder, tuner="grid",
                            cardinalities=(1, 4, 8, 32), repeats=1, verbose=0, precision=precision,
                            measure_speed=measure_speed)
    return summary["search_seconds"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    seconds = {True: [], False: []}
    with tempfile.TemporaryDirectory() as root:
        search(f"{root}/warm-up", False, args.precision)
        for i in range(args.rounds):
            for measure in (False, True) if i % 2 == 0 else (True, False):
                seconds[measure].append(search(f"{root}/{i}-{measure}", measure, args.precision))
    plain, measured = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(f"search of 4 candidates, 1 epoch, digits: {plain:.2f} s without measuring, {measured:.2f} s with "
          f"(medians of {args.rounds}); measuring adds {measured / plain - 1:+.1%}")
    print(f"  without: {', '.join(f'{s:.2f}' for s in seconds[False])}")
    print(f"  with:    {', '.join(f'{s:.2f}' for s in seconds[True])}")


if __name__ == "__main__":
    main()
