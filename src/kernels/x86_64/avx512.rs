//! AVX-512F activations, 16 lanes. The algorithm and its constants are described in
//! [`super`]; [`super::avx2`] is the same body on 8 lanes. Only AVX-512F instructions
//! are used (bitwise float operations go through the integer forms, which are
//! AVX-512F; the `_ps` forms would need AVX-512DQ).
//!
//! The tail (`len % 16` elements) is one masked load and masked store: masked-off
//! lanes are neither read nor written (and cannot fault).

use std::arch::x86_64::*;

use super::{
    StreamInput, FLUSH_BELOW, MINUS_ONE_BITS, ONE_BITS, SIGMOID_ONE_FROM, SIGMOID_P, SIGMOID_Q,
    TANH_ONE_FROM, TANH_P, TANH_Q,
};

/// `f32` lanes per vector.
pub(crate) const LANES: usize = 16;

/// `(n, d)` with `n/d = x·P(x²)/Q(x²)` for the coefficients `p` and `q` (Estrin's
/// scheme: after `y = x²`, three dependent operations for each), odd in `x` bit for bit.
#[inline]
#[target_feature(enable = "avx512f")]
fn rational_parts(x: __m512, p: [f32; 5], q: [f32; 5]) -> (__m512, __m512) {
    let c = |v: f32| _mm512_set1_ps(v);
    let y = _mm512_mul_ps(x, x);
    let y2 = _mm512_mul_ps(y, y);
    let p01 = _mm512_fmadd_ps(c(p[1]), y, c(p[0]));
    let p234 = _mm512_fmadd_ps(y2, c(p[4]), _mm512_fmadd_ps(c(p[3]), y, c(p[2])));
    let q01 = _mm512_fmadd_ps(c(q[1]), y, c(q[0]));
    let q234 = _mm512_fmadd_ps(y2, c(q[4]), _mm512_fmadd_ps(c(q[3]), y, c(q[2])));
    let n = _mm512_mul_ps(x, _mm512_fmadd_ps(y2, p234, p01));
    (n, _mm512_fmadd_ps(y2, q234, q01))
}

/// `num/d` for `d >= 1` (or NaN): the 14-bit estimate `r` of `1/d`, then one Newton
/// step applied to the quotient, `y + y·(1 − d·r)` with `y = num·r`, so the product
/// with `num` runs beside the step instead of after it. A 512-bit division issues once
/// per 10-16 cycles; this is four pipelined operations, three deep.
#[inline]
#[target_feature(enable = "avx512f")]
fn div(num: __m512, d: __m512) -> __m512 {
    let r = _mm512_rcp14_ps(d);
    let y = _mm512_mul_ps(num, r);
    _mm512_fmadd_ps(y, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0)), y)
}

/// `min(hi, max(lo, v))` by `min`/`max` with the constant first: a NaN lane passes
/// (both return their second operand when either is NaN).
#[inline]
#[target_feature(enable = "avx512f")]
fn clamp(v: __m512, lo: f32, hi: f32) -> __m512 {
    _mm512_max_ps(_mm512_set1_ps(lo), _mm512_min_ps(_mm512_set1_ps(hi), v))
}

/// Sigmoid of 16 lanes, the form for throughput: `x` held to `±SIGMOID_ONE_FROM`, then
/// `(n + d/2)/d` with `n/d ≈ tanh(x/2)/2`, held to `[0, 1]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn sigmoid_v(x: __m512) -> __m512 {
    let x = clamp(x, -SIGMOID_ONE_FROM, SIGMOID_ONE_FROM);
    let (n, d) = rational_parts(x, SIGMOID_P, SIGMOID_Q);
    let num = _mm512_fmadd_ps(_mm512_set1_ps(0.5), d, n);
    clamp(div(num, d), 0.0, 1.0)
}

