#!/usr/bin/env python3
"""PyTorch reference benchmark for advlab (MNIST training + FGSM/PGD/BIM/PGD-L2/CW/DeepFool attacks),
on the CPU (default) or on a CUDA GPU (--device cuda, timed with a synchronize before each clock read).

Example:
    python3 benches/reference/torch_bench.py --data ../shared/data/mnist --threads 2 --out torch.json
"""
import argparse
import functools
import json
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mnist_idx import read_idx

WORKLOADS = ["mlp_epoch", "cnn_epoch", "mlp_fgsm", "mlp_pgd20", "cnn_fgsm", "cnn_pgd20",
             "mlp_bim20", "cnn_bim20", "mlp_pgdl2", "cnn_pgdl2", "mlp_cw", "cnn_cw", "mlp_deepfool", "cnn_deepfool",
             "mlp_pgd_training", "mlp_fast_fgsm_training", "mlp_trades",
             "cnn_pgd_training", "cnn_fast_fgsm_training", "cnn_trades", "mlp_apgd_ce100", "cnn_apgd_ce100",
             "mlp_autoattack", "cnn_autoattack"]
APGD_SAMPLES = 1000  # APGD-CE-100 and AutoAttack (torchattacks) run on the first APGD_SAMPLES test images
# AutoAttack's budget (advlab's AUTOATTACK_EPS): at EPS = 0.3 APGD-CE alone fools every image of these
# undefended networks and the later stages would have nothing to do
AUTOATTACK_EPS = 0.1
RECIPE_STEPS, TRADES_BETA = 10, 1.0  # advlab's pgd_training / trades defaults (alpha = 2.5 eps / steps)
BATCH, LR, EPS, PGD_STEPS = 128, 1e-3, 0.3, 20
EPS_L2 = 2.0      # PGD-L2 radius
CW_SAMPLES = 1000  # CW runs on the first CW_SAMPLES test images only
# advlab's CwL2Params::default(): 100 Adam steps with lr 0.1 per binary-search step. (With 50 steps at
# lr 0.01, pixels at 0 or 1 cannot move in tanh space and CW is weak on MNIST; see the README.)
CW_STEPS, CW_LR = 100, 0.1


def load_split(data_dir, prefix, limit):
    x = read_idx(data_dir, f"{prefix}-images-idx3-ubyte")[:limit]
    y = read_idx(data_dir, f"{prefix}-labels-idx1-ubyte")[:limit]
    x = torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    dev = torch.get_default_device()
    return x.to(dev), torch.from_numpy(y.astype(np.int64)).to(dev)


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


def sync():
    """Wait for queued GPU work before a clock is read (a no-op on the CPU)."""
    if torch.cuda.is_available() and torch.get_default_device().type == "cuda":
        torch.cuda.synchronize()


def train_epoch(model, x, y, seed):
    """One Adam epoch over (x, y); returns elapsed seconds (warm-up excluded)."""
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    # Warm-up: forward/backward on a small batch without an optimizer step (params unchanged).
    F.cross_entropy(model(x[:16]), y[:16]).backward()
    opt.zero_grad(set_to_none=True)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed), device="cpu").to(x.device)
    sync()
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        idx = perm[i:i + BATCH]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return time.perf_counter() - t0


