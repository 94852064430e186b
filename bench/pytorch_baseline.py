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


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(n, hd, theta=10000.0):
    inv = 1.0 / theta ** (torch.arange(0, hd, 2).float() / hd)
    f = torch.outer(torch.arange(n).float(), inv)
    emb = torch.cat([f, f], -1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.input_layernorm = RMSNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d)
        self.gate = nn.Linear(d, 4 * d, bias=False)
        self.up = nn.Linear(d, 4 * d, bias=False)
        self.down = nn.Linear(4 * d, d, bias=False)

    def forward(self, h, cos, sin, causal):
        B, T, D = h.shape
        x = self.input_layernorm(h)
        q = self.q(x).view(B, T, self.h, self.hd)
        k = self.k(x).view(B, T, self.h, self.hd)
        q = (q * cos + rotate_half(q) * sin).transpose(1, 2)
        k = (k * cos + rotate_half(k) * sin).transpose(1, 2)
        v = self.v(x).view(B, T, self.h, self.hd).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / self.hd ** 0.5
        att = (s.masked_fill(~causal, -1e30).softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        h = h + self.o(att)
        x = self.post_attention_layernorm(h)
        return h + self.down(F.silu(self.gate(x)) * self.up(x))


class Llama(nn.Module):
    """distill's Llama layout (RMSNorm, HF rotary embeddings, causal attention, SwiGLU, untied head)."""

    def __init__(self, vocab, layers, d, heads, context):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        cos, sin = rope_tables(context, d // heads)
        self.register_buffer("cos", cos[None, :, None, :])
        self.register_buffer("sin", sin[None, :, None, :])
        self.register_buffer("causal", torch.ones(context, context).tril().bool())

    def forward(self, tokens):
        T = tokens.shape[1]
        h = self.embed(tokens)
        for layer in self.layers:
            h = layer(h, self.cos[:, :T], self.sin[:, :T], self.causal[:T, :T])
        return self.head(self.norm(h))


def hinton(student, teacher, labels, T=2.0, lam=0.5):
    kl = F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1), reduction="batchmean", log_target=True)
    return (1 - lam) * F.cross_entropy(student, labels) + lam * kl * T * T


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_train(model, loss_fn, batch, steps, warmup, device, opt=None):
    opt = opt or torch.optim.Adam(model.parameters(), lr=1e-3)
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
    elif name == "lm-student-kd":
        # charlm-fortunes: student 2x64 learning from the 4x128 teacher (teacher forward in the
        # step), forward KL with lambda 0.5, AdamW 2e-3, batch 32 x 64 tokens.
        V, C, LB = 113, 64, 32
        teacher = Llama(V, 4, 128, 4, C).to(device).eval()
        student = Llama(V, 2, 64, 2, C).to(device)
        tok = torch.randint(0, V, (LB, C), generator=g).to(device)
        lab = torch.randint(0, V, (LB, C), generator=g).to(device)

        def lm_kd(m, tok, lab):
            with torch.no_grad():
                t = teacher(tok)
            s = m(tok)
            kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), reduction="none", log_target=True).sum(-1).mean()
            return 0.5 * F.cross_entropy(s.reshape(-1, V), lab.reshape(-1)) + 0.5 * kl

        opt = torch.optim.AdamW(student.parameters(), lr=2e-3, weight_decay=0.01)
        ms = time_train(student, lm_kd, (tok, lab), steps, 3, device, opt)
        per = LB * C
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
