//! AVX2 + FMA activations, 8 lanes. The algorithm and its constants are described in
//! [`super`]; [`super::avx512`] is the same body on 16 lanes.
//!
//! The tail (`len % 8` elements) is one masked load and masked store (AVX
//! `vmaskmovps`): masked-off lanes are neither read nor written (and cannot fault).

use std::arch::x86_64::*;

use super::{
    StreamInput, FLUSH_BELOW, ONE_BITS, SIGMOID_ONE_FROM, SIGMOID_P, SIGMOID_Q, TANH_ONE_FROM,
    TANH_P, TANH_Q,
};

/// `f32` lanes per vector.
pub(crate) const LANES: usize = 8;

/// `(n, d)` with `n/d = a·P(a²)/Q(a²)` for the coefficients `p` and `q` (Estrin's
/// scheme: after `y = a²`, three dependent operations for each).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn rational_parts(a: __m256, p: [f32; 5], q: [f32; 5]) -> (__m256, __m256) {
    let c = |v: f32| _mm256_set1_ps(v);
    let y = _mm256_mul_ps(a, a);
    let y2 = _mm256_mul_ps(y, y);
    let p01 = _mm256_fmadd_ps(c(p[1]), y, c(p[0]));
    let p234 = _mm256_fmadd_ps(y2, c(p[4]), _mm256_fmadd_ps(c(p[3]), y, c(p[2])));
    let q01 = _mm256_fmadd_ps(c(q[1]), y, c(q[0]));
    let q234 = _mm256_fmadd_ps(y2, c(q[4]), _mm256_fmadd_ps(c(q[3]), y, c(q[2])));
    let n = _mm256_fmadd_ps(_mm256_mul_ps(a, y2), p234, _mm256_mul_ps(a, p01));
    (n, _mm256_fmadd_ps(y2, q234, q01))
}

/// Sigmoid of 8 lanes: `(n + d/2)/d` with `n/d = sign(x)·tanh(|x|/2)/2`, held to
/// `[0, 1]`; exactly 1 (0 for negative `x`) from `|x| = SIGMOID_ONE_FROM` on.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sigmoid_v(x: __m256) -> __m256 {
    let sign_bit = _mm256_set1_ps(-0.0);
    let a = _mm256_andnot_ps(sign_bit, x);
    let (n, d) = rational_parts(a, SIGMOID_P, SIGMOID_Q);
    let n = _mm256_or_ps(n, _mm256_and_ps(x, sign_bit));
    let num = _mm256_fmadd_ps(_mm256_set1_ps(0.5), d, n);
    // An exact division: a 256-bit one issues every ~5 cycles (AVX2 has no 14-bit
    // reciprocal estimate, and `rcpps` differs between vendors). Then held to [0, 1]
    // as in AVX-512: an integer max with +0, an unsigned min with the bits of 1.
    let s = _mm256_max_epi32(
        _mm256_castps_si256(_mm256_div_ps(num, d)),
        _mm256_setzero_si256(),
    );
    let s = _mm256_castsi256_ps(_mm256_min_epu32(s, _mm256_set1_epi32(ONE_BITS)));
    // From the limit on (and NaN): min(1, max(0, x)), 1 or 0 there, NaN kept.
    let beyond = _mm256_cmp_ps::<_CMP_NLT_UQ>(a, _mm256_set1_ps(SIGMOID_ONE_FROM));
    let limit = _mm256_min_ps(_mm256_set1_ps(1.0), _mm256_max_ps(_mm256_setzero_ps(), x));
    _mm256_blendv_ps(s, limit, beyond)
}

