#!/usr/bin/env python3
"""PyTorch CPU reference benchmark for advlab (MNIST training + FGSM/PGD attacks).

Example:
    python3 benches/reference/torch_bench.py --data ../shared/data/mnist --threads 2 --out torch.json
"""
import argparse
import gzip
import json
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WORKLOADS = ["mlp_epoch", "cnn_epoch", "mlp_fgsm", "mlp_pgd20", "cnn_fgsm", "cnn_pgd20"]
BATCH, LR, EPS, PGD_STEPS = 128, 1e-3, 0.3, 20


def read_idx(data_dir, name):
    """Read an IDX file (gzipped or plain) into a numpy array."""
    for fname in (name + ".gz", name):
        path = os.path.join(data_dir, fname)
        if os.path.exists(path):
            opener = gzip.open if fname.endswith(".gz") else open
            with opener(path, "rb") as f:
                raw = f.read()
            break
    else:
        raise FileNotFoundError(f"{name}(.gz) not found in {data_dir}")
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    assert magic >> 8 == 0x08, f"{name}: unsupported IDX magic {magic:#x} (expected ubyte)"
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(data_dir, prefix, limit):
    x = read_idx(data_dir, f"{prefix}-images-idx3-ubyte")[:limit]
    y = read_idx(data_dir, f"{prefix}-labels-idx1-ubyte")[:limit]
    x = torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return x, torch.from_numpy(y.astype(np.int64))


def make_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def make_cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    correct = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item() for i in range(0, len(x), 1000))
    return correct / len(x)


def train_epoch(model, x, y, seed):
    """One Adam epoch over (x, y); returns elapsed seconds (warm-up excluded)."""
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    # Warm-up: forward/backward on a small batch without an optimizer step (params unchanged).
    F.cross_entropy(model(x[:16]), y[:16]).backward()
    opt.zero_grad(set_to_none=True)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        idx = perm[i:i + BATCH]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def input_grad(model, x, y):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def fgsm(model, x, y, eps=EPS):
    return (x + eps * input_grad(model, x, y).sign()).clamp(0, 1)


def pgd(model, x, y, eps=EPS, steps=PGD_STEPS):
    alpha = 2.5 * eps / steps
    adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        adv = adv + alpha * input_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv


def run_attack(model, attack, x, y):
    """Attack the whole set in batches; returns (seconds, robust accuracy)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    attack(model, x[:16], y[:16])  # warm-up
    correct = 0
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        xb, yb = x[i:i + BATCH], y[i:i + BATCH]
        adv = attack(model, xb, yb)
        with torch.no_grad():
            correct += (model(adv).argmax(1) == yb).sum().item()
    return time.perf_counter() - t0, correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/mnist", help="directory with MNIST IDX files")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated subset of " + ",".join(WORKLOADS))
    ap.add_argument("--limit", type=int, default=None, help="cap train/test sample counts (smoke runs)")
    ap.add_argument("--out", default=None, help="write results as JSON to this file")
    args = ap.parse_args()

    only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(only) - set(WORKLOADS)
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    xtr, ytr = load_split(args.data, "train", args.limit)
    xte, yte = load_split(args.data, "t10k", args.limit)
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, train={len(xtr)}, test={len(xte)}")

    results = {}
    for kind, make in (("mlp", make_mlp), ("cnn", make_cnn)):
        wanted = [w for w in only if w.startswith(kind + "_")]
        if not wanted:
            continue
        # The attacks need the trained model, so train it even if only attacks were asked for.
        seed_all(args.seed)
        model = make()
        secs = train_epoch(model, xtr, ytr, args.seed)
        acc = accuracy(model, xte, yte)
        if f"{kind}_epoch" in wanted:
            results[f"{kind}_epoch"] = {"seconds": secs, "samples": len(xtr), "accuracy": acc}
        for name, attack in ((f"{kind}_fgsm", fgsm), (f"{kind}_pgd20", pgd)):
            if name in wanted:
                seed_all(args.seed)
                secs, rob = run_attack(model, attack, xte, yte)
                results[name] = {"seconds": secs, "samples": len(xte), "accuracy": rob}

    print(f"\n{'workload':<12} {'seconds':>9} {'samples':>8} {'samples/s':>10} {'accuracy':>9}")
    for name in WORKLOADS:
        if name in results:
            r = results[name]
            print(f"{name:<12} {r['seconds']:>9.3f} {r['samples']:>8} {r['samples'] / r['seconds']:>10.1f} "
                  f"{r['accuracy']:>9.4f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch_version": torch.__version__, "threads": args.threads, "device": "cpu",
                       "results": results}, f, indent=2)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
