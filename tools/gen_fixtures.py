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

Issue 18 (bidirectional, variable lengths, LSTM proj_size, dropout off): the
cases of `ext_cases()` below, in the same two-file format, written to
tests/fixtures/issue18/ with I=2, H=4, P=3: `{cell}_l{L}_bidir` for every cell,
`lstm_l{L}_bidir_head`, `{lstm,gru_lbr}_l{L}[_bidir]_len` and
`lstm_l2_bidir_len_head` (a `lengths` tensor; packed sequences, losses over the
valid steps), `lstm_l{1,2}_proj`, `lstm_l2_bidir_proj`, `lstm_l1_proj_head`,
and `lstm_l2_dropout` (dropout=0.3 in eval mode). Their metadata adds
`bidirectional`, `proj_size` (and `dropout`); the script checks that the packed
results equal each sequence run alone, that dropout off equals no dropout, and
that no ReLU pre-activation is near the kink.

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
import warnings

import numpy as np  # noqa: F401  (safetensors.torch needs it installed; kept explicit)
import torch
import torch.nn as nn
from safetensors.torch import save_file

torch.set_num_threads(1)  # bit-for-bit reproducible CPU reductions
# nn.LSTM(proj_size=...) on CPU says it falls back from oneDNN to the default
# implementation (which is what we want: plain float64 reference arithmetic).
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")

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
                 linear_before_reset=False, bidirectional=False):
        super().__init__()
        assert batch_first, "only batch_first=True is implemented"
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = True
        self.linear_before_reset = linear_before_reset
        self.bidirectional = bidirectional
        dirs = 2 if bidirectional else 1
        g = 3 * hidden_size
        # Same registration order as nn.GRU: per layer, per direction (the reverse
        # one suffixed `_reverse`), w_ih, w_hh, b_ih, b_hh; layer k > 0 reads
        # dirs*hidden_size.
        for k in range(num_layers):
            in_k = input_size if k == 0 else dirs * hidden_size
            for d in range(dirs):
                sfx = f"l{k}" + ("_reverse" if d else "")
                setattr(self, f"weight_ih_{sfx}", nn.Parameter(torch.empty(g, in_k)))
                setattr(self, f"weight_hh_{sfx}", nn.Parameter(torch.empty(g, hidden_size)))
                setattr(self, f"bias_ih_{sfx}", nn.Parameter(torch.empty(g)))
                setattr(self, f"bias_hh_{sfx}", nn.Parameter(torch.empty(g)))
        self.reset_parameters()

    def reset_parameters(self):  # as nn.RNNBase.reset_parameters
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            nn.init.uniform_(w, -stdv, stdv)

    def forward(self, x, hx=None):
        bsz, seq, _ = x.shape
        hs = self.hidden_size
        dirs = 2 if self.bidirectional else 1
        if hx is None:
            hx = x.new_zeros(self.num_layers * dirs, bsz, hs)
        inp = x
        finals = []  # nn.GRU's h_n order: layer-major, forward then reverse
        for k in range(self.num_layers):
            dir_outs = []
            for d in range(dirs):
                sfx = f"l{k}" + ("_reverse" if d else "")
                w_ih = getattr(self, f"weight_ih_{sfx}")
                w_hh = getattr(self, f"weight_hh_{sfx}")
                b_ih = getattr(self, f"bias_ih_{sfx}")
                b_hh = getattr(self, f"bias_hh_{sfx}")
                gi = inp @ w_ih.t() + b_ih  # [B,T,3H], hoisted input projection
                h = hx[k * dirs + d]
                outs = [None] * seq
                for t in (range(seq) if d == 0 else reversed(range(seq))):
                    git = gi[:, t, :]
                    gh_rz = h @ w_hh[: 2 * hs].t() + b_hh[: 2 * hs]
                    r = torch.sigmoid(git[:, :hs] + gh_rz[:, :hs])
                    z = torch.sigmoid(git[:, hs:2 * hs] + gh_rz[:, hs:])
                    if self.linear_before_reset:
                        n = torch.tanh(git[:, 2 * hs:] + r * (h @ w_hh[2 * hs:].t() + b_hh[2 * hs:]))
                    else:
                        n = torch.tanh(git[:, 2 * hs:] + (r * h) @ w_hh[2 * hs:].t() + b_hh[2 * hs:])
                    h = (1 - z) * n + z * h
                    outs[t] = h
                dir_outs.append(torch.stack(outs, dim=1))
                finals.append(h)
            inp = dir_outs[0] if dirs == 1 else torch.cat(dir_outs, dim=2)
        return inp, torch.stack(finals, dim=0)


