#!/usr/bin/env python3
"""Generate the PyTorch parity fixtures in tests/fixtures/.

Run from anywhere (the output path is computed from this file's location):

    /work/venv-torch/bin/python tools/gen_fixtures.py

Needs torch, safetensors and numpy (CPU only; `pip install torch safetensors numpy`).
Deterministic: every case reseeds torch with a fixed seed, and the expected
values are computed in float64.

For each case `{cell}_l{L}` / `{cell}_l{L}_head` (cells rnn_tanh, rnn_relu, lstm,
gru, gru_lbr; L = 1, 2; head = nn.Linear(H, 5)), plus `lstm_l1_softmax`, it writes

  tests/fixtures/{case}.model.safetensors  float32 weights. The plain nn.RNN(tanh),
      nn.LSTM and nn.GRU cases without head are exactly
      `save_file(module.state_dict(), path)` with no metadata (config inferred
      from the shapes); every other case is a wrapper with submodules `rnn` and
      `head` (names `rnn.weight_ih_l0`, ..., `head.weight`, `head.bias`) saved
      with the full config metadata.
  tests/fixtures/{case}.data.safetensors   expected values (forward, losses,
      gradients, optimizer steps), float32 (labels int32, `*_ok` masks uint8),
      computed in float64 from exactly the saved float32 weights, with the
      optimizer hyperparameters in `__metadata__`. Names: tests/fixtures/README.md.

and `lstm_l1.{f64,f16,bf16}.model.safetensors`: lstm_l1's state_dict in that dtype.

`gru` is the lecture notes' GRU (reset applied before the product W_hn (r*h)),
which PyTorch lacks: NotesGRU below, with nn.GRU's parameter names and init.
`gru_lbr` is PyTorch's nn.GRU (linear before reset).

At the end it prints, per tensor group, the largest difference between these
float64 values and the same computation in float32 (`-v`: per case), a guide
for the Rust tests' tolerances.
"""

import copy
import json
import math
import os
import struct
import sys

import numpy as np  # noqa: F401  (safetensors.torch needs it installed; kept explicit)
import torch
import torch.nn as nn
from safetensors.torch import save_file

torch.set_num_threads(1)  # bit-for-bit reproducible CPU reductions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")

I, H, B, T, HEAD = 7, 13, 3, 5, 5
BASE_SEED = 20240611

SGD = dict(lr=0.1, momentum=0.9, weight_decay=0.01)
ADAM = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
ADAMW = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
CLIP = 0.5
SGD_STEPS, ADAM_STEPS = 2, 3
# Adam's update m/(sqrt(v)+eps) is ill-conditioned in a gradient element whose
# magnitude is near eps: float32 rounding of a 1e-8 gradient can move the weight
# by up to ~lr/2. `adam3_ok.{name}` / `adamw3_ok.{name}` (uint8) are 0 for the
# elements whose effective gradient was, at some step, nonzero but below this.
ILL_GRAD = 1e-6

HYPER_META = {
    "sgd": "lr=0.1,momentum=0.9,dampening=0,nesterov=false,weight_decay=0.01",
    "adam": "lr=0.01,beta1=0.9,beta2=0.999,eps=1e-8,weight_decay=0.01",
    "adamw": "lr=0.01,beta1=0.9,beta2=0.999,eps=1e-8,weight_decay=0.1",
    "clip": "0.5",
    "sgd_steps": str(SGD_STEPS),
    "adam_steps": str(ADAM_STEPS),
    "adamw_steps": str(ADAM_STEPS),
}


