#!/usr/bin/env python3
"""Robust accuracy under AutoAttack's attacks: torchattacks' APGD (CE and DLR), APGDT, FAB
(multi-targeted, FAB-T), Square and the standard sequence against advlab's apgd / apgd_t / fab_t /
square / autoattack on the same weights and images.

Reads, from --dir, what `scripts/autoattack_check.rhai` writes:
    model.safetensors   Model.save (nn.Sequential names, architecture in `advlab.arch`)
    clean.safetensors   Dataset.save of the test images and labels
    advlab.json         advlab's robust accuracies (keys apgd_ce, apgd_dlr, apgd_t, fab_t, square,
                        autoattack) and eps, steps, queries
runs torchattacks with the same eps, steps, restarts, rho and queries, and prints both per attack
with the difference in points. torchattacks' own AutoAttack runs APGD and FAB with 10 steps; the
sequence here is its MultiAttack of APGD, APGDT, FAB-T (`steps` each) and Square (5000 queries),
AutoAttack's standard settings. Square is random search: expect its difference to be noise of a
few images. Exit status 1 when a difference exceeds --tolerance (default 0.5 point).

    pip install torchattacks safetensors
    python3 benches/reference/apgd_check.py --dir out/autoattack_check --threads 2
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack_check import load_dataset, load_model  # noqa: E402

try:
    import torchattacks
except Exception as e:  # pragma: no cover
    sys.exit(f"apgd_check.py needs torchattacks ({type(e).__name__}: {e}): pip install torchattacks")


def robust_accuracy(model, attack, x, y, batch):
    correct, seconds = 0, 0.0
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        t = time.perf_counter()
        adv = attack(xb, yb)
        seconds += time.perf_counter() - t
        with torch.no_grad():
            correct += (model(adv).argmax(1) == yb).sum().item()
    return correct / len(x), seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--tolerance", type=float, default=0.5, help="points of robust accuracy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the comparison as JSON")
    ap.add_argument("--only", help="comma-separated attacks to run (default: every one advlab.json has)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, arch = load_model(os.path.join(args.dir, "model.safetensors"))
    x, y, _ = load_dataset(os.path.join(args.dir, "clean.safetensors"))
    ours = json.load(open(os.path.join(args.dir, "advlab.json")))
    eps, steps = ours["eps"], ours["steps"]
    fab_t = torchattacks.FAB(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, multi_targeted=True,
                             n_classes=10, seed=args.seed)
    attacks = {
        "apgd_ce": torchattacks.APGD(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, loss="ce",
                                     rho=0.75, seed=args.seed),
        "apgd_dlr": torchattacks.APGD(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, loss="dlr",
                                      rho=0.75, seed=args.seed),
        "apgd_t": torchattacks.APGDT(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, n_classes=10,
                                     rho=0.75, seed=args.seed),
        "fab_t": fab_t,
        "square": torchattacks.Square(model, norm="Linf", eps=eps, n_queries=ours.get("queries", 5000), n_restarts=1,
                                      p_init=0.8, seed=args.seed),
        "autoattack": torchattacks.MultiAttack([
            torchattacks.APGD(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, loss="ce", seed=args.seed),
            torchattacks.APGDT(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, n_classes=10, seed=args.seed),
            fab_t,
            torchattacks.Square(model, norm="Linf", eps=eps, n_queries=5000, n_restarts=1, p_init=0.8, seed=args.seed),
        ]),
    }
    print(f"model {arch}, {len(x)} images, eps {eps}, {steps} steps, torchattacks {torchattacks.__version__}")
    print(f"{'attack':10} {'torchattacks':>12} {'advlab':>8} {'diff (pt)':>10} {'torch s':>8}")
    rows, bad = [], False
    for name, attack in attacks.items():
        if name not in ours or (args.only and name not in args.only.split(",")):
            continue
        acc, secs = robust_accuracy(model, attack, x, y, args.batch)
        diff = 100 * (ours[name] - acc)
        bad |= abs(diff) > args.tolerance
        rows.append({"attack": name, "torchattacks": acc, "advlab": ours[name], "diff_points": diff, "torch_seconds": secs})
        print(f"{name:10} {acc:12.4f} {ours[name]:8.4f} {diff:10.2f} {secs:8.1f}")
    if args.out:
        json.dump({"eps": eps, "steps": steps, "images": len(x), "rows": rows}, open(args.out, "w"), indent=1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