/// [`sigmoid_v`] for a dependency chain, bit for bit: no clamp before the polynomials,
/// the result held to `[0, 1]` by one-cycle integer operations on its bits (a signed
/// max with +0 — negative floats are negative integers — then an unsigned min with 1),
/// and the lanes from the limit on (and NaN, unordered) replaced by a mask with
/// `min(1, max(0, x))`, computed beside the chain.
#[inline]
#[target_feature(enable = "avx512f")]
fn sigmoid_chain(x: __m512) -> __m512 {
    let (n, d) = rational_parts(x, SIGMOID_P, SIGMOID_Q);
    let num = _mm512_fmadd_ps(_mm512_set1_ps(0.5), d, n);
    let s = _mm512_max_epi32(_mm512_castps_si512(div(num, d)), _mm512_setzero_si512());
    let s = _mm512_castsi512_ps(_mm512_min_epu32(s, _mm512_set1_epi32(ONE_BITS)));
    let a = _mm512_abs_ps(x);
    let beyond = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(a, _mm512_set1_ps(SIGMOID_ONE_FROM));
    _mm512_mask_mov_ps(s, beyond, clamp(x, 0.0, 1.0))
}

/// Tanh of 16 lanes, the form for throughput: `x` held to `±TANH_ONE_FROM`, then
/// `x·P(x²)/Q(x²)` held to `[-1, 1]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn tanh_v(x: __m512) -> __m512 {
    let x = clamp(x, -TANH_ONE_FROM, TANH_ONE_FROM);
    let (n, d) = rational_parts(x, TANH_P, TANH_Q);
    clamp(div(n, d), -1.0, 1.0)
}

/// [`tanh_v`] for a dependency chain, bit for bit: the quotient held to `[-1, 1]` by
/// integer operations (a signed min with the bits of 1 holds the positive lanes, an
/// unsigned min with those of −1 the negative ones), the lanes from the limit on (and
/// NaN) replaced by a mask with `min(1, max(-1, x))`.
#[inline]
#[target_feature(enable = "avx512f")]
fn tanh_chain(x: __m512) -> __m512 {
    let (n, d) = rational_parts(x, TANH_P, TANH_Q);
    let t = _mm512_min_epi32(_mm512_castps_si512(div(n, d)), _mm512_set1_epi32(ONE_BITS));
    let t = _mm512_castsi512_ps(_mm512_min_epu32(t, _mm512_set1_epi32(MINUS_ONE_BITS)));
    let a = _mm512_abs_ps(x);
    let beyond = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(a, _mm512_set1_ps(TANH_ONE_FROM));
    _mm512_mask_mov_ps(t, beyond, clamp(x, -1.0, 1.0))
}

/// Sigmoid in the form for a chain (`CHAIN`) or for throughput: the same bits.
#[inline]
#[target_feature(enable = "avx512f")]
fn sigmoid_g<const CHAIN: bool>(x: __m512) -> __m512 {
    if CHAIN {
        sigmoid_chain(x)
    } else {
        sigmoid_v(x)
    }
}

/// Tanh in the form for a chain (`CHAIN`) or for throughput: the same bits.
#[inline]
#[target_feature(enable = "avx512f")]
fn tanh_g<const CHAIN: bool>(x: __m512) -> __m512 {
    if CHAIN {
        tanh_chain(x)
    } else {
        tanh_v(x)
    }
}

/// Applies `f` to `x` in place, 16 lanes at a time, the tail through a masked vector.
#[inline]
#[target_feature(enable = "avx512f")]
fn map(x: &mut [f32], f: impl Fn(__m512) -> __m512) {
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let p = c.as_mut_ptr();
        // SAFETY: `c` is exactly LANES = 16 contiguous f32s (chunks_exact_mut), so
        // the unaligned 16-lane load reads only `c`.
        let v = unsafe { _mm512_loadu_ps(p) };
        // SAFETY: as for the load; `c` is writable (`&mut`).
        unsafe { _mm512_storeu_ps(p, f(v)) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let k: __mmask16 = (1u16 << tail.len()) - 1; // tail.len() < 16
        let p = tail.as_mut_ptr();
        // SAFETY: mask `k` enables lanes 0..tail.len() only, all inside `tail`; masked
        // loads do not access (or fault on) disabled lanes.
        let v = unsafe { _mm512_maskz_loadu_ps(k, p) };
        // SAFETY: as for the load, and `tail` is writable (`&mut`).
        unsafe { _mm512_mask_storeu_ps(p, k, f(v)) };
    }
}