# --------------------------------------------------------------------------
# The notes' GRU (reset before the product), parameters named like nn.GRU.
# --------------------------------------------------------------------------
class NotesGRU(nn.Module):
    """GRU as in the lecture notes (Cho et al. 2014), batch_first, multi-layer.

    r = σ(W_ir x + b_ir + W_hr h + b_hr)
    z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + W_hn (r⊙h) + b_hn)
    h' = (1 − z)⊙n + z⊙h

    `linear_before_reset=True` computes nn.GRU's form instead (used only to
    self-test this module against nn.GRU).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, batch_first=True,
                 linear_before_reset=False):
        super().__init__()
        assert batch_first, "only batch_first=True is implemented"
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = True
        self.linear_before_reset = linear_before_reset
        g = 3 * hidden_size
        # Same registration order as nn.GRU: per layer w_ih, w_hh, b_ih, b_hh.
        for k in range(num_layers):
            in_k = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", nn.Parameter(torch.empty(g, in_k)))
            setattr(self, f"weight_hh_l{k}", nn.Parameter(torch.empty(g, hidden_size)))
            setattr(self, f"bias_ih_l{k}", nn.Parameter(torch.empty(g)))
            setattr(self, f"bias_hh_l{k}", nn.Parameter(torch.empty(g)))
        self.reset_parameters()

    def reset_parameters(self):  # as nn.RNNBase.reset_parameters
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            nn.init.uniform_(w, -stdv, stdv)

    def forward(self, x, hx=None):
        bsz, seq, _ = x.shape
        hs = self.hidden_size
        if hx is None:
            hx = x.new_zeros(self.num_layers, bsz, hs)
        inp = x
        finals = []
        for k in range(self.num_layers):
            w_ih = getattr(self, f"weight_ih_l{k}")
            w_hh = getattr(self, f"weight_hh_l{k}")
            b_ih = getattr(self, f"bias_ih_l{k}")
            b_hh = getattr(self, f"bias_hh_l{k}")
            gi = inp @ w_ih.t() + b_ih  # [B,T,3H], hoisted input projection
            h = hx[k]
            outs = []
            for t in range(seq):
                git = gi[:, t, :]
                gh_rz = h @ w_hh[: 2 * hs].t() + b_hh[: 2 * hs]
                r = torch.sigmoid(git[:, :hs] + gh_rz[:, :hs])
                z = torch.sigmoid(git[:, hs:2 * hs] + gh_rz[:, hs:])
                if self.linear_before_reset:
                    n = torch.tanh(git[:, 2 * hs:] + r * (h @ w_hh[2 * hs:].t() + b_hh[2 * hs:]))
                else:
                    n = torch.tanh(git[:, 2 * hs:] + (r * h) @ w_hh[2 * hs:].t() + b_hh[2 * hs:])
                h = (1 - z) * n + z * h
                outs.append(h)
            inp = torch.stack(outs, dim=1)
            finals.append(h)
        return inp, torch.stack(finals, dim=0)


def make_rnn(cell, num_layers):
    if cell == "rnn_tanh":
        return nn.RNN(I, H, num_layers, nonlinearity="tanh", batch_first=True)
    if cell == "rnn_relu":
        return nn.RNN(I, H, num_layers, nonlinearity="relu", batch_first=True)
    if cell == "lstm":
        return nn.LSTM(I, H, num_layers, batch_first=True)
    if cell == "gru_lbr":
        return nn.GRU(I, H, num_layers, batch_first=True)
    if cell == "gru":
        return NotesGRU(I, H, num_layers, batch_first=True)
    raise ValueError(cell)


class Wrapper(nn.Module):
    def __init__(self, cell, num_layers, output_size, activation):
        super().__init__()
        self.cell = cell
        self.num_layers = num_layers
        self.output_size = output_size
        self.activation = activation
        self.rnn = make_rnn(cell, num_layers)
        self.head = nn.Linear(H, output_size) if output_size else None

    def logits(self, x, state=None):
        """Returns (logits [B,T,O], hn, cn-or-None). state: None, h0 or (h0, c0)."""
        if self.cell == "lstm":
            out, (hn, cn) = self.rnn(x, state)
        else:
            out, hn = self.rnn(x, state)
            cn = None
        if self.head is not None:
            out = self.head(out)
        return out, hn, cn

    def outputs(self, logits):
        if self.activation == "softmax":
            return torch.softmax(logits, dim=-1)
        return logits


def param_name(full):
    """Strip the `rnn.` prefix, keep `head.`."""
    return full[len("rnn."):] if full.startswith("rnn.") else full


def named_params(model):
    return [(param_name(n), p) for n, p in model.named_parameters()]


def state_arg(cell, h0, c0):
    return (h0, c0) if cell == "lstm" else h0


# --------------------------------------------------------------------------
# Expected values
# --------------------------------------------------------------------------
def compute(model32, inputs, dtype):
    """All expected values for one case, computed in `dtype` from model32's weights."""
    cell = model32.cell
    base = copy.deepcopy(model32).to(dtype)
    inp = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
    x, h0, c0 = inp["x"], inp["h0"], inp.get("c0")
    out = {}

    # Forward from zero state and from (h0, c0).
    with torch.no_grad():
        logits, hn, cn = base.logits(x)
        out["logits"] = logits
        out["y"] = base.outputs(logits)
        out["hn"] = hn
        if cn is not None:
            out["cn"] = cn
        logits_s, hn_s, cn_s = base.logits(x, state_arg(cell, h0, c0))
        out["y_state"] = base.outputs(logits_s)
        out["hn_state"] = hn_s
        if cn_s is not None:
            out["cn_state"] = cn_s

    def grads(prefix, loss_fn, state=None, with_x=True, with_state=False):
        m = copy.deepcopy(base)
        xg = x.clone().requires_grad_(True)
        st = None
        if state is not None:
            st = tuple(s.clone().requires_grad_(True) for s in state)
        s_arg = None if st is None else (st if cell == "lstm" else st[0])
        lg, _, _ = m.logits(xg, s_arg)
        loss = loss_fn(lg)
        loss.backward()
        for n, p in named_params(m):
            out[f"{prefix}.{n}"] = p.grad.detach().clone()
        if with_x:
            out[f"{prefix}.x"] = xg.grad.detach().clone()
        if with_state:
            out[f"{prefix}.h0"] = st[0].grad.detach().clone()
            if cell == "lstm":
                out[f"{prefix}.c0"] = st[1].grad.detach().clone()
        return loss.detach().reshape(1)

    mse = nn.MSELoss()
    xent = nn.CrossEntropyLoss(ignore_index=-1)
    o = logits.shape[-1]
    init_state = (h0, c0) if cell == "lstm" else (h0,)

    out["mse_loss"] = grads("grad_mse", lambda lg: mse(lg, inp["mse_target"]),
                            state=init_state, with_state=True)
    out["mse_last_loss"] = grads("grad_mse_last", lambda lg: mse(lg[:, -1, :], inp["mse_last_target"]))
    xl = inp["xent_labels"].long()
    out["xent_loss"] = grads("grad_xent", lambda lg: xent(lg.reshape(-1, o), xl.reshape(-1)))
    xll = inp["xent_last_labels"].long()
    out["xent_last_loss"] = grads("grad_xent_last", lambda lg: xent(lg[:, -1, :], xll))

    # Optimizer sequences: each from the saved weights, zero state, every-step
    # MSE with mse_target, the same batch x every step, a fresh optimizer.
    def train(name, opt_cls, hp, steps, clip, snap_every, mask_tag=None):
        m = copy.deepcopy(base)
        params = list(m.parameters())
        opt = opt_cls(params, **hp)
        losses, norms = [], []
        ok = [torch.ones_like(q, dtype=torch.bool) for q in params]
        for s in range(1, steps + 1):
            opt.zero_grad()
            lg, _, _ = m.logits(x)
            loss = mse(lg, inp["mse_target"])
            loss.backward()
            losses.append(loss.detach().clone())
            if clip is not None:
                norms.append(torch.nn.utils.clip_grad_norm_(params, max_norm=clip).detach().clone())
            if mask_tag is not None:
                # What Adam's moments see: the clipped gradient, plus wd*p for
                # Adam's L2 (AdamW decays the weights apart from the moments).
                coupled = opt_cls is torch.optim.Adam
                for i, q in enumerate(params):
                    g_eff = q.grad + hp["weight_decay"] * q.detach() if coupled else q.grad
                    a = g_eff.abs()
                    ok[i] &= (a == 0) | (a >= ILL_GRAD)
            opt.step()
            if snap_every or s == steps:
                tag = f"{name}{s}"
                for n, p in named_params(m):
                    out[f"{tag}.{n}"] = p.detach().clone()
        if mask_tag is not None:
            for (n, _), m_ok in zip(named_params(m), ok):
                out[f"{mask_tag}.{n}"] = m_ok.to(torch.uint8)
        return torch.stack(losses), (torch.stack(norms) if norms else None)

    out["mse_losses_sgd"], _ = train("sgd", torch.optim.SGD, SGD, SGD_STEPS, None, True)
    out["mse_losses_adam"], out["adam_clip_norm"] = train(
        "adam", torch.optim.Adam, ADAM, ADAM_STEPS, CLIP, False, "adam3_ok")
    out["mse_losses_adamw"], out["adamw_clip_norm"] = train(
        "adamw", torch.optim.AdamW, ADAMW, ADAM_STEPS, CLIP, False, "adamw3_ok")
    return out