def train_epoch_recipe(model, x, y, seed, recipe, eps=EPS):
    """One Adam epoch of an adversarial-training recipe, the samples crafted from the current weights
    for every batch (advlab's pgd_training, fast_fgsm_training without its guard, trades)."""
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed), device="cpu").to(x.device)
    params = list(model.parameters())
    sync()
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        idx = perm[i:i + BATCH]
        xb, yb = x[idx], y[idx]
        for p in params:
            p.requires_grad_(False)
        if recipe == "pgd_training":
            xa = pgd_linf(model, xb, yb, eps, RECIPE_STEPS)
        elif recipe == "fast_fgsm_training":
            xa = pgd_linf(model, xb, yb, eps, 1, alpha=1.25 * eps)
        else:
            xa = trades_inner(model, xb, eps, RECIPE_STEPS)
        for p in params:
            p.requires_grad_(True)
        if recipe == "trades":
            logits = model(xb)
            loss = F.cross_entropy(logits, yb) + TRADES_BETA * F.kl_div(
                F.log_softmax(model(xa), 1), F.softmax(logits, 1), reduction="batchmean")
        else:
            loss = F.cross_entropy(model(xa), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return time.perf_counter() - t0


def trades_inner(model, x, eps, steps, alpha=None):
    """TRADES' inner maximisation: ascend KL(p(x) || p(x')) from x + 0.001 N(0, 1) by signed steps."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    with torch.no_grad():
        p_clean = F.softmax(model(x), 1)
    adv = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
    for _ in range(steps):
        adv = adv.detach().requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(adv), 1), p_clean, reduction="sum")
        g = torch.autograd.grad(kl, adv)[0]
        adv = torch.min(torch.max(adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return adv.detach()


def input_grad(model, x, y):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def fgsm(model, x, y, eps=EPS):
    return (x + eps * input_grad(model, x, y).sign()).clamp(0, 1)


def pgd_linf(model, x, y, eps=EPS, steps=PGD_STEPS, alpha=None, random_start=True):
    """PGD under L-inf: optional uniform random start in the eps box, steps of alpha*sign(grad),
    projection to the eps box around x, clamp to [0, 1]. random_start=False is BIM."""
    if alpha is None:
        alpha = 2.5 * eps / steps
    if random_start:
        adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    else:
        adv = x.clone()
    for _ in range(steps):
        adv = adv + alpha * input_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv


def pgd(model, x, y, eps=EPS, steps=PGD_STEPS):
    return pgd_linf(model, x, y, eps, steps, random_start=True)


def bim(model, x, y, eps=EPS, steps=PGD_STEPS, alpha=None):
    """BIM = PGD-L-inf without random start."""
    return pgd_linf(model, x, y, eps, steps, alpha, random_start=False)


def _per_sample_norm(t):
    """L2 norm of each sample of an (N, ...) tensor, shaped (N, 1, 1, ...) for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def pgd_l2(model, x, y, eps=EPS_L2, steps=PGD_STEPS, alpha=None, random_start=True):
    """PGD under L2. Random start: randn normalised per sample to unit norm, times eps*r with
    r ~ U(0,1) per sample (randn for the whole batch is drawn before r). Step: x += alpha*g/(|g|+1e-12);
    delta = x - x0 scaled by min(1, eps/|delta|); x = clamp(x0 + delta, 0, 1)."""
    if alpha is None:
        alpha = 2.5 * eps / steps
    if random_start:
        d = torch.randn_like(x)
        d = d / _per_sample_norm(d)
        r = torch.rand(x.shape[0], dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))
        adv = (x + d * (eps * r)).clamp(0, 1)
    else:
        adv = x.clone()
    for _ in range(steps):
        g = input_grad(model, adv, y)
        adv = adv + alpha * g / (_per_sample_norm(g) + 1e-12)
        delta = adv - x
        dn = _per_sample_norm(delta)
        # min(1, eps/|delta|); written with where so that |delta| = 0 gives 1, not 0/0.
        delta = delta * torch.where(dn > eps, eps / dn.clamp_min(1e-30), torch.ones_like(dn))
        adv = (x + delta).clamp(0, 1)
    return adv


