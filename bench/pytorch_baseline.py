"""PyTorch baseline for `distill bench`: the same models, batch shapes and optimiser as the
TypeScript workloads, timed the same way (warm-up steps, then a fixed number of timed steps).

Usage: python3 pytorch_baseline.py --threads N --steps S [--device cpu|cuda] [--batch B] WORKLOAD...
Prints one JSON object per workload on stdout.
"""
import argparse
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(widths):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class CNN(nn.Module):
    """distill's `cnn 8-16-32`: two same-padded 3x3 conv + ReLU + 2x2 max-pool stages, dense 32, head."""

    def __init__(self, channels=(8, 16), dense=32, classes=10):
        super().__init__()
        convs = []
        c = 1
        for o in channels:
            convs.append(nn.Conv2d(c, o, 3, padding=1))
            c = o
        self.convs = nn.ModuleList(convs)
        side = 28 // (2 ** len(channels))
        self.fc = nn.Linear(c * side * side, dense)
        self.head = nn.Linear(dense, classes)

    def forward(self, x):
        a = x.view(x.shape[0], 1, 28, 28)
        for conv in self.convs:
            a = F.max_pool2d(F.relu(conv(a)), 2)
        return self.head(F.relu(self.fc(a.flatten(1))))


def hinton(student, teacher, labels, T=2.0, lam=0.5):
    kl = F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1), reduction="batchmean", log_target=True)
    return (1 - lam) * F.cross_entropy(student, labels) + lam * kl * T * T


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_train(model, loss_fn, batch, steps, warmup, device):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, *batch)
        loss.backward()
        opt.step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def run(name, steps, device, batch_size):
    g = torch.Generator().manual_seed(1)
    B = batch_size
    x = torch.rand(B, 784, generator=g).to(device)
    y = torch.randint(0, 10, (B,), generator=g).to(device)
    t = (torch.rand(B, 10, generator=g) - 0.5).to(device)
    ce = lambda m, x, y: F.cross_entropy(m(x), y)
    if name == "teacher-mlp":
        ms = time_train(mlp([784, 512, 256, 10]).to(device), ce, (x, y), steps, 10, device)
        per = B
    elif name == "student-kd-mlp":
        ms = time_train(mlp([784, 128, 10]).to(device), lambda m, x, y, t: hinton(m(x), t, y), (x, y, t), steps, 10, device)
        per = B
    elif name == "cnn-student":
        ms = time_train(CNN().to(device), ce, (x, y), steps, 10, device)
        per = B
    elif name == "teacher-inference":
        m = mlp([784, 512, 256, 10]).to(device).eval()
        xs = torch.rand(10000, 784, generator=g).to(device)
        reps = max(1, round(steps / 40))
        with torch.no_grad():
            for _ in range(2):
                m(xs)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                m(xs).cpu()
            sync(device)
        ms = (time.perf_counter() - t0) / reps
        per = 10000
    else:
        return None
    return {"workload": name, "msPerStep": ms * 1000, "throughput": per / ms,
            "peakRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("workloads", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for w in a.workloads:
        r = run(w, a.steps, a.device, a.batch)
        if r is None:
            print(json.dumps({"workload": w, "skipped": "no PyTorch version of this workload"}), flush=True)
        else:
            r.update({"threads": a.threads, "device": a.device, "torch": torch.__version__})
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    sys.exit(main())