def make_inputs(cell, num_layers, o):
    g = torch.Generator().manual_seed(torch.initial_seed() + 1)
    d = {}
    d["x"] = torch.rand(B, T, I, generator=g) * 2 - 1
    d["h0"] = torch.rand(num_layers, B, H, generator=g) - 0.5
    if cell == "lstm":
        d["c0"] = torch.rand(num_layers, B, H, generator=g) - 0.5
    d["mse_target"] = torch.randn(B, T, o, generator=g)
    d["mse_last_target"] = torch.randn(B, o, generator=g)
    labels = torch.randint(0, o, (B, T), generator=g)
    mask = torch.rand(B, T, generator=g) < 0.2
    if not mask.any():
        mask[0, 1] = True
    if mask.all():
        mask[0, 0] = False
    labels[mask] = -1
    d["xent_labels"] = labels.to(torch.int32)
    d["xent_last_labels"] = torch.randint(0, o, (B,), generator=g).to(torch.int32)
    # Round the float inputs through float32 so the stored values are exact.
    return {k: (v.float() if v.is_floating_point() else v) for k, v in d.items()}


def save(tensors, path, metadata=None):
    """safetensors.torch.save_file, then sort the header's __metadata__ keys:
    safetensors writes that map in hash order, which would make the bytes of
    every regeneration differ. The tensor data and offsets are untouched."""
    save_file(tensors, path, metadata=metadata)
    if not metadata:
        return
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    canon = {"__metadata__": dict(sorted(header.pop("__metadata__").items()))}
    canon.update(header)  # tensor entries keep their (sorted) order
    text = json.dumps(canon, separators=(",", ":")).encode()
    assert len(text) <= n, (len(text), n)
    text += b" " * (n - len(text))
    with open(path, "wb") as f:
        f.write(raw[:8] + text + raw[8 + n:])


