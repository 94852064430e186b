"""Independent float64 reference for src/nn/bert.ts, written from Hugging Face's modeling_bert
(BertEmbeddings, BertSelfAttention with the extended attention mask added as the dtype's
minimum, BertSelfOutput, BertIntermediate with exact GELU, BertOutput, BertPooler,
BertForSequenceClassification's classifier), in eval mode.

Usage: bert_ref.py IN.json OUT.json
IN:  {"config": {layers, hidden, heads, intermediate, padId}, "params": {name: {shape, data}},
      "ids": [[...], ...], "coeff": [[...], ...]}
OUT: {"logits", "hidden" (layers + 1), "attentions", "values" (per layer, [B, heads, L, hd]),
      "grads": {name: flat gradient of sum(logits * coeff)}}
"""
import json
import math
import sys

import torch

torch.set_default_dtype(torch.float64)


def main(inp, outp):
    with open(inp) as f:
        j = json.load(f)
    cfg = j["config"]
    P = {n: torch.tensor(t["data"], dtype=torch.float64).reshape(t["shape"]).requires_grad_(True) for n, t in j["params"].items()}
    ids = torch.tensor(j["ids"], dtype=torch.long)
    B, L = ids.shape
    D, H = cfg["hidden"], cfg["heads"]
    hd = D // H
    eps = 1e-12

    def lin(x, name):
        return torch.nn.functional.linear(x, P[name + ".weight"], P[name + ".bias"])

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (D,), P[name + ".weight"], P[name + ".bias"], eps)

    attention_mask = (ids != cfg["padId"]).to(torch.float64)
    # get_extended_attention_mask: (1 - mask) * finfo.min, broadcast over heads and queries.
    ext = (1.0 - attention_mask[:, None, None, :]) * torch.finfo(torch.float64).min

    e = "bert.embeddings"
    tok = torch.zeros_like(ids)
    pos = torch.arange(L)
    h = P[e + ".word_embeddings.weight"][ids] + P[e + ".position_embeddings.weight"][pos][None] + P[e + ".token_type_embeddings.weight"][tok]
    h = ln(h, e + ".LayerNorm")
    hidden, atts, vals = [h], [], []
    for i in range(cfg["layers"]):
        p = f"bert.encoder.layer.{i}"
        s = p + ".attention.self"

        def heads(x):
            return x.view(B, L, H, hd).permute(0, 2, 1, 3)

        q, k, v = heads(lin(h, s + ".query")), heads(lin(h, s + ".key")), heads(lin(h, s + ".value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + ext
        probs = torch.softmax(scores, dim=-1)
        ctx = (probs @ v).permute(0, 2, 1, 3).reshape(B, L, D)
        h = ln(lin(ctx, p + ".attention.output.dense") + h, p + ".attention.output.LayerNorm")
        inter = torch.nn.functional.gelu(lin(h, p + ".intermediate.dense"))  # exact (erf) GELU
        h = ln(lin(inter, p + ".output.dense") + h, p + ".output.LayerNorm")
        hidden.append(h)
        atts.append(probs)
        vals.append(v)
    pooled = torch.tanh(lin(h[:, 0], "bert.pooler.dense"))
    logits = lin(pooled, "classifier")
    (logits * torch.tensor(j["coeff"], dtype=torch.float64)).sum().backward()

    def flat(t):
        return t.detach().reshape(-1).tolist()

    out = {
        "logits": flat(logits),
        "hidden": [flat(t) for t in hidden],
        "attentions": [flat(t) for t in atts],
        "values": [flat(t) for t in vals],
        "grads": {n: flat(t.grad) for n, t in P.items()},
    }
    with open(outp, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
