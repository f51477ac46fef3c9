"""Side-by-side timing of rnncore (through its C ABI, via the ctypes binding), PyTorch and
ONNX Runtime on the same configurations, thread counts and inputs, interleaved in one
run. Writes a markdown table and an SVG chart of the ratios.

Run it through `benches/compare/run.sh`, which builds the library and prepares a Python
environment; see that script for the options.

What is timed, per configuration and thread count, as the median over `--reps`
interleaved repetitions (the frameworks take turns, so drift in machine load hits all
of them alike):
  * infer: one forward pass over a whole batch of sequences from zero state
    (PyTorch under `torch.inference_mode()`, ONNX Runtime from a `torch.onnx.export`
    of the same weights, rnncore `rnn_model_forward`).
  * train: one optimizer step: forward, MSE loss on every output, backward, SGD update
    (PyTorch `loss.backward()` + `optim.SGD.step()`, rnncore `rnn_trainer_step_mse`).
GFLOP/s counts 2 * B * T * G * H * (I + H) per layer for a forward pass and three times
that for a training step. The GRU is PyTorch's (linear-before-reset) in every framework.
"""

import argparse
import io
import os
import platform
import statistics
import sys
import time

# Worker threads that spin after a call would steal the second core from whichever
# framework runs next in the interleaving; every framework's pool waits passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# `--isa avx2` / `--isa avx` / `--isa sse41`: every framework as it would run on a CPU
# with only AVX2 (or only AVX, or only SSE4.x), on a CPU with more. The switches are read when the libraries load, so
# they are set before the imports: rnncore's tier; PyTorch's ATen kernels ("default" is
# its code without AVX), MKL and oneDNN (PyTorch's CPU LSTM and GRU run as oneDNN
# primitives). ONNX Runtime has no such switch (MLAS picks its kernels by CPUID), so it is
# left out of those tables.
ISA_ENVS = {
    "avx2": {
        "RNNCORE_KERNEL": "avx2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
    },
    # ATen has no AVX level: its code without AVX ("default"), as for sse41.
    "avx": {
        "RNNCORE_KERNEL": "avx",
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_ENABLE_INSTRUCTIONS": "AVX",
        "ONEDNN_MAX_CPU_ISA": "AVX",
    },
    "sse41": {
        "RNNCORE_KERNEL": "sse41",
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
    },
}
ISA = next(
    (a.split("=", 1)[1] for a in sys.argv if a.startswith("--isa=")),
    next((b for a, b in zip(sys.argv, sys.argv[1:]) if a == "--isa"), "native"),
)
ISA_ENV = ISA_ENVS.get(ISA, {})
os.environ.update(ISA_ENV)

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import rnncore  # noqa: E402
import torch  # noqa: E402

try:
    import onnxruntime as ort  # noqa: E402
except ImportError:  # the table then says n/a
    ort = None

CELLS = {"lstm": (torch.nn.LSTM, "lstm", 4), "gru": (torch.nn.GRU, "gru_lbr", 3), "rnn": (torch.nn.RNN, "rnn_tanh", 1)}


def gflop(cell, i, h, b, t, train):
    g = CELLS[cell][2]
    return (3 if train else 1) * 2 * b * t * g * h * (i + h) / 1e9


def torch_module(cell, i, h, seed):
    torch.manual_seed(seed)
    mod = CELLS[cell][0](i, h, batch_first=True)
    return mod


def rnncore_from_torch(mod, cell, tmpdir):
    """The same weights in rnncore, through a safetensors file (the real import path)."""
    import json
    import struct

    sd = {k: v.detach().contiguous().numpy().astype(np.float32) for k, v in mod.state_dict().items()}
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        b = v.tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"cell": CELLS[cell][1]}
    hb = json.dumps(header).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    path = os.path.join(tmpdir, f"{cell}.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
    return rnncore.Model.load(path)


def ort_session(mod, x, threads):
    if ort is None or ISA_ENV:
        return None
    buf = io.BytesIO()
    with torch.no_grad():
        try:
            torch.onnx.export(mod, (torch.from_numpy(x),), buf, input_names=["x"], output_names=["y", "h"], dynamo=False)
        except TypeError:
            torch.onnx.export(mod, (torch.from_numpy(x),), buf, input_names=["x"], output_names=["y", "h"])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])


