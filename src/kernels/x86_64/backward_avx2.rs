//! AVX2 + FMA backward pointwise kernels, 8 lanes: the math of the `*_ref` functions in
//! [`crate::kernels::backward`], the same operations in the same order per lane (no FMA),
//! so the results are the reference's bits. Every slice is walked 8 units at a time,
//! the last block through masked loads and stores (AVX `vmaskmovps`): masked-off lanes are neither read nor
//! written (and cannot fault).
//!
//! Callers (the dispatcher in `kernels::backward`) check the slice lengths and that the
//! CPU has AVX2 and FMA; each function asserts the lengths again, so a wrong length is a
//! panic, never an out-of-bounds access.

use super::avx2::lanes;
use std::arch::x86_64::*;

/// `f32` lanes per vector.
const LANES: usize = 8;

/// A read-only row: masked loads at unit `j`.
#[derive(Clone, Copy)]
struct In(*const f32);

impl In {
    /// Lanes `k` of units `j..j+8`.
    ///
    /// # Safety
    /// Every lane enabled by `k` must be inside the slice this row was made from.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn at(self, j: usize, k: __m256i) -> __m256 {
        // SAFETY: the caller guarantees the enabled lanes are in bounds.
        unsafe { _mm256_maskload_ps(self.0.add(j), k) }
    }
}

/// A writable row: masked stores at unit `j`.
#[derive(Clone, Copy)]
struct Out(*mut f32);

impl Out {
    /// Stores lanes `k` of `v` to units `j..j+8`.
    ///
    /// # Safety
    /// Every lane enabled by `k` must be inside the (mutably borrowed) slice this row
    /// was made from.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn put(self, j: usize, k: __m256i, v: __m256) {
        // SAFETY: the caller guarantees the enabled lanes are in bounds.
        unsafe { _mm256_maskstore_ps(self.0.add(j), k, v) }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn mul(a: __m256, b: __m256) -> __m256 {
    _mm256_mul_ps(a, b)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn add(a: __m256, b: __m256) -> __m256 {
    _mm256_add_ps(a, b)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn sub(a: __m256, b: __m256) -> __m256 {
    _mm256_sub_ps(a, b)
}

/// `1 − a`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn one_minus(a: __m256) -> __m256 {
    _mm256_sub_ps(_mm256_set1_ps(1.0), a)
}

/// LSTM backward ([`crate::kernels::backward::lstm_ref`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) fn lstm(
    gates: &[f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dpre: &mut [f32],
) {
    let n = dc.len();
    assert!(gates.len() == 4 * n && dpre.len() == 4 * n);
    assert!(c_prev.len() == n && tc.len() == n && dh.len() == n);
    let (gi, gf) = (In(gates.as_ptr()), In(gates[n..].as_ptr()));
    let (gg, go) = (In(gates[2 * n..].as_ptr()), In(gates[3 * n..].as_ptr()));
    let (cp, t, d) = (In(c_prev.as_ptr()), In(tc.as_ptr()), In(dh.as_ptr()));
    let (dcin, dco) = (In(dc.as_ptr()), Out(dc.as_mut_ptr()));
    let di = Out(dpre.as_mut_ptr());
    let df = Out(dpre[n..].as_mut_ptr());
    let dg = Out(dpre[2 * n..].as_mut_ptr());
    let dout = Out(dpre[3 * n..].as_mut_ptr());
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: `k` enables units j..min(j+8, n) only, and every row above is n
        // units long (asserted), so each access is inside its slice.
        unsafe {
            let (i, f, g, o) = (gi.at(j, k), gf.at(j, k), gg.at(j, k), go.at(j, k));
            let (tv, dhv) = (t.at(j, k), d.at(j, k));
            let dct = add(dcin.at(j, k), mul(mul(dhv, o), one_minus(mul(tv, tv))));
            dout.put(j, k, mul(mul(mul(dhv, tv), o), one_minus(o)));
            di.put(j, k, mul(mul(mul(dct, g), i), one_minus(i)));
            df.put(j, k, mul(mul(mul(dct, cp.at(j, k)), f), one_minus(f)));
            dg.put(j, k, mul(mul(dct, i), one_minus(mul(g, g))));
            dco.put(j, k, mul(dct, f));
        }
        j += LANES;
    }
}

/// Linear-before-reset GRU backward ([`crate::kernels::backward::gru_lbr_ref`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gru_lbr(
    gates: &[f32],
    ghn: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dgx: &mut [f32],
    dgh: &mut [f32],
    dh_prev: &mut [f32],
) {
    let n = dh.len();
    assert!(gates.len() == 3 * n && dgx.len() == 3 * n && dgh.len() == 3 * n);
    assert!(ghn.len() == n && h_prev.len() == n && dh_prev.len() == n);
    let (gr, gz, gn) = (
        In(gates.as_ptr()),
        In(gates[n..].as_ptr()),
        In(gates[2 * n..].as_ptr()),
    );
    let (hn, hp, d) = (In(ghn.as_ptr()), In(h_prev.as_ptr()), In(dh.as_ptr()));
    let (xr, xz, xn) = (
        Out(dgx.as_mut_ptr()),
        Out(dgx[n..].as_mut_ptr()),
        Out(dgx[2 * n..].as_mut_ptr()),
    );
    let (hr, hz, hnn) = (
        Out(dgh.as_mut_ptr()),
        Out(dgh[n..].as_mut_ptr()),
        Out(dgh[2 * n..].as_mut_ptr()),
    );
    let dp = Out(dh_prev.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: as in `lstm`: `k` enables units j..min(j+8, n) of n-unit rows.
        unsafe {
            let (r, z, ng) = (gr.at(j, k), gz.at(j, k), gn.at(j, k));
            let dhv = d.at(j, k);
            let dnp = mul(mul(dhv, one_minus(z)), one_minus(mul(ng, ng)));
            let dzp = mul(mul(mul(dhv, sub(hp.at(j, k), ng)), z), one_minus(z));
            let drp = mul(mul(mul(dnp, hn.at(j, k)), r), one_minus(r));
            xr.put(j, k, drp);
            xz.put(j, k, dzp);
            xn.put(j, k, dnp);
            hr.put(j, k, drp);
            hz.put(j, k, dzp);
            hnn.put(j, k, mul(dnp, r));
            dp.put(j, k, mul(dhv, z));
        }
        j += LANES;
    }
}