def cw_l2(model, x, y, c0=1.0, kappa=0.0, steps=CW_STEPS, search_steps=5, lr=CW_LR, abort_early=True):
    """Carlini-Wagner L2, untargeted, with per-sample binary search over c.

    Iteration s = 1..steps of a binary-search step: forward pass at the current w (for s = 1, w0);
    the iterate counts as a success for its sample when argmax Z != y, and becomes the sample's best
    if its L2 is the smallest so far (over all binary-search steps); then, if s % max(steps // 10, 1) == 0
    (s = 10, 20, ..., 100 for 100 steps), the batch's summed loss at this iterate is compared with its value
    at the previous check (+inf before the first): if loss > 0.9999 * previous, this binary-search step
    stops; otherwise one Adam step. So iterates w_0 .. w_{steps-1} are evaluated, the last post-step
    iterate never is. A sample 'succeeded during this binary-search step' if any of its iterates was a
    success, whether or not it improved on the best."""
    n = x.shape[0]
    x0 = x.detach()
    w0 = torch.atanh((2 * x0 - 1) * (1 - 1e-6))
    lo = torch.zeros(n, dtype=torch.float64)
    hi = torch.full((n,), 1e10, dtype=torch.float64)
    c = torch.full((n,), float(c0), dtype=torch.float64)
    best_l2 = torch.full((n,), float("inf"))
    best_adv = x0.clone()
    y_mask = F.one_hot(y, model_classes(model, x0)).bool()
    check_every = max(steps // 10, 1)
    for _ in range(search_steps):
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr, betas=(0.9, 0.999), eps=1e-8)
        succeeded = torch.zeros(n, dtype=torch.bool)
        c32 = c.to(x0.dtype)
        prev = float("inf")
        for s in range(1, steps + 1):
            xa = (torch.tanh(w) + 1) / 2
            z = model(xa)
            l2sq = (xa - x0).flatten(1).pow(2).sum(1)
            z_y = z.gather(1, y[:, None]).squeeze(1)
            z_other = z.masked_fill(y_mask, float("-inf")).max(1).values
            loss = (l2sq + c32 * (z_y - z_other + kappa).clamp_min(0)).sum()
            with torch.no_grad():
                ok = z.argmax(1) != y
                l2 = l2sq.sqrt()
                better = ok & (l2 < best_l2)
                best_l2 = torch.where(better, l2, best_l2)
                best_adv[better] = xa.detach()[better]
                succeeded |= ok
            if abort_early and s % check_every == 0:
                loss_v = loss.item()
                if loss_v > 0.9999 * prev:
                    break
                prev = loss_v
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        # Per-sample binary search on c.
        hi = torch.where(succeeded, torch.minimum(hi, c), hi)
        lo = torch.where(succeeded, lo, torch.maximum(lo, c))
        c = torch.where(succeeded | (hi < 1e10), (lo + hi) / 2, c * 10)
    return best_adv


def model_classes(model, x):
    """Number of output classes (the last Linear's out_features, else one forward pass)."""
    for m in reversed(list(model.modules())):
        if isinstance(m, nn.Linear):
            return m.out_features
    with torch.no_grad():
        return model(x[:1]).shape[1]


def deepfool(model, x, y=None, steps=50, overshoot=0.02, candidates=10):
    """DeepFool L2, batched. Candidates: the top `candidates` classes of the clean logits; k0 is the clean
    prediction (the label y is not used). Only samples not yet flipped go through the model."""
    x0 = x.detach()
    with torch.no_grad():
        z0 = model(x0)
    cand = z0.topk(min(candidates, z0.shape[1]), dim=1).indices  # (N, K); cand[:, 0] = k0
    k0 = z0.argmax(1)
    r_tot = torch.zeros_like(x0)
    active = torch.ones(x0.shape[0], dtype=torch.bool)
    for _ in range(steps):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        xa = (x0[idx] + (1 + overshoot) * r_tot[idx]).clamp(0, 1).requires_grad_(True)
        z = model(xa)
        k0a = k0[idx]
        flipped = z.argmax(1) != k0a
        active[idx[flipped]] = False
        keep = ~flipped
        if not keep.any():
            break
        idx, ca, k0a = idx[keep], cand[idx][keep], k0a[keep]
        z = z[keep]  # gradients of the flipped rows' outputs are zero and unused
        z_k0 = z.gather(1, k0a[:, None]).squeeze(1)
        best_ratio = torch.full((idx.numel(),), float("inf"))
        best_f = torch.zeros(idx.numel())
        best_w = torch.zeros((idx.numel(),) + tuple(x0.shape[1:]))
        for j in range(ca.shape[1]):
            kj = ca[:, j]
            if bool((kj == k0a).all()):
                continue  # normally column 0: the clean prediction itself
            f = z.gather(1, kj[:, None]).squeeze(1) - z_k0  # f_k = Z_k - Z_k0 (0 where k = k0)
            w = torch.autograd.grad(f.sum(), xa, retain_graph=True)[0][keep]  # w_k = grad f_k
            ratio = f.detach().abs() / w.flatten(1).norm(dim=1)
            ratio = torch.where(kj == k0a, torch.full_like(ratio, float("inf")), ratio)  # skip k = k0
            better = ratio < best_ratio  # strict: ties keep the earlier (higher-logit) candidate
            best_ratio = torch.where(better, ratio, best_ratio)
            best_f = torch.where(better, f.detach(), best_f)
            best_w[better] = w[better]
        wn2 = best_w.flatten(1).pow(2).sum(1).clamp_min(1e-30).view(-1, *([1] * (x0.dim() - 1)))
        r_tot[idx] += (best_f.abs().view_as(wn2) + 1e-4) / wn2 * best_w
    return (x0 + (1 + overshoot) * r_tot).clamp(0, 1)