/// Up to this many elements a map is taken to be a single stream's row that the next
/// step waits on (an RNN's `h`), and runs the activations' form for a chain; longer
/// ones the form for throughput. The two give the same bits.
const CHAIN_UP_TO: usize = 2 * LANES;

/// `x <- sigmoid(x)` elementwise.
#[target_feature(enable = "avx512f")]
pub(crate) fn sigmoid(x: &mut [f32]) {
    if x.len() <= CHAIN_UP_TO {
        map(x, |v| sigmoid_chain(v));
    } else {
        map(x, |v| sigmoid_v(v));
    }
}

/// `x <- tanh(x)` elementwise.
#[target_feature(enable = "avx512f")]
pub(crate) fn tanh(x: &mut [f32]) {
    if x.len() <= CHAIN_UP_TO {
        map(x, |v| tanh_chain(v));
    } else {
        map(x, |v| tanh_v(v));
    }
}

/// Lanes `0..min(rem, 16)` on.
#[inline]
pub(crate) fn lanes(rem: usize) -> __mmask16 {
    if rem >= LANES {
        0xffff
    } else {
        ((1u32 << rem) - 1) as u16
    }
}

/// Fused LSTM pointwise pass (the math of [`crate::kernels::reference::lstm_cell_ref`]):
/// `i,f,o = σ`, `g = tanh` in place on `gates` (`[4n]`), `c = f⊙c_prev + i⊙g`,
/// `h = o⊙tanh(c)`, 16 units per vector, two vectors per iteration (see
/// [`lstm_state`]), the tail masked.
#[target_feature(enable = "avx512f")]
pub(crate) fn lstm_cell(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    assert!(gates.len() == 4 * n && c_prev.len() == n && h.len() == n);
    let (gp, cpp, cp, hp) = (
        gates.as_mut_ptr(),
        c_prev.as_ptr(),
        c.as_mut_ptr(),
        h.as_mut_ptr(),
    );
    // SAFETY (the closures' calls below): the lanes enabled by `k` are units
    // j..min(j+16, n); with the lengths asserted above every access is inside its slice
    // (gate q of unit j at q*n + j).
    let load = |j: usize, k: __mmask16| unsafe {
        let g = [0, 1, 2, 3].map(|q| _mm512_maskz_loadu_ps(k, gp.add(q * n + j)));
        (g, _mm512_maskz_loadu_ps(k, cpp.add(j)))
    };
    let store = |j: usize, k: __mmask16, (act, cv, hv): ([__m512; 4], __m512, __m512)| unsafe {
        for (q, v) in act.into_iter().enumerate() {
            _mm512_mask_storeu_ps(gp.add(q * n + j), k, v);
        }
        _mm512_mask_storeu_ps(cp.add(j), k, cv);
        _mm512_mask_storeu_ps(hp.add(j), k, hv);
    };
    let mut j = 0;
    while j + LANES < n {
        let k1 = lanes(n - j - LANES);
        let ((g0, c0), (g1, c1)) = (load(j, 0xffff), load(j + LANES, k1));
        let (v0, v1) = (lstm_cell_v(g0, c0), lstm_cell_v(g1, c1));
        store(j, 0xffff, v0);
        store(j + LANES, k1, v1);
        j += 2 * LANES;
    }
    if j < n {
        let k = lanes(n - j);
        let (g, cv) = load(j, k);
        store(j, k, lstm_cell_v(g, cv));
    }
}