/// Notes-form GRU backward, first half ([`crate::kernels::backward::gru_notes_n_ref`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gru_notes_n(gates: &[f32], dh: &[f32], dpre: &mut [f32]) {
    let n = dh.len();
    assert!(gates.len() == 3 * n && dpre.len() == 3 * n);
    let (gz, gn, d) = (
        In(gates[n..].as_ptr()),
        In(gates[2 * n..].as_ptr()),
        In(dh.as_ptr()),
    );
    let dn = Out(dpre[2 * n..].as_mut_ptr());
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: as in `lstm`: `k` enables units j..min(j+8, n) of n-unit rows.
        unsafe {
            let (z, ng) = (gz.at(j, k), gn.at(j, k));
            dn.put(
                j,
                k,
                mul(mul(d.at(j, k), one_minus(z)), one_minus(mul(ng, ng))),
            );
        }
        j += LANES;
    }
}

/// Notes-form GRU backward, second half ([`crate::kernels::backward::gru_notes_rz_ref`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gru_notes_rz(
    gates: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    drh: &[f32],
    dpre: &mut [f32],
    dh_prev: &mut [f32],
) {
    let n = dh.len();
    assert!(gates.len() == 3 * n && dpre.len() == 3 * n);
    assert!(h_prev.len() == n && drh.len() == n && dh_prev.len() == n);
    let (gr, gz, gn) = (
        In(gates.as_ptr()),
        In(gates[n..].as_ptr()),
        In(gates[2 * n..].as_ptr()),
    );
    let (hp, d, rh) = (In(h_prev.as_ptr()), In(dh.as_ptr()), In(drh.as_ptr()));
    let (dr, dz) = (Out(dpre.as_mut_ptr()), Out(dpre[n..].as_mut_ptr()));
    let dp = Out(dh_prev.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: as in `lstm`: `k` enables units j..min(j+8, n) of n-unit rows.
        unsafe {
            let (r, z, ng) = (gr.at(j, k), gz.at(j, k), gn.at(j, k));
            let (hpv, dhv, drhv) = (hp.at(j, k), d.at(j, k), rh.at(j, k));
            dr.put(j, k, mul(mul(mul(drhv, hpv), r), one_minus(r)));
            dz.put(j, k, mul(mul(mul(dhv, sub(hpv, ng)), z), one_minus(z)));
            dp.put(j, k, add(mul(dhv, z), mul(drhv, r)));
        }
        j += LANES;
    }
}

/// Vanilla RNN backward ([`crate::kernels::backward::rnn_ref`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) fn rnn(h: &[f32], dh: &[f32], relu: bool, dpre: &mut [f32]) {
    let n = h.len();
    assert!(dh.len() == n && dpre.len() == n);
    let (hv, d, out) = (In(h.as_ptr()), In(dh.as_ptr()), Out(dpre.as_mut_ptr()));
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: as in `lstm`: `k` enables units j..min(j+8, n) of n-unit rows.
        unsafe {
            let (x, g) = (hv.at(j, k), d.at(j, k));
            let v = if relu {
                // Ordered compare: a NaN `h` is not > 0 and gives 0, as the reference.
                let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_setzero_ps());
                _mm256_and_ps(pos, g)
            } else {
                mul(g, one_minus(mul(x, x)))
            };
            out.put(j, k, v);
        }
        j += LANES;
    }
}
