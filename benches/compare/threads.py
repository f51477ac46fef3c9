"""rnncore on 1 thread and on more, side by side: every configuration of the comparison
harness (compare.py's shapes: inference and training, LSTM, GRU and RNN), timed through
the Python binding (the C ABI) with the thread counts interleaved in each repetition.

    bash benches/compare/threads.sh [--reps N] [--threads 1,2] [--quick]

Needs only numpy and the rnncore package (threads.sh makes the environment). For each
configuration and thread count: the median over repetitions of one call's time (each
repetition makes one untimed call, then times enough calls to last at least 50 ms), and the ratio of each count's
median to one thread's (below 1: faster than one thread). Writes
benches/compare/results/threads-latest.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))

import rnncore  # noqa: E402

CELLS = {"lstm": "lstm", "gru": "gru_lbr", "rnn": "rnn_tanh"}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def configs(quick: bool):
    """compare.py's configurations: (kind, cell, (I, H, B, T))."""
    if quick:
        return [("infer", "lstm", (1, 32, 1, 256)), ("infer", "gru", (16, 32, 4, 16)),
                ("train", "lstm", (8, 16, 4, 16))]
    big = [(64, 128, 64, 64), (256, 512, 32, 64), (512, 1024, 64, 32)]
    infer = [(c, (1, 32, 1, 4096)) for c in ("lstm", "gru")] + [(c, s) for s in big for c in CELLS]
    train = [(c, (1, 32, 16, 1024)) for c in ("lstm", "gru")] + [(c, s) for s in big for c in CELLS]
    return [("infer", c, s) for c, s in infer] + [("train", c, s) for c, s in train]


def timer(kind, cell, shape):
    """A function running one call of the configuration, and what it keeps alive."""
    i, h, b, t = shape
    model = rnncore.Model(CELLS[cell], i, h, seed=1)
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (b, t, i)).astype(np.float32)
    if kind == "infer":
        return (lambda: model.forward(x)), (model,)
    target = rng.uniform(-1, 1, (b, t, h)).astype(np.float32)
    trainer = rnncore.Trainer(model, "sgd", learning_rate=1e-6)
    return (lambda: trainer.step_mse(x, target)), (model, trainer)


def time_once(fn) -> float:
    """Seconds per call: one untimed call (the thread count just changed), then enough
    calls to last at least 50 ms."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= 0.05:
            return dt / n


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "threads-latest.md"))
    args = ap.parse_args()
    counts = [int(v) for v in args.threads.split(",")]
    if counts[0] != 1 or any(c < 1 for c in counts):
        sys.exit("threads: the list starts with 1 (the baseline), every count >= 1")
    if args.reps < 1:
        sys.exit("threads: --reps must be >= 1")

    rows = []
    for kind, cell, shape in configs(args.quick):
        fn, keep = timer(kind, cell, shape)
        fn()  # warm: pools started, pages touched
        times = {c: [] for c in counts}
        for r in range(args.reps):
            order = counts[r % len(counts):] + counts[: r % len(counts)]
            for c in order:
                rnncore.set_num_threads(c)
                times[c].append(time_once(fn))
        rnncore.set_num_threads(0)
        med = {c: statistics.median(v) for c, v in times.items()}
        rows.append((kind, cell, shape, med))
        ratios = " ".join(f"{c}t/1t={med[c] / med[1]:.2f}" for c in counts[1:])
        print(f"{kind} {cell} {shape}: " + " ".join(f"{c}t={med[c] * 1e3:.2f}ms" for c in counts) + f" {ratios}", flush=True)
        del keep

    lines = [
        f"rnncore {rnncore.version()} (kernel {rnncore.kernel_name()}), {cpu_model()}, "
        f"{os.cpu_count()} logical CPUs; `bash benches/compare/threads.sh --reps {args.reps} "
        f"--threads {args.threads}`, {time.strftime('%Y-%m-%d', time.gmtime())}. Median of "
        f"{args.reps} interleaved repetitions, ms per call; ratio to 1 thread (below 1: faster).",
        "",
        "| what | cell | I, H, B, T | " + " | ".join(f"{c} thread{'s' if c > 1 else ''}" for c in counts)
        + " | " + " | ".join(f"{c}t / 1t" for c in counts[1:]) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in counts) + " | " + " | ".join("---" for _ in counts[1:]) + " |",
    ]
    for kind, cell, shape, med in rows:
        lines.append(
            f"| {kind} | {cell} | {', '.join(map(str, shape))} | "
            + " | ".join(f"{med[c] * 1e3:.2f}" for c in counts)
            + " | "
            + " | ".join(f"{med[c] / med[1]:.2f}" for c in counts[1:])
            + " |"
        )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