/// The activated gates, `c` and `h` of 16 units from their pre-activations
/// `[i, f, g, o]` and `c_prev`.
#[inline]
#[target_feature(enable = "avx512f")]
fn lstm_cell_v([gi, gf, gg, go]: [__m512; 4], c_prev: __m512) -> ([__m512; 4], __m512, __m512) {
    let (i, f, g, o) = (sigmoid_v(gi), sigmoid_v(gf), tanh_v(gg), sigmoid_v(go));
    let cv = _mm512_add_ps(_mm512_mul_ps(f, c_prev), _mm512_mul_ps(i, g));
    ([i, f, g, o], cv, _mm512_mul_ps(o, tanh_v(cv)))
}

/// Fused linear-before-reset GRU pointwise pass (the math of
/// [`crate::kernels::reference::gru_lbr_cell_ref`]), two vectors per iteration.
#[target_feature(enable = "avx512f")]
pub(crate) fn gru_lbr_cell(gates: &mut [f32], ghn: &[f32], h_prev: &[f32], h: &mut [f32]) {
    let n = h.len();
    assert!(gates.len() == 3 * n && ghn.len() == n && h_prev.len() == n);
    let (gp, np, pp, hp) = (
        gates.as_mut_ptr(),
        ghn.as_ptr(),
        h_prev.as_ptr(),
        h.as_mut_ptr(),
    );
    // SAFETY (the closures' calls below): as in `lstm_cell`: masked to units
    // j..min(j+16, n) of slices whose lengths are asserted above.
    let load = |j: usize, k: __mmask16| unsafe {
        let g = [0, 1, 2].map(|q| _mm512_maskz_loadu_ps(k, gp.add(q * n + j)));
        (
            g,
            _mm512_maskz_loadu_ps(k, np.add(j)),
            _mm512_maskz_loadu_ps(k, pp.add(j)),
        )
    };
    let store = |j: usize, k: __mmask16, (act, hv): ([__m512; 3], __m512)| unsafe {
        for (q, v) in act.into_iter().enumerate() {
            _mm512_mask_storeu_ps(gp.add(q * n + j), k, v);
        }
        _mm512_mask_storeu_ps(hp.add(j), k, hv);
    };
    let mut j = 0;
    while j + LANES < n {
        let k1 = lanes(n - j - LANES);
        let ((g0, n0, p0), (g1, n1, p1)) = (load(j, 0xffff), load(j + LANES, k1));
        let (v0, v1) = (gru_lbr_cell_v(g0, n0, p0), gru_lbr_cell_v(g1, n1, p1));
        store(j, 0xffff, v0);
        store(j + LANES, k1, v1);
        j += 2 * LANES;
    }
    if j < n {
        let k = lanes(n - j);
        let (g, nv, pv) = load(j, k);
        store(j, k, gru_lbr_cell_v(g, nv, pv));
    }
}

/// `[r, z, n]` and `h` of 16 units from the pre-activations `[r, z, n_input]`, `W_hn h +
/// b_hn` and `h_prev`.
#[inline]
#[target_feature(enable = "avx512f")]
fn gru_lbr_cell_v([gr, gz, gn]: [__m512; 3], ghn: __m512, hprev: __m512) -> ([__m512; 3], __m512) {
    let (r, z) = (sigmoid_v(gr), sigmoid_v(gz));
    let nv = tanh_v(_mm512_add_ps(gn, _mm512_mul_ps(r, ghn)));
    let hv = _mm512_add_ps(nv, _mm512_mul_ps(z, _mm512_sub_ps(hprev, nv)));
    ([r, z, nv], hv)
}

/// Zeroes the lanes of `v` smaller in magnitude than `FLUSH_BELOW` (NaN compares false
/// and stays).
#[inline]
#[target_feature(enable = "avx512f")]
fn flush(v: __m512) -> __m512 {
    let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(v), _mm512_set1_ps(FLUSH_BELOW));
    _mm512_mask_mov_ps(v, tiny, _mm512_setzero_ps())
}