def to_store(t):
    t = t.detach()
    if t.is_floating_point():
        t = t.to(torch.float32)
    return t.contiguous()


def write_case(idx, case, cell, num_layers, output_size, activation, plain, report):
    torch.manual_seed(BASE_SEED + 1000 * idx)
    model = Wrapper(cell, num_layers, output_size, activation).float()
    o = output_size if output_size else H

    model_path = os.path.join(OUT_DIR, f"{case}.model.safetensors")
    if plain:
        sd = {k: v.contiguous() for k, v in model.rnn.state_dict().items()}
        save(sd, model_path)
    else:
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        save(sd, model_path, metadata=model_meta(cell, num_layers, output_size, activation))

    inputs = make_inputs(cell, num_layers, o)
    exp64 = compute(model, inputs, torch.float64)
    exp32 = compute(model, inputs, torch.float32)  # only to report float32 drift

    data = {k: to_store(v) for k, v in inputs.items()}
    for k, v in exp64.items():
        assert k not in data, k
        data[k] = to_store(v)
    meta = dict(HYPER_META)
    meta.update(model_meta(cell, num_layers, output_size, activation))
    meta.update({"case": case, "batch": str(B), "seq_len": str(T),
                 "model_file_has_metadata": "false" if plain else "true"})
    save(data, os.path.join(OUT_DIR, f"{case}.data.safetensors"), metadata=meta)

    # float32-vs-float64 drift, per group of tensors: a guide for test tolerances.
    groups = {}
    for k, v in exp64.items():
        if not v.is_floating_point():
            continue
        grp = k.split(".")[0]
        grp = "".join(c for c in grp if not c.isdigit()) if grp[:3] in ("sgd", "ada") else grp
        d = (exp32[k].double() - v).abs().max().item()
        scale = v.abs().max().item()
        prev = groups.get(grp, (0.0, 0.0))
        groups[grp] = (max(prev[0], d), max(prev[1], scale))
        if k.startswith(("adam3.", "adamw3.")):
            mask = exp64[k.replace("3.", "3_ok.", 1)].bool()
            dm = ((exp32[k].double() - v).abs() * mask).max().item()
            g2 = grp + " (ok only)"
            prev = groups.get(g2, (0.0, 0.0))
            groups[g2] = (max(prev[0], dm), max(prev[1], scale))
    report[case] = groups
    return data


