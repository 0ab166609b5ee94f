#!/usr/bin/env python3
"""Time PreAct ResNet-18 training on CIFAR-sized images in PyTorch, as
scripts/reproduce/cifar_pgd_at.rhai trains it in advlab: batch 128, SGD momentum 0.9, weight
decay 5e-4, random crop (padding 4) and flip, and per batch either the clean images ("plain")
or PGD-10 samples at eps 8/255, step 2/255, random start, crafted in training mode as
fast_adversarial's train_pgd.py does ("pgd10").

    python3 benches/reference/preact_bench.py --data /tmp/mnist-cifar --train 512 --threads 2

--data is a folder of CIFAR-10 binary batches (benches/reference/mnist_as_cifar.py writes MNIST
in that format). Prints seconds per sample and per 50k-image epoch for each mode, timed over the
whole epoch as advlab's `fit` reports it.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from batchnorm_check import PreActResNet18  # noqa: E402


def load(folder, n):
    """The first n training records of data_batch_1.bin …, as (N, 3, 32, 32) floats and labels."""
    folder = os.path.join(folder, "cifar-10-batches-bin") if os.path.isdir(
        os.path.join(folder, "cifar-10-batches-bin")) else folder
    recs = []
    for i in range(1, 6):
        raw = np.fromfile(os.path.join(folder, f"data_batch_{i}.bin"), dtype=np.uint8).reshape(-1, 3073)
        recs.append(raw)
        if sum(len(r) for r in recs) >= n:
            break
    raw = np.concatenate(recs)[:n]
    x = torch.tensor(raw[:, 1:].reshape(-1, 3, 32, 32), dtype=torch.float32) / 255.0
    return x, torch.tensor(raw[:, 0], dtype=torch.int64)


def augment(x, g):
    """Random crop with padding 4 and horizontal flip, per sample."""
    padded = F.pad(x, (4, 4, 4, 4))
    out = torch.empty_like(x)
    dx = torch.randint(0, 9, (len(x),), generator=g)
    dy = torch.randint(0, 9, (len(x),), generator=g)
    flip = torch.rand(len(x), generator=g) < 0.5
    for i in range(len(x)):
        c = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        out[i] = c.flip(2) if flip[i] else c
    return out


def pgd(model, x, y, eps=8 / 255, alpha=2 / 255, steps=10):
    delta = (torch.rand_like(x) * 2 - 1) * eps
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y)
        g, = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def epoch(model, opt, x, y, mode, batch=128):
    g = torch.Generator().manual_seed(0)
    model.train()
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        xb, yb = augment(x[i:i + batch], g), y[i:i + batch]
        if mode == "pgd10":
            xb = pgd(model, xb, yb)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start, len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--train", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="plain,pgd10")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y = load(args.data, args.train)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {len(x)} images")
    for mode in args.modes.split(","):
        torch.manual_seed(1)
        model = PreActResNet18()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        secs, n = epoch(model, opt, x, y, mode)
        print(f"preact_{mode}: {secs:.2f} s for {n} samples, {secs / n * 1000:.1f} ms/sample, "
              f"{secs / n * 50000 / 60:.1f} min per 50k epoch")


if __name__ == "__main__":
    main()
