"""Makes docs/images/gradcam_example.png, the Grad-CAM guide's picture: `python docs/scripts/gradcam_example.py`.

A small ResNeXt learns that the colour of a 6x6 patch at a random place decides the class (5 s of
training on 2 cores of an AVX-512 EPYC); Grad-CAM at P2 (stride 4) then shows where it looked, for
four test images.
"""

import os
import sys

import keras_resnext as kr  # first: oneDNN on before TensorFlow loads
import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))
from test_explain import patch_images  # noqa: E402 - the test's own synthetic images

from keras_resnext import explain, files  # noqa: E402


def main():
    keras.utils.set_random_seed(0)
    model = kr.ResNeXt((1, 1), 4, 4, classes=3, input_shape=(32, 32, 3))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    x, y, _ = patch_images(900, seed=1)
    model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    test, labels, _ = patch_images(4, seed=5)
    heatmaps = explain.gradcam(model, test, level="P2")
    probabilities = model.predict(test, verbose=0)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(8, 4.4))
    for i in range(4):
        axes[0, i].imshow((test[i] * 255).astype("uint8"), interpolation="nearest")
        axes[0, i].set_title(f"class {'RGB'[labels[i]]}", fontsize=9)
        axes[1, i].imshow(explain.overlay(test[i], heatmaps[i]), interpolation="nearest")
        predicted = int(np.argmax(probabilities[i]))
        axes[1, i].set_title(f"predicted {'RGB'[predicted]} ({probabilities[i, predicted]:.0%})", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    with files.atomic_path(os.path.join(os.path.dirname(__file__), "..", "images", "gradcam_example.png")) as tmp:
        fig.savefig(tmp, dpi=60, format="png")


if __name__ == "__main__":
    main()