def model_meta(cell, num_layers, output_size, activation):
    return {
        "cell": cell,
        "input_size": str(I),
        "hidden_size": str(H),
        "num_layers": str(num_layers),
        "output_size": str(output_size),
        "output_activation": activation,
    }


def self_test_notes_gru():
    """NotesGRU(linear_before_reset=True) must equal nn.GRU: checks indexing/layout."""
    torch.manual_seed(1)
    ref = nn.GRU(I, H, 2, batch_first=True).double()
    mine = NotesGRU(I, H, 2, linear_before_reset=True).double()
    mine.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    h0 = torch.randn(2, B, H, dtype=torch.float64)
    a, ha = ref(x, h0)
    b, hb = mine(x, h0)
    err = max((a - b).abs().max().item(), (ha - hb).abs().max().item())
    assert err < 1e-12, f"NotesGRU lbr self-test failed: {err}"
    # Same init as nn.GRU from the same seed.
    torch.manual_seed(2)
    r = nn.GRU(I, H, 2, batch_first=True)
    torch.manual_seed(2)
    m = NotesGRU(I, H, 2)
    for (n1, p1), (n2, p2) in zip(r.named_parameters(), m.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2), (n1, n2)


def cases():
    out = []
    for cell in ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_lbr"):
        for L in (1, 2):
            for head in (False, True):
                name = f"{cell}_l{L}" + ("_head" if head else "")
                plain = (not head) and cell in ("rnn_tanh", "lstm", "gru_lbr")
                out.append((name, cell, L, HEAD if head else 0, "identity", plain))
    out.append(("lstm_l1_softmax", "lstm", 1, HEAD, "softmax", False))
    return out


def main():
    torch.use_deterministic_algorithms(True)
    self_test_notes_gru()
    os.makedirs(OUT_DIR, exist_ok=True)
    report = {}
    for idx, (name, cell, L, osz, act, plain) in enumerate(cases()):
        write_case(idx, name, cell, L, osz, act, plain, report)
        print(f"wrote {name}")

    # Extra dtype files: lstm_l1's state_dict in f64 / f16 / bf16 (no metadata).
    idx = [c[0] for c in cases()].index("lstm_l1")
    torch.manual_seed(BASE_SEED + 1000 * idx)
    m = Wrapper("lstm", 1, 0, "identity").float()
    from safetensors.torch import load_file
    saved = load_file(os.path.join(OUT_DIR, "lstm_l1.model.safetensors"))
    for k, v in m.rnn.state_dict().items():
        assert torch.equal(saved[k], v), k
    for tag, dt in (("f64", torch.float64), ("f16", torch.float16), ("bf16", torch.bfloat16)):
        sd = {k: v.to(dt).contiguous() for k, v in saved.items()}
        save(sd, os.path.join(OUT_DIR, f"lstm_l1.{tag}.model.safetensors"))
        print(f"wrote lstm_l1.{tag}")

    if "-v" in sys.argv or "--drift" in sys.argv:
        print("\nfloat32 vs float64 max abs diff (max |value|) per group:")
        for case, groups in report.items():
            print(case)
            for grp, (d, s) in sorted(groups.items()):
                print(f"  {grp:18s} {d:.3e}  ({s:.3e})")
    worst = {}
    for groups in report.values():
        for grp, (d, s) in groups.items():
            worst[grp] = max(worst.get(grp, 0.0), d)
    print("\nworst float32-vs-float64 abs diff over all cases, per group:")
    for grp, d in sorted(worst.items()):
        print(f"  {grp:18s} {d:.3e}")


if __name__ == "__main__":
    main()
