#!/usr/bin/env python3
"""Cross-implementation check of advlab's attacks against PyTorch (and torchattacks, if installed).

Reads, from --dir, files written by advlab:
    model.safetensors     Model.save (nn.Sequential state_dict names, architecture in metadata `advlab.arch`)
    clean.safetensors     Dataset.save of the clean samples (`images` (N,1,28,28) f32, `labels` (N,) u32)
    fgsm.safetensors      FGSM, eps 0.1
    bim.safetensors       PGD-Linf without random start (BIM), eps 0.1, 10 steps, alpha 0.025, no keep-best
    pgdl2.safetensors     PGD-L2 without random start, eps 1.0, 10 steps, alpha 0.25, no keep-best
    cw.safetensors        (optional) Carlini-Wagner L2 with the torch_bench.py defaults (advlab's cw_l2 defaults)
    deepfool.safetensors  (optional) DeepFool L2 with the torch_bench.py defaults
recomputes each attack from the clean samples with the algorithms of torch_bench.py, and compares.
Missing attack files are skipped with a note. Exit status: 0 agreement good, 1 poor agreement
(or an advlab output outside its eps ball / [0,1]), 2 missing inputs.

Example:
    python3 benches/reference/attack_check.py --dir out/check --threads 1 --out check.json
"""
import argparse
import json
import os
import re
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_bench as tb  # noqa: E402  (the reference attack implementations)

try:
    from safetensors import safe_open
except ImportError:  # pragma: no cover
    sys.exit("attack_check.py needs the safetensors package: pip install safetensors")

try:
    import torchattacks
except Exception as e:  # ImportError, or a broken dependency
    torchattacks = None
    TORCHATTACKS_ERROR = f"{type(e).__name__}: {e}"
else:
    TORCHATTACKS_ERROR = None

PIXEL_TOL = 1e-5


# --------------------------------------------------------------------------------------------- loading

def parse_arch(text):
    """advlab's `advlab.arch` metadata: JSON ({"kind":"mlp","layers":[...]} or {"kind":"cnn","channels":1,
    "height":28,"width":28,"classes":10}); the display form `mlp([784, 64, 10])` / `cnn()` is accepted too."""
    text = text.strip()
    if text.startswith("{"):
        return json.loads(text)
    m = re.fullmatch(r"mlp\(\s*\[([\d,\s]+)\]\s*\)", text)
    if m:
        return {"kind": "mlp", "layers": [int(v) for v in m.group(1).split(",") if v.strip()]}
    if text.startswith("cnn("):
        return {"kind": "cnn"}
    raise ValueError(f"unknown advlab.arch {text!r}")


def build_model(arch):
    if arch["kind"] == "mlp":
        layers = arch["layers"]
        mods = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(layers[:-1], layers[1:])):
            if i:
                mods.append(nn.ReLU())
            mods.append(nn.Linear(a, b))
        return nn.Sequential(*mods)
    if arch["kind"] == "cnn":
        c, h, w = arch.get("channels", 1), arch.get("height", 28), arch.get("width", 28)
        classes = arch.get("classes", 10)
        return nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(),
                             nn.Linear(128, classes))
    raise ValueError(f"unknown architecture kind {arch['kind']!r}")


def load_model(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    if "advlab.arch" not in meta:
        raise ValueError(f"{path}: no advlab.arch metadata (keys: {sorted(meta)})")
    arch = parse_arch(meta["advlab.arch"])
    model = build_model(arch)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, meta["advlab.arch"]


def load_dataset(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        images = f.get_tensor("images").float().contiguous()
        labels = f.get_tensor("labels").to(torch.int64)  # stored as u32
    return images, labels, meta


# --------------------------------------------------------------------------------------------- attacks

def attacks_table(cw_steps=tb.CW_STEPS, cw_lr=tb.CW_LR):
    """name -> (parameters, torch reference fn(model, x, y), torchattacks factory or None, kind).
    kind "exact": deterministic, per-sample independent attacks, expected to agree to float rounding;
    "approx": CW / DeepFool, whose outputs sit on the decision boundary, checked more loosely."""
    ta = torchattacks
    return {
        "fgsm": ({"eps": 0.1},
                 lambda m, x, y: tb.fgsm(m, x, y, eps=0.1),
                 (lambda m: ta.FGSM(m, eps=0.1)) if ta else None, "exact"),
        "bim": ({"eps": 0.1, "steps": 10, "alpha": 0.025, "random_start": False},
                lambda m, x, y: tb.bim(m, x, y, eps=0.1, steps=10, alpha=0.025),
                (lambda m: ta.BIM(m, eps=0.1, alpha=0.025, steps=10)) if ta else None, "exact"),
        "pgdl2": ({"eps": 1.0, "steps": 10, "alpha": 0.25, "random_start": False},
                  lambda m, x, y: tb.pgd_l2(m, x, y, eps=1.0, steps=10, alpha=0.25, random_start=False),
                  (lambda m: ta.PGDL2(m, eps=1.0, alpha=0.25, steps=10, random_start=False)) if ta else None,
                  "exact"),
        # torchattacks' CW has no binary search and its DeepFool uses the labels and another step rule:
        # not the same computation, so no torchattacks comparison for these two.
        "cw": ({"c": 1.0, "kappa": 0.0, "steps": cw_steps, "binary_search_steps": 5, "lr": cw_lr},
               lambda m, x, y: tb.cw_l2(m, x, y, steps=cw_steps, lr=cw_lr), None, "approx"),
        "deepfool": ({"steps": 50, "overshoot": 0.02, "candidates": 10},
                     lambda m, x, y: tb.deepfool(m, x, y), None, "approx"),
    }


def run_batched(fn, x, y, batch):
    return torch.cat([fn(x[i:i + batch], y[i:i + batch]).detach() for i in range(0, len(x), batch)])


@torch.no_grad()
def predict(model, x):
    return torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])


