"""Writes keras_resnext/weights/registry.json: one entry per (model, tag) we can load.

Sources: timm's `default_cfgs` for ResNeXt (tags, Hub repos, eval resolution, crop,
interpolation, licence) and torchvision's weight docs (top-1 of the tv/tv2 tags).
Every tag is downloaded from the timm Hugging Face repo `timm/<model>.<tag>`, whose
`model.safetensors` holds the same tensors in the same layout as the upstream
`.pth` (`source_url`). `top1` is the published ImageNet-1k top-1 where we have it
verified, else null. `default` marks what `weights="imagenet"` loads: the best
permissively licensed tag; models with only CC-BY-NC-4.0 weights have none.

    python weights/make_registry.py
"""

import json
import pathlib

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TV = dict(license="bsd-3-clause", origin="https://github.com/pytorch/vision")
TIMM = dict(license="apache-2.0", origin="https://github.com/huggingface/pytorch-image-models")
GLUON = dict(license="apache-2.0", origin="https://cv.gluon.ai/model_zoo/classification.html",
             interpolation="bicubic")
WSL = dict(license="cc-by-nc-4.0", origin="https://github.com/facebookresearch/WSL-Images")
SEMI = dict(license="cc-by-nc-4.0", origin="https://github.com/facebookresearch/semi-supervised-ImageNet1K-models")
# timm's eval presets
RSB = dict(interpolation="bicubic", crop_pct=0.95, test_input_size=288, test_crop_pct=1.0)
RSB3 = dict(interpolation="bicubic", input_size=160, crop_pct=0.95, test_input_size=224, test_crop_pct=0.95)
TT = dict(interpolation="bicubic", test_input_size=288, test_crop_pct=0.95)
TV2 = dict(input_size=176, test_input_size=224, test_crop_pct=0.965)
FB = "https://dl.fbaipublicfiles.com/semiweaksupervision/model_files/"
PT = "https://download.pytorch.org/models/"
RW = "https://github.com/huggingface/pytorch-image-models/releases/download/"
GL = "https://github.com/rwightman/pytorch-pretrained-gluonresnet/releases/download/v0.1/"