class Spec:
    """One case's configuration. The defaults are the original 21 cases'; the
    issue-18 cases (`ext=True`) set the rest and are written to EXT_DIR."""

    def __init__(self, name, cell, num_layers, output_size=0, activation="identity",
                 plain=False, bidirectional=False, proj_size=0, dropout=0.0,
                 lengths=None, input_size=I, hidden_size=H, ext=False):
        self.name = name
        self.cell = cell
        self.num_layers = num_layers
        self.output_size = output_size
        self.activation = activation
        self.plain = plain
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.dropout = dropout
        self.lengths = lengths  # None or one length per sequence (list of B ints)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.ext = ext

    @property
    def dirs(self):
        return 2 if self.bidirectional else 1

    @property
    def state_size(self):
        """Size of h: proj_size with a projection, else hidden_size."""
        return self.proj_size if self.proj_size else self.hidden_size

    @property
    def rnn_out(self):
        """Features of the recurrent stack's output (what a head reads)."""
        return self.dirs * self.state_size


def make_rnn(spec):
    i, h, n = spec.input_size, spec.hidden_size, spec.num_layers
    kw = dict(batch_first=True)
    if spec.ext:
        kw.update(bidirectional=spec.bidirectional, dropout=spec.dropout)
    cell = spec.cell
    if cell == "rnn_tanh":
        return nn.RNN(i, h, n, nonlinearity="tanh", **kw)
    if cell == "rnn_relu":
        return nn.RNN(i, h, n, nonlinearity="relu", **kw)
    if cell == "lstm":
        if spec.proj_size:
            kw["proj_size"] = spec.proj_size
        return nn.LSTM(i, h, n, **kw)
    if cell == "gru_lbr":
        return nn.GRU(i, h, n, **kw)
    if cell == "gru":
        assert not spec.dropout, "NotesGRU has no dropout"
        return NotesGRU(i, h, n, batch_first=True, bidirectional=spec.bidirectional)
    raise ValueError(cell)


