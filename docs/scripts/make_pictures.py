"""Makes the site's pictures in docs/images/ from real runs: `python docs/scripts/make_pictures.py`.

- curves.png, confusion_matrix.png: the main job (`keras-resnext train`, 20-76 s on 2 cores, by CPU), as
  its run folder has them;
- accuracy_vs_cardinality.png, accuracy_vs_speed.png: the recorded search of tuning/results/digits_20m,
  drawn again;
- gradcam_example.png: docs/scripts/gradcam_example.py (a model trained for it, 12 s in all on an AVX-512 EPYC).
"""

import json
import os
import shutil
import sys
import tempfile

import keras_resnext  # noqa: F401 - first: oneDNN on before TensorFlow loads

from keras_resnext import files, jobs, plots, search_report

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
IMAGES = os.path.join(REPO, "docs", "images")


def main_job_pictures():
    with tempfile.TemporaryDirectory() as scratch:
        run = os.path.join(scratch, "run")
        jobs.train(run=jobs.RunOptions(run, verbose=0))
        for name in ("curves.png", "confusion_matrix.png"):
            with files.atomic_path(os.path.join(IMAGES, name)) as tmp:
                shutil.copyfile(os.path.join(run, name), tmp)


def search_picture():
    with open(os.path.join(REPO, "tuning", "results", "digits_20m", "summary.json")) as f:
        summary = json.load(f)
    candidates = summary["candidates"]
    plots.accuracy_vs_cardinality(candidates, summary["budget_macs"],
                                  os.path.join(IMAGES, "accuracy_vs_cardinality.png"))
    front = [row for row in candidates if search_report.candidate_key(row) in summary["pareto_front"]]
    plots.accuracy_vs_speed(candidates, front, summary["budget_macs"], os.path.join(IMAGES, "accuracy_vs_speed.png"))


def main():
    os.makedirs(IMAGES, exist_ok=True)
    main_job_pictures()
    search_picture()
    sys.path.insert(0, HERE)
    import gradcam_example

    gradcam_example.main()


if __name__ == "__main__":
    main()