# (model, tag, upstream file, published top-1 or None, provenance/eval settings, default?)
WEIGHTS = [
    ("resnext50_32x4d", "tv2_in1k", PT + "resnext50_32x4d-1a0047aa.pth", 81.198, {**TV, **TV2}, True),
    ("resnext50_32x4d", "tv_in1k", PT + "resnext50_32x4d-7cdf4587.pth", 77.618, TV, False),
    ("resnext50_32x4d", "a1h_in1k", RW + "v0.1-rsb-weights/resnext50_32x4d_a1h-0146ab0a.pth", None, {**TIMM, **RSB}, False),
    ("resnext50_32x4d", "a1_in1k", RW + "v0.1-rsb-weights/resnext50_32x4d_a1_0-b5a91a1d.pth", None, {**TIMM, **RSB}, False),
    ("resnext50_32x4d", "a2_in1k", RW + "v0.1-rsb-weights/resnext50_32x4d_a2_0-efc76add.pth", None, {**TIMM, **RSB}, False),
    ("resnext50_32x4d", "a3_in1k", RW + "v0.1-rsb-weights/resnext50_32x4d_a3_0-3e450271.pth", None, {**TIMM, **RSB3}, False),
    ("resnext50_32x4d", "ra_in1k", RW + "v0.1-weights/resnext50_32x4d_ra-d733960d.pth", None, {**TIMM, **TT}, False),
    ("resnext50_32x4d", "gluon_in1k", GL + "gluon_resnext50_32x4d-e6a097c1.pth", None, GLUON, False),
    ("resnext50_32x4d", "fb_ssl_yfcc100m_ft_in1k", FB + "semi_supervised_resnext50_32x4-ddb3e555.pth", None, SEMI, False),
    ("resnext50_32x4d", "fb_swsl_ig1b_ft_in1k", FB + "semi_weakly_supervised_resnext50_32x4-72679e44.pth", None, SEMI, False),
    ("resnext101_32x4d", "gluon_in1k", GL + "gluon_resnext101_32x4d-b253c8c4.pth", None, GLUON, True),
    ("resnext101_32x4d", "fb_ssl_yfcc100m_ft_in1k", FB + "semi_supervised_resnext101_32x4-dc43570a.pth", None, SEMI, False),
    ("resnext101_32x4d", "fb_swsl_ig1b_ft_in1k", FB + "semi_weakly_supervised_resnext101_32x4-3f87e46b.pth", None, SEMI, False),
    ("resnext101_32x8d", "tv2_in1k", PT + "resnext101_32x8d-110c445d.pth", 82.834, {**TV, **TV2}, True),
    ("resnext101_32x8d", "tv_in1k", PT + "resnext101_32x8d-8ba56ff5.pth", 79.312, TV, False),
    ("resnext101_32x8d", "fb_wsl_ig1b_ft_in1k", PT + "ig_resnext101_32x8-c38310e5.pth", None, WSL, False),
    ("resnext101_32x8d", "fb_ssl_yfcc100m_ft_in1k", FB + "semi_supervised_resnext101_32x8-2cfe2f8b.pth", None, SEMI, False),
    ("resnext101_32x8d", "fb_swsl_ig1b_ft_in1k", FB + "semi_weakly_supervised_resnext101_32x8-b4712904.pth", None, SEMI, False),
    ("resnext101_64x4d", "tv_in1k", PT + "resnext101_64x4d-173b62eb.pth", 83.246, TV, True),
    ("resnext101_64x4d", "c1_in1k", RW + "v0.1-tpu-weights/resnext101_64x4d_c-0d0e0cc0.pth", None, {**TIMM, **RSB}, False),
    ("resnext101_64x4d", "gluon_in1k", GL + "gluon_resnext101_64x4d-f9a8e184.pth", None, GLUON, False),
    ("resnext101_32x16d", "fb_wsl_ig1b_ft_in1k", PT + "ig_resnext101_32x16-c6f796b0.pth", None, WSL, False),
    ("resnext101_32x16d", "fb_ssl_yfcc100m_ft_in1k", FB + "semi_supervised_resnext101_32x16-15fffa57.pth", None, SEMI, False),
    ("resnext101_32x16d", "fb_swsl_ig1b_ft_in1k", FB + "semi_weakly_supervised_resnext101_32x16-f3559a9c.pth", None, SEMI, False),
    ("resnext101_32x32d", "fb_wsl_ig1b_ft_in1k", PT + "ig_resnext101_32x32-e4b90b00.pth", None, WSL, False),
]


def entry(model, tag, source_url, top1, settings, default):
    settings = dict(settings)
    input_size = settings.pop("input_size", 224)
    crop_pct = settings.pop("crop_pct", 0.875)
    return {
        "model": model,
        "tag": tag,
        "hf_hub_id": f"timm/{model}.{tag}",
        "filename": "model.safetensors",
        "sha256": None,
        "source_url": source_url,
        "top1": top1,
        "input_size": input_size,
        "crop_pct": crop_pct,
        "test_input_size": settings.pop("test_input_size", input_size),
        "test_crop_pct": settings.pop("test_crop_pct", crop_pct),
        "interpolation": settings.pop("interpolation", "bilinear"),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "license": settings.pop("license"),
        "origin": settings.pop("origin"),
        "default": default,
    }


def main():
    entries = [entry(*w) for w in WEIGHTS]
    out = pathlib.Path(__file__).resolve().parents[1] / "keras_resnext" / "weights" / "registry.json"
    out.write_text(json.dumps(entries, indent=1) + "\n")
    print(f"wrote {out} ({len(entries)} entries)")


if __name__ == "__main__":
    main()