class Wrapper(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.cell = spec.cell
        self.num_layers = spec.num_layers
        self.output_size = spec.output_size
        self.activation = spec.activation
        self.rnn = make_rnn(spec)
        self.head = nn.Linear(spec.rnn_out, spec.output_size) if spec.output_size else None

    def logits(self, x, state=None, lengths=None):
        """Returns (logits [B,T,O], hn, cn-or-None). state: None, h0 or (h0, c0).

        With `lengths` (int64 [B]), the batch goes through pack_padded_sequence
        (enforce_sorted=False) and back with pad_packed_sequence(total_length=T):
        each sequence's final state is the one at its own last step, and the
        outputs (after the head, if any) are zero past its length."""
        if lengths is not None:
            seq = x.shape[1]
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths, batch_first=True, enforce_sorted=False)
            res = self.rnn(packed, state)
            out_p, st = res
            out, _ = nn.utils.rnn.pad_packed_sequence(out_p, batch_first=True, total_length=seq)
            hn, cn = st if self.cell == "lstm" else (st, None)
            if self.head is not None:
                out = self.head(out)
            valid = torch.arange(seq)[None, :] < lengths[:, None]  # [B,T]
            return out.masked_fill(~valid[..., None], 0.0), hn, cn
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
    """All expected values for one case, computed in `dtype` from model32's weights.

    With `inputs["lengths"]`, every forward pass is the packed one (Wrapper.logits)
    and every loss counts only the valid steps (t < length): see `losses` below."""
    cell = model32.cell
    base = copy.deepcopy(model32).to(dtype)
    inp = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
    x, h0, c0 = inp["x"], inp["h0"], inp.get("c0")
    lengths = inp["lengths"].long() if "lengths" in inp else None
    out = {}

    def fwd(m, xx, state=None):
        return m.logits(xx, state, lengths) if lengths is not None else m.logits(xx, state)

    # Forward from zero state and from (h0, c0).
    with torch.no_grad():
        logits, hn, cn = fwd(base, x)
        out["logits"] = logits
        out["y"] = base.outputs(logits)
        out["hn"] = hn
        if cn is not None:
            out["cn"] = cn
        logits_s, hn_s, cn_s = fwd(base, x, state_arg(cell, h0, c0))
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
        lg, _, _ = fwd(m, xg, s_arg)
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
    xl = inp["xent_labels"].long()
    xll = inp["xent_last_labels"].long()

    if lengths is None:
        def mse_every(lg):
            return mse(lg, inp["mse_target"])

        def last(lg):
            return lg[:, -1, :]

        labels_every = xl
    else:
        # Losses over the valid steps only (t < length of that sequence):
        # - every-step MSE: the sum of squared errors over valid (b, t) and all O
        #   outputs, divided by (number of valid (b, t)) * O, i.e. the mean over
        #   valid positions of the per-step mean over O (MSELoss when all valid);
        # - every-step cross-entropy: ignore_index=-1 mean over the valid steps
        #   whose label is not -1 (labels past a length are ignored, whatever
        #   their value);
        # - the "last step" losses use each sequence's own last step, t = length-1.
        bsz, seq = x.shape[0], x.shape[1]
        valid = torch.arange(seq)[None, :] < lengths[:, None]  # [B,T]
        n_valid = int(valid.sum())

        def mse_every(lg):
            sq = (lg - inp["mse_target"]) ** 2
            return sq.masked_fill(~valid[..., None], 0.0).sum() / (n_valid * o)

        def last(lg):
            return lg[torch.arange(bsz), lengths - 1, :]

        labels_every = xl.masked_fill(~valid, -1)

    out["mse_loss"] = grads("grad_mse", mse_every, state=init_state, with_state=True)
    out["mse_last_loss"] = grads("grad_mse_last", lambda lg: mse(last(lg), inp["mse_last_target"]))
    out["xent_loss"] = grads("grad_xent", lambda lg: xent(lg.reshape(-1, o), labels_every.reshape(-1)))
    out["xent_last_loss"] = grads("grad_xent_last", lambda lg: xent(last(lg), xll))

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
            lg, _, _ = fwd(m, x)
            loss = mse_every(lg)
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


def make_inputs(spec, o):
    g = torch.Generator().manual_seed(torch.initial_seed() + 1)
    n_state = spec.num_layers * spec.dirs  # h_n's first dimension
    d = {}
    d["x"] = torch.rand(B, T, spec.input_size, generator=g) * 2 - 1
    d["h0"] = torch.rand(n_state, B, spec.state_size, generator=g) - 0.5
    if spec.cell == "lstm":
        d["c0"] = torch.rand(n_state, B, spec.hidden_size, generator=g) - 0.5
    d["mse_target"] = torch.randn(B, T, o, generator=g)
    d["mse_last_target"] = torch.randn(B, o, generator=g)
    labels = torch.randint(0, o, (B, T), generator=g)
    mask = torch.rand(B, T, generator=g) < 0.2
    if not mask.any():
        mask[0, 1] = True
    if mask.all():
        mask[0, 0] = False
    if spec.lengths is not None:
        # At least one ignored (-1) label and one class label among the valid
        # steps too (labels past a length are ignored whatever their value).
        lens = torch.tensor(spec.lengths)
        valid = torch.arange(T)[None, :] < lens[:, None]
        full = int(torch.argmax(lens))
        if not (mask & valid).any():
            mask[full, 1] = True
        if not (~mask & valid).any():
            mask[full, 0] = False
        d["lengths"] = lens.to(torch.int32)
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


