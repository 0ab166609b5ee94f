#!/usr/bin/env python3
"""Write the PyTorch parity fixture of advlab's published networks and new layers.

Builds, in PyTorch, TRADES' SmallCNN (the layer names of TRADES' models/small_cnn.py), Madry's
MNIST network (the names of its PyTorch ports: conv1, conv2, fc1, fc2) and a small network of
the other layers (leaky_relu, avg_pool, softplus, tanh, dropout, sigmoid), seeds their weights,
and writes into tests/fixtures/torch_parity/:

- <name>.safetensors: the state_dict (what `safetensors.torch.save_file` writes);
- probe.safetensors: 64 inputs `x` and each model's eval-mode logits `<name>`;
- optim.safetensors: a linear model's start weights, one batch, and the weights after three
  full-batch steps of each optimizer setting (SGD with momentum, Nesterov and weight decay;
  Adam with weight decay; AdamW), under each schedule's rates.

tests/it/presets.rs loads each state_dict with `Model.load_weights` into the advlab network
and compares the logits (1e-4). Madry's network (13 MB) is checked, not committed: pass
--madry to write it too. Run from the repository root:

    python3 benches/reference/presets_check.py [--madry]
"""
import argparse
import os
from collections import OrderedDict

import torch
import torch.nn as nn
from safetensors.torch import save_file

OUT = "tests/fixtures/torch_parity"


def small_cnn(drop=0.5):
    """TRADES' SmallCNN for MNIST, with its module names."""
    relu = nn.ReLU()
    m = nn.Module()
    m.feature_extractor = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 32, 3)), ("relu1", relu),
        ("conv2", nn.Conv2d(32, 32, 3)), ("relu2", relu),
        ("maxpool1", nn.MaxPool2d(2, 2)),
        ("conv3", nn.Conv2d(32, 64, 3)), ("relu3", relu),
        ("conv4", nn.Conv2d(64, 64, 3)), ("relu4", relu),
        ("maxpool2", nn.MaxPool2d(2, 2)),
    ]))
    m.classifier = nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(64 * 4 * 4, 200)), ("relu1", relu), ("drop", nn.Dropout(drop)),
        ("fc2", nn.Linear(200, 200)), ("relu2", relu),
        ("fc3", nn.Linear(200, 10)),
    ]))
    m.forward = lambda x: m.classifier(m.feature_extractor(x).flatten(1))
    return m


def madry_cnn():
    m = nn.Module()
    m.conv1 = nn.Conv2d(1, 32, 5, padding=2)
    m.conv2 = nn.Conv2d(32, 64, 5, padding=2)
    m.fc1 = nn.Linear(7 * 7 * 64, 1024)
    m.fc2 = nn.Linear(1024, 10)
    pool = nn.MaxPool2d(2)

    def forward(x):
        x = pool(torch.relu(m.conv1(x)))
        x = pool(torch.relu(m.conv2(x)))
        return m.fc2(torch.relu(m.fc1(x.flatten(1))))

    m.forward = forward
    return m


def layers_net():
    """advlab: sequential([conv2d(#{out: 4, kernel: 3, padding: 1}), leaky_relu(0.1), avg_pool(2),
    conv2d(#{out: 4, kernel: 3}), softplus(), max_pool(2), flatten(), linear(16), tanh(),
    dropout(0.2), linear(10), sigmoid()])"""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.1), nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 3), nn.Softplus(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 10), nn.Sigmoid(),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--madry", action="store_true", help="also write Madry's network (13 MB)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    probe = {"x": x}
    models = {"trades_small_cnn": small_cnn(), "layers": layers_net()}
    if args.madry:
        models["madry_mnist_cnn"] = madry_cnn()
    for name, m in models.items():
        torch.manual_seed(1)
        for p in m.parameters():  # every weight away from zero (SmallCNN's fc3 starts at 0)
            nn.init.uniform_(p, -0.2, 0.2)
        m.eval()
        with torch.no_grad():
            probe[name] = m(x).contiguous()
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, f"{OUT}/{name}.safetensors")
        print(f"{name}: {sum(p.numel() for p in m.parameters())} parameters, logits {tuple(probe[name].shape)}")
    save_file(probe, f"{OUT}/probe.safetensors")
    save_file(optim_steps(), f"{OUT}/optim.safetensors")


# (name, optimizer, lr, momentum, nesterov, weight decay)
OPTIMS = [
    ("sgd_nesterov", "sgd", 0.1, 0.9, True, 5e-4),
    ("sgd_decay", "sgd", 0.1, 0.9, False, 1e-2),
    ("adam_decay", "adam", 1e-2, 0.0, False, 1e-2),
    ("adamw", "adamw", 1e-2, 0.0, False, 1e-2),
]


def optim_steps():
    """Three full-batch cross-entropy steps of nn.Sequential(nn.Flatten(), nn.Linear(16, 3))."""
    torch.manual_seed(2)
    x = torch.rand(8, 1, 4, 4)
    y = torch.randint(0, 3, (8,))
    start = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    out = {"x": x, "y": y.to(torch.int64), "start.weight": start[1].weight.detach().clone(),
           "start.bias": start[1].bias.detach().clone()}
    for name, kind, lr, momentum, nesterov, wd in OPTIMS:
        m = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        m.load_state_dict(start.state_dict())
        if kind == "sgd":
            opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=wd)
        elif kind == "adam":
            opt = torch.optim.Adam(m.parameters(), lr=lr, weight_decay=wd)
        else:
            opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=wd)
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        out[f"{name}.weight"] = m[1].weight.detach().clone()
        out[f"{name}.bias"] = m[1].bias.detach().clone()
    return out


if __name__ == "__main__":
    main()