/// Tanh of 8 lanes: `sign(x)·a·P(a²)/Q(a²)` with `a = |x|`, held to `[-1, 1]`;
/// exactly `±1` from `TANH_ONE_FROM` on.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tanh_v(x: __m256) -> __m256 {
    let sign_bit = _mm256_set1_ps(-0.0);
    let a = _mm256_andnot_ps(sign_bit, x);
    let (n, d) = rational_parts(a, TANH_P, TANH_Q);
    // >= +0 (or NaN), held at 1 by an unsigned min with its bits.
    let t = _mm256_min_epu32(
        _mm256_castps_si256(_mm256_div_ps(n, d)),
        _mm256_set1_epi32(ONE_BITS),
    );
    // From the limit on (and NaN): min(1, a), 1 there, NaN kept.
    let beyond = _mm256_cmp_ps::<_CMP_NLT_UQ>(a, _mm256_set1_ps(TANH_ONE_FROM));
    let limit = _mm256_min_ps(_mm256_set1_ps(1.0), a);
    let t = _mm256_blendv_ps(_mm256_castsi256_ps(t), limit, beyond);
    // The sign last: at x = ±0 the quotient is +0, and -0 keeps its sign.
    _mm256_or_ps(t, _mm256_and_ps(x, sign_bit))
}

/// Applies `f` to `x` in place, 8 lanes at a time, the tail through a masked vector.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn map(x: &mut [f32], f: impl Fn(__m256) -> __m256) {
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let p = c.as_mut_ptr();
        // SAFETY: `c` is exactly LANES = 8 contiguous f32s (chunks_exact_mut), so
        // the unaligned 8-lane load reads only `c`.
        let v = unsafe { _mm256_loadu_ps(p) };
        // SAFETY: as for the load; `c` is writable (`&mut`).
        unsafe { _mm256_storeu_ps(p, f(v)) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        // Lane i on (all bits set) iff i < tail.len() (which is in 1..8).
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let k = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail.len() as i32), lane);
        let p = tail.as_mut_ptr();
        // SAFETY: mask `k` enables lanes 0..tail.len() only, all inside `tail`; AVX
        // masked loads do not access (or fault on) disabled lanes.
        let v = unsafe { _mm256_maskload_ps(p, k) };
        // SAFETY: as for the load, and `tail` is writable (`&mut`).
        unsafe { _mm256_maskstore_ps(p, k, f(v)) };
    }
}

/// `x <- sigmoid(x)` elementwise.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn sigmoid(x: &mut [f32]) {
    map(x, |v| sigmoid_v(v));
}

/// `x <- tanh(x)` elementwise.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tanh(x: &mut [f32]) {
    map(x, |v| tanh_v(v));
}

/// Lanes `0..min(rem, 8)` on (all bits set), for `maskload`/`maskstore`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lanes(rem: usize) -> __m256i {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(rem.min(LANES) as i32), lane)
}

/// Fused LSTM pointwise pass, as [`super::avx512::lstm_cell`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn lstm_cell(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    assert!(gates.len() == 4 * n && c_prev.len() == n && h.len() == n);
    let (gp, cpp, cp, hp) = (
        gates.as_mut_ptr(),
        c_prev.as_ptr(),
        c.as_mut_ptr(),
        h.as_mut_ptr(),
    );
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: the lanes enabled by `k` are units j..min(j+8, n); with the lengths
        // asserted above every access is inside its slice (gate q of unit j at q*n + j).
        unsafe {
            let i = sigmoid_v(_mm256_maskload_ps(gp.add(j), k));
            let f = sigmoid_v(_mm256_maskload_ps(gp.add(n + j), k));
            let g = tanh_v(_mm256_maskload_ps(gp.add(2 * n + j), k));
            let o = sigmoid_v(_mm256_maskload_ps(gp.add(3 * n + j), k));
            let cv = _mm256_add_ps(
                _mm256_mul_ps(f, _mm256_maskload_ps(cpp.add(j), k)),
                _mm256_mul_ps(i, g),
            );
            let hv = _mm256_mul_ps(o, tanh_v(cv));
            _mm256_maskstore_ps(gp.add(j), k, i);
            _mm256_maskstore_ps(gp.add(n + j), k, f);
            _mm256_maskstore_ps(gp.add(2 * n + j), k, g);
            _mm256_maskstore_ps(gp.add(3 * n + j), k, o);
            _mm256_maskstore_ps(cp.add(j), k, cv);
            _mm256_maskstore_ps(hp.add(j), k, hv);
        }
        j += LANES;
    }
}

