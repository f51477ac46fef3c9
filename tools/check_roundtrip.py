#!/usr/bin/env python3
"""Check that model files written by rnncore load strictly into PyTorch and
reproduce the PyTorch fixtures.

Usage:

    /work/venv-torch/bin/python tools/check_roundtrip.py DIR [--fixtures FIXDIR] [--atol 1e-5]

DIR holds `{case}.model.safetensors` files written by rnncore (tensor names without
a prefix: `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, an LSTM
projection's `weight_hr_l{k}`, and for a bidirectional model their `_reverse` twins, plus `head.weight` / `head.bias` with a
head; full config `__metadata__`, `bidirectional` and `proj_size` included). For each, the
PyTorch module is built from the metadata (nn.RNN / nn.LSTM / nn.GRU, or the notes'
GRU from gen_fixtures.py, subclassed with a `head` when output_size > 0 so that
state_dict() keys are exactly the file's), loaded with strict=True, run on the
fixture input `x` from FIXDIR/{case}.data.safetensors (default tests/fixtures; with
`lengths` in the data, through pack_padded_sequence, outputs past a length zero) and
compared with the fixture's `y` (max abs diff <= atol). For the issue 18 cases:

    cargo run --release --example resave -- tests/fixtures/issue18 OUT18
    /work/venv-torch/bin/python tools/check_roundtrip.py OUT18 --fixtures tests/fixtures/issue18

The config in the file must
also match the fixture's. `{case}.{f64,f16,bf16}.model.safetensors` (no data file of
their own) must instead hold exactly FIXDIR's file of that name upcast to float32.
One line per file; exit status 1 on any mismatch or
error, 2 on bad usage. Needs torch + safetensors (+ numpy).
"""

import argparse
import glob
import os
import sys

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from gen_fixtures import NotesGRU  # noqa: E402

META_KEYS = ("cell", "input_size", "hidden_size", "num_layers", "output_size", "output_activation")
# Compared with the fixture's where both have them (files before issue 18 lack them).
OPTIONAL_KEYS = ("bidirectional", "proj_size")


class RNNWithHead(nn.RNN):
    def __init__(self, *args, output_size, **kw):
        super().__init__(*args, **kw)
        self.head = nn.Linear(self.hidden_size * (2 if self.bidirectional else 1), output_size)


class LSTMWithHead(nn.LSTM):
    def __init__(self, *args, output_size, **kw):
        super().__init__(*args, **kw)
        width = self.proj_size if self.proj_size > 0 else self.hidden_size
        self.head = nn.Linear(width * (2 if self.bidirectional else 1), output_size)


class GRUWithHead(nn.GRU):
    def __init__(self, *args, output_size, **kw):
        super().__init__(*args, **kw)
        self.head = nn.Linear(self.hidden_size * (2 if self.bidirectional else 1), output_size)


class NotesGRUWithHead(NotesGRU):
    def __init__(self, *args, output_size, **kw):
        super().__init__(*args, **kw)
        self.head = nn.Linear(self.hidden_size * (2 if self.bidirectional else 1), output_size)


def build(meta):
    cell = meta["cell"]
    i, h, n = int(meta["input_size"]), int(meta["hidden_size"]), int(meta["num_layers"])
    o = int(meta["output_size"])
    head = o > 0
    kw = dict(batch_first=True, bidirectional=meta.get("bidirectional", "false") == "true")
    if head:
        kw["output_size"] = o
    if cell in ("rnn_tanh", "rnn_relu"):
        cls = RNNWithHead if head else nn.RNN
        return cls(i, h, n, nonlinearity=cell[4:], **kw)
    if cell == "lstm":
        proj = int(meta.get("proj_size", "0"))
        return (LSTMWithHead if head else nn.LSTM)(i, h, n, proj_size=proj, **kw)
    if cell == "gru_lbr":
        return (GRUWithHead if head else nn.GRU)(i, h, n, **kw)
    if cell == "gru":
        return (NotesGRUWithHead if head else NotesGRU)(i, h, n, **kw)
    raise ValueError(f"unknown cell {cell!r}")