def write_case(seed, spec, out_dir, report):
    case = spec.name
    torch.manual_seed(seed)
    model = Wrapper(spec).float()
    if spec.dropout:
        model.eval()  # dropout off: the fixture is the inference / eval-mode model
    o = spec.output_size if spec.output_size else spec.rnn_out

    model_path = os.path.join(out_dir, f"{case}.model.safetensors")
    if spec.plain:
        sd = {k: v.contiguous() for k, v in model.rnn.state_dict().items()}
        save(sd, model_path)
    else:
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        save(sd, model_path, metadata=model_meta(spec))

    inputs = make_inputs(spec, o)
    exp64 = compute(model, inputs, torch.float64)
    exp32 = compute(model, inputs, torch.float32)  # only to report float32 drift
    if spec.dropout:
        check_dropout_off(spec, model, inputs, exp64)
    if spec.lengths is not None:
        check_lengths(spec, model, inputs, exp64)
    if spec.ext and spec.cell == "rnn_relu":
        check_relu_margin(spec, model, inputs)

    data = {k: to_store(v) for k, v in inputs.items()}
    for k, v in exp64.items():
        assert k not in data, k
        data[k] = to_store(v)
    meta = dict(HYPER_META)
    meta.update(model_meta(spec))
    if spec.ext:
        meta["dropout"] = fmt_dropout(spec.dropout)
    meta.update({"case": case, "batch": str(B), "seq_len": str(T),
                 "model_file_has_metadata": "false" if spec.plain else "true"})
    save(data, os.path.join(out_dir, f"{case}.data.safetensors"), metadata=meta)

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


def fmt_dropout(p):
    return "0" if p == 0 else repr(float(p))


def model_meta(spec):
    meta = {
        "cell": spec.cell,
        "input_size": str(spec.input_size),
        "hidden_size": str(spec.hidden_size),
        "num_layers": str(spec.num_layers),
        "output_size": str(spec.output_size),
        "output_activation": spec.activation,
    }
    if spec.ext:
        meta["bidirectional"] = "true" if spec.bidirectional else "false"
        meta["proj_size"] = str(spec.proj_size)
        if spec.dropout:
            meta["dropout"] = fmt_dropout(spec.dropout)
    return meta


def check_dropout_off(spec, model, inputs, exp64):
    """The dropout case's expected values (eval mode) are those of the same
    weights in a module without dropout, bit for bit; and in training mode the
    dropout module does differ (so the fixture does exercise a dropout model)."""
    plain = Spec(spec.name, spec.cell, spec.num_layers, spec.output_size, spec.activation,
                 bidirectional=spec.bidirectional, proj_size=spec.proj_size,
                 lengths=spec.lengths, input_size=spec.input_size,
                 hidden_size=spec.hidden_size, ext=True)
    ref = Wrapper(plain).float()
    ref.load_state_dict(model.state_dict(), strict=True)
    exp_ref = compute(ref, inputs, torch.float64)
    assert exp_ref.keys() == exp64.keys()
    for k, v in exp64.items():
        assert torch.equal(v, exp_ref[k]), f"{spec.name}: dropout-off differs from no dropout in {k}"
    m = copy.deepcopy(model).double().train()
    torch.manual_seed(0)
    with torch.no_grad():
        y_train, _, _ = m.logits(inputs["x"].double())
    assert not torch.equal(y_train, exp64["logits"]), "dropout had no effect in training mode"


def check_lengths(spec, model, inputs, exp64):
    """The packed forward (from zero state and from h0/c0) equals running each
    sequence alone, cut to its length, with no packing: outputs up to the
    length, zero after it; final states those of the cut sequence."""
    m = copy.deepcopy(model).double()
    x = inputs["x"].double()
    lens = inputs["lengths"].tolist()
    assert max(lens) == T and min(lens) >= 1 and sorted(lens) != lens
    h0, c0 = inputs["h0"].double(), inputs.get("c0")
    for tag, use_state in (("", False), ("_state", True)):
        y_all = exp64["y" + tag]
        for b, n in enumerate(lens):
            st = None
            if use_state:
                hb = h0[:, b:b + 1].contiguous()
                st = (hb, c0.double()[:, b:b + 1].contiguous()) if spec.cell == "lstm" else hb
            with torch.no_grad():
                lg, hn, cn = m.logits(x[b:b + 1, :n], st)
            y = m.outputs(lg)
            err = (y[0] - y_all[b, :n]).abs().max().item()
            err = max(err, (exp64["hn" + tag][:, b] - hn[:, 0]).abs().max().item())
            if cn is not None:
                err = max(err, (exp64["cn" + tag][:, b] - cn[:, 0]).abs().max().item())
            assert err < 1e-12, f"{spec.name}: packed != cut sequence {b}: {err}"
            assert not y_all[b, n:].any(), f"{spec.name}: nonzero output past length"


