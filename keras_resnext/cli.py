"""The `keras-resnext` command line."""

import argparse
import os
import sys


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_named(name, **kwargs):
    """A named constructor (`ResNeXt50`) or variant (`resnext50_32x4d`) called with `kwargs`."""
    from keras_resnext.models import CONSTRUCTORS

    constructor = CONSTRUCTORS.get(name)
    if constructor is None:
        raise SystemExit(
            f"keras-resnext: unknown model {name!r}; choose one of {', '.join(CONSTRUCTORS)}."
        )
    return constructor(**kwargs)


def cmd_summary(args):
    import keras

    from keras_resnext.flops import _layer_macs

    from keras_resnext.models import CONSTRUCTORS, VARIANTS

    if args.input_size is None:
        variant = getattr(CONSTRUCTORS.get(args.model), "variant", None)
        args.input_size = 32 if VARIANTS.get(variant, {}).get("stem") == "cifar" else 224
    model = build_named(args.model, weights=None, input_shape=(args.input_size, args.input_size, 3))
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shape = (1, *layer.input.shape[1:])
        rows.append((layer.name, type(layer).__name__, str(tuple(layer.output.shape[1:])),
                     layer.count_params(), _layer_macs(layer, shape)))
    width = max(len(r[0]) for r in rows)
    print(f"{model.name}  input {args.input_size}x{args.input_size}x3")
    print(f"{'layer':{width}s}  {'type':20s} {'output':18s} {'params':>12s} {'MACs':>15s}")
    for name, kind, out, params, macs in rows:
        print(f"{name:{width}s}  {kind:20s} {out:18s} {params:12,d} {macs:15,d}")
    trainable = sum(int(v.numpy().size) for v in model.trainable_weights)
    print(f"{'total':{width}s}  {'':20s} {'':18s} {model.count_params():12,d} {sum(r[4] for r in rows):15,d}")
    print(f"trainable parameters: {trainable:,d}")


def main(argv=None):
    _quiet_tensorflow()
    parser = argparse.ArgumentParser(prog="keras-resnext", description="ResNeXt for Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="layer, parameter and MAC table of a model")
    p.add_argument("model", help="e.g. ResNeXt50")
    p.add_argument("--input-size", type=int, default=None, help="image side (default: the model's)")
    p.set_defaults(func=cmd_summary)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