/// Streaming LSTM update in place (the math of
/// [`crate::kernels::reference::lstm_state_ref`]): `gates` (`[4n]` pre-activations) are
/// only read; `c <- flush(f⊙c + i⊙g)`, `h <- flush(o⊙tanh(f⊙c + i⊙g))`.
#[target_feature(enable = "avx512f")]
pub(crate) fn lstm_state(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    assert!(gates.len() == 4 * n && h.len() == n);
    let (gp, cp, hp) = (gates.as_ptr(), c.as_mut_ptr(), h.as_mut_ptr());
    // SAFETY (both closures' callers below): the lanes enabled by `k` are units
    // j..min(j+16, n); with the lengths asserted above every access is inside its slice
    // (gate q of unit j at q*n + j). Each lane of `c` is read before it is written.
    let load = |j: usize, k: __mmask16| unsafe {
        [0, 1, 2, 3].map(|q| _mm512_maskz_loadu_ps(k, gp.add(q * n + j)))
    };
    let store = |j: usize, k: __mmask16, (cv, hv): (__m512, __m512)| unsafe {
        _mm512_mask_storeu_ps(cp.add(j), k, flush(cv));
        _mm512_mask_storeu_ps(hp.add(j), k, flush(hv));
    };
    let mut j = 0;
    // Two vectors of units per iteration, in one straight run of code: their long,
    // independent dependency chains then interleave in the scheduler instead of the
    // second waiting behind the first (H = 32 state updates ran at half the
    // throughput their operation count allows).
    while j + LANES < n {
        let k1 = lanes(n - j - LANES);
        // SAFETY: see `load`; unit j + 16 exists (loop condition).
        let (c0, c1) = unsafe {
            (
                _mm512_loadu_ps(cp.add(j)),
                _mm512_maskz_loadu_ps(k1, cp.add(j + LANES)),
            )
        };
        let v0 = lstm_state_v::<false>(load(j, 0xffff), c0);
        let v1 = lstm_state_v::<false>(load(j + LANES, k1), c1);
        store(j, 0xffff, v0);
        store(j + LANES, k1, v1);
        j += 2 * LANES;
    }
    if j < n {
        let k = lanes(n - j);
        // SAFETY: see `load`.
        let cv = unsafe { _mm512_maskz_loadu_ps(k, cp.add(j)) };
        store(j, k, lstm_state_v::<false>(load(j, k), cv));
    }
}

/// `(c, h)` of 16 units from their gate pre-activations `[i, f, g, o]` and old `c`;
/// the activations in their form for a chain where `CHAIN` (a single stream's steps),
/// else for throughput (the same bits).
#[inline]
#[target_feature(enable = "avx512f")]
fn lstm_state_v<const CHAIN: bool>([gi, gf, gg, go]: [__m512; 4], c: __m512) -> (__m512, __m512) {
    let (sg, th) = (sigmoid_g::<CHAIN>, tanh_g::<CHAIN>);
    let (i, f, g, o) = (sg(gi), sg(gf), th(gg), sg(go));
    let cv = _mm512_add_ps(_mm512_mul_ps(f, c), _mm512_mul_ps(i, g));
    (cv, _mm512_mul_ps(o, th(cv)))
}