def run_attack(model, attack, x, y):
    """Attack the whole set in batches; returns (seconds, robust accuracy, adversarial images)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    attack(model, x[:16], y[:16])  # warm-up
    correct = 0
    advs = []
    sync()
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        xb, yb = x[i:i + BATCH], y[i:i + BATCH]
        adv = attack(model, xb, yb)
        with torch.no_grad():
            correct += (model(adv).argmax(1) == yb).sum().item()
        advs.append(adv.detach())
    sync()
    return time.perf_counter() - t0, correct / len(x), torch.cat(advs)


def l2_stats(model, x, adv, y, ref):
    """L2 statistics of the successes: the samples whose adversarial prediction differs from `ref`
    (labels for CW, clean predictions for DeepFool). Returns median L2 over the successes, their number,
    and the median L2 over the successes that were correctly classified when clean."""
    with torch.no_grad():
        pred = torch.cat([model(adv[i:i + 1000]).argmax(1) for i in range(0, len(adv), 1000)])
        clean_ok = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)]) == y
    ok = pred != ref
    l2 = (adv - x).flatten(1).norm(dim=1)

    def med(mask):
        return float(np.median(l2[mask].cpu().numpy())) if mask.any() else float("nan")

    return med(ok), int(ok.sum()), med(ok & clean_ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/mnist", help="directory with MNIST IDX files")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated subset of " + ",".join(WORKLOADS))
    ap.add_argument("--limit", type=int, default=None, help="cap train/test sample counts (smoke runs)")
    ap.add_argument("--cw-steps", type=int, default=CW_STEPS, help="CW Adam steps per binary-search step")
    ap.add_argument("--cw-lr", type=float, default=CW_LR, help="CW Adam learning rate")
    ap.add_argument("--out", default=None, help="write results as JSON to this file")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (every tensor is created there)")
    args = ap.parse_args()

    only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(only) - set(WORKLOADS)
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    torch.set_num_threads(args.threads)
    torch.set_default_device(args.device)
    seed_all(args.seed)
    xtr, ytr = load_split(args.data, "train", args.limit)
    xte, yte = load_split(args.data, "t10k", args.limit)
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, train={len(xtr)}, test={len(xte)}")

    class Progress(dict):  # prints each result to stderr as it lands, so long runs show progress
        def __setitem__(self, name, r):
            super().__setitem__(name, r)
            print(f"  {name}: {r['seconds']:.2f} s, accuracy {r['accuracy']:.4f}", file=sys.stderr, flush=True)

    results = Progress()
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
        for recipe in ("pgd_training", "fast_fgsm_training", "trades"):
            if f"{kind}_{recipe}" in wanted:
                # one epoch of the recipe from a fresh model (same init as above)
                seed_all(args.seed)
                fresh = make()
                secs_r = train_epoch_recipe(fresh, xtr, ytr, args.seed, recipe)
                results[f"{kind}_{recipe}"] = {"seconds": secs_r, "samples": len(xtr),
                                               "accuracy": accuracy(fresh, xte, yte)}
        for name, attack in ((f"{kind}_fgsm", fgsm), (f"{kind}_pgd20", pgd), (f"{kind}_bim20", bim),
                             (f"{kind}_pgdl2", pgd_l2)):
            if name in wanted:
                seed_all(args.seed)
                secs, rob, _ = run_attack(model, attack, xte, yte)
                results[name] = {"seconds": secs, "samples": len(xte), "accuracy": rob}
        if f"{kind}_cw" in wanted:
            seed_all(args.seed)
            xs, ys = xte[:CW_SAMPLES], yte[:CW_SAMPLES]
            cw = functools.partial(cw_l2, steps=args.cw_steps, lr=args.cw_lr)
            secs, rob, adv = run_attack(model, cw, xs, ys)
            med, n_ok, med_c = l2_stats(model, xs, adv, ys, ys)
            results[f"{kind}_cw"] = {"seconds": secs, "samples": len(xs), "accuracy": rob,
                                     "median_l2": med, "successes": n_ok, "median_l2_clean_correct": med_c,
                                     "steps": args.cw_steps, "lr": args.cw_lr}
        if f"{kind}_apgd_ce100" in wanted:
            try:
                import torchattacks
            except Exception as e:  # torchattacks is optional: the row is skipped without it
                print(f"{kind}_apgd_ce100 skipped: torchattacks not importable ({e})")
            else:
                seed_all(args.seed)
                apgd = lambda m, xb, yb: torchattacks.APGD(m, norm="Linf", eps=EPS, steps=100, n_restarts=1,
                                                          loss="ce", rho=0.75, seed=args.seed)(xb, yb)
                secs, rob, _ = run_attack(model, apgd, xte[:APGD_SAMPLES], yte[:APGD_SAMPLES])
                results[f"{kind}_apgd_ce100"] = {"seconds": secs, "samples": APGD_SAMPLES, "accuracy": rob}
        if f"{kind}_autoattack" in wanted:
            try:
                import torchattacks
            except Exception as e:
                print(f"{kind}_autoattack skipped: torchattacks not importable ({e})")
            else:
                seed_all(args.seed)
                # the standard sequence with AutoAttack's settings (torchattacks' own AutoAttack class
                # runs APGD and FAB with 10 steps): APGD-CE, APGD-T, FAB-T with 100 steps, Square 5000
                def autoattack(m, xb, yb):
                    e, s = AUTOATTACK_EPS, args.seed
                    return torchattacks.MultiAttack([
                        torchattacks.APGD(m, norm="Linf", eps=e, steps=100, n_restarts=1, loss="ce", seed=s),
                        torchattacks.APGDT(m, norm="Linf", eps=e, steps=100, n_restarts=1, n_classes=10, seed=s),
                        torchattacks.FAB(m, norm="Linf", eps=e, steps=100, n_restarts=1, multi_targeted=True,
                                         n_classes=10, seed=s),
                        torchattacks.Square(m, norm="Linf", eps=e, n_queries=5000, n_restarts=1, p_init=0.8, seed=s),
                    ])(xb, yb)
                secs, rob, _ = run_attack(model, autoattack, xte[:APGD_SAMPLES], yte[:APGD_SAMPLES])
                results[f"{kind}_autoattack"] = {"seconds": secs, "samples": APGD_SAMPLES, "accuracy": rob}
        if f"{kind}_deepfool" in wanted:
            seed_all(args.seed)
            secs, rob, adv = run_attack(model, deepfool, xte, yte)
            with torch.no_grad():
                k0 = torch.cat([model(xte[i:i + 1000]).argmax(1) for i in range(0, len(xte), 1000)])
            med, n_ok, med_c = l2_stats(model, xte, adv, yte, k0)
            results[f"{kind}_deepfool"] = {"seconds": secs, "samples": len(xte), "accuracy": rob,
                                           "median_l2": med, "successes": n_ok, "median_l2_clean_correct": med_c}

    print(f"\n{'workload':<12} {'seconds':>9} {'samples':>8} {'samples/s':>10} {'accuracy':>9} {'median_l2':>9} "
          f"{'successes':>9}")
    for name in WORKLOADS:
        if name in results:
            r = results[name]
            extra = f" {r['median_l2']:>9.4f} {r['successes']:>9}" if "median_l2" in r else ""
            print(f"{name:<12} {r['seconds']:>9.3f} {r['samples']:>8} {r['samples'] / r['seconds']:>10.1f} "
                  f"{r['accuracy']:>9.4f}{extra}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch_version": torch.__version__, "threads": args.threads, "device": args.device,
                       "results": results}, f, indent=2)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