/// Fused linear-before-reset GRU pointwise pass, as [`super::avx512::gru_lbr_cell`].
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gru_lbr_cell(gates: &mut [f32], ghn: &[f32], h_prev: &[f32], h: &mut [f32]) {
    let n = h.len();
    assert!(gates.len() == 3 * n && ghn.len() == n && h_prev.len() == n);
    let (gp, np, pp, hp) = (
        gates.as_mut_ptr(),
        ghn.as_ptr(),
        h_prev.as_ptr(),
        h.as_mut_ptr(),
    );
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: as in `lstm_cell`: masked to units j..min(j+8, n) of slices whose
        // lengths are asserted above.
        unsafe {
            let r = sigmoid_v(_mm256_maskload_ps(gp.add(j), k));
            let z = sigmoid_v(_mm256_maskload_ps(gp.add(n + j), k));
            let pre = _mm256_add_ps(
                _mm256_maskload_ps(gp.add(2 * n + j), k),
                _mm256_mul_ps(r, _mm256_maskload_ps(np.add(j), k)),
            );
            let nv = tanh_v(pre);
            let hprev = _mm256_maskload_ps(pp.add(j), k);
            let hv = _mm256_add_ps(nv, _mm256_mul_ps(z, _mm256_sub_ps(hprev, nv)));
            _mm256_maskstore_ps(gp.add(j), k, r);
            _mm256_maskstore_ps(gp.add(n + j), k, z);
            _mm256_maskstore_ps(gp.add(2 * n + j), k, nv);
            _mm256_maskstore_ps(hp.add(j), k, hv);
        }
        j += LANES;
    }
}

/// Zeroes the lanes of `v` smaller in magnitude than `FLUSH_BELOW` (NaN compares false
/// and stays).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn flush(v: __m256) -> __m256 {
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), v);
    let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(FLUSH_BELOW));
    _mm256_andnot_ps(tiny, v)
}

/// Streaming LSTM update in place, as [`super::avx512::lstm_state`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn lstm_state(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    assert!(gates.len() == 4 * n && h.len() == n);
    let (gp, cp, hp) = (gates.as_ptr(), c.as_mut_ptr(), h.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: the lanes enabled by `k` are units j..min(j+8, n); with the lengths
        // asserted above every access is inside its slice (gate q of unit j at q*n + j).
        // Each lane of `c` is read before it is written.
        unsafe {
            let g = [0, 1, 2, 3].map(|q| _mm256_maskload_ps(gp.add(q * n + j), k));
            let (cv, hv) = lstm_state_v(g, _mm256_maskload_ps(cp.add(j), k));
            _mm256_maskstore_ps(cp.add(j), k, flush(cv));
            _mm256_maskstore_ps(hp.add(j), k, flush(hv));
        }
        j += LANES;
    }
}

/// `(c, h)` of 8 units from their gate pre-activations `[i, f, g, o]` and old `c`
/// (before the flush).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lstm_state_v([gi, gf, gg, go]: [__m256; 4], c: __m256) -> (__m256, __m256) {
    let (i, f, g, o) = (sigmoid_v(gi), sigmoid_v(gf), tanh_v(gg), sigmoid_v(go));
    let cv = _mm256_add_ps(_mm256_mul_ps(f, c), _mm256_mul_ps(i, g));
    (cv, _mm256_mul_ps(o, tanh_v(cv)))
}

/// Streaming linear-before-reset GRU update in place, as
/// [`super::avx512::gru_lbr_state`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gru_lbr_state(gates: &[f32], gh: &[f32], b_hn: &[f32], h: &mut [f32]) {
    let n = h.len();
    assert!(gates.len() == 3 * n && gh.len() == 3 * n && b_hn.len() == n);
    let (gp, ghp, bp, hp) = (gates.as_ptr(), gh.as_ptr(), b_hn.as_ptr(), h.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: as in `lstm_state`: masked to units j..min(j+8, n) of slices whose
        // lengths are asserted above; each lane of `h` is read before it is written.
        unsafe {
            let ld = |p: *const f32| _mm256_maskload_ps(p, k);
            let g = [0, 1, 2].map(|q| ld(gp.add(q * n + j)));
            let w = [0, 1, 2].map(|q| ld(ghp.add(q * n + j)));
            let hv = gru_lbr_state_v(g, w, ld(bp.add(j)), ld(hp.add(j)));
            _mm256_maskstore_ps(hp.add(j), k, flush(hv));
        }
        j += LANES;
    }
}