/// Streaming linear-before-reset GRU update in place (the math of
/// [`crate::kernels::reference::gru_lbr_state_ref`]): `gates` (`[3n]`: bias and input
/// parts) and `gh` (`[3n]`: `W_hh h`) are only read; `h <- flush(n + z⊙(h − n))`.
#[target_feature(enable = "avx512f")]
pub(crate) fn gru_lbr_state(gates: &[f32], gh: &[f32], b_hn: &[f32], h: &mut [f32]) {
    let n = h.len();
    assert!(gates.len() == 3 * n && gh.len() == 3 * n && b_hn.len() == n);
    let (gp, ghp, bp, hp) = (gates.as_ptr(), gh.as_ptr(), b_hn.as_ptr(), h.as_mut_ptr());
    // SAFETY (the closures' calls below): as in `lstm_state`: masked to units
    // j..min(j+16, n) of slices whose lengths are asserted above; each lane of `h` is
    // read before it is written.
    let load = |j: usize, k: __mmask16| unsafe {
        let ld = |p: *const f32| _mm512_maskz_loadu_ps(k, p);
        let g = [0, 1, 2].map(|q| ld(gp.add(q * n + j)));
        let w = [0, 1, 2].map(|q| ld(ghp.add(q * n + j)));
        (g, w, ld(bp.add(j)), ld(hp.add(j)))
    };
    let store = |j: usize, k: __mmask16, hv: __m512| unsafe {
        _mm512_mask_storeu_ps(hp.add(j), k, flush(hv));
    };
    let mut j = 0;
    // Two vectors per iteration, as in `lstm_state`.
    while j + LANES < n {
        let k1 = lanes(n - j - LANES);
        let ((g0, w0, b0, h0), (g1, w1, b1, h1)) = (load(j, 0xffff), load(j + LANES, k1));
        let (v0, v1) = (
            gru_lbr_state_v::<false>(g0, w0, b0, h0),
            gru_lbr_state_v::<false>(g1, w1, b1, h1),
        );
        store(j, 0xffff, v0);
        store(j + LANES, k1, v1);
        j += 2 * LANES;
    }
    if j < n {
        let k = lanes(n - j);
        let (g, w, bv, hv) = load(j, k);
        store(j, k, gru_lbr_state_v::<false>(g, w, bv, hv));
    }
}

/// The new `h` of 16 units (before the flush) from the gate pre-activations `[r, z, n]`
/// (bias and input parts), `W_hh h` (`[r, z, n]`), `b_hn` and the old `h`; the
/// activations' form chosen by `CHAIN` as in [`lstm_state_v`].
#[inline]
#[target_feature(enable = "avx512f")]
fn gru_lbr_state_v<const CHAIN: bool>(
    g: [__m512; 3],
    w: [__m512; 3],
    b_hn: __m512,
    h: __m512,
) -> __m512 {
    let r = sigmoid_g::<CHAIN>(_mm512_add_ps(g[0], w[0]));
    let z = sigmoid_g::<CHAIN>(_mm512_add_ps(g[1], w[1]));
    let ghn = _mm512_add_ps(w[2], b_hn);
    // Fused multiply-adds: each saves a dependent operation on the chain a single
    // stream's step waits on (the reference rounds the product separately).
    let nv = tanh_g::<CHAIN>(_mm512_fmadd_ps(r, ghn, g[2]));
    _mm512_fmadd_ps(z, _mm512_sub_ps(h, nv), nv)
}

/// `h · W_hhᵀ` for one stream against one group of packed panels (`V` vectors of 16
/// columns, row stride `ldb`), summed exactly as the packed GEMV sums it
/// (`kernels::packed`): even and odd rows of `W_hhᵀ` in separate accumulators, in row
/// order, then added.
///
/// # Safety
/// `h` holds `k` floats and `w` `k` rows of `ldb >= 16·V` floats.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // even and odd are indexed in step
unsafe fn hh_product<const V: usize>(
    k: usize,
    h: *const f32,
    w: *const f32,
    ldb: usize,
) -> [__m512; V] {
    let mut even = [_mm512_setzero_ps(); V];
    let mut odd = [_mm512_setzero_ps(); V];
    let mut p = 0;
    while p + 1 < k {
        // SAFETY: p + 1 < k: h[p], h[p + 1] and rows p, p + 1 of `w`, columns < 16·V <= ldb.
        unsafe {
            let (a0, a1) = (_mm512_set1_ps(*h.add(p)), _mm512_set1_ps(*h.add(p + 1)));
            for v in 0..V {
                let r0 = w.add(p * ldb + 16 * v);
                even[v] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(r0), even[v]);
                odd[v] = _mm512_fmadd_ps(a1, _mm512_loadu_ps(r0.add(ldb)), odd[v]);
            }
        }
        p += 2;
    }
    if p < k {
        // SAFETY: p = k - 1: h[p] and row p of `w`, columns < 16·V <= ldb.
        unsafe {
            let a0 = _mm512_set1_ps(*h.add(p));
            for v in 0..V {
                let r0 = w.add(p * ldb + 16 * v);
                even[v] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(r0), even[v]);
            }
        }
    }
    for v in 0..V {
        even[v] = _mm512_add_ps(even[v], odd[v]);
    }
    even
}