def check_relu_margin(spec, model, inputs, margin=3e-5):
    """No pre-activation of a ReLU RNN in the stored forward passes (zero state and
    h0) is within `margin` of the kink, so float32 rounding cannot flip a unit
    (checked by recomputing the pre-activations in float64 from nn.RNN's weights)."""
    rnn = copy.deepcopy(model.rnn).double()
    x = inputs["x"].double()
    dirs, hs = spec.dirs, spec.hidden_size
    worst = math.inf
    for h0 in (torch.zeros(spec.num_layers * dirs, B, hs, dtype=torch.float64),
               inputs["h0"].double()):
        inp = x
        for k in range(spec.num_layers):
            outs = []
            for d in range(dirs):
                sfx = f"l{k}" + ("_reverse" if d else "")
                w_ih, w_hh = getattr(rnn, f"weight_ih_{sfx}"), getattr(rnn, f"weight_hh_{sfx}")
                b = getattr(rnn, f"bias_ih_{sfx}") + getattr(rnn, f"bias_hh_{sfx}")
                h = h0[k * dirs + d]
                o = [None] * T
                for t in (range(T) if d == 0 else reversed(range(T))):
                    pre = inp[:, t] @ w_ih.t() + h @ w_hh.t() + b
                    worst = min(worst, pre.abs().min().item())
                    h = torch.relu(pre)
                    o[t] = h
                outs.append(torch.stack(o, dim=1))
            inp = torch.cat(outs, dim=2)
        with torch.no_grad():
            ref, _ = rnn(x, h0)
        assert (ref - inp).abs().max().item() < 1e-12, f"{spec.name}: relu recompute"
    assert worst > margin, f"{spec.name}: a ReLU pre-activation is {worst:.2e} from the kink"


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
    # The same two checks, bidirectional (`_reverse` weights, layer 1 reads 2H,
    # h_n layer-major forward-then-reverse).
    torch.manual_seed(3)
    ref = nn.GRU(I, H, 2, batch_first=True, bidirectional=True).double()
    mine = NotesGRU(I, H, 2, linear_before_reset=True, bidirectional=True).double()
    mine.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    h0 = torch.randn(4, B, H, dtype=torch.float64)
    a, ha = ref(x, h0)
    b, hb = mine(x, h0)
    err = max((a - b).abs().max().item(), (ha - hb).abs().max().item())
    assert err < 1e-12, f"NotesGRU bidirectional lbr self-test failed: {err}"
    torch.manual_seed(4)
    r = nn.GRU(I, H, 2, batch_first=True, bidirectional=True)
    torch.manual_seed(4)
    m = NotesGRU(I, H, 2, bidirectional=True)
    assert len(list(r.named_parameters())) == len(list(m.named_parameters()))
    for (n1, p1), (n2, p2) in zip(r.named_parameters(), m.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2), (n1, n2)


def cases():
    out = []
    for cell in ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_lbr"):
        for L in (1, 2):
            for head in (False, True):
                name = f"{cell}_l{L}" + ("_head" if head else "")
                plain = (not head) and cell in ("rnn_tanh", "lstm", "gru_lbr")
                out.append(Spec(name, cell, L, HEAD if head else 0, "identity", plain))
    out.append(Spec("lstm_l1_softmax", "lstm", 1, HEAD, "softmax", False))
    return out