def sgemm_products(kind, cell, shape):
    """The products of rnncore's pass as PyTorch's own GEMM (MKL) runs them, for `--sgemm`:
    the yardstick of the issue's "fraction of sgemm's rate on the same shape". A forward's:
    the input product `[B*T][I] x [I][G*H]` from the bias, then per step `[B][H] x
    [H][G*H]` added into that step's gate rows; a training step's also, per step,
    `dG [B][G*H] x W_hh [G*H][H]`, and the weight gradients `dG^T X` and `dG^T H`
    (`[G*H][B*T] x [B*T][I or H]`, transposed views). Returns three functions to time:
    the products as the pass runs them (one call per step), the same FLOPs as one product
    `[B*T][I+H] x [I+H][G*H]` (per training step: three of them), the shape a GEMM likes
    best, and as many 1 x 1 products as the first makes calls: PyTorch's per-call cost,
    which `run_config` takes off the first's time."""
    i, h, b, t = shape
    gh = CELLS[cell][2] * h
    g = torch.Generator().manual_seed(2)
    r = lambda *d: torch.rand(*d, generator=g) - 0.5  # noqa: E731
    x, wih, whh, bias, hs = r(b * t, i), r(i, gh), r(h, gh), r(gh), r(b, h)
    gates = torch.empty(b, t, gh)
    dg, whh_b, hall, dh = r(b * t, gh), r(gh, h), r(b * t, h), torch.zeros(b, h)
    one_a, one_b = r(b * t, i + h), r(i + h, gh)
    one_c = torch.empty(b * t, gh)
    tiny_a, tiny_b, tiny_c = r(1, 1), r(1, 1), torch.zeros(1, 1, 1)
    train = kind == "train"
    calls = 1 + t + (t + 2 if train else 0)

    def steps():
        torch.addmm(bias, x, wih, out=gates.view(b * t, gh))
        for s in range(t):
            gates[:, s, :].addmm_(hs, whh)
        if train:
            d3 = dg.view(b, t, gh)
            for s in range(t):
                dh.addmm_(d3[:, s, :], whh_b)
            torch.mm(dg.t(), x)
            torch.mm(dg.t(), hall)

    def one():
        for _ in range(3 if train else 1):
            torch.mm(one_a, one_b, out=one_c)

    def overhead():
        for _ in range(calls):
            tiny_c[:, 0, :].addmm_(tiny_a, tiny_b)

    return steps, one, overhead


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_config(kind, cell, shape, threads, reps, tmpdir, check, sgemm=False):
    i, h, b, t = shape
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(b, t, i)).astype(np.float32)
    mod = torch_module(cell, i, h, seed=1)
    model = rnncore_from_torch(mod, cell, tmpdir)
    torch.set_num_threads(threads)
    rnncore.set_num_threads(threads)
    runs = {}
    if kind == "infer":
        xt = torch.from_numpy(x)
        sess = ort_session(mod, x, threads)

        def t_torch():
            with torch.inference_mode():
                mod(xt)

        runs = {"rnncore": lambda: model.forward(x), "pytorch": t_torch}
        if sess is not None:
            runs["onnxruntime"] = lambda: sess.run(None, {"x": x})
        if check:
            with torch.inference_mode():
                want = mod(xt)[0].numpy()
            got = model.forward(x)
            err = float(np.abs(got - want).max())
            assert err < 1e-4, f"{cell} {shape}: rnncore and PyTorch differ by {err}"
            if sess is not None:
                err = float(np.abs(sess.run(None, {"x": x})[0] - want).max())
                assert err < 1e-4, f"{cell} {shape}: ONNX Runtime and PyTorch differ by {err}"
    else:
        target = rng.standard_normal(size=(b, t, h)).astype(np.float32)
        xt, tt = torch.from_numpy(x), torch.from_numpy(target)
        opt = torch.optim.SGD(mod.parameters(), lr=1e-6)
        lossf = torch.nn.MSELoss()
        trainer = rnncore.Trainer(model, optimizer="sgd", learning_rate=1e-6)

        def t_torch():
            opt.zero_grad(set_to_none=True)
            loss = lossf(mod(xt)[0], tt)
            loss.backward()
            opt.step()

        runs = {"rnncore": lambda: trainer.step_mse(x, target), "pytorch": t_torch}
    if sgemm:
        steps, one, overhead = sgemm_products(kind, cell, shape)
        runs.update({"sgemm steps": steps, "sgemm one": one, "sgemm calls": overhead})
    for fn in runs.values():  # warm-up (and first-call allocations) outside the timing
        fn()
    times = {name: [] for name in runs}
    names = list(runs)
    for r in range(reps):
        for j in range(len(names)):
            name = names[(r + j) % len(names)]
            time.sleep(0.02)  # let the previous framework's threads go idle
            times[name].append(timed(runs[name]))
    med = {name: statistics.median(v) for name, v in times.items()}
    if "sgemm calls" in med:
        med["sgemm steps"] -= med.pop("sgemm calls")
        # Tiny per-step products (the audio shapes) can take less than the per-call cost
        # measured apart: the difference is then noise, not a time.
        if med["sgemm steps"] <= 0:
            del med["sgemm steps"]
    model.close()
    return med


