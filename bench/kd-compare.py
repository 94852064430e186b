"""Whole-run comparison, the PyTorch side (see bench/kd-compare.ts and docs/RESULTS.md).

Trains the CNN student (8 and 16 channels, dense 32) on Fashion-MNIST from scratch and by
Hinton KD (T = 4, lambda = 0.9) on the teacher logits that bench/kd-compare.ts exported from
distill's teacher, so both implementations distil from the very same teacher. Written as an
independent PyTorch user would: nn.Conv2d/nn.Linear with PyTorch's default init, a fresh
shuffle per epoch (torch.randperm, last partial batch kept, as DataLoader does), Adam(1e-3),
batch 128, F.kl_div(reduction="batchmean") * T^2, float32.

Usage: python3 bench/kd-compare.py OUT [--epochs 30] [--seeds 0,1,2] [--threads 1]
           [--runs scratch,distilled] [--data /usr/share/datasets/fashion-mnist]
       python3 bench/kd-compare.py OUT --summary
Appends one JSON line per finished run to OUT/pytorch.jsonl; --summary prints the table of
OUT/distill.jsonl and OUT/pytorch.jsonl (mean and sample std over seeds).
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", raw[8:16])
        return torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(n, 1, rows, cols).float() / 255
    return torch.frombuffer(bytearray(raw[8:]), dtype=torch.uint8).long()


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)])
        self.fc = nn.Linear(16 * 7 * 7, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.head(F.relu(self.fc(x.flatten(1))))


def run(kind, seed, epochs, train_x, train_y, test_x, test_y, teacher, T=4.0, lam=0.9):
    torch.manual_seed(seed)
    model = CNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    n = train_x.shape[0]
    t0 = time.time()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 128):
            idx = perm[i : i + 128]
            s = model(train_x[idx])
            ce = F.cross_entropy(s, train_y[idx])
            if kind == "scratch":
                loss = ce
            else:
                kd = F.kl_div(F.log_softmax(s / T, 1), F.softmax(teacher[idx] / T, 1), reduction="batchmean")
                loss = lam * kd * T * T + (1 - lam) * ce
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(test_x).argmax(1) == test_y).float().mean().item()
    return {"impl": "pytorch", "run": kind, "seed": seed, "epochs": epochs, "accuracy": acc, "seconds": time.time() - t0}


def summary(out):
    rows = []
    for impl in ("distill", "pytorch"):
        path = os.path.join(out, f"{impl}.jsonl")
        if os.path.exists(path):
            rows += [json.loads(l) for l in open(path) if l.strip()]
    groups = {}
    for r in rows:
        groups.setdefault((r["run"], r["epochs"], r["impl"]), []).append(r)
    print("| student | epochs | implementation | seeds | test accuracy % (mean ± std) | per seed |")
    print("|---|---|---|---|---|---|")
    for (run, epochs, impl), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["seed"])
        accs = [100 * r["accuracy"] for r in rs]
        sd = statistics.stdev(accs) if len(accs) > 1 else float("nan")
        per = ", ".join(f"{r['seed']}: {100 * r['accuracy']:.2f}" for r in rs)
        print(f"| {run} | {epochs} | {impl} | {len(rs)} | {statistics.mean(accs):.2f} ± {sd:.2f} | {per} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--runs", default="scratch,distilled")
    ap.add_argument("--summary", action="store_true")
    a = ap.parse_args()
    if a.summary:
        return summary(a.out)
    torch.set_num_threads(a.threads)
    d = a.data
    train_x, train_y = read_idx(f"{d}/train-images-idx3-ubyte.gz"), read_idx(f"{d}/train-labels-idx1-ubyte.gz")
    test_x, test_y = read_idx(f"{d}/t10k-images-idx3-ubyte.gz"), read_idx(f"{d}/t10k-labels-idx1-ubyte.gz")
    runs = a.runs.split(",")
    teacher = None
    if "distilled" in runs:
        with open(os.path.join(a.out, "teacher-train-logits.f32"), "rb") as f:
            teacher = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(-1, 10)
        assert teacher.shape[0] == train_x.shape[0], "teacher logits do not match the training set"
    for seed in [int(s) for s in a.seeds.split(",")]:
        for kind in runs:
            r = run(kind, seed, a.epochs, train_x, train_y, test_x, test_y, teacher)
            with open(os.path.join(a.out, "pytorch.jsonl"), "a") as f:
                f.write(json.dumps(r) + "\n")
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