/// The new `h` of 8 units (before the flush) from the gates' bias and input parts `g`,
/// the recurrent products `w` (`W_hh h`, each gate), `b_hn` and the old `h`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gru_lbr_state_v(g: [__m256; 3], w: [__m256; 3], b_hn: __m256, h: __m256) -> __m256 {
    let r = sigmoid_v(_mm256_add_ps(g[0], w[0]));
    let z = sigmoid_v(_mm256_add_ps(g[1], w[1]));
    let ghn = _mm256_add_ps(w[2], b_hn);
    // Fused multiply-adds: each saves a dependent operation on the chain a single
    // stream's step waits on (the reference rounds the product separately).
    let nv = tanh_v(_mm256_fmadd_ps(r, ghn, g[2]));
    _mm256_fmadd_ps(z, _mm256_sub_ps(h, nv), nv)
}

/// `h · W_hhᵀ` for one stream of 8 units against one group of packed panels (`V`
/// vectors of 8 columns, row stride `ldb`), summed exactly as the process tier's packed
/// GEMV sums it (`kernels::packed`): with `PAIRS` (AVX-512's GEMV) even and odd rows of
/// `W_hhᵀ` in separate accumulators, in row order, then added; without (AVX2's, which is
/// its GEMM on one row) one accumulator in row order.
///
/// # Safety
/// `h` holds 8 floats and `w` 8 rows of `ldb >= 8·V` floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // even and odd are indexed in step
unsafe fn hh_product8<const V: usize, const PAIRS: bool>(
    h: *const f32,
    w: *const f32,
    ldb: usize,
) -> [__m256; V] {
    let mut even = [_mm256_setzero_ps(); V];
    let mut odd = [_mm256_setzero_ps(); V];
    for half in 0..LANES / 2 {
        let p = 2 * half;
        // SAFETY: p + 1 < 8: h[p], h[p + 1] and rows p, p + 1 of `w`, columns < 8·V <= ldb.
        unsafe {
            let (a0, a1) = (_mm256_set1_ps(*h.add(p)), _mm256_set1_ps(*h.add(p + 1)));
            for v in 0..V {
                let r0 = w.add(p * ldb + LANES * v);
                even[v] = _mm256_fmadd_ps(a0, _mm256_loadu_ps(r0), even[v]);
                let r1 = _mm256_loadu_ps(r0.add(ldb));
                if PAIRS {
                    odd[v] = _mm256_fmadd_ps(a1, r1, odd[v]);
                } else {
                    even[v] = _mm256_fmadd_ps(a1, r1, even[v]);
                }
            }
        }
    }
    if PAIRS {
        for v in 0..V {
            even[v] = _mm256_add_ps(even[v], odd[v]);
        }
    }
    even
}

/// `bias + x · W_ihᵀ` for one row `x` of `k` inputs against one group of packed panels
/// (`V` vectors of 8 columns, row stride `ldb`), summed as the packed GEMM sums it with a
/// bias start (`k <= KC`): from zero over the inputs in order, then added to the bias.
///
/// # Safety
/// `x` holds `k` floats, `w` `k` rows of `ldb >= 8·V` floats, `bias` `8·V` floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn input_part8<const V: usize>(
    k: usize,
    x: *const f32,
    w: *const f32,
    ldb: usize,
    bias: *const f32,
) -> [__m256; V] {
    let mut acc = [_mm256_setzero_ps(); V];
    for p in 0..k {
        // SAFETY: p < k: x[p] and row p of `w`, columns < 8·V <= ldb.
        unsafe {
            let a = _mm256_set1_ps(*x.add(p));
            for (v, s) in acc.iter_mut().enumerate() {
                *s = _mm256_fmadd_ps(a, _mm256_loadu_ps(w.add(p * ldb + LANES * v)), *s);
            }
        }
    }
    // SAFETY: bias holds 8·V floats.
    std::array::from_fn(|v| unsafe { _mm256_add_ps(_mm256_loadu_ps(bias.add(LANES * v)), acc[v]) })
}