def compare(a, b, pred_a, pred_b):
    d = (a - b).abs()
    per_sample = d.flatten(1).max(1).values
    return {"max_abs_diff": float(d.max()),
            "frac_pixels_within_1e-5": float((d <= PIXEL_TOL).float().mean()),
            "frac_samples_all_pixels_within_1e-5": float((per_sample <= PIXEL_TOL).float().mean()),
            "frac_same_prediction": float((pred_a == pred_b).float().mean()),
            "worst_sample": int(per_sample.argmax())}


def median_l2(x0, adv, flipped):
    l2 = (adv - x0).flatten(1).norm(dim=1)[flipped]
    return float(np.median(l2.numpy())) if len(l2) else float("nan")


# --------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="directory with model.safetensors, clean.safetensors, ...")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256,
                    help="batch size of the reference attacks (advlab's default; only CW's early abort, "
                         "which looks at the batch's total loss, depends on it beyond float rounding)")
    ap.add_argument("--limit", type=int, default=None, help="check only the first N samples")
    ap.add_argument("--only", default=None, help="comma-separated subset of fgsm,bim,pgdl2,cw,deepfool")
    ap.add_argument("--min-agree", type=float, default=0.99,
                    help="fail if an exact attack's prediction agreement with advlab is below this")
    ap.add_argument("--min-agree-approx", type=float, default=0.95,
                    help="the same for CW and DeepFool (their outputs lie on the decision boundary)")
    ap.add_argument("--cw-steps", type=int, default=tb.CW_STEPS, help="CW Adam steps per binary-search step")
    ap.add_argument("--cw-lr", type=float, default=tb.CW_LR, help="CW Adam learning rate")
    ap.add_argument("--no-torchattacks", action="store_true", help="skip the torchattacks comparisons")
    ap.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    use_ta = torchattacks is not None and not args.no_torchattacks

    for need in ("model.safetensors", "clean.safetensors"):
        if not os.path.exists(os.path.join(args.dir, need)):
            print(f"missing {os.path.join(args.dir, need)}", file=sys.stderr)
            sys.exit(2)
    model, arch_text = load_model(os.path.join(args.dir, "model.safetensors"))
    x0, y, clean_meta = load_dataset(os.path.join(args.dir, "clean.safetensors"))
    if args.limit:
        x0, y = x0[:args.limit], y[:args.limit]
    clean_pred = predict(model, x0)
    clean_acc = float((clean_pred == y).float().mean())
    ta_version = getattr(torchattacks, "__version__", "?") if torchattacks else None
    print(f"torch {torch.__version__}, torchattacks {ta_version if use_ta else 'not used'}"
          f"{' (' + TORCHATTACKS_ERROR + ')' if TORCHATTACKS_ERROR else ''}, threads={torch.get_num_threads()}")
    print(f"model {arch_text}; clean {clean_meta.get('advlab.dataset', '?')}: n={len(x0)}, "
          f"clean accuracy {clean_acc:.4f}")

    table = attacks_table(args.cw_steps, args.cw_lr)
    only = [a.strip() for a in args.only.split(",")] if args.only else list(table)
    unknown = set(only) - set(table)
    if unknown:
        ap.error(f"unknown attack(s): {', '.join(sorted(unknown))}")

    results, skipped, failures = {}, [], []
    for name in only:
        params, ref_fn, ta_factory, kind = table[name]
        path = os.path.join(args.dir, f"{name}.safetensors")
        if not os.path.exists(path):
            print(f"\n[{name}] {path} not found: skipped")
            skipped.append(name)
            continue
        adv_al, y_al, meta = load_dataset(path)
        if args.limit:
            adv_al, y_al = adv_al[:args.limit], y_al[:args.limit]
        if adv_al.shape != x0.shape or not torch.equal(y_al, y):
            msg = f"{name}: shape {tuple(adv_al.shape)} / labels do not match clean {tuple(x0.shape)}"
            print(f"\n[{name}] {msg}")
            failures.append(msg)
            continue

        impls = {"advlab": adv_al}
        torch.manual_seed(0)
        impls["torch"] = run_batched(lambda xb, yb: ref_fn(model, xb, yb), x0, y, args.batch)
        if use_ta and ta_factory is not None:
            atk = ta_factory(model)
            impls["torchattacks"] = run_batched(lambda xb, yb: atk(xb, yb), x0, y, args.batch)
        preds = {k: predict(model, v) for k, v in impls.items()}

        delta = adv_al - x0
        r = {"params": params, "source": meta.get("advlab.dataset", "?"), "n": len(x0),
             "robust_accuracy": {k: float((p == y).float().mean()) for k, p in preds.items()},
             "vs_advlab": {k: compare(v, adv_al, preds[k], preds["advlab"]) for k, v in impls.items()
                           if k != "advlab"},
             "advlab_range": [float(adv_al.min()), float(adv_al.max())],
             "advlab_max_linf": float(delta.abs().flatten(1).max(1).values.max()),
             "advlab_max_l2": float(delta.flatten(1).norm(dim=1).max())}
        if "torchattacks" in impls:
            r["torchattacks_vs_torch"] = compare(impls["torchattacks"], impls["torch"], preds["torchattacks"],
                                                 preds["torch"])
        if name in ("cw", "deepfool"):
            ref_labels = y if name == "cw" else clean_pred  # CW flips the label, DeepFool the clean prediction
            r["median_l2"] = {k: median_l2(x0, v, preds[k] != ref_labels) for k, v in impls.items()}
            r["successes"] = {k: int((p != ref_labels).sum()) for k, p in preds.items()}

        # Verdict.
        bad = []
        if r["advlab_range"][0] < 0 or r["advlab_range"][1] > 1:
            bad.append(f"advlab pixels outside [0,1]: {r['advlab_range']}")
        if name in ("fgsm", "bim") and r["advlab_max_linf"] > params["eps"] * (1 + 1e-5) + 1e-6:
            bad.append(f"advlab L-inf perturbation {r['advlab_max_linf']:.6g} > eps {params['eps']}")
        if name == "pgdl2" and r["advlab_max_l2"] > params["eps"] * (1 + 1e-4) + 1e-6:
            bad.append(f"advlab L2 perturbation {r['advlab_max_l2']:.6g} > eps {params['eps']}")
        threshold = args.min_agree if kind == "exact" else args.min_agree_approx
        for k, c in r["vs_advlab"].items():
            if c["frac_same_prediction"] < threshold:
                bad.append(f"{k} vs advlab: prediction agreement {c['frac_same_prediction']:.4f} < {threshold}")
        r["ok"] = not bad
        r["problems"] = bad
        failures += [f"{name}: {b}" for b in bad]
        results[name] = r

        print(f"\n[{name}] {r['source']}, {params}")
        print(f"  {'impl':<13} {'robust_acc':>10} {'max|d| vs advlab':>17} {'px<=1e-5':>9} {'samples<=1e-5':>13} "
              f"{'same pred':>9}" + (f" {'median_l2':>9} {'successes':>9}" if "median_l2" in r else ""))
        for k in impls:
            c = r["vs_advlab"].get(k)
            cols = (f"{c['max_abs_diff']:>17.3g} {c['frac_pixels_within_1e-5']:>9.5f} "
                    f"{c['frac_samples_all_pixels_within_1e-5']:>13.4f} {c['frac_same_prediction']:>9.4f}"
                    if c else f"{'-':>17} {'-':>9} {'-':>13} {'-':>9}")
            extra = f" {r['median_l2'][k]:>9.4f} {r['successes'][k]:>9}" if "median_l2" in r else ""
            print(f"  {k:<13} {r['robust_accuracy'][k]:>10.4f} {cols}{extra}")
        if "torchattacks_vs_torch" in r:
            c = r["torchattacks_vs_torch"]
            print(f"  torchattacks vs torch: max|d| {c['max_abs_diff']:.3g}, px<=1e-5 "
                  f"{c['frac_pixels_within_1e-5']:.5f}, same pred {c['frac_same_prediction']:.4f}")
        print(f"  advlab perturbation: max L-inf {r['advlab_max_linf']:.6g}, max L2 {r['advlab_max_l2']:.6g}, "
              f"range [{r['advlab_range'][0]:.3g}, {r['advlab_range'][1]:.3g}]  -> {'OK' if r['ok'] else 'POOR'}")
        for b in bad:
            print(f"  !! {b}")

    if not results and not failures:
        print("\nno attack files found: nothing checked", file=sys.stderr)
    summary = {"dir": args.dir, "torch_version": torch.__version__,
               "torchattacks_version": ta_version if use_ta else None, "threads": args.threads,
               "batch": args.batch, "model": {"arch": arch_text, "clean_accuracy": clean_acc}, "n": len(x0),
               "attacks": results, "skipped": skipped, "failures": failures, "ok": not failures and bool(results)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"\nwrote {args.out}")
    print("\nresult:", "OK" if summary["ok"] else ("POOR AGREEMENT" if failures else "NOTHING CHECKED"))
    if failures:
        sys.exit(1)
    if not results:
        sys.exit(2)


if __name__ == "__main__":
    main()