# --------------------------------------------------------------------------
# Issue 18: bidirectional, variable lengths, LSTM proj_size, dropout (off).
# Written to EXT_DIR (see tests/fixtures/README.md for why a subdirectory).
# --------------------------------------------------------------------------
EXT_DIR = os.path.join(OUT_DIR, "issue18")
EXT_SEED = BASE_SEED + 500_000  # case k of ext_cases() uses EXT_SEED + 1000 * k
# Smaller than the original cases' I=7, H=13 to keep the files small (most of a
# data file is per-parameter tensors and their header entries); all sizes differ
# from each other: I=2, P=3, H=4, O=5, 2P=6, 2H=8, 3H=12, 4H=16.
EXT_I, EXT_H, EXT_P = 2, 4, 3
LENGTHS = [3, 5, 1]  # one per sequence (B = 3): unsorted, one full length, one of 1
DROPOUT = 0.3


def ext_cases():
    def spec(name, cell, L, plain, head=False, **kw):
        return Spec(name, cell, L, HEAD if head else 0, "identity", plain,
                    input_size=EXT_I, hidden_size=EXT_H, ext=True, **kw)

    nn_plain = ("rnn_tanh", "lstm", "gru_lbr")  # what a bare nn.RNN/LSTM/GRU state_dict can say
    out = []
    # Bidirectional: every cell, 1 and 2 layers; LSTM also with a head (reads 2H).
    for cell in ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_lbr"):
        for L in (1, 2):
            out.append(spec(f"{cell}_l{L}_bidir", cell, L, cell in nn_plain, bidirectional=True))
            if cell == "lstm":
                out.append(spec(f"{cell}_l{L}_bidir_head", cell, L, False, head=True,
                                bidirectional=True))
    # Variable lengths: LSTM and PyTorch's GRU, 1 and 2 layers, one and two directions.
    for cell in ("lstm", "gru_lbr"):
        for L in (1, 2):
            for bidir in (False, True):
                name = f"{cell}_l{L}" + ("_bidir" if bidir else "") + "_len"
                out.append(spec(name, cell, L, True, bidirectional=bidir, lengths=LENGTHS))
    out.append(spec("lstm_l2_bidir_len_head", "lstm", 2, False, head=True,
                    bidirectional=True, lengths=LENGTHS))
    # LSTM projection (h has P = 4 features, c has H).
    out.append(spec("lstm_l1_proj", "lstm", 1, True, proj_size=EXT_P))
    out.append(spec("lstm_l2_proj", "lstm", 2, True, proj_size=EXT_P))
    out.append(spec("lstm_l2_bidir_proj", "lstm", 2, True, bidirectional=True, proj_size=EXT_P))
    out.append(spec("lstm_l1_proj_head", "lstm", 1, False, head=True, proj_size=EXT_P))
    # Dropout between the layers, off (eval mode): equals the model without dropout.
    out.append(spec("lstm_l2_dropout", "lstm", 2, False, dropout=DROPOUT))
    return out


def main():
    torch.use_deterministic_algorithms(True)
    self_test_notes_gru()
    os.makedirs(OUT_DIR, exist_ok=True)
    report = {}
    for idx, spec in enumerate(cases()):
        write_case(BASE_SEED + 1000 * idx, spec, OUT_DIR, report)
        print(f"wrote {spec.name}")

    # Extra dtype files: lstm_l1's state_dict in f64 / f16 / bf16 (no metadata).
    idx = [c.name for c in cases()].index("lstm_l1")
    torch.manual_seed(BASE_SEED + 1000 * idx)
    m = Wrapper(Spec("lstm_l1", "lstm", 1)).float()
    from safetensors.torch import load_file
    saved = load_file(os.path.join(OUT_DIR, "lstm_l1.model.safetensors"))
    for k, v in m.rnn.state_dict().items():
        assert torch.equal(saved[k], v), k
    for tag, dt in (("f64", torch.float64), ("f16", torch.float16), ("bf16", torch.bfloat16)):
        sd = {k: v.to(dt).contiguous() for k, v in saved.items()}
        save(sd, os.path.join(OUT_DIR, f"lstm_l1.{tag}.model.safetensors"))
        print(f"wrote lstm_l1.{tag}")

    os.makedirs(EXT_DIR, exist_ok=True)
    for idx, spec in enumerate(ext_cases()):
        write_case(EXT_SEED + 1000 * idx, spec, EXT_DIR, report)
        print(f"wrote issue18/{spec.name}")

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