def forward(module, meta, x, lengths=None):
    if lengths is None:
        out = module(x)[0]  # (output, h_n) or (output, (h_n, c_n))
    else:
        t = x.shape[1]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out = nn.utils.rnn.pad_packed_sequence(module(packed)[0], batch_first=True, total_length=t)[0]
    if int(meta["output_size"]) > 0:
        out = module.head(out)
    if lengths is not None:
        valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        out = out.masked_fill(~valid[..., None], 0.0)
    act = meta["output_activation"]
    if act == "softmax":
        out = torch.softmax(out, dim=-1)
    elif act != "identity":
        raise ValueError(f"unknown output_activation {act!r}")
    return out


DTYPE_TAGS = ("f64", "f16", "bf16")


def check_dtype_variant(path, case, fixtures):
    """`{base}.{f64,f16,bf16}.model.safetensors` re-saved by rnncore: every tensor must be
    float32 and equal, exactly, to the original file's values upcast to float32 (each
    of those dtypes' values, in range, is exactly a float32), under the same names."""
    orig_path = os.path.join(fixtures, f"{case}.model.safetensors")
    if not os.path.exists(orig_path):
        return False, f"no original {orig_path}"
    mine, orig = load_file(path), load_file(orig_path)
    if sorted(mine) != sorted(orig):
        return False, f"tensor names differ: {sorted(mine)} vs {sorted(orig)}"
    bad_dtype = sorted({str(v.dtype) for v in mine.values()} - {"torch.float32"})
    if bad_dtype:
        return False, f"tensors not all float32: {bad_dtype}"
    diff = [k for k in mine if not torch.equal(mine[k], orig[k].float())]
    if diff:
        return False, f"values differ from the original upcast to float32: {diff}"
    return True, f"equal to {os.path.basename(orig_path)} upcast to float32"


def check(path, fixtures, atol):
    case = os.path.basename(path)[: -len(".model.safetensors")]
    if case.rsplit(".", 1)[-1] in DTYPE_TAGS and "." in case:
        return check_dtype_variant(path, case, fixtures)
    data_path = os.path.join(fixtures, f"{case}.data.safetensors")
    if not os.path.exists(data_path):
        return False, f"no fixture {data_path}"
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        return False, f"metadata missing {missing}"
    with safe_open(data_path, "pt") as f:
        fmeta = f.metadata() or {}
    keys = META_KEYS + tuple(k for k in OPTIONAL_KEYS if k in meta)
    diff = {k: (meta[k], fmeta[k]) for k in keys if k in fmeta and meta[k] != fmeta[k]}
    if diff:
        return False, f"config differs from the fixture's (file, fixture): {diff}"
    tensors = load_file(path)
    bad_dtype = sorted({str(v.dtype) for v in tensors.values()} - {"torch.float32"})
    module = build(meta).double()
    # strict: any missing or unexpected name raises; load_state_dict upcasts to f64.
    module.load_state_dict(tensors, strict=True)
    module.eval()
    data = load_file(data_path)
    lengths = data["lengths"].long() if "lengths" in data else None
    with torch.no_grad():
        y = forward(module, meta, data["x"].double(), lengths)
    ref = data["y"].double()
    if y.shape != ref.shape:
        return False, f"output shape {tuple(y.shape)} != fixture {tuple(ref.shape)}"
    err = (y - ref).abs().max().item()
    ok = err <= atol and not bad_dtype
    msg = f"max|y - y_ref| = {err:.2e}" + ("" if err <= atol else f" > {atol:g}")
    if bad_dtype:
        msg += f"; tensors not all float32: {bad_dtype}"
    return ok, msg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--atol", type=float, default=1e-5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = sorted(glob.glob(os.path.join(args.dir, "*.model.safetensors")))
    if not files:
        print(f"no *.model.safetensors in {args.dir}", file=sys.stderr)
        return 1
    failures = 0
    for path in files:
        try:
            ok, msg = check(path, args.fixtures, args.atol)
        except Exception as e:  # a strict-load error names the offending tensors
            ok, msg = False, f"{type(e).__name__}: {e}".replace("\n", " ")
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(path)}: {msg}")
    print(f"{len(files) - failures}/{len(files)} passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
