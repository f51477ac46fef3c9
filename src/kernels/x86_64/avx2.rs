//! AVX2 + FMA activations, 8 lanes. The algorithm and its constants are described in
//! [`super`]; [`super::avx512`] is the same body on 16 lanes.
//!
//! The tail (`len % 8` elements) is one masked load and masked store (AVX
//! `vmaskmovps`): masked-off lanes are neither read nor written (and cannot fault).

use std::arch::x86_64::*;

use super::{
    StreamInput, FLUSH_BELOW, MINUS_ONE_BITS, ONE_BITS, SIGMOID_ONE_FROM, SIGMOID_P, SIGMOID_Q,
    TANH_ONE_FROM, TANH_P, TANH_Q,
};

/// `f32` lanes per vector.
pub(crate) const LANES: usize = 8;

/// `(n, d)` with `n/d = x·P(x²)/Q(x²)` for the coefficients `p` and `q` (Estrin's
/// scheme: after `y = x²`, three dependent operations for each), odd in `x` bit for bit.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn rational_parts(x: __m256, p: [f32; 5], q: [f32; 5]) -> (__m256, __m256) {
    let c = |v: f32| _mm256_set1_ps(v);
    let y = _mm256_mul_ps(x, x);
    let y2 = _mm256_mul_ps(y, y);
    let p01 = _mm256_fmadd_ps(c(p[1]), y, c(p[0]));
    let p234 = _mm256_fmadd_ps(y2, c(p[4]), _mm256_fmadd_ps(c(p[3]), y, c(p[2])));
    let q01 = _mm256_fmadd_ps(c(q[1]), y, c(q[0]));
    let q234 = _mm256_fmadd_ps(y2, c(q[4]), _mm256_fmadd_ps(c(q[3]), y, c(q[2])));
    let n = _mm256_mul_ps(x, _mm256_fmadd_ps(y2, p234, p01));
    (n, _mm256_fmadd_ps(y2, q234, q01))
}

/// `min(hi, max(lo, v))` by `min`/`max` with the constant first: a NaN lane passes
/// (both return their second operand when either is NaN).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn clamp(v: __m256, lo: f32, hi: f32) -> __m256 {
    _mm256_max_ps(_mm256_set1_ps(lo), _mm256_min_ps(_mm256_set1_ps(hi), v))
}

// The divisions below are exact: a 256-bit one issues every ~5 cycles (AVX2 has no
// 14-bit reciprocal estimate, and `rcpps` differs between vendors).

/// Sigmoid of 8 lanes, the form for throughput (as [`super::avx512`]'s): `x` held to
/// `±SIGMOID_ONE_FROM`, then `(n + d/2)/d` held to `[0, 1]`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sigmoid_v(x: __m256) -> __m256 {
    let x = clamp(x, -SIGMOID_ONE_FROM, SIGMOID_ONE_FROM);
    let (n, d) = rational_parts(x, SIGMOID_P, SIGMOID_Q);
    let num = _mm256_fmadd_ps(_mm256_set1_ps(0.5), d, n);
    clamp(_mm256_div_ps(num, d), 0.0, 1.0)
}

/// [`sigmoid_v`] for a dependency chain, bit for bit (as [`super::avx512`]'s): integer
/// clamps of the quotient, the lanes from the limit on (and NaN) blended in.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sigmoid_chain(x: __m256) -> __m256 {
    let (n, d) = rational_parts(x, SIGMOID_P, SIGMOID_Q);
    let num = _mm256_fmadd_ps(_mm256_set1_ps(0.5), d, n);
    let s = _mm256_max_epi32(
        _mm256_castps_si256(_mm256_div_ps(num, d)),
        _mm256_setzero_si256(),
    );
    let s = _mm256_castsi256_ps(_mm256_min_epu32(s, _mm256_set1_epi32(ONE_BITS)));
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
    let beyond = _mm256_cmp_ps::<_CMP_NLT_UQ>(a, _mm256_set1_ps(SIGMOID_ONE_FROM));
    _mm256_blendv_ps(s, clamp(x, 0.0, 1.0), beyond)
}

/// Tanh of 8 lanes, the form for throughput: `x` held to `±TANH_ONE_FROM`, then
/// `x·P(x²)/Q(x²)` held to `[-1, 1]`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tanh_v(x: __m256) -> __m256 {
    let x = clamp(x, -TANH_ONE_FROM, TANH_ONE_FROM);
    let (n, d) = rational_parts(x, TANH_P, TANH_Q);
    clamp(_mm256_div_ps(n, d), -1.0, 1.0)
}

/// [`tanh_v`] for a dependency chain, bit for bit (as [`super::avx512`]'s).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tanh_chain(x: __m256) -> __m256 {
    let (n, d) = rational_parts(x, TANH_P, TANH_Q);
    let t = _mm256_min_epi32(
        _mm256_castps_si256(_mm256_div_ps(n, d)),
        _mm256_set1_epi32(ONE_BITS),
    );
    let t = _mm256_castsi256_ps(_mm256_min_epu32(t, _mm256_set1_epi32(MINUS_ONE_BITS)));
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
    let beyond = _mm256_cmp_ps::<_CMP_NLT_UQ>(a, _mm256_set1_ps(TANH_ONE_FROM));
    _mm256_blendv_ps(t, clamp(x, -1.0, 1.0), beyond)
}