def svg_chart(rows, path):
    """Grouped bars: rnncore's speedup over the faster of the others, per row."""
    w, bar, gap, left, top = 900, 16, 6, 330, 40
    height = top + len(rows) * (bar + gap) + 40
    mx = max([r["ratio"] for r in rows if r["ratio"]] + [2.0])
    scale = (w - left - 60) / mx
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="20" font-size="14">rnncore speedup over the faster of PyTorch / ONNX Runtime (higher is better)</text>']
    x1 = left + scale
    out.append(f'<line x1="{x1:.1f}" y1="{top - 8}" x2="{x1:.1f}" y2="{height - 30}" stroke="#888" stroke-dasharray="4,3"/>')
    out.append(f'<text x="{x1 + 3:.1f}" y="{height - 16}" fill="#555">1.0x</text>')
    for n, r in enumerate(rows):
        y = top + n * (bar + gap)
        out.append(f'<text x="{left - 8}" y="{y + bar - 4}" text-anchor="end">{r["label"]}</text>')
        if r["ratio"]:
            color = "#2b8a3e" if r["ratio"] >= 1 else "#c92a2a"
            out.append(f'<rect x="{left}" y="{y}" width="{r["ratio"] * scale:.1f}" height="{bar}" fill="{color}"/>')
            out.append(f'<text x="{left + r["ratio"] * scale + 4:.1f}" y="{y + bar - 4}">{r["ratio"]:.2f}x</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--quick", action="store_true", help="small shapes only (a smoke run)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--name", default="latest", help="result files: NAME.md and NAME.svg")
    ap.add_argument("--cells", default=",".join(CELLS), help="comma-separated subset of lstm,gru,rnn")
    ap.add_argument("--kinds", default="infer,train", help="comma-separated subset of infer,train")
    ap.add_argument("--batched-only", action="store_true", help="skip the audio-style (I=1, H=32) configs")
    ap.add_argument("--isa", choices=["native", *ISA_ENVS], default="native",
                    help="avx2 / avx / sse41: rnncore and PyTorch restricted to that ISA (see ISA_ENVS), "
                         "ONNX Runtime left out")
    ap.add_argument("--sgemm", action="store_true",
                    help="also time the pass's products with PyTorch's GEMM (see sgemm_products)")
    args = ap.parse_args()
    if ISA_ENV:
        cap = torch.backends.cpu.get_cpu_capability()
        want = {"avx2": "AVX2", "avx": "DEFAULT", "sse41": "DEFAULT"}[ISA]
        if cap != want or rnncore.kernel_name() != ISA:
            sys.exit(f"--isa {ISA}: PyTorch runs {cap}, rnncore {rnncore.kernel_name()}: not restricted")
    threads = [int(v) for v in args.threads.split(",")]
    if args.quick:
        infer = [("lstm", (1, 32, 1, 256)), ("gru", (16, 32, 4, 16))]
        train = [("lstm", (8, 16, 4, 16))]
    else:
        big = [(64, 128, 64, 64), (256, 512, 32, 64), (512, 1024, 64, 32)]
        infer = [(c, (1, 32, 1, 4096)) for c in ("lstm", "gru")] + [(c, s) for s in big for c in CELLS]
        train = [(c, (1, 32, 16, 1024)) for c in ("lstm", "gru")] + [(c, s) for s in big for c in CELLS]
    if args.batched_only:
        infer = [(c, s) for c, s in infer if s[0] != 1]
        train = [(c, s) for c, s in train if s[0] != 1]
    cells, kinds = set(args.cells.split(",")), set(args.kinds.split(","))
    infer = [(c, s) for c, s in infer if c in cells] if "infer" in kinds else []
    train = [(c, s) for c, s in train if c in cells] if "train" in kinds else []
    os.makedirs(args.out, exist_ok=True)
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, configs in (("infer", infer), ("train", train)):
            for cell, shape in configs:
                for th in threads:
                    med = run_config(kind, cell, shape, th, args.reps, tmp, check=(th == threads[0]),
                                     sgemm=args.sgemm)
                    others = [v for k, v in med.items() if k in ("pytorch", "onnxruntime")]
                    ratio = min(others) / med["rnncore"] if others else None
                    i, h, b, t = shape
                    label = f"{kind} {cell} I{i} H{h} B{b} T{t} x{th}"
                    rows.append({"kind": kind, "cell": cell, "shape": shape, "threads": th, "med": med,
                                 "ratio": ratio, "label": label,
                                 "gflops": gflop(cell, i, h, b, t, kind == "train") / med["rnncore"]})
                    print(label, {k: f"{v * 1e3:.2f} ms" for k, v in med.items()},
                          f"ratio {ratio:.2f}" if ratio else "", flush=True)
    lines = [
        f"Machine: {machine()}; Python {platform.python_version()}, PyTorch {torch.__version__}, "
        f"ONNX Runtime {ort.__version__ if ort else 'n/a'}, rnncore {rnncore.version()} "
        f"(kernel {rnncore.kernel_name() if hasattr(rnncore, 'kernel_name') else '?'}). "
        f"Median of {args.reps} interleaved repetitions; times in ms. Thread pools wait "
        f"passively (OMP_WAIT_POLICY=PASSIVE, ONNX Runtime allow_spinning=0) so that one "
        f"framework's spinning workers do not slow the next."
        + (f" Restricted (`--isa {ISA}`): "
           + ", ".join(f"{k}={v}" for k, v in ISA_ENV.items())
           + "; ONNX Runtime left out (no switch: MLAS picks its kernels by CPUID)." if ISA_ENV else "")
        + (" `--sgemm`: the pass's products alone with PyTorch's GEMM (its BLAS, MKL in PyPI's"
           " build), interleaved with the rest: `sgemm steps` as the pass makes them (one call"
           " per step, less PyTorch's per-call cost; n/a where that cost measured apart exceeds"
           " the products' time), `sgemm one` the same FLOPs as one"
           " product; a rate / sgemm of 1 or more: the whole pass ran at least as fast as"
           " the GEMM ran its products alone." if args.sgemm else ""),
        "",
        "| what | cell | I, H, B, T | threads | rnncore | PyTorch | ONNX Runtime | rnncore GFLOP/s | speedup vs best other |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    if args.sgemm:
        lines[-2] = lines[-2] + (" sgemm steps | sgemm one | rnncore rate / sgemm steps |"
                                      " rnncore rate / sgemm one | PyTorch rate / sgemm steps |")
        lines[-1] = lines[-1] + " --- | --- | --- | --- | --- |"
    for r in rows:
        m = r["med"]
        f = lambda k: f"{m[k] * 1e3:.2f}" if k in m else "n/a"  # noqa: E731
        line = (f"| {r['kind']} | {r['cell']} | {', '.join(map(str, r['shape']))} | {r['threads']} | "
                f"{f('rnncore')} | {f('pytorch')} | {f('onnxruntime')} | {r['gflops']:.1f} | "
                f"{r['ratio']:.2f}x |")
        if args.sgemm:
            q = lambda a, b: f"{m[a] / m[b]:.2f}" if a in m and b in m else "n/a"  # noqa: E731
            line += (f" {f('sgemm steps')} | {f('sgemm one')} | {q('sgemm steps', 'rnncore')} |"
                     f" {q('sgemm one', 'rnncore')} | {q('sgemm steps', 'pytorch')} |")
        lines.append(line)
    md = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as fh:
        fh.write(md)
    svg_chart(rows, os.path.join(args.out, f"{args.name}.svg"))
    print(md)


if __name__ == "__main__":
    main()
