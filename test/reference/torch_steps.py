"""The independent side of test/torch-crosscheck.test.ts: a few training steps in PyTorch.

Usage: python3 torch_steps.py DIR

DIR/manifest.json lists the cases; DIR/<case>.safetensors holds each case's initial student
weights, teacher weights, data and batches, as distill wrote them. For every case this trains
the student with PyTorch's own functions (F.linear, F.conv2d, F.log_softmax, F.kl_div,
F.cross_entropy, torch.optim.Adam/AdamW) in float64, and writes DIR/<case>.out.safetensors with
the final parameters and the loss of every step (F64). The models follow distill's layouts
(PyTorch's names; see the comments where distill's layout differs from a stock module).
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DT = torch.float64
torch.set_default_dtype(DT)

# A hand-written safetensors reader/writer: the format is 8 bytes + JSON + raw tensors, and the
# `safetensors` Python package is not part of Debian's python3-torch.
NP_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        a = np.frombuffer(raw[8 + n + lo : 8 + n + hi], dtype=NP_DTYPES[t["dtype"]]).reshape(t["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name].detach().to(DT).contiguous().numpy()
        b = a.astype("<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- models (functional, over flat parameter records with distill's names) -------------------


def mlp(p, x, spec, shape):
    h = x.reshape(x.shape[0], -1)
    n = len(spec["hidden"]) + 1
    for i in range(n):
        h = F.linear(h, p[f"layers.{i}.weight"], p[f"layers.{i}.bias"])
        if i < n - 1:
            # A teacher is always applied in evaluation mode; students here have no dropout.
            h = F.dropout(F.relu(h), spec.get("dropout", 0.0), training=False)
    return h


def cnn(p, x, spec, shape):
    B = x.shape[0]
    a = x.reshape(B, shape["height"], shape["width"], shape["channels"]).permute(0, 3, 1, 2)
    for i in range(len(spec["channels"])):
        w = p[f"convs.{i}.weight"]
        a = F.max_pool2d(F.relu(F.conv2d(a, w, p[f"convs.{i}.bias"], padding=w.shape[-1] // 2)), 2)
    # distill flattens the last feature map in NHWC order, so fc.weight's columns are (h, w, c),
    # not nn.Flatten's (c, h, w).
    z = F.relu(F.linear(a.permute(0, 2, 3, 1).flatten(1), p["fc.weight"], p["fc.bias"]))
    z = F.dropout(z, spec.get("dropout", 0.0), training=False)
    return F.linear(z, p["head.weight"], p["head.bias"])


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def llama(p, tokens, spec, vocab):
    """Hugging Face LlamaForCausalLM's forward (no biases), written out."""
    L, D, H = spec["layers"], spec["width"], spec["heads"]
    hd = D // H
    eps = spec.get("normEps", 1e-5)
    theta = spec.get("ropeTheta", 10000.0)
    B, T = tokens.shape
    h = F.embedding(tokens.long(), p["model.embed_tokens.weight"])
    inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=DT) / hd)
    freqs = torch.outer(torch.arange(T, dtype=DT), inv_freq)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(L):
        pre = f"model.layers.{i}"
        x = rms_norm(h, p[f"{pre}.input_layernorm.weight"], eps)
        q = F.linear(x, p[f"{pre}.self_attn.q_proj.weight"]).view(B, T, H, hd).transpose(1, 2)
        k = F.linear(x, p[f"{pre}.self_attn.k_proj.weight"]).view(B, T, H, hd).transpose(1, 2)
        v = F.linear(x, p[f"{pre}.self_attn.v_proj.weight"]).view(B, T, H, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        att = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, D)
        h = h + F.linear(o, p[f"{pre}.self_attn.o_proj.weight"])
        x = rms_norm(h, p[f"{pre}.post_attention_layernorm.weight"], eps)
        gate = F.silu(F.linear(x, p[f"{pre}.mlp.gate_proj.weight"]))
        h = h + F.linear(gate * F.linear(x, p[f"{pre}.mlp.up_proj.weight"]), p[f"{pre}.mlp.down_proj.weight"])
    h = rms_norm(h, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if spec.get("tied") else p["lm_head.weight"]
    return F.linear(h, head)


def forward(m, p, x):
    if m["spec"]["type"] == "mlp":
        return mlp(p, x, m["spec"], m["input"])
    if m["spec"]["type"] == "cnn":
        return cnn(p, x, m["spec"], m["input"])
    return llama(p, x, m["spec"], m["vocab"])


# ---- losses ----------------------------------------------------------------------------------


def kl(log_a, log_b):
    """KL(a ‖ b) per position, summed over the last axis: F.kl_div(input=log b, target=log a)."""
    return F.kl_div(log_b, log_a, reduction="none", log_target=True).sum(-1)


def kd_term(loss, s, t, mask):
    T = loss.get("temperature", 1.0)
    name = loss.get("divergence", "forward-kl")
    logq = F.log_softmax(s / T, -1)
    logp = F.log_softmax(t / T, -1)
    k = loss.get("topK")
    if k is not None:
        # The teacher's k most probable classes plus one tail bucket holding the rest of the
        # mass, on both sides (the student's probabilities at the teacher's indices).
        p, q = logp.exp(), logq.exp()
        pk, idx = p.topk(k, -1)
        qk = q.gather(-1, idx)
        P = torch.cat([pk, 1 - pk.sum(-1, keepdim=True)], -1)
        Q = torch.cat([qk, 1 - qk.sum(-1, keepdim=True)], -1)
        logp, logq = P.log(), Q.log()
    if name == "forward-kl":
        d = kl(logp, logq)
    elif name == "reverse-kl":
        d = kl(logq, logp)
    elif name == "jsd":
        b = loss.get("beta", 0.5)
        logm = torch.logsumexp(torch.stack([logp + math.log(b), logq + math.log(1 - b)]), 0)
        d = b * kl(logp, logm) + (1 - b) * kl(logq, logm)
    else:
        raise SystemExit(f"torch_steps.py: divergence {name} not covered")
    if mask is None:
        d = d.mean()
    else:
        d = (d * mask).sum() / mask.sum().clamp_min(1)
    return d * T * T


def loss_of(loss, s, labels, t, mask):
    V = s.shape[-1]
    ce = lambda: F.cross_entropy(s.reshape(-1, V), labels.reshape(-1).long(), ignore_index=-1)
    if loss["name"] == "ce":
        return ce()
    lam = 1.0 if loss["name"] == "soft-kd" else loss.get("lambda", 0.5)
    d = kd_term(loss, s, t, mask)
    return d if lam >= 1 else lam * d + (1 - lam) * ce()


def optimizer(o, params):
    betas = (o.get("beta1", 0.9), o.get("beta2", 0.999))
    eps = o.get("eps", 1e-8)
    if o["name"] == "adam":
        return torch.optim.Adam(params, lr=o["lr"], betas=betas, eps=eps, weight_decay=o.get("weightDecay", 0.0))
    return torch.optim.AdamW(params, lr=o["lr"], betas=betas, eps=eps, weight_decay=o.get("weightDecay", 0.01))


def run(case, d, out_path):
    tensors = read_safetensors(d)
    pre = lambda prefix: {k[len(prefix) :]: v.to(DT) for k, v in tensors.items() if k.startswith(prefix)}
    params = {k: v.clone().requires_grad_(True) for k, v in pre("student.").items()}
    teacher = pre("teacher.") if case.get("teacher") else None
    opt = optimizer(case["optimizer"], list(params.values()))
    B, steps = case["batchSize"], case["steps"]
    losses = []
    for s in range(steps):
        if case["student"]["spec"]["type"] == "llama":
            x = tensors["batch.x"][s]
            labels = tensors["batch.labels"][s]
            mask = tensors["batch.mask"][s].to(DT)
        else:
            idx = tensors["order"][s * B : (s + 1) * B].long()
            x = tensors["data.x"][idx].to(DT)
            labels = tensors["data.labels"][idx]
            mask = None
        t = None
        if teacher is not None:
            with torch.no_grad():
                t = forward(case["teacher"], teacher, x)
        opt.zero_grad()
        loss = loss_of(case["loss"], forward(case["student"], params, x), labels, t, mask)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    out = {k: v for k, v in params.items()}
    out["losses"] = torch.tensor(losses)
    write_safetensors(out_path, out)


def main():
    d = sys.argv[1]
    with open(f"{d}/manifest.json") as f:
        manifest = json.load(f)
    torch.set_num_threads(1)
    for case in manifest["cases"]:
        run(case, f"{d}/{case['name']}.safetensors", f"{d}/{case['name']}.out.safetensors")


if __name__ == "__main__":
    main()