/// Sigmoid in the form for a chain (`CHAIN`) or for throughput: the same bits.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sigmoid_g<const CHAIN: bool>(x: __m256) -> __m256 {
    if CHAIN {
        sigmoid_chain(x)
    } else {
        sigmoid_v(x)
    }
}

/// Tanh in the form for a chain (`CHAIN`) or for throughput: the same bits.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tanh_g<const CHAIN: bool>(x: __m256) -> __m256 {
    if CHAIN {
        tanh_chain(x)
    } else {
        tanh_v(x)
    }
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

/// Up to this many elements a map is taken to be a single stream's row that the next
/// step waits on (an RNN's `h`), and runs the activations' form for a chain; longer
/// ones the form for throughput. The two give the same bits.
const CHAIN_UP_TO: usize = 2 * LANES;

/// `x <- sigmoid(x)` elementwise.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn sigmoid(x: &mut [f32]) {
    if x.len() <= CHAIN_UP_TO {
        map(x, |v| sigmoid_chain(v));
    } else {
        map(x, |v| sigmoid_v(v));
    }
}

/// `x <- tanh(x)` elementwise.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tanh(x: &mut [f32]) {
    if x.len() <= CHAIN_UP_TO {
        map(x, |v| tanh_chain(v));
    } else {
        map(x, |v| tanh_v(v));
    }
}

/// Lanes `0..min(rem, 8)` on (all bits set), for `maskload`/`maskstore`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn lanes(rem: usize) -> __m256i {
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
            let (cv, hv) = lstm_state_v::<false>(g, _mm256_maskload_ps(cp.add(j), k));
            _mm256_maskstore_ps(cp.add(j), k, flush(cv));
            _mm256_maskstore_ps(hp.add(j), k, flush(hv));
        }
        j += LANES;
    }
}

/// `(c, h)` of 8 units from their gate pre-activations `[i, f, g, o]` and old `c`
/// (before the flush); the activations' form chosen by `CHAIN` (a single stream's
/// steps) as in [`super::avx512`].
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lstm_state_v<const CHAIN: bool>([gi, gf, gg, go]: [__m256; 4], c: __m256) -> (__m256, __m256) {
    let (sg, th) = (sigmoid_g::<CHAIN>, tanh_g::<CHAIN>);
    let (i, f, g, o) = (sg(gi), sg(gf), th(gg), sg(go));
    let cv = _mm256_add_ps(_mm256_mul_ps(f, c), _mm256_mul_ps(i, g));
    (cv, _mm256_mul_ps(o, th(cv)))
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
            let hv = gru_lbr_state_v::<false>(g, w, ld(bp.add(j)), ld(hp.add(j)));
            _mm256_maskstore_ps(hp.add(j), k, flush(hv));
        }
        j += LANES;
    }
}

/// The new `h` of 8 units (before the flush) from the gates' bias and input parts `g`,
/// the recurrent products `w` (`W_hh h`, each gate), `b_hn` and the old `h`; the
/// activations' form chosen by `CHAIN`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gru_lbr_state_v<const CHAIN: bool>(
    g: [__m256; 3],
    w: [__m256; 3],
    b_hn: __m256,
    h: __m256,
) -> __m256 {
    let r = sigmoid_g::<CHAIN>(_mm256_add_ps(g[0], w[0]));
    let z = sigmoid_g::<CHAIN>(_mm256_add_ps(g[1], w[1]));
    let ghn = _mm256_add_ps(w[2], b_hn);
    // Fused multiply-adds: each saves a dependent operation on the chain a single
    // stream's step waits on (the reference rounds the product separately).
    let nv = tanh_g::<CHAIN>(_mm256_fmadd_ps(r, ghn, g[2]));
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
            let (cn, hn) = lstm_state_v::<true>(g, cv);
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
            hv = flush(gru_lbr_state_v::<true>(gin, prod, bv, hv));
            _mm256_storeu_ps(h, hv);
            _mm256_storeu_ps(out.add(s * LANES), hv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::forms;
    use super::*;

    /// `[sigmoid_v, sigmoid_chain, tanh_v, tanh_chain]` of `xs` (a multiple of 8 long).
    #[target_feature(enable = "avx2,fma")]
    fn both_forms(xs: &[f32]) -> [Vec<f32>; 4] {
        let mut out: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0; xs.len()]);
        let forms: [fn(__m256) -> __m256; 4] = [
            |v| sigmoid_v(v),
            |v| sigmoid_chain(v),
            |v| tanh_v(v),
            |v| tanh_chain(v),
        ];
        for (f, o) in forms.iter().zip(&mut out) {
            for (x, y) in xs.chunks_exact(LANES).zip(o.chunks_exact_mut(LANES)) {
                // SAFETY: both chunks are exactly LANES floats.
                unsafe { _mm256_storeu_ps(y.as_mut_ptr(), f(_mm256_loadu_ps(x.as_ptr()))) };
            }
        }
        out
    }

    #[test]
    fn chain_and_throughput_forms_agree_bit_for_bit() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
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