/// `bias + x · W_ihᵀ` for one row `x` of `k` inputs against one group of packed panels
/// (`V` vectors, row stride `ldb`), summed as the packed GEMM sums it with a bias start
/// (`kernels::packed`, `k <= KC`): from zero over the inputs in order, then added to
/// the bias.
///
/// # Safety
/// `x` holds `k` floats, `w` `k` rows of `ldb >= 16·V` floats, `bias` `16·V` floats.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn input_part<const V: usize>(
    k: usize,
    x: *const f32,
    w: *const f32,
    ldb: usize,
    bias: *const f32,
) -> [__m512; V] {
    let mut acc = [_mm512_setzero_ps(); V];
    for p in 0..k {
        // SAFETY: p < k: x[p] and row p of `w`, columns < 16·V <= ldb.
        unsafe {
            let a = _mm512_set1_ps(*x.add(p));
            for (v, s) in acc.iter_mut().enumerate() {
                *s = _mm512_fmadd_ps(a, _mm512_loadu_ps(w.add(p * ldb + 16 * v)), *s);
            }
        }
    }
    // SAFETY: bias holds 16·V floats.
    std::array::from_fn(|v| unsafe { _mm512_add_ps(_mm512_loadu_ps(bias.add(16 * v)), acc[v]) })
}

/// `steps` timesteps of one LSTM stream of `16·U` units (`V = 4·U` gate vectors): per
/// step the gate pre-activations `bias + x · W_ihᵀ` ([`input_part`]) plus `W_hh h`
/// ([`hh_product`]), then the state update of [`lstm_state`]; `c` stays in registers
/// from step to step, `h` is stored (the next product broadcasts it) and copied to
/// `out` (rows of `H`). The same operations, in the same order, as the packed GEMM of
/// the inputs into gate rows, the packed GEMV of `h` into each row and [`lstm_state`],
/// step by step, without the gate rows' stores and reloads and the calls between them.
///
/// # Safety
/// `inp` describes `steps` rows of inputs (`k <= KC`) and `W_ihᵀ` with `4H` columns;
/// `out` holds `steps` rows of `H`; `h`, `c` hold `H` floats; `w` is `W_hhᵀ` packed as
/// one group (`H` rows of `ldb >= 4H` floats).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn lstm_stream<const U: usize, const V: usize>(
    steps: usize,
    inp: StreamInput,
    w: *const f32,
    ldb: usize,
    h: *mut f32,
    c: *mut f32,
    out: *mut f32,
) {
    debug_assert!(V == 4 * U);
    let units = 16 * U;
    // SAFETY: c holds H = 16·U floats.
    let mut cv: [__m512; U] = std::array::from_fn(|u| unsafe { _mm512_loadu_ps(c.add(16 * u)) });
    for s in 0..steps {
        // SAFETY: the caller's extents: row s of the inputs and of out, h and w for the
        // product, h's U vectors.
        unsafe {
            let x = inp.x.add(s * inp.k);
            let gin = input_part::<V>(inp.k, x, inp.w, inp.ldb, inp.bias);
            let prod = hh_product::<V>(units, h, w, ldb);
            let g: [__m512; V] = std::array::from_fn(|v| _mm512_add_ps(gin[v], prod[v]));
            for u in 0..U {
                let (cn, hn) =
                    lstm_state_v::<true>([g[u], g[U + u], g[2 * U + u], g[3 * U + u]], cv[u]);
                cv[u] = flush(cn);
                let hf = flush(hn);
                _mm512_storeu_ps(h.add(16 * u), hf);
                _mm512_storeu_ps(out.add(s * units + 16 * u), hf);
            }
        }
    }
    for (u, v) in cv.iter().enumerate() {
        // SAFETY: c holds H floats.
        unsafe { _mm512_storeu_ps(c.add(16 * u), *v) };
    }
}