/// `steps` timesteps of one LSTM stream of 8 units: per step the gate pre-activations
/// (`bias + x · W_ihᵀ`, then `+ h · W_hhᵀ`) and the update of [`lstm_state`], `c` kept in
/// a register, `h` stored (the next product broadcasts it) and copied to `out` (rows of
/// 8). Bit for bit the packed GEMM of the inputs into gate rows, the packed GEMV of `h`
/// into each row (summed as the process tier sums it: `PAIRS` on AVX-512, see
/// [`hh_product8`]) and this tier's [`lstm_state`], step by step. The AVX-512 tier runs
/// it too: 8 units are half its vector, and a quarter of its gate vector per gate.
///
/// # Safety
/// `inp` describes `steps` rows of inputs (`k <= KC`) and `W_ihᵀ` with 32 columns; `out`
/// holds `steps` rows of 8; `h`, `c` hold 8 floats; `w` is `W_hhᵀ` packed as one group
/// (8 rows of `ldb >= 32` floats).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn lstm_stream8<const PAIRS: bool>(
    steps: usize,
    inp: StreamInput,
    w: *const f32,
    ldb: usize,
    h: *mut f32,
    c: *mut f32,
    out: *mut f32,
) {
    // SAFETY: c holds 8 floats.
    let mut cv = unsafe { _mm256_loadu_ps(c) };
    for s in 0..steps {
        // SAFETY: the caller's extents: row s of the inputs and of out, h and w for the
        // product.
        unsafe {
            let x = inp.x.add(s * inp.k);
            let gin = input_part8::<4>(inp.k, x, inp.w, inp.ldb, inp.bias);
            let prod = hh_product8::<4, PAIRS>(h, w, ldb);
            let g: [__m256; 4] = std::array::from_fn(|v| _mm256_add_ps(gin[v], prod[v]));
            let (cn, hn) = lstm_state_v(g, cv);
            let hn = flush(hn);
            cv = flush(cn);
            _mm256_storeu_ps(h, hn);
            _mm256_storeu_ps(out.add(s * LANES), hn);
        }
    }
    // SAFETY: c holds 8 floats.
    unsafe { _mm256_storeu_ps(c, cv) };
}

/// `steps` timesteps of one linear-before-reset GRU stream of 8 units: per step
/// `bias + x · W_ihᵀ` (24 columns) and `W_hh h`, then the update of [`gru_lbr_state`];
/// `h` is stored and copied to `out` (rows of 8). Bit for bit the packed GEMM of the
/// inputs, the packed GEMV into a scratch row (as in [`lstm_stream8`]) and this tier's
/// [`gru_lbr_state`].
///
/// # Safety
/// As for [`lstm_stream8`], with 24 gate columns; `b_hn` holds 8 floats.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gru_lbr_stream8<const PAIRS: bool>(
    steps: usize,
    inp: StreamInput,
    w: *const f32,
    ldb: usize,
    b_hn: *const f32,
    h: *mut f32,
    out: *mut f32,
) {
    // SAFETY: h and b_hn hold 8 floats.
    let (mut hv, bv) = unsafe { (_mm256_loadu_ps(h), _mm256_loadu_ps(b_hn)) };
    for s in 0..steps {
        // SAFETY: as in `lstm_stream8`, with 24 gate columns.
        unsafe {
            let x = inp.x.add(s * inp.k);
            let gin = input_part8::<3>(inp.k, x, inp.w, inp.ldb, inp.bias);
            let prod = hh_product8::<3, PAIRS>(h, w, ldb);
            hv = flush(gru_lbr_state_v(gin, prod, bv, hv));
            _mm256_storeu_ps(h, hv);
            _mm256_storeu_ps(out.add(s * LANES), hv);
        }
    }
}
