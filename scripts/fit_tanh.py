#!/usr/bin/env python3
"""Fits the rational tanh of the SIMD activation kernels (src/kernels/x86_64/mod.rs).

tanh(a) ~ a * P(a^2) / Q(a^2) on [0, T], P and Q of degree 4, Q(0) = 1, minimizing the
largest of max(1, a) * |P/Q - tanh(a)/a|: the absolute error of tanh for a >= 1 and its
relative error below (where tanh(a) ~ a). T = 9.010914 is the smallest f32 whose tanh
rounds to 1 in f32; from there the kernels return 1 exactly.

The fit: linearized least squares (P - f*Q with weights 1/Q of the last iterate), the
weights of the points updated by their errors (Lawson's iteration toward the minimax
fit), in f64 on a scaled variable. Needs numpy. Prints the coefficients as f32.

    python3 scripts/fit_tanh.py
"""
import numpy as np

T = np.float32(9.010914)


def fit(m=4, n=4, c=float(T), iters=200):
    a = np.unique(np.concatenate([np.linspace(0, c, 6000),
                                  c * (1 - np.cos(np.linspace(0, np.pi / 2, 3000)))]))
    a = a[a > 0]
    f = np.tanh(a) / a
    w = np.maximum(1.0, a)
    s = c * c
    t = a * a / s
    lam = np.ones_like(a) / len(a)
    qprev = np.ones_like(a)
    best = None
    for _ in range(iters):
        A = np.hstack([np.vander(t, m + 1, increasing=True),
                       -(f[:, None]) * np.vander(t, n + 1, increasing=True)[:, 1:]])
        sw = np.sqrt(lam) * w / np.abs(qprev)
        coef, *_ = np.linalg.lstsq(A * sw[:, None], f * sw, rcond=None)
        p, q = coef[:m + 1], np.concatenate([[1.0], coef[m + 1:]])
        P, Q = np.polyval(p[::-1], t), np.polyval(q[::-1], t)
        err = w * np.abs(P / Q - f)
        if best is None or err.max() < best[0]:
            best = (err.max(), p.copy(), q.copy())
        lam = lam * err
        lam /= lam.sum()
        qprev = Q
    e, p, q = best
    scale = s ** np.arange(m + 1)
    return e, p / scale, q / s ** np.arange(n + 1)


if __name__ == "__main__":
    # The smallest f32 whose tanh rounds to 1.
    x = np.float32(8.0)
    while np.float32(np.tanh(np.float64(x))) != 1.0:
        x = np.nextafter(x, np.float32(100))
    print("tanh rounds to 1 from", str(x))
    e, p, q = fit()
    print("max weighted error of the fit (f64): %.3g" % e)
    print("P:", ", ".join(str(np.float32(v)) for v in p))
    print("Q:", ", ".join(str(np.float32(v)) for v in q))
