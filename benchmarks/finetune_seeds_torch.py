"""The job of benchmarks/finetune_seeds.py in PyTorch, on the package's own batches: the reference's pass count.

Run it with a Python that has torch and torchvision (not a dependency of the
package), on the batches `finetune_seeds.py --export DIR` wrote:

    python benchmarks/finetune_seeds_torch.py DIR [--from-scratch]

The same two phases as `keras-resnext train` fine-tuning: one epoch with the
backbone frozen (its BatchNorms in eval mode, as Keras runs a frozen layer), then
every layer for the other three; each phase with the CIFAR recipe's optimizer,
`torch.optim.SGD(momentum=0.9, nesterov=True, weight_decay=5e-4)` at lr 0.1 per 128
images, / 10 at 50% and 75% of the phase's steps (`MultiStepLR`, stepped per batch).
The new head is torchvision's `nn.Linear`. From scratch: torchvision's initial
weights, one phase of all four epochs.
"""

import argparse
import glob
import os
import statistics

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

PASS = 0.8
CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                          "tv_resnext_tiny.pth")
FROZEN_EPOCHS = 1


def tiny_resnext(classes, pretrained):
    model = ResNet(Bottleneck, [1, 1, 1, 1], groups=8, width_per_group=4, num_classes=10)
    if pretrained:
        model.load_state_dict(torch.load(CHECKPOINT, map_location="cpu"))
    model.fc = nn.Linear(model.fc.in_features, classes)
    return model


def train_phase(model, parameters, batches, batch_size, frozen_backbone):
    steps = sum(len(x) for x, _ in batches)
    optimizer = torch.optim.SGD(parameters, lr=0.1 * batch_size / 128, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(0.5 * steps), int(0.75 * steps)], 0.1)
    for epoch_x, epoch_y in batches:
        for x, y in zip(epoch_x, epoch_y):
            model.train()
            if frozen_backbone:
                for module in model.modules():
                    if isinstance(module, nn.BatchNorm2d):
                        module.eval()
            loss = nn.functional.cross_entropy(model(torch.from_numpy(x).permute(0, 3, 1, 2)),
                                               torch.from_numpy(y).long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()


def run(path, from_scratch):
    data = np.load(path)
    classes, batch_size = int(data["classes"]), data["train_x"].shape[2]
    epochs = [(data["train_x"][e], data["train_y"][e]) for e in range(len(data["train_x"]))]
    model = tiny_resnext(classes, pretrained=not from_scratch)
    if from_scratch:
        train_phase(model, model.parameters(), epochs, batch_size, frozen_backbone=False)
    else:
        for parameter in model.parameters():
            parameter.requires_grad = False
        for parameter in model.fc.parameters():
            parameter.requires_grad = True
        train_phase(model, model.fc.parameters(), epochs[:FROZEN_EPOCHS], batch_size, frozen_backbone=True)
        for parameter in model.parameters():
            parameter.requires_grad = True
        train_phase(model, model.parameters(), epochs[FROZEN_EPOCHS:], batch_size, frozen_backbone=False)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data["test_x"]).permute(0, 3, 1, 2))
    return float((logits.argmax(-1).numpy() == data["test_y"]).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("batches", help="the folder finetune_seeds.py --export wrote")
    parser.add_argument("--from-scratch", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    paths = sorted(glob.glob(os.path.join(args.batches, "seed*.npz")), key=lambda p: int(p[:-4].rsplit("seed", 1)[1]))
    print(f"torch {torch.__version__}; {'from scratch' if args.from_scratch else 'fine-tuning tv_resnext_tiny'}")
    accuracies = []
    for path in paths:
        torch.manual_seed(int(path[:-4].rsplit("seed", 1)[1]))
        accuracies.append(run(path, args.from_scratch))
        print(f"{os.path.basename(path)}: test accuracy {accuracies[-1]:.3f}", flush=True)
    print(f"passes (>= {PASS}): {sum(a >= PASS for a in accuracies)} of {len(accuracies)}; "
          f"mean {statistics.mean(accuracies):.3f}; min {min(accuracies):.3f}")


if __name__ == "__main__":
    main()
