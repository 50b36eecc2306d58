"""Writes weights/records/<fixture>.json: how exactly a torchvision checkpoint converts.

The fixture (tests/fixtures/tv_resnext_tiny.*) was made with real torchvision 0.29:
a random ResNeXt in torchvision's layout, inputs, and torchvision's logits and pooled
features. This loads the checkpoint through keras_resnext's converter (from both the
.safetensors and the .pth) and records the largest differences per block form.

    python weights/verify_fixture.py
"""

import json
import pathlib

import keras
import numpy as np

import keras_resnext as kr

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def main():
    meta = json.loads((FIXTURES / "tv_resnext_tiny.json").read_text())
    io = np.load(FIXTURES / "tv_resnext_tiny_io.npz")
    config = dict(depths=meta["depths"], cardinality=meta["cardinality"], bottleneck_width=meta["base_width"])
    record = {"fixture": meta["source"], "keras": keras.__version__, "backend": keras.backend.backend(),
              "max_abs_diff": {}}
    for fmt in ("safetensors", "pth"):
        path = FIXTURES / f"tv_resnext_tiny.{fmt}"
        for form in ("grouped", "concat", "split"):
            logits = kr.ResNeXt(**config, classes=meta["classes"], classifier_activation=None,
                                input_shape=(None, None, 3), weights=path, block_form=form)
            pooled = kr.ResNeXt(**config, include_top=False, pooling="avg", weights=path, block_form=form)
            for side in (64, 75):
                x = io[f"x_nhwc_{side}"]
                record["max_abs_diff"][f"{fmt}/{form}/{side}px"] = {
                    "logits": float(np.abs(logits.predict(x, verbose=0) - io[f"logits_{side}"]).max()),
                    "pooled": float(np.abs(pooled.predict(x, verbose=0) - io[f"pooled_{side}"]).max()),
                }
    out = ROOT / "weights" / "records" / "tv_resnext_tiny.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    worst = max(max(v.values()) for v in record["max_abs_diff"].values())
    print(f"wrote {out}; largest difference {worst:.2e}")


if __name__ == "__main__":
    main()
