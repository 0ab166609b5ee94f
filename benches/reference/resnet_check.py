#!/usr/bin/env python3
"""Check advlab's resnet against PyTorch and time the same training in PyTorch.

scripts/cifar_models.rhai writes, in out/cifar_models/: the resnet's checkpoint
(resnet.safetensors), its PyTorch module as advlab prints it (resnet_module.json), 1000 test
images (test.safetensors) and advlab's predictions on them (predictions.safetensors). This
script builds the printed module, loads the checkpoint into it with strict names and shapes,
compares the predictions, then trains a fresh copy of the module for one epoch (Adam, lr 1e-3,
batch 128, like advlab's fit) on the same CIFAR-format training files and reports the time.

    python3 benches/reference/resnet_check.py --out out/cifar_models --data /tmp/mnist-cifar --threads 2
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


def read_batches(folder, names, limit=None):
    """CIFAR-10 binary batches: (N, 3, 32, 32) floats in [0, 1] and (N,) labels."""
    raw = b"".join(open(os.path.join(folder, n), "rb").read() for n in names)
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)[:limit]
    x = torch.from_numpy(rec[:, 1:].astype(np.float32) / 255.0).reshape(-1, 3, 32, 32)
    return x, torch.from_numpy(rec[:, 0].astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/cifar_models", help="what scripts/cifar_models.rhai wrote")
    ap.add_argument("--data", required=True, help="folder holding cifar-10-batches-bin (or the batches)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", type=int, default=None, help="first N training images (default all)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    code = json.load(open(os.path.join(args.out, "resnet_module.json")))
    scope = {"torch": torch, "nn": nn, "F": F, "math": math}
    exec(code, scope)
    model = scope["ResNet"]()
    state = load_file(os.path.join(args.out, "resnet.safetensors"))
    model.load_state_dict(state, strict=True)
    model.eval()
    test = load_file(os.path.join(args.out, "test.safetensors"))
    ours = load_file(os.path.join(args.out, "predictions.safetensors"))
    ours = next(iter(ours.values())).long()
    with torch.no_grad():
        theirs = model(test["images"]).argmax(1)
    agree = (theirs == ours).float().mean().item()
    acc_torch = (theirs == test["labels"].long()).float().mean().item()
    acc_ours = (ours == test["labels"].long()).float().mean().item()
    print(f"checkpoint loads into the printed module (strict); predictions agree on {agree:.4f} of "
          f"{len(ours)} test images; accuracy torch {acc_torch:.4f}, advlab {acc_ours:.4f}")

    folder = args.data
    if os.path.isdir(os.path.join(folder, "cifar-10-batches-bin")):
        folder = os.path.join(folder, "cifar-10-batches-bin")
    x, y = read_batches(folder, [f"data_batch_{i}.bin" for i in range(1, 6)], args.train)
    fresh = scope["ResNet"]()
    fresh.train()
    opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    order = torch.randperm(len(x))
    fresh(x[:8]).sum().backward()  # warm-up
    opt.zero_grad()
    start = time.perf_counter()
    for i in range(0, len(x), 128):
        idx = order[i:i + 128]
        loss = F.cross_entropy(fresh(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    secs = time.perf_counter() - start
    print(f"PyTorch {torch.__version__}, {args.threads} threads: one epoch of {len(x)} images in {secs:.1f} s "
          f"({len(x) / secs:.0f} samples/s), last loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
