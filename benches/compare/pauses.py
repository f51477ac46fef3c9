"""rnncore alone, one call every GAP milliseconds: how a batched call behaves when the pool
has been idle (an application calling between frames, a training loop preparing its next
batch). The harness (compare.py) pauses 20 ms before every call and interleaves other
frameworks; this isolates rnncore's part of that, with no PyTorch needed.

    python3 benches/compare/pauses.py train lstm 64,128,64,64 --gap-ms 70 --threads 1,2

Needs numpy and the release library (`cargo build --release`, or RNNCORE_LIB). Prints the
median and minimum over --calls timed calls per thread count; the thread counts are run in
the order given, --rounds times, so that drift shows.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bindings", "python"))

import numpy as np  # noqa: E402
import rnncore  # noqa: E402

CELLS = {"lstm": "lstm", "gru": "gru_lbr", "rnn": "rnn_tanh"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["infer", "train"])
    ap.add_argument("cell", choices=sorted(CELLS))
    ap.add_argument("shape", help="I,H,B,T")
    ap.add_argument("--gap-ms", type=float, default=20.0, help="pause before every call")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--calls", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    i, h, b, t = (int(v) for v in args.shape.split(","))
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(b, t, i)).astype(np.float32)
    target = rng.standard_normal(size=(b, t, h)).astype(np.float32)
    with rnncore.Model(CELLS[args.cell], i, h, seed=1) as model:
        if args.kind == "train":
            trainer = rnncore.Trainer(model, optimizer="sgd", learning_rate=1e-6)

            def call():
                trainer.step_mse(x, target)
        else:

            def call():
                model.forward(x)

        for _ in range(args.rounds):
            for n in (int(v) for v in args.threads.split(",")):
                rnncore.set_num_threads(n)
                call()
                times = []
                for _ in range(args.calls):
                    time.sleep(args.gap_ms / 1e3)
                    t0 = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t0)
                print(f"{args.kind} {args.cell} {args.shape} threads {n} gap {args.gap_ms:g} ms: "
                      f"median {statistics.median(times) * 1e3:.2f} ms, min {min(times) * 1e3:.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
