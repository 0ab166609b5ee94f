#!/usr/bin/env python3
"""Write the PyTorch parity fixture of batch norm and the batch-normed networks.

Builds, in PyTorch, WideResNet-16-1 (the module names of RobustBench's `wide_resnet.py`:
conv1, block1.layer.0.bn1, convShortcut, bn1, fc), a small network of pre-activation blocks
(advlab: `sequential([conv2d(#{out: 8, kernel: 3, padding: 1, bias: false}),
preact_block(#{out: 8}), preact_block(#{out: 16, stride: 2}), batch_norm(), relu(),
global_avg_pool(), linear(10)], #{input: [3, 16, 16]})`) and a batch norm over features
(`[flatten(), linear(12), batch_norm(#{momentum: 0.3}), relu(), linear(10)]`), gives every
weight and running statistic a seeded random value, and writes into
tests/fixtures/torch_parity/:

- bn_<name>.safetensors: the state_dict (what `safetensors.torch.save_file` writes, with the
  `num_batches_tracked` counters);
- bn_probe.safetensors: the inputs `<name>.x`, each model's eval-mode logits `<name>.eval`, its
  train-mode logits `<name>.train` (batch statistics) and the running statistics after that one
  training pass (`<name>.after.<buffer name>`);
- preact_resnet18_names.json: the state_dict names and shapes of fast_adversarial's
  PreActResNet18 (the network is 45 MB: its logits are checked with --full, not committed).

tests/it/batchnorm.rs loads each state_dict with `Model.load_weights` and compares (1e-4).
Run from the repository root:

    python3 benches/reference/batchnorm_check.py [--full DIR]

--full DIR also writes PreActResNet18 and WideResNet-28-10 state_dicts and their probes to DIR;
`ADVLAB_PARITY_FULL=DIR cargo test --release batchnorm` then checks them too.
"""
import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = "tests/fixtures/torch_parity"


class PreActBlock(nn.Module):
    """fast_adversarial's pre-activation block: the shortcut takes the block's raw input."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (self.shortcut(x) if hasattr(self, "shortcut") else x)


class PreActResNet18(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        cin, stages = 64, []
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            stages.append(nn.Sequential(PreActBlock(cin, planes, stride), PreActBlock(planes, planes, 1)))
            cin = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, classes)

    def forward(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        return self.linear(F.avg_pool2d(F.relu(self.bn(out)), 4).flatten(1))


class WideBlock(nn.Module):
    """RobustBench's BasicBlock: the 1×1 shortcut takes the pre-activated input, the identity
    the raw one."""

    def __init__(self, cin, cout, stride, drop=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop, self.equal = drop, cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = F.dropout(F.relu(self.bn2(self.conv1(pre))), self.drop, self.training)
        return self.conv2(out) + (x if self.equal else self.convShortcut(pre))


class Group(nn.Module):
    def __init__(self, n, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen, classes=10):
        super().__init__()
        c, n = [16, 16 * widen, 32 * widen, 64 * widen], (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)
        self.block1 = Group(n, c[0], c[1], 1)
        self.block2 = Group(n, c[1], c[2], 2)
        self.block3 = Group(n, c[2], c[3], 2)
        self.bn1 = nn.BatchNorm2d(c[3])
        self.fc = nn.Linear(c[3], classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(F.avg_pool2d(F.relu(self.bn1(out)), 8).flatten(1))


class Residual(nn.Module):
    def __init__(self, body, shortcut):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


def preact_seq(cin, cout, stride):
    """advlab's preact_block lowered: Residual(body, shortcut) with positional names."""
    body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False))
    short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False)) if stride != 1 or cin != cout \
        else nn.Sequential()
    return Residual(body, short)


class Gap(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


def preact_small():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), preact_seq(8, 8, 1), preact_seq(8, 16, 2),
                         nn.BatchNorm2d(16), nn.ReLU(), Gap(), nn.Linear(16, 10))


def features_bn():
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 12), nn.BatchNorm1d(12, momentum=0.3), nn.ReLU(),
                         nn.Linear(12, 10))


def randomise(m, seed):
    """Every weight away from its init, and running statistics away from 0 and 1."""
    torch.manual_seed(seed)
    for name, t in m.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        with torch.no_grad():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                t.uniform_(-0.3, 0.3)
            elif name.endswith(".weight") and t.dim() == 1:  # batch norm's scale
                t.uniform_(0.5, 1.5)
            else:
                fan_in = t[0].numel() if t.dim() > 1 else 4
                t.uniform_(-1.5 / fan_in ** 0.5, 1.5 / fan_in ** 0.5)


def probe(name, m, x, out):
    """Eval logits, train logits, and the running statistics after that training pass."""
    m.eval()
    with torch.no_grad():
        out[f"{name}.x"] = x.contiguous()
        out[f"{name}.eval"] = m(x).contiguous()
        m.train()
        out[f"{name}.train"] = m(x).contiguous()
    for k, v in m.state_dict().items():
        if k.endswith("running_mean") or k.endswith("running_var"):
            out[f"{name}.after.{k}"] = v.clone().contiguous()


def save(m, path):
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", metavar="DIR", help="also write PreActResNet18 and WRN-28-10 (not committed)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    cases = {
        "wrn16_1": (WideResNet(16, 1), (32, 3, 32, 32)),
        "preact_small": (preact_small(), (32, 3, 16, 16)),
        "features": (features_bn(), (16, 3, 4, 4)),
    }
    out = {}
    for i, (name, (m, shape)) in enumerate(cases.items()):
        randomise(m, 10 + i)
        # the state_dict as it was before the training pass of the probe
        save(m, f"{OUT}/bn_{name}.safetensors")
        torch.manual_seed(20 + i)
        probe(name, m, torch.rand(*shape), out)
        print(f"{name}: {sum(p.numel() for p in m.parameters())} parameters")
    save_file(out, f"{OUT}/bn_probe.safetensors")
    names = [[k, list(v.shape)] for k, v in PreActResNet18().state_dict().items()]
    with open(f"{OUT}/preact_resnet18_names.json", "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(n) for n in names) + "\n]\n")
    if args.full:
        os.makedirs(args.full, exist_ok=True)
        full = {}
        for i, (name, m) in enumerate([("preact_resnet18", PreActResNet18()), ("wrn28_10", WideResNet(28, 10))]):
            randomise(m, 30 + i)
            save(m, f"{args.full}/bn_{name}.safetensors")
            torch.manual_seed(40 + i)
            probe(name, m, torch.rand(16, 3, 32, 32), full)
            print(f"{name}: {sum(p.numel() for p in m.parameters())} parameters")
        save_file(full, f"{args.full}/bn_probe.safetensors")


if __name__ == "__main__":
    main()