/// `steps` timesteps of one linear-before-reset GRU stream of `16·U` units: per step
/// `bias + x · W_ihᵀ` ([`input_part`], `3H` columns) and `W_hh h` ([`hh_product`], `V >=
/// 3·U` vectors, the padding columns unused), then the update of [`gru_lbr_state`]; `h`
/// is stored and copied to `out` (rows of `H`). Bit for bit the packed GEMM of the
/// inputs, the packed GEMV into a scratch row and [`gru_lbr_state`], step by step.
///
/// # Safety
/// As for [`lstm_stream`], with `3H` columns; `b_hn` holds `H` floats.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gru_lbr_stream<const U: usize, const V: usize>(
    steps: usize,
    inp: StreamInput,
    w: *const f32,
    ldb: usize,
    b_hn: *const f32,
    h: *mut f32,
    out: *mut f32,
) {
    debug_assert!(V >= 3 * U);
    let units = 16 * U;
    // SAFETY: h holds H = 16·U floats.
    let mut hv: [__m512; U] = std::array::from_fn(|u| unsafe { _mm512_loadu_ps(h.add(16 * u)) });
    // SAFETY: b_hn holds H floats.
    let bv: [__m512; U] = std::array::from_fn(|u| unsafe { _mm512_loadu_ps(b_hn.add(16 * u)) });
    for s in 0..steps {
        // SAFETY: as in `lstm_stream`, with 3H gate columns.
        unsafe {
            let x = inp.x.add(s * inp.k);
            let gin = input_part::<V>(inp.k, x, inp.w, inp.ldb, inp.bias);
            let prod = hh_product::<V>(units, h, w, ldb);
            for u in 0..U {
                let g = [gin[u], gin[U + u], gin[2 * U + u]];
                let wq = [prod[u], prod[U + u], prod[2 * U + u]];
                hv[u] = flush(gru_lbr_state_v::<true>(g, wq, bv[u], hv[u]));
            }
            // After every unit's update: the product above read the old h.
            for (u, v) in hv.iter().enumerate() {
                _mm512_storeu_ps(h.add(16 * u), *v);
                _mm512_storeu_ps(out.add(s * units + 16 * u), *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::forms;
    use super::*;

    /// `[sigmoid_v, sigmoid_chain, tanh_v, tanh_chain]` of `xs` (a multiple of 16 long).
    #[target_feature(enable = "avx512f")]
    fn both_forms(xs: &[f32]) -> [Vec<f32>; 4] {
        let mut out: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0; xs.len()]);
        let forms: [fn(__m512) -> __m512; 4] = [
            |v| sigmoid_v(v),
            |v| sigmoid_chain(v),
            |v| tanh_v(v),
            |v| tanh_chain(v),
        ];
        for (f, o) in forms.iter().zip(&mut out) {
            for (x, y) in xs.chunks_exact(LANES).zip(o.chunks_exact_mut(LANES)) {
                // SAFETY: both chunks are exactly LANES floats.
                unsafe { _mm512_storeu_ps(y.as_mut_ptr(), f(_mm512_loadu_ps(x.as_ptr()))) };
            }
        }
        out
    }

    #[test]
    fn chain_and_throughput_forms_agree_bit_for_bit() {
        if !(is_x86_feature_detected!("avx512f")) {
            return; // this tier cannot run here; the dispatcher never picks it
        }
        let mut xs = forms::inputs();
        xs.resize(xs.len().next_multiple_of(LANES), 0.5);
        // SAFETY: the features were detected above.
        let [s_v, s_chain, t_v, t_chain] = unsafe { both_forms(&xs) };
        forms::assert_same("sigmoid", &xs, &s_v, &s_chain);
        forms::assert_same("tanh", &xs, &t_v, &t_chain);
    }
}
