//! The pointwise part of each cell's backward step, one row (one stream at one
//! timestep), vectorized per instruction set and dispatched on the process-wide kernel
//! tier ([`super::activation::tier`], forced by `RNNCORE_KERNEL`).
//!
//! The `*_ref` functions are the spec: the plain formulas of `cell::*::backward`. The
//! SIMD tiers (one generic body each, `body`, instantiated per tier) perform the same
//! multiplications, additions and subtractions in the same order per lane, with no FMA
//! contraction, so every tier gives the scalar reference's bits exactly (the tests check
//! bit equality). No activation is evaluated here: the forward pass kept the activated
//! gates, and the LSTM's `tanh(c_t)` is handed in (`tc`), computed by the caller with the
//! tier's `activation::tanh`.
//!
//! Gate order as PyTorch: LSTM `i, f, g, o`, GRU `r, z, n`, each `n` units wide.

use super::activation::{kernel_tier, Tier};
use super::simd::Simd;

/// LSTM backward through one step (the math of [`lstm_ref`]) on [`tier()`](super::activation::tier).
#[inline]
pub fn lstm(
    gates: &[f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dpre: &mut [f32],
) {
    lstm_on(kernel_tier(), gates, c_prev, tc, dh, dc, dpre);
}

/// [`lstm`] on `tier` (or the best available tier if this CPU lacks it).
#[cfg(test)] // only the kernel tests pick a tier explicitly
pub fn lstm_with(
    tier: Tier,
    gates: &[f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dpre: &mut [f32],
) {
    lstm_on(tier.available_or_best(), gates, c_prev, tc, dh, dc, dpre);
}

/// LSTM backward, the spec. `gates` are the activated `i, f, g, o` (`[4n]`), `tc` is
/// `tanh(c_t)`, `dh` the total gradient at `h_t`; `dc` holds `∂L/∂c_t` from step `t+1`
/// and becomes `∂L/∂c_{t-1}`. Writes the pre-activation gradients `dpre` (`[4n]`).
pub fn lstm_ref(
    gates: &[f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dpre: &mut [f32],
) {
    let n = dc.len();
    check_lstm(n, gates, c_prev, tc, dh, dpre);
    let (i, rest) = gates.split_at(n);
    let (f, rest) = rest.split_at(n);
    let (g, o) = rest.split_at(n);
    let (di, rest) = dpre.split_at_mut(n);
    let (df, rest) = rest.split_at_mut(n);
    let (dg, dout) = rest.split_at_mut(n);
    for j in 0..n {
        let t = tc[j];
        let dct = dc[j] + dh[j] * o[j] * (1.0 - t * t);
        dout[j] = dh[j] * t * o[j] * (1.0 - o[j]);
        di[j] = dct * g[j] * i[j] * (1.0 - i[j]);
        df[j] = dct * c_prev[j] * f[j] * (1.0 - f[j]);
        dg[j] = dct * i[j] * (1.0 - g[j] * g[j]);
        dc[j] = dct * f[j];
    }
}

fn check_lstm(n: usize, gates: &[f32], c_prev: &[f32], tc: &[f32], dh: &[f32], dpre: &[f32]) {
    assert!(
        gates.len() == 4 * n
            && dpre.len() == 4 * n
            && c_prev.len() == n
            && tc.len() == n
            && dh.len() == n,
        "lstm backward: slice lengths"
    );
}

fn lstm_on(
    tier: Tier,
    gates: &[f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dpre: &mut [f32],
) {
    check_lstm(dc.len(), gates, c_prev, tc, dh, dpre);
    // SAFETY: `tier` is `kernel_tier()` or `available_or_best()`, which only give tiers whose
    // features were detected at run time; the lengths are checked above.
    on_tier!(unsafe tier => backward_lstm(gates, c_prev, tc, dh, dc, dpre),
        _ => lstm_ref(gates, c_prev, tc, dh, dc, dpre))
}

/// Linear-before-reset GRU backward (the math of [`gru_lbr_ref`]) on [`tier()`](super::activation::tier).
#[inline]
pub fn gru_lbr(
    gates: &[f32],
    ghn: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dgx: &mut [f32],
    dgh: &mut [f32],
    dh_prev: &mut [f32],
) {
    gru_lbr_on(kernel_tier(), gates, ghn, h_prev, dh, dgx, dgh, dh_prev);
}

/// [`gru_lbr`] on `tier` (or the best available tier if this CPU lacks it).
#[cfg(test)] // only the kernel tests pick a tier explicitly
#[allow(clippy::too_many_arguments)]
pub fn gru_lbr_with(
    tier: Tier,
    gates: &[f32],
    ghn: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dgx: &mut [f32],
    dgh: &mut [f32],
    dh_prev: &mut [f32],
) {
    let t = tier.available_or_best();
    gru_lbr_on(t, gates, ghn, h_prev, dh, dgx, dgh, dh_prev);
}

/// Linear-before-reset GRU backward, the spec. `gates` are the activated `r, z, n`
/// (`[3n]`), `ghn = W_hn h_{t-1} + b_hn`. Writes `dgx` (input-side pre-activation
/// gradients, `[3n]`), `dgh` (of `W_hh h + b_hh`, `[3n]`: the `n` part times `r`) and
/// `dh_prev = dh ⊙ z`.
pub fn gru_lbr_ref(
    gates: &[f32],
    ghn: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dgx: &mut [f32],
    dgh: &mut [f32],
    dh_prev: &mut [f32],
) {
    let n = dh.len();
    check_gru_lbr(n, gates, ghn, h_prev, dgx, dgh, dh_prev);
    let (r, rest) = gates.split_at(n);
    let (z, ng) = rest.split_at(n);
    for j in 0..n {
        let dnp = dh[j] * (1.0 - z[j]) * (1.0 - ng[j] * ng[j]);
        let dzp = dh[j] * (h_prev[j] - ng[j]) * z[j] * (1.0 - z[j]);
        let drp = dnp * ghn[j] * r[j] * (1.0 - r[j]);
        dgx[j] = drp;
        dgx[n + j] = dzp;
        dgx[2 * n + j] = dnp;
        dgh[j] = drp;
        dgh[n + j] = dzp;
        dgh[2 * n + j] = dnp * r[j];
        dh_prev[j] = dh[j] * z[j];
    }
}

fn check_gru_lbr(
    n: usize,
    gates: &[f32],
    ghn: &[f32],
    h_prev: &[f32],
    dgx: &[f32],
    dgh: &[f32],
    dh_prev: &[f32],
) {
    assert!(
        gates.len() == 3 * n
            && dgx.len() == 3 * n
            && dgh.len() == 3 * n
            && ghn.len() == n
            && h_prev.len() == n
            && dh_prev.len() == n,
        "gru_lbr backward: slice lengths"
    );
}

#[allow(clippy::too_many_arguments)]
fn gru_lbr_on(
    tier: Tier,
    gates: &[f32],
    ghn: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dgx: &mut [f32],
    dgh: &mut [f32],
    dh_prev: &mut [f32],
) {
    check_gru_lbr(dh.len(), gates, ghn, h_prev, dgx, dgh, dh_prev);
    // SAFETY: `tier` is `kernel_tier()` or `available_or_best()`, which only give tiers whose
    // features were detected at run time; the lengths are checked above.
    on_tier!(unsafe tier => backward_gru_lbr(gates, ghn, h_prev, dh, dgx, dgh, dh_prev),
        _ => gru_lbr_ref(gates, ghn, h_prev, dh, dgx, dgh, dh_prev))
}

/// Notes-form GRU backward, first half (the math of [`gru_notes_n_ref`]) on
/// [`tier()`](super::activation::tier).
#[inline]
pub fn gru_notes_n(gates: &[f32], dh: &[f32], dpre: &mut [f32]) {
    gru_notes_n_on(kernel_tier(), gates, dh, dpre);
}

/// [`gru_notes_n`] on `tier` (or the best available tier if this CPU lacks it).
#[cfg(test)] // only the kernel tests pick a tier explicitly
pub fn gru_notes_n_with(tier: Tier, gates: &[f32], dh: &[f32], dpre: &mut [f32]) {
    gru_notes_n_on(tier.available_or_best(), gates, dh, dpre);
}

/// Notes-form GRU backward, first half, the spec: the `n` gate's pre-activation
/// gradient `dh ⊙ (1 − z) ⊙ (1 − n²)` into `dpre[2n..]` (`dpre[..2n]` untouched).
pub fn gru_notes_n_ref(gates: &[f32], dh: &[f32], dpre: &mut [f32]) {
    let n = dh.len();
    check_notes_n(n, gates, dpre);
    for j in 0..n {
        let z = gates[n + j];
        let ng = gates[2 * n + j];
        dpre[2 * n + j] = dh[j] * (1.0 - z) * (1.0 - ng * ng);
    }
}

fn check_notes_n(n: usize, gates: &[f32], dpre: &[f32]) {
    assert!(
        gates.len() == 3 * n && dpre.len() == 3 * n,
        "gru_notes_n backward: slice lengths"
    );
}

fn gru_notes_n_on(tier: Tier, gates: &[f32], dh: &[f32], dpre: &mut [f32]) {
    check_notes_n(dh.len(), gates, dpre);
    // SAFETY: `tier` is `kernel_tier()` or `available_or_best()`, which only give tiers whose
    // features were detected at run time; the lengths are checked above.
    on_tier!(unsafe tier => backward_gru_notes_n(gates, dh, dpre),
        _ => gru_notes_n_ref(gates, dh, dpre))
}

/// Notes-form GRU backward, second half (the math of [`gru_notes_rz_ref`]) on
/// [`tier()`](super::activation::tier).
#[inline]
pub fn gru_notes_rz(
    gates: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    drh: &[f32],
    dpre: &mut [f32],
    dh_prev: &mut [f32],
) {
    gru_notes_rz_on(kernel_tier(), gates, h_prev, dh, drh, dpre, dh_prev);
}

/// [`gru_notes_rz`] on `tier` (or the best available tier if this CPU lacks it).
#[cfg(test)] // only the kernel tests pick a tier explicitly
pub fn gru_notes_rz_with(
    tier: Tier,
    gates: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    drh: &[f32],
    dpre: &mut [f32],
    dh_prev: &mut [f32],
) {
    let t = tier.available_or_best();
    gru_notes_rz_on(t, gates, h_prev, dh, drh, dpre, dh_prev);
}

/// Notes-form GRU backward, second half, the spec, given `drh = ∂L/∂(r ⊙ h_{t-1})`:
/// the `r, z` pre-activation gradients into `dpre[..2n]` (`dpre[2n..]` untouched) and
/// `dh_prev = dh ⊙ z + drh ⊙ r`.
pub fn gru_notes_rz_ref(
    gates: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    drh: &[f32],
    dpre: &mut [f32],
    dh_prev: &mut [f32],
) {
    let n = dh.len();
    check_notes_rz(n, gates, h_prev, drh, dpre, dh_prev);
    for j in 0..n {
        let (r, z, ng) = (gates[j], gates[n + j], gates[2 * n + j]);
        dpre[j] = drh[j] * h_prev[j] * r * (1.0 - r);
        dpre[n + j] = dh[j] * (h_prev[j] - ng) * z * (1.0 - z);
        dh_prev[j] = dh[j] * z + drh[j] * r;
    }
}

fn check_notes_rz(
    n: usize,
    gates: &[f32],
    h_prev: &[f32],
    drh: &[f32],
    dpre: &[f32],
    dh_prev: &[f32],
) {
    assert!(
        gates.len() == 3 * n
            && dpre.len() == 3 * n
            && h_prev.len() == n
            && drh.len() == n
            && dh_prev.len() == n,
        "gru_notes_rz backward: slice lengths"
    );
}

fn gru_notes_rz_on(
    tier: Tier,
    gates: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    drh: &[f32],
    dpre: &mut [f32],
    dh_prev: &mut [f32],
) {
    check_notes_rz(dh.len(), gates, h_prev, drh, dpre, dh_prev);
    // SAFETY: `tier` is `kernel_tier()` or `available_or_best()`, which only give tiers whose
    // features were detected at run time; the lengths are checked above.
    on_tier!(unsafe tier => backward_gru_notes_rz(gates, h_prev, dh, drh, dpre, dh_prev),
        _ => gru_notes_rz_ref(gates, h_prev, dh, drh, dpre, dh_prev))
}

/// Vanilla RNN backward (the math of [`rnn_ref`]) on [`tier()`](super::activation::tier).
#[inline]
pub fn rnn(h: &[f32], dh: &[f32], relu: bool, dpre: &mut [f32]) {
    rnn_on(kernel_tier(), h, dh, relu, dpre);
}

/// [`rnn`] on `tier` (or the best available tier if this CPU lacks it).
#[cfg(test)] // only the kernel tests pick a tier explicitly
pub fn rnn_with(tier: Tier, h: &[f32], dh: &[f32], relu: bool, dpre: &mut [f32]) {
    rnn_on(tier.available_or_best(), h, dh, relu, dpre);
}

/// Vanilla RNN backward, the spec: `dpre = dh ⊙ φ'(·)` from `h = φ(pre)`: tanh
/// `dh ⊙ (1 − h²)`; relu `dh` where `h > 0`, else `0` (a NaN `h` gives `0`).
pub fn rnn_ref(h: &[f32], dh: &[f32], relu: bool, dpre: &mut [f32]) {
    check_rnn(h, dh, dpre);
    for ((d, &hv), &g) in dpre.iter_mut().zip(h).zip(dh) {
        *d = if relu {
            if hv > 0.0 {
                g
            } else {
                0.0
            }
        } else {
            g * (1.0 - hv * hv)
        };
    }
}

fn check_rnn(h: &[f32], dh: &[f32], dpre: &[f32]) {
    assert!(
        dh.len() == h.len() && dpre.len() == h.len(),
        "rnn backward: slice lengths"
    );
}

fn rnn_on(tier: Tier, h: &[f32], dh: &[f32], relu: bool, dpre: &mut [f32]) {
    check_rnn(h, dh, dpre);
    // SAFETY: `tier` is `kernel_tier()` or `available_or_best()`, which only give tiers whose
    // features were detected at run time; the lengths are checked above.
    on_tier!(unsafe tier => backward_rnn(h, dh, relu, dpre), _ => rnn_ref(h, dh, relu, dpre))
}

// ---------------------------------------------------------------------------------------
// The SIMD bodies: one per kernel, generic over the tier, instantiated in each tier's
// file (`tier_entries!`). The same multiplications, additions and subtractions as the
// `*_ref` functions, in the same order per lane, no FMA: the reference's bits.

/// A read-only row of `n` units.
#[derive(Clone, Copy)]
struct In(*const f32);

impl In {
    /// Units `j..j + cnt` (the rest of the vector zero).
    ///
    /// # Safety
    /// `j + min(cnt, LANES)` must not pass the end of the slice this row was made from.
    #[inline(always)]
    unsafe fn at<S: Simd>(self, s: S, j: usize, cnt: usize) -> S::V {
        // SAFETY: the caller's extent.
        unsafe { s.load_n(self.0.add(j), cnt) }
    }
}

/// A writable row of `n` units.
#[derive(Clone, Copy)]
struct Out(*mut f32);

impl Out {
    /// Stores units `j..j + cnt` of `v`.
    ///
    /// # Safety
    /// As [`In::at`], on a mutably borrowed slice.
    #[inline(always)]
    unsafe fn put<S: Simd>(self, s: S, j: usize, cnt: usize, v: S::V) {
        // SAFETY: the caller's extent.
        unsafe { s.store_n(self.0.add(j), cnt, v) }
    }
}

pub(crate) mod body {
    //! The bodies; the callers (the tiers' entry points, from the dispatchers above)
    //! have checked the lengths, and each body asserts them again, so a wrong length is
    //! a panic, never an out-of-bounds access.
    use super::{In, Out};
    use crate::kernels::simd::Simd;

    /// `1 − a`.
    #[inline(always)]
    fn one_minus<S: Simd>(s: S, a: S::V) -> S::V {
        s.sub(s.splat(1.0), a)
    }

    /// LSTM backward ([`super::lstm_ref`]).
    #[inline(always)]
    pub(crate) fn lstm<S: Simd>(
        s: S,
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
            let k = (n - j).min(S::LANES);
            // SAFETY: units j..j+k <= n, and every row above is n units long
            // (asserted), so each access is inside its slice.
            unsafe {
                let (i, f) = (gi.at(s, j, k), gf.at(s, j, k));
                let (g, o) = (gg.at(s, j, k), go.at(s, j, k));
                let (tv, dhv) = (t.at(s, j, k), d.at(s, j, k));
                let dct = s.add(
                    dcin.at(s, j, k),
                    s.mul(s.mul(dhv, o), one_minus(s, s.mul(tv, tv))),
                );
                dout.put(s, j, k, s.mul(s.mul(s.mul(dhv, tv), o), one_minus(s, o)));
                di.put(s, j, k, s.mul(s.mul(s.mul(dct, g), i), one_minus(s, i)));
                df.put(
                    s,
                    j,
                    k,
                    s.mul(s.mul(s.mul(dct, cp.at(s, j, k)), f), one_minus(s, f)),
                );
                dg.put(s, j, k, s.mul(s.mul(dct, i), one_minus(s, s.mul(g, g))));
                dco.put(s, j, k, s.mul(dct, f));
            }
            j += S::LANES;
        }
    }

    /// Linear-before-reset GRU backward ([`super::gru_lbr_ref`]).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gru_lbr<S: Simd>(
        s: S,
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
            let k = (n - j).min(S::LANES);
            // SAFETY: as in `lstm`: units j..j+k <= n of n-unit rows.
            unsafe {
                let (r, z, ng) = (gr.at(s, j, k), gz.at(s, j, k), gn.at(s, j, k));
                let dhv = d.at(s, j, k);
                let dnp = s.mul(s.mul(dhv, one_minus(s, z)), one_minus(s, s.mul(ng, ng)));
                let dzp = s.mul(
                    s.mul(s.mul(dhv, s.sub(hp.at(s, j, k), ng)), z),
                    one_minus(s, z),
                );
                let drp = s.mul(s.mul(s.mul(dnp, hn.at(s, j, k)), r), one_minus(s, r));
                xr.put(s, j, k, drp);
                xz.put(s, j, k, dzp);
                xn.put(s, j, k, dnp);
                hr.put(s, j, k, drp);
                hz.put(s, j, k, dzp);
                hnn.put(s, j, k, s.mul(dnp, r));
                dp.put(s, j, k, s.mul(dhv, z));
            }
            j += S::LANES;
        }
    }

    /// Notes-form GRU backward, first half ([`super::gru_notes_n_ref`]).
    #[inline(always)]
    pub(crate) fn gru_notes_n<S: Simd>(s: S, gates: &[f32], dh: &[f32], dpre: &mut [f32]) {
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
            let k = (n - j).min(S::LANES);
            // SAFETY: as in `lstm`: units j..j+k <= n of n-unit rows.
            unsafe {
                let (z, ng) = (gz.at(s, j, k), gn.at(s, j, k));
                let v = s.mul(d.at(s, j, k), one_minus(s, z));
                dn.put(s, j, k, s.mul(v, one_minus(s, s.mul(ng, ng))));
            }
            j += S::LANES;
        }
    }

    /// Notes-form GRU backward, second half ([`super::gru_notes_rz_ref`]).
    #[inline(always)]
    pub(crate) fn gru_notes_rz<S: Simd>(
        s: S,
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
            let k = (n - j).min(S::LANES);
            // SAFETY: as in `lstm`: units j..j+k <= n of n-unit rows.
            unsafe {
                let (r, z, ng) = (gr.at(s, j, k), gz.at(s, j, k), gn.at(s, j, k));
                let (hpv, dhv, drhv) = (hp.at(s, j, k), d.at(s, j, k), rh.at(s, j, k));
                dr.put(s, j, k, s.mul(s.mul(s.mul(drhv, hpv), r), one_minus(s, r)));
                dz.put(
                    s,
                    j,
                    k,
                    s.mul(s.mul(s.mul(dhv, s.sub(hpv, ng)), z), one_minus(s, z)),
                );
                dp.put(s, j, k, s.add(s.mul(dhv, z), s.mul(drhv, r)));
            }
            j += S::LANES;
        }
    }

    /// Vanilla RNN backward ([`super::rnn_ref`]).
    #[inline(always)]
    pub(crate) fn rnn<S: Simd>(s: S, h: &[f32], dh: &[f32], relu: bool, dpre: &mut [f32]) {
        let n = h.len();
        assert!(dh.len() == n && dpre.len() == n);
        let (hv, d, out) = (In(h.as_ptr()), In(dh.as_ptr()), Out(dpre.as_mut_ptr()));
        let mut j = 0;
        while j < n {
            let k = (n - j).min(S::LANES);
            // SAFETY: as in `lstm`: units j..j+k <= n of n-unit rows.
            unsafe {
                let (x, g) = (hv.at(s, j, k), d.at(s, j, k));
                let v = if relu {
                    // Ordered compare: a NaN `h` is not > 0 and gives 0, as the reference.
                    s.keep_where_positive(x, g)
                } else {
                    s.mul(g, one_minus(s, s.mul(x, x)))
                };
                out.put(s, j, k, v);
            }
            j += S::LANES;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::available_tiers;

    /// The widest vector any tier uses.
    const MAX_LANES: usize = 16;
    /// Written around every output slice; must survive every call.
    const GUARD: f32 = 12345.0;

    /// Values in `[-scale, scale]`, with NaN, infinities and the saturation values
    /// `0, ±1` (activated gates at their limits) mixed in.
    struct Gen(u32);

    impl Gen {
        fn next(&mut self, scale: f32) -> f32 {
            self.0 = self.0.wrapping_mul(1664525).wrapping_add(1013904223);
            match self.0 >> 27 {
                0 => f32::NAN,
                1 => 1.0,
                2 => 0.0,
                3 => -1.0,
                4 => f32::INFINITY,
                _ => ((self.0 >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0 * scale,
            }
        }

        fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
            (0..n).map(|_| self.next(scale)).collect()
        }
    }

    /// `data` placed at `offset` inside a guarded buffer (so the slice is misaligned
    /// for offset 1 and has neighbours to damage).
    fn guarded(data: &[f32], offset: usize) -> Vec<f32> {
        let mut v = vec![GUARD; offset + data.len() + MAX_LANES];
        v[offset..offset + data.len()].copy_from_slice(data);
        v
    }

    /// Checks the slice at `offset` against `want` bit for bit (NaN payloads aside) and
    /// the guard around it.
    fn same(buf: &[f32], offset: usize, want: &[f32], what: &str) {
        let got = &buf[offset..offset + want.len()];
        for (j, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits(),
                "{what}[{j}]: {a:e} vs reference {b:e}"
            );
        }
        let outside = buf[..offset].iter().chain(&buf[offset + want.len()..]);
        assert!(
            outside.into_iter().all(|g| g.to_bits() == GUARD.to_bits()),
            "{what}: wrote outside the slice"
        );
    }

    /// Every case: each available tier, lengths 0..4*16+3, offsets 0 and 1.
    fn cases(mut f: impl FnMut(Tier, usize, usize, &mut Gen)) {
        let mut gen = Gen(12345);
        for tier in available_tiers() {
            for n in 0..=4 * MAX_LANES + 3 {
                for offset in 0..2 {
                    f(tier, n, offset, &mut gen);
                }
            }
        }
    }

    #[test]
    fn lstm_matches_the_reference_on_every_tier() {
        cases(|tier, n, off, g| {
            let (gates, cp, tc, dh) = (
                g.vec(4 * n, 1.0),
                g.vec(n, 3.0),
                g.vec(n, 1.0),
                g.vec(n, 2.0),
            );
            let dc0 = g.vec(n, 2.0);
            let (mut dc1, mut dp1) = (dc0.clone(), vec![0.0; 4 * n]);
            lstm_ref(&gates, &cp, &tc, &dh, &mut dc1, &mut dp1);
            let o = off;
            let (gb, cb, tb, hb) = (
                guarded(&gates, o),
                guarded(&cp, o),
                guarded(&tc, o),
                guarded(&dh, o),
            );
            let (mut dc2, mut dp2) = (guarded(&dc0, o), guarded(&vec![0.0; 4 * n], o));
            lstm_with(
                tier,
                &gb[o..o + 4 * n],
                &cb[o..o + n],
                &tb[o..o + n],
                &hb[o..o + n],
                &mut dc2[o..o + n],
                &mut dp2[o..o + 4 * n],
            );
            let what = format!("lstm[{}] n={n} offset={o}", tier.name());
            same(&dc2, o, &dc1, &format!("{what} dc"));
            same(&dp2, o, &dp1, &format!("{what} dpre"));
        });
    }

    #[test]
    fn gru_lbr_matches_the_reference_on_every_tier() {
        cases(|tier, n, o, g| {
            let (gates, ghn, hp, dh) = (
                g.vec(3 * n, 1.0),
                g.vec(n, 3.0),
                g.vec(n, 1.0),
                g.vec(n, 2.0),
            );
            let (mut x1, mut h1, mut p1) = (vec![0.0; 3 * n], vec![0.0; 3 * n], vec![0.0; n]);
            gru_lbr_ref(&gates, &ghn, &hp, &dh, &mut x1, &mut h1, &mut p1);
            let (gb, nb, pb, db) = (
                guarded(&gates, o),
                guarded(&ghn, o),
                guarded(&hp, o),
                guarded(&dh, o),
            );
            let mut x2 = guarded(&vec![f32::NAN; 3 * n], o);
            let mut h2 = guarded(&vec![f32::NAN; 3 * n], o);
            let mut p2 = guarded(&vec![f32::NAN; n], o);
            gru_lbr_with(
                tier,
                &gb[o..o + 3 * n],
                &nb[o..o + n],
                &pb[o..o + n],
                &db[o..o + n],
                &mut x2[o..o + 3 * n],
                &mut h2[o..o + 3 * n],
                &mut p2[o..o + n],
            );
            let what = format!("gru_lbr[{}] n={n} offset={o}", tier.name());
            same(&x2, o, &x1, &format!("{what} dgx"));
            same(&h2, o, &h1, &format!("{what} dgh"));
            same(&p2, o, &p1, &format!("{what} dh_prev"));
        });
    }

    #[test]
    fn gru_notes_match_the_reference_on_every_tier() {
        cases(|tier, n, o, g| {
            let (gates, hp, dh, drh) = (
                g.vec(3 * n, 1.0),
                g.vec(n, 1.0),
                g.vec(n, 2.0),
                g.vec(n, 2.0),
            );
            // The two halves each leave the other part of `dpre` alone.
            let init = g.vec(3 * n, 5.0);
            let (mut d1, mut p1) = (init.clone(), vec![0.0; n]);
            gru_notes_n_ref(&gates, &dh, &mut d1);
            let after_n = d1.clone();
            gru_notes_rz_ref(&gates, &hp, &dh, &drh, &mut d1, &mut p1);
            let (gb, pb, db, rb) = (
                guarded(&gates, o),
                guarded(&hp, o),
                guarded(&dh, o),
                guarded(&drh, o),
            );
            let mut d2 = guarded(&init, o);
            let mut p2 = guarded(&vec![f32::NAN; n], o);
            let what = format!("gru_notes[{}] n={n} offset={o}", tier.name());
            gru_notes_n_with(
                tier,
                &gb[o..o + 3 * n],
                &db[o..o + n],
                &mut d2[o..o + 3 * n],
            );
            same(&d2, o, &after_n, &format!("{what} dpre after n"));
            gru_notes_rz_with(
                tier,
                &gb[o..o + 3 * n],
                &pb[o..o + n],
                &db[o..o + n],
                &rb[o..o + n],
                &mut d2[o..o + 3 * n],
                &mut p2[o..o + n],
            );
            same(&d2, o, &d1, &format!("{what} dpre"));
            same(&p2, o, &p1, &format!("{what} dh_prev"));
        });
    }

    #[test]
    fn rnn_matches_the_reference_on_every_tier() {
        cases(|tier, n, o, g| {
            for relu in [false, true] {
                let (h, dh) = (g.vec(n, 1.0), g.vec(n, 2.0));
                let mut d1 = vec![0.0; n];
                rnn_ref(&h, &dh, relu, &mut d1);
                let (hb, db) = (guarded(&h, o), guarded(&dh, o));
                let mut d2 = guarded(&vec![f32::NAN; n], o);
                rnn_with(tier, &hb[o..o + n], &db[o..o + n], relu, &mut d2[o..o + n]);
                let what = format!("rnn[{}] relu={relu} n={n} offset={o}", tier.name());
                same(&d2, o, &d1, &what);
            }
        });
    }

    #[test]
    fn relu_of_nan_and_negative_zero_gives_zero() {
        let h = [f32::NAN, -0.0, 0.0, 1.0, -1.0];
        let dh = [3.0f32; 5];
        for tier in available_tiers() {
            let mut d = [f32::NAN; 5];
            rnn_with(tier, &h, &dh, true, &mut d);
            assert_eq!(d, [0.0, 0.0, 0.0, 3.0, 0.0], "{}", tier.name());
        }
    }

    /// The `*_with` entry points reach each ISA's own kernel: bit equality with the
    /// reference cannot tell a SIMD tier from one silently running the scalar loop, so
    /// this calls the ISA functions directly as well (the equality tests cover them).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_kernels_called_directly_match_the_reference() {
        use crate::kernels::x86_64::{
            avx as backward_avx, avx2 as backward_avx2, avx512 as backward_avx512,
        };
        let mut gen = Gen(99);
        let n = 2 * MAX_LANES + 5;
        let (h, dh) = (gen.vec(n, 1.0), gen.vec(n, 2.0));
        let mut want = vec![0.0; n];
        rnn_ref(&h, &dh, false, &mut want);
        if Tier::Avx.is_available() {
            let mut d = vec![f32::NAN; n];
            // SAFETY: AVX and SSE4.1 were detected just above; the slices are n long.
            unsafe { backward_avx::backward_rnn(&h, &dh, false, &mut d) };
            same(&guarded(&d, 0), 0, &want, "avx direct");
        }
        if Tier::Avx2.is_available() {
            let mut d = vec![f32::NAN; n];
            // SAFETY: AVX2 and FMA were detected just above; the slices are n long.
            unsafe { backward_avx2::backward_rnn(&h, &dh, false, &mut d) };
            same(&guarded(&d, 0), 0, &want, "avx2 direct");
        }
        if Tier::Avx512.is_available() {
            let mut d = vec![f32::NAN; n];
            // SAFETY: AVX-512F was detected just above; the slices are n long.
            unsafe { backward_avx512::backward_rnn(&h, &dh, false, &mut d) };
            same(&guarded(&d, 0), 0, &want, "avx512 direct");
        }
    }
}
