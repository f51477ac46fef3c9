//! The fused pointwise passes of the forward cells and the single-stream kernels, one
//! body each, generic over the vector tier ([`Simd`]). The math of each is the
//! `*_ref` function in [`super::reference`] it names; the activations are
//! [`super::simd`]'s.
//!
//! Rows are walked two vectors of units per iteration, in one straight run of code:
//! their long, independent dependency chains then interleave in the scheduler instead
//! of the second waiting behind the first (H = 32 state updates ran at half the
//! throughput their operation count allows, on AVX-512). The last vectors of a row may
//! be partial ([`Simd::load_n`]).
//!
//! Gate order as PyTorch: LSTM `i, f, g, o`, GRU `r, z, n`, each `n` units wide.

use super::aligned::{LineAligned, LINE};
use super::simd::{activate_rows, flush, sigmoid_v, tanh_v, Act, Simd};

/// `G` vectors of `cnt` units from `p + q·n + j`, `q < G` (gate `q` of unit `j`).
///
/// # Safety
/// Each `p + q·n + j .. + min(cnt, LANES)` readable.
#[inline(always)]
unsafe fn load_gates<S: Simd, const G: usize>(
    s: S,
    p: *const f32,
    n: usize,
    j: usize,
    cnt: usize,
) -> [S::V; G] {
    let mut g = [s.zero(); G];
    for (q, v) in g.iter_mut().enumerate() {
        // SAFETY: the caller's extent.
        *v = unsafe { s.load_n(p.add(q * n + j), cnt) };
    }
    g
}

/// Stores `G` vectors of `cnt` units to `p + q·n + j`.
///
/// # Safety
/// Each `p + q·n + j .. + min(cnt, LANES)` writable.
#[inline(always)]
unsafe fn store_gates<S: Simd, const G: usize>(
    s: S,
    p: *mut f32,
    n: usize,
    j: usize,
    cnt: usize,
    g: [S::V; G],
) {
    for (q, v) in g.into_iter().enumerate() {
        // SAFETY: the caller's extent.
        unsafe { s.store_n(p.add(q * n + j), cnt, v) };
    }
}

/// The valid units of the two vectors from unit `j` of a row of `n`: `(n0, n1)`, `n1`
/// zero when the row ends within the first.
#[inline(always)]
fn two_vectors(lanes: usize, n: usize, j: usize) -> (usize, usize) {
    let n0 = (n - j).min(lanes);
    (n0, (n - j - n0).min(lanes))
}

/// The activated gates, `c` and `h` of one vector of units from their pre-activations
/// `[i, f, g, o]` and `c_prev`.
#[inline(always)]
fn lstm_cell_v<S: Simd>(
    s: S,
    [gi, gf, gg, go]: [S::V; 4],
    c_prev: S::V,
) -> ([S::V; 4], S::V, S::V) {
    let (i, f) = (sigmoid_v(s, gi), sigmoid_v(s, gf));
    let (g, o) = (tanh_v(s, gg), sigmoid_v(s, go));
    let cv = s.add(s.mul(f, c_prev), s.mul(i, g));
    ([i, f, g, o], cv, s.mul(o, tanh_v(s, cv)))
}

/// Fused LSTM pointwise pass ([`super::reference::lstm_cell_ref`]): `i,f,o = σ`,
/// `g = tanh` in place on `gates` (`[4n]`), `c = f⊙c_prev + i⊙g`, `h = o⊙tanh(c)`.
#[inline(always)]
pub(crate) fn lstm_cell<S: Simd>(
    s: S,
    gates: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    h: &mut [f32],
) {
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
        let (n0, n1) = two_vectors(S::LANES, n, j);
        let j1 = j + n0;
        // SAFETY: the vectors touch units j..j + n0 + n1 <= n; with the lengths asserted
        // above every access is inside its slice (gate q of unit j at q*n + j).
        unsafe {
            let g0 = load_gates::<S, 4>(s, gp, n, j, n0);
            let (a0, c0, h0) = lstm_cell_v(s, g0, s.load_n(cpp.add(j), n0));
            store_gates(s, gp, n, j, n0, a0);
            s.store_n(cp.add(j), n0, c0);
            s.store_n(hp.add(j), n0, h0);
            if n1 > 0 {
                let g1 = load_gates::<S, 4>(s, gp, n, j1, n1);
                let (a1, c1, h1) = lstm_cell_v(s, g1, s.load_n(cpp.add(j1), n1));
                store_gates(s, gp, n, j1, n1, a1);
                s.store_n(cp.add(j1), n1, c1);
                s.store_n(hp.add(j1), n1, h1);
            }
        }
        j = j1 + n1;
    }
}

/// `[r, z, n]` and `h` of one vector of units from the pre-activations `[r, z,
/// n_input]`, `W_hn h + b_hn` and `h_prev`.
#[inline(always)]
fn gru_lbr_cell_v<S: Simd>(
    s: S,
    [gr, gz, gn]: [S::V; 3],
    ghn: S::V,
    hprev: S::V,
) -> ([S::V; 3], S::V) {
    let (r, z) = (sigmoid_v(s, gr), sigmoid_v(s, gz));
    let nv = tanh_v(s, s.add(gn, s.mul(r, ghn)));
    let hv = s.add(nv, s.mul(z, s.sub(hprev, nv)));
    ([r, z, nv], hv)
}

/// Fused linear-before-reset GRU pointwise pass ([`super::reference::gru_lbr_cell_ref`]):
/// `r, z = σ`, `n = tanh(n_input + r⊙ghn)` in place on `gates` (`[3n]`), `h = n +
/// z⊙(h_prev − n)`.
#[inline(always)]
pub(crate) fn gru_lbr_cell<S: Simd>(
    s: S,
    gates: &mut [f32],
    ghn: &[f32],
    h_prev: &[f32],
    h: &mut [f32],
) {
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
        let (n0, n1) = two_vectors(S::LANES, n, j);
        let j1 = j + n0;
        // SAFETY: as in `lstm_cell`: units j..j + n0 + n1 <= n of slices whose lengths
        // are asserted above.
        unsafe {
            let g0 = load_gates::<S, 3>(s, gp, n, j, n0);
            let (m0, p0) = (s.load_n(np.add(j), n0), s.load_n(pp.add(j), n0));
            let (a0, h0) = gru_lbr_cell_v(s, g0, m0, p0);
            store_gates(s, gp, n, j, n0, a0);
            s.store_n(hp.add(j), n0, h0);
            if n1 > 0 {
                let g1 = load_gates::<S, 3>(s, gp, n, j1, n1);
                let (m1, p1) = (s.load_n(np.add(j1), n1), s.load_n(pp.add(j1), n1));
                let (a1, h1) = gru_lbr_cell_v(s, g1, m1, p1);
                store_gates(s, gp, n, j1, n1, a1);
                s.store_n(hp.add(j1), n1, h1);
            }
        }
        j = j1 + n1;
    }
}

/// `(c, h)` of one vector of units from their gate pre-activations `[i, f, g, o]` and old
/// `c` (before the flush); the activations in their form for a chain where `CHAIN` (a
/// single stream's steps), else for throughput (the same bits).
#[inline(always)]
fn lstm_state_v<S: Simd, const CHAIN: bool>(s: S, g: [S::V; 4], c: S::V) -> (S::V, S::V) {
    let (cv, hv) = lstm_state_rows::<S, 1, CHAIN>(s, [g], [c]);
    (cv[0], hv[0])
}

/// [`lstm_state_v`] of `U` vectors of units at once, each operation for all of them
/// before the next ([`activate_rows`]): their chains overlap, and each vector's bits are
/// its own alone.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // rows indexed in lockstep
fn lstm_state_rows<S: Simd, const U: usize, const CHAIN: bool>(
    s: S,
    g: [[S::V; 4]; U],
    c: [S::V; U],
) -> ([S::V; U], [S::V; U]) {
    use Act::{Sigmoid, Tanh};
    let a = activate_rows::<S, 4, U, CHAIN>(s, g, [Sigmoid, Sigmoid, Tanh, Sigmoid]);
    let mut cv = [[s.zero(); 1]; U];
    for u in 0..U {
        let [i, f, gg, _] = a[u];
        cv[u] = [s.add(s.mul(f, c[u]), s.mul(i, gg))];
    }
    let t = activate_rows::<S, 1, U, CHAIN>(s, cv, [Tanh]);
    let (mut cn, mut hn) = ([s.zero(); U], [s.zero(); U]);
    for u in 0..U {
        cn[u] = cv[u][0];
        hn[u] = s.mul(a[u][3], t[u][0]);
    }
    (cn, hn)
}

/// Streaming LSTM update in place ([`super::reference::lstm_state_ref`]): `gates`
/// (`[4n]` pre-activations) are only read; `c <- flush(f⊙c + i⊙g)`,
/// `h <- flush(o⊙tanh(f⊙c + i⊙g))`.
#[inline(always)]
pub(crate) fn lstm_state<S: Simd>(s: S, gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    assert!(gates.len() == 4 * n && h.len() == n);
    let (gp, cp, hp) = (gates.as_ptr(), c.as_mut_ptr(), h.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let (n0, n1) = two_vectors(S::LANES, n, j);
        let j1 = j + n0;
        // SAFETY: units j..j + n0 + n1 <= n; with the lengths asserted above every
        // access is inside its slice (gate q of unit j at q*n + j). Each lane of `c` is
        // read before it is written.
        unsafe {
            let g0 = load_gates::<S, 4>(s, gp, n, j, n0);
            let (cv, hv) = lstm_state_v::<S, false>(s, g0, s.load_n(cp.add(j), n0));
            s.store_n(cp.add(j), n0, flush(s, cv));
            s.store_n(hp.add(j), n0, flush(s, hv));
            if n1 > 0 {
                let g1 = load_gates::<S, 4>(s, gp, n, j1, n1);
                let c1 = s.load_n(cp.add(j1), n1);
                let (cv, hv) = lstm_state_v::<S, false>(s, g1, c1);
                s.store_n(cp.add(j1), n1, flush(s, cv));
                s.store_n(hp.add(j1), n1, flush(s, hv));
            }
        }
        j = j1 + n1;
    }
}

/// The new `h` of one vector of units (before the flush) from the gates' bias and input
/// parts `g` (`[r, z, n]`), the recurrent products `w` (`W_hh h`, each gate), `b_hn` and
/// the old `h`; the activations' form chosen by `CHAIN` as in [`lstm_state_v`].
#[inline(always)]
fn gru_lbr_state_v<S: Simd, const CHAIN: bool>(
    s: S,
    g: [S::V; 3],
    w: [S::V; 3],
    b_hn: S::V,
    h: S::V,
) -> S::V {
    gru_lbr_state_rows::<S, 1, CHAIN>(s, [g], [w], [b_hn], [h])[0]
}

/// [`gru_lbr_state_v`] of `U` vectors of units at once, in lockstep as
/// [`lstm_state_rows`]: the same bits as each alone.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // rows indexed in lockstep
fn gru_lbr_state_rows<S: Simd, const U: usize, const CHAIN: bool>(
    s: S,
    g: [[S::V; 3]; U],
    w: [[S::V; 3]; U],
    b_hn: [S::V; U],
    h: [S::V; U],
) -> [S::V; U] {
    let mut rz = [[s.zero(); 2]; U];
    for u in 0..U {
        rz[u] = [s.add(g[u][0], w[u][0]), s.add(g[u][1], w[u][1])];
    }
    let rz = activate_rows::<S, 2, U, CHAIN>(s, rz, [Act::Sigmoid, Act::Sigmoid]);
    let mut n = [[s.zero(); 1]; U];
    for u in 0..U {
        let ghn = s.add(w[u][2], b_hn[u]);
        // Fused multiply-adds: each saves a dependent operation on the chain a single
        // stream's step waits on (the reference rounds the product separately).
        n[u] = [s.fma(rz[u][0], ghn, g[u][2])];
    }
    let n = activate_rows::<S, 1, U, CHAIN>(s, n, [Act::Tanh]);
    let mut out = [s.zero(); U];
    for u in 0..U {
        let nv = n[u][0];
        out[u] = s.fma(rz[u][1], s.sub(h[u], nv), nv);
    }
    out
}

/// Streaming linear-before-reset GRU update in place
/// ([`super::reference::gru_lbr_state_ref`]): `gates` (`[3n]`: bias and input parts) and
/// `gh` (`[3n]`: `W_hh h`) are only read; `h <- flush(n + z⊙(h − n))`.
#[inline(always)]
pub(crate) fn gru_lbr_state<S: Simd>(s: S, gates: &[f32], gh: &[f32], b_hn: &[f32], h: &mut [f32]) {
    let n = h.len();
    assert!(gates.len() == 3 * n && gh.len() == 3 * n && b_hn.len() == n);
    let (gp, ghp, bp, hp) = (gates.as_ptr(), gh.as_ptr(), b_hn.as_ptr(), h.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let (n0, n1) = two_vectors(S::LANES, n, j);
        let j1 = j + n0;
        // SAFETY: as in `lstm_state`: units j..j + n0 + n1 <= n of slices whose lengths
        // are asserted above; each lane of `h` is read before it is written.
        unsafe {
            let (g0, w0) = (
                load_gates::<S, 3>(s, gp, n, j, n0),
                load_gates::<S, 3>(s, ghp, n, j, n0),
            );
            let (b0, h0) = (s.load_n(bp.add(j), n0), s.load_n(hp.add(j), n0));
            let v0 = gru_lbr_state_v::<S, false>(s, g0, w0, b0, h0);
            s.store_n(hp.add(j), n0, flush(s, v0));
            if n1 > 0 {
                let (g1, w1) = (
                    load_gates::<S, 3>(s, gp, n, j1, n1),
                    load_gates::<S, 3>(s, ghp, n, j1, n1),
                );
                let (b1, h1) = (s.load_n(bp.add(j1), n1), s.load_n(hp.add(j1), n1));
                let v1 = gru_lbr_state_v::<S, false>(s, g1, w1, b1, h1);
                s.store_n(hp.add(j1), n1, flush(s, v1));
            }
        }
        j = j1 + n1;
    }
}

/// `y[r][j] = bias[j] + Σ_p x[r][p]·w[j][p]` for `rows` rows of `k` inputs and a few
/// outputs `o` (`w` is `[o][k]`, row-major, as a dense head stores it): each output a
/// dot product along `p`, in two vector accumulators (even and odd vectors of `p`; the
/// tail of `k` a partial vector), added, reduced across lanes ([`Simd::reduce_add`]),
/// then added to the bias. A head of one or two outputs is a dot product per row;
/// through the packed GEMM it was a panel of 32 columns with one in use (at H = 16 it
/// took as many instructions as the LSTM step it follows).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn dense_narrow<S: Simd>(
    s: S,
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[f32],
    o: usize,
    bias: &[f32],
    y: &mut [f32],
) {
    assert!(x.len() >= rows * k && w.len() == o * k && bias.len() == o && y.len() >= rows * o);
    let l = S::LANES;
    let (full, tail) = (k / (2 * l) * (2 * l), k % l);
    let (xp, wp, yp) = (x.as_ptr(), w.as_ptr(), y.as_mut_ptr());
    for r in 0..rows {
        for j in 0..o {
            // SAFETY: rows r of x and j of w hold k floats (asserted above): the vectors
            // below `full` and up to k - tail are whole, the tail partial; y[r·o + j]
            // and bias[j] are inside.
            unsafe {
                let (xr, wj) = (xp.add(r * k), wp.add(j * k));
                let (mut a0, mut a1) = (s.zero(), s.zero());
                let mut p = 0;
                while p < full {
                    a0 = s.fma(s.load(xr.add(p)), s.load(wj.add(p)), a0);
                    a1 = s.fma(s.load(xr.add(p + l)), s.load(wj.add(p + l)), a1);
                    p += 2 * l;
                }
                if p + l <= k {
                    a0 = s.fma(s.load(xr.add(p)), s.load(wj.add(p)), a0);
                    p += l;
                }
                if tail > 0 {
                    let (xv, wv) = (s.load_n(xr.add(p), tail), s.load_n(wj.add(p), tail));
                    a0 = s.fma(xv, wv, a0);
                }
                *yp.add(r * o + j) = *bias.get_unchecked(j) + s.reduce_add(s.add(a0, a1));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Single-stream kernels: a layer's whole steps, products included.

/// A layer's weights in the order a fused stream kernel reads them: for each chunk of
/// `ch` unit vectors (`lanes` units each), `W_hhᵀ`'s `H` rows, then `W_ihᵀ`'s `k` rows,
/// then the folded bias, each row holding the chunk's `G·ch` vectors of gate columns side
/// by side (gate `q`, unit vector `ci` at vector `q·ch + ci`). A chunk's products then
/// read contiguous rows at fixed strides: addressed through the packed GEMM's panels,
/// the H = 16 kernel spent a fifth of its instructions on column offsets and their
/// spills. The values and their summation order are the packed products', so the bits
/// are too.
///
/// A layer whose size is not a kernel's (`padded > units`) is laid out for the next
/// kernel's `padded` units: its gate columns beyond `units` hold zero weights and bias
/// (those units' gates are then 0 and their state stays +0), while `W_hhᵀ` keeps its
/// `units` rows, so every real unit's sums are the unpadded products' (the same rows in
/// the same order).
#[derive(Clone, Debug)]
pub(crate) struct StreamWeights {
    data: LineAligned,
    gates: usize,
    units: usize,
    /// The kernel's units: gate columns per gate (`units` where the size is a kernel's).
    padded: usize,
    k: usize,
    lanes: usize,
    ch: usize,
    /// [`StreamWeights::regions`], kept: a per-sample step asks for them every call.
    at: (usize, usize, usize),
}

impl StreamWeights {
    /// The layout for a layer of `units` units run by a kernel of `padded` units (a
    /// multiple of `lanes · ch`, at least `units`), `k` inputs and `gates` gates, filled
    /// from PyTorch's `w_ih` (`[G·H][k]`), `w_hh` (`[G·H][H]`) and the folded bias
    /// (`[G·H]`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        gates: usize,
        units: usize,
        padded: usize,
        k: usize,
        lanes: usize,
        ch: usize,
        w_ih: &[f32],
        w_hh: &[f32],
        bias: &[f32],
    ) -> StreamWeights {
        assert!(
            padded.is_multiple_of(lanes * ch) && padded >= units,
            "stream weights: units per chunk"
        );
        let gh = gates * units;
        assert!(
            w_ih.len() == gh * k && w_hh.len() == gh * units && bias.len() == gh,
            "stream weights: shapes disagree"
        );
        let mut out = StreamWeights {
            data: LineAligned::default(),
            gates,
            units,
            padded,
            k,
            lanes,
            ch,
            at: (0, 0, 0),
        };
        out.at = out.regions();
        out.data = LineAligned::zeroed(out.len());
        let (wh, wi, b) = out.at;
        let row = out.row();
        let data = out.data.as_mut_slice();
        for q in 0..gates {
            for j in 0..units {
                // Unit j of gate q: chunk c, column `col` of the chunk's rows.
                let u = j / lanes;
                let (c, col) = (u / ch, (q * ch + u % ch) * lanes + j % lanes);
                let src = q * units + j;
                for p in 0..units {
                    data[wh + (c * units + p) * row + col] = w_hh[src * units + p];
                }
                for p in 0..k {
                    data[wi + (c * k + p) * row + col] = w_ih[src * k + p];
                }
                data[b + c * row + col] = bias[src];
            }
        }
        out
    }

    /// Floats in a chunk's row: `G·ch` vectors.
    fn row(&self) -> usize {
        self.gates * self.ch * self.lanes
    }

    /// Where `W_hhᵀ`, `W_ihᵀ` and the bias start in the data, each on a line.
    /// Every chunk's rows together span the `G·padded` gate columns.
    fn regions(&self) -> (usize, usize, usize) {
        let gh = self.gates * self.padded;
        let wi = (self.units * gh).next_multiple_of(LINE);
        (0, wi, (wi + self.k * gh).next_multiple_of(LINE))
    }

    fn len(&self) -> usize {
        self.regions().2 + self.gates * self.padded
    }

    /// Inputs per step.
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Gate columns: `G·H`.
    pub(crate) fn gates_units(&self) -> usize {
        self.gates * self.units
    }

    /// The kernel's units (`H`, or more where the layer is padded).
    pub(crate) fn padded(&self) -> usize {
        self.padded
    }

    /// The kernels' view of these weights for `steps` rows of inputs at `x`, the first
    /// step sweeping the chunks last to first when `reverse`.
    #[inline]
    pub(crate) fn input(&self, x: *const f32, reverse: bool) -> StreamInput {
        let (wh, wi, b) = self.at;
        let base = self.data.as_slice().as_ptr();
        // `wrapping_add`: the offsets are inside the data (`len`), so these are in bounds.
        StreamInput {
            x,
            k: self.k,
            units: self.units,
            wh: base.wrapping_add(wh),
            wi: base.wrapping_add(wi),
            bias: base.wrapping_add(b),
            reverse,
        }
    }
}

/// What a fused stream kernel reads: rows of `k` inputs at `x` (one per step), and the
/// layer's [`StreamWeights`] (`W_hhᵀ`, `W_ihᵀ`, bias); `reverse`: the first step visits
/// the weights' chunks last to first, and the direction alternates step by step.
#[derive(Clone, Copy)]
pub(crate) struct StreamInput {
    pub x: *const f32,
    pub k: usize,
    /// The layer's units: `W_hhᵀ`'s rows and the length of `h`, `c` and the output rows
    /// (below the kernel's where its weights are padded).
    pub units: usize,
    pub wh: *const f32,
    pub wi: *const f32,
    pub bias: *const f32,
    pub reverse: bool,
}

/// The bytes of weights a fused stream kernel's sweep is measured by ([`sweep_chunk`]):
/// `W_hhᵀ` (`units` rows of `gates` gate vectors of `width` floats) and the two rows
/// every step reads beside it, the bias and at least one input row. A layer just under
/// 32 KiB of `W_hh` is over it with them: one LSTM layer of 41 or 42 units (the 48-unit
/// kernel, 31.5 KiB of `W_hh` at 42), swept, stepped in 0.81-0.92 of the time on
/// `avx512`, 0.89-0.97 on `avx2` and 0.90-0.94 on `avx`, its blocks in 0.83-0.96,
/// 0.90-0.97 and 0.97-1.00; `sse41` level to 0.98 (AMD EPYC Zen 4, `ab.c`, 5 rounds,
/// both orders; padded sizes whose answer did not change, level). A layer's further
/// input rows are left out, so that the kernel's size alone fixes the answer where it
/// fixes `units`: the chunks' order is then a constant, and the arrays the lockstep
/// update indexes by chunk stay in registers. Counted in every kernel (a run-time
/// quantity), they made two-layer blocks at 40 and 48 units 0.88-0.95 of the time, but
/// every kernel with 16-32 KiB of `W_hh` 2-8 % slower where they did not tip it over
/// (single layers, a stack's single steps): the `avx512` GRU of 48 stored 19-23 vectors
/// to the stack a step instead of 12-13 (`benches/compare/spills.py`). So only the
/// `WIDE` instances count them ([`wide_bytes`]), for blocks, at the sizes where that was
/// measured faster.
#[inline(always)]
pub(crate) const fn sweep_bytes(gates: usize, width: usize, units: usize) -> usize {
    4 * gates * width * (units + 2)
}

/// All the bytes of weights a step of a fused stream kernel reads, its `k` input rows
/// counted ([`sweep_bytes`] counts one): the measure of the `WIDE` kernels, which
/// `stream_kernel` gives the blocks of layers whose input weights take them over 32 KiB
/// (a stacked layer's `W_ihᵀ` is as large as its `W_hhᵀ`) at the sizes listed there. A
/// run-time quantity, so their chunks' order is a run-time choice: instances of their
/// own, so that every other kernel keeps its order a constant.
#[inline(always)]
pub(crate) const fn wide_bytes(gates: usize, width: usize, units: usize, k: usize) -> usize {
    4 * gates * width * (units + k + 1)
}

/// Whether a fused stream kernel turns its sweep over weights of `bytes` (by
/// [`sweep_bytes`] or [`wide_bytes`]) back every step: above 32 KiB ([`sweep_chunk`]).
#[inline(always)]
pub(crate) const fn sweeps(bytes: usize) -> bool {
    bytes > 32 << 10
}

/// Chunk `i` of `n` in the sweep of step `st` over a layer's weights of `bytes`
/// ([`sweep_bytes`]; [`StreamInput::reverse`]): weights larger than L1 are otherwise
/// read in the same order every step, and least-recently-used replacement evicts each
/// line just before it is needed again; reversed, a step starts on the chunk the
/// previous one read last, still in L1 (as `gemv_packed_sweep` does). Chunks are
/// independent columns: no bit changes. Up to 32 KiB (every x86 L1d since 2011 holds
/// it) the order stays: nothing to gain, and the chunk's address would wait on the
/// flag. Intel Xeon Emerald Rapids, alternated against the fixed order (7 rounds): H =
/// 64 steps and blocks 0.76-0.87 of the time (AVX-512 LSTM and GRU, AVX2 GRU); H = 128
/// level while its chunks were 64 KiB, each larger than L1 itself (AVX-512 now takes
/// chunks of 32 KiB there, see `stream_kernel`).
#[inline(always)]
fn sweep_chunk(inp: StreamInput, bytes: usize, st: usize, i: usize, n: usize) -> usize {
    if sweeps(bytes) && (st % 2 == 1) != inp.reverse {
        n - 1 - i
    } else {
        i
    }
}

/// Whether a fused stream kernel of `units` units in `chunks` chunks (vectors of `lanes`)
/// updates each chunk's units right after the chunk's products, rather than all units in
/// lockstep after every product. In lockstep every gate vector of the layer is live at
/// once: at 48 units and more on AVX2 (24 gate vectors and up, for 16 registers) and 64
/// and more on AVX-512 they went through the stack (LLVM also zeroed the whole gate array
/// every step: a `memset`, 8 % of an AVX2 H = 64 LSTM step by `perf`), while a chunk's
/// product over that many rows is long enough for the processor to run the previous
/// chunk's update beside it. Below those sizes the products are too short to hide an
/// update and lockstep stays faster. Intel Xeon Emerald Rapids, one layer and a head,
/// per chunk against lockstep alternated in one process (`benches/c/ab.c`, 5 rounds,
/// medians, step / block): AVX2 LSTM H = 48 0.82 / 0.80, 64 0.78 / 0.78, GRU 48 0.96 /
/// 0.98, 64 0.96 / 0.93; AVX-512 LSTM 64 0.93 / 0.99, 96 0.90 / 0.87, 128 0.86 / 0.86,
/// GRU 64 0.91 / 0.89, 96 0.92 / 0.94, 128 0.91 / 0.94. Slower where left in lockstep:
/// AVX2 H = 32 (1.0-1.12), 40 (1.05-1.27), AVX-512 48 (1.06-1.18). SSE4.1 (4 lanes) keeps
/// AVX-512's threshold: per chunk from 24 units on measured 1.12-1.19 of lockstep's time
/// at 24 and 32, 1.02-1.05 at 48 (AMD EPYC Zen 4, `RNNCORE_KERNEL=sse41`, 5 rounds). The
/// same operations on each unit: no bit changes.
#[inline(always)]
const fn per_chunk_update(lanes: usize, units: usize, chunks: usize) -> bool {
    chunks >= 2 && units >= if lanes == 8 { 48 } else { 64 }
}

/// A dense head of `o` outputs (`w` `[o][H]`, `bias` `[o]`) that a fused stream kernel
/// applies to each step's `h` while it is still in registers, writing rows of `o` floats
/// at `y`: the dot products of [`dense_narrow`] on the same tier, in its order, so the
/// same bits, without the store of `h`, the call and the reload between them.
#[derive(Clone, Copy)]
pub(crate) struct StreamHead {
    pub w: *const f32,
    pub bias: *const f32,
    pub o: usize,
    pub y: *mut f32,
}

/// Where a fused stream kernel puts each step's results: its `h` as rows of `H` at
/// `rows` (none where null), and the head's outputs where there is one.
#[derive(Clone, Copy)]
pub(crate) struct StreamOut {
    pub rows: *mut f32,
    pub head: Option<StreamHead>,
}

impl StreamOut {
    /// Each step's `h` as rows at `rows`, no head.
    pub(crate) fn rows(rows: *mut f32) -> StreamOut {
        StreamOut { rows, head: None }
    }

    /// Step `st`'s results from the new `h` in registers (`U` vectors, of which the
    /// first `units` floats are the layer's: fewer than `U·LANES` in a padded kernel).
    ///
    /// # Safety
    /// `rows` (where not null) holds row `st` of `units` floats; the head (where there
    /// is one) has `o` rows of `U·LANES` weights (zero beyond `units`), `o` biases and
    /// row `st` of `o` outputs.
    #[inline(always)]
    unsafe fn put<S: Simd, const U: usize>(self, s: S, st: usize, hv: &[S::V; U], units: usize) {
        let l = S::LANES;
        if !self.rows.is_null() {
            let row = self.rows.wrapping_add(st * units);
            for (u, v) in hv.iter().enumerate() {
                // SAFETY: row st of `rows` holds `units` floats (the caller's extent).
                unsafe { store_part(s, row, units, u, *v) };
            }
        }
        if let Some(hd) = self.head {
            for j in 0..hd.o {
                // SAFETY: row j of the head's weights holds `U·LANES` floats; bias[j]
                // and y[st·o + j] are inside (the caller's extents).
                unsafe {
                    let dot = head_dot::<S, U>(s, hv, hd.w.add(j * U * l), units);
                    *hd.y.add(st * hd.o + j) = *hd.bias.add(j) + dot;
                }
            }
        }
    }
}

/// `h · w` for the new `h` in registers (`U` vectors, `units` of their floats the layer's)
/// and a head row `w` of `U·LANES` weights (zero beyond `units`), summed as the
/// [`Simd::DOT_LANES`] tier's [`dense_narrow`] sums a row of `units`: pairs of whole
/// vectors, even and odd in two accumulators from zero, then what is left (a whole vector,
/// a partial one) into the first, then added and reduced. A partial vector's lanes beyond
/// `units` add +0 (`h` there is +0, the weights 0), as `dense_narrow`'s zero-filled
/// partial load does.
///
/// Where `DOT_LANES` is twice `LANES` (the AVX-512 tier's 8-lane body), that tier's
/// vector `u` is this body's `2u` (its low half) and `2u + 1` (its high half): each half
/// keeps its own two accumulators, the high half of a last vector past `units` adds the
/// product of zeros the 16-lane partial load would, and the 16-lane reduction adds the
/// halves first, then reduces 8 lanes as this body does. Lane for lane the same
/// operations, so the same bits (at 40 units the 8-lane order alone would sum the even
/// and odd 16-lane vectors in other accumulators).
///
/// # Safety
/// `w` holds `U·LANES` floats; `units <= U·LANES`.
#[inline(always)]
unsafe fn head_dot<S: Simd, const U: usize>(
    s: S,
    hv: &[S::V; U],
    w: *const f32,
    units: usize,
) -> f32 {
    let l = S::LANES;
    let used = units.div_ceil(l);
    if S::DOT_LANES == l {
        let pairs = units / (2 * l) * 2;
        let (mut a0, mut a1) = (s.zero(), s.zero());
        for (u, v) in hv.iter().enumerate().take(used) {
            // SAFETY: u < U: vector u of the row's U·LANES floats.
            let wv = unsafe { s.load(w.add(u * l)) };
            if u < pairs && u % 2 == 1 {
                a1 = s.fma(*v, wv, a1);
            } else {
                a0 = s.fma(*v, wv, a0);
            }
        }
        return s.reduce_add(s.add(a0, a1));
    }
    debug_assert_eq!(S::DOT_LANES, 2 * l);
    let wide = 2 * l;
    let pairs = units / (2 * wide) * 2;
    // [accumulator][half]
    let mut a = [[s.zero(); 2]; 2];
    for uw in 0..units.div_ceil(wide) {
        let acc = usize::from(uw < pairs && uw % 2 == 1);
        for (half, ah) in a[acc].iter_mut().enumerate() {
            let j = 2 * uw + half;
            let (v, wv) = if j < used {
                // SAFETY: j < used <= U: vector j of the row's U·LANES floats.
                (hv[j], unsafe { s.load(w.add(j * l)) })
            } else {
                (s.zero(), s.zero())
            };
            *ah = s.fma(v, wv, *ah);
        }
    }
    let (lo, hi) = (s.add(a[0][0], a[1][0]), s.add(a[0][1], a[1][1]));
    s.reduce_add(s.add(lo, hi))
}

/// Vector `u` of a row of `units` floats at `p`: whole, partial (the rest zero) or, past
/// the row, zero.
///
/// # Safety
/// `p` holds `units` floats.
#[inline(always)]
unsafe fn load_part<S: Simd>(s: S, p: *const f32, units: usize, u: usize) -> S::V {
    let off = u * S::LANES;
    // SAFETY: only floats below `units` are read.
    unsafe {
        if off + S::LANES <= units {
            s.load(p.add(off))
        } else if off < units {
            s.load_n(p.add(off), units - off)
        } else {
            s.zero()
        }
    }
}

/// Stores vector `u` of a row of `units` floats at `p`: the part of `v` inside the row.
///
/// # Safety
/// `p` holds `units` floats.
#[inline(always)]
unsafe fn store_part<S: Simd>(s: S, p: *mut f32, units: usize, u: usize, v: S::V) {
    let off = u * S::LANES;
    // SAFETY: only floats below `units` are written.
    unsafe {
        if off + S::LANES <= units {
            s.store(p.add(off), v)
        } else if off < units {
            s.store_n(p.add(off), units - off, v)
        }
    }
}

/// `*q`, by a volatile read where `ordered` (see `row_product`).
///
/// # Safety
/// `q` is valid for reading an `f32`.
#[inline(always)]
unsafe fn read_x(q: *const f32, ordered: bool) -> f32 {
    // SAFETY: the caller's.
    unsafe {
        if ordered {
            std::ptr::read_volatile(q)
        } else {
            *q
        }
    }
}

/// `x · W` for one row `x` of `k` floats against `NV` consecutive vectors of rows of
/// `w` (stride `NV·LANES`), summed as the process tier's packed GEMV sums it
/// (`kernels::microkernel`): with `PAIRS` even and odd rows in separate accumulators, in
/// row order, then added; without, one accumulator in row order (the packed GEMM's
/// order).
///
/// # Safety
/// `x` holds `k` floats, `w` `k` rows of `NV·LANES` floats.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // even and odd are indexed in step
unsafe fn row_product<S: Simd, const NV: usize, const PAIRS: bool>(
    s: S,
    k: usize,
    x: *const f32,
    w: *const f32,
) -> [S::V; NV] {
    let (l, ldw) = (S::LANES, NV * S::LANES);
    let mut even = [s.zero(); NV];
    let mut odd = [s.zero(); NV];
    let mut p = 0;
    // AVX2 at 16 rows (a 16-unit layer's `h`): left alone, LLVM orders the products
    // output vector by output vector, which keeps all 16 broadcasts live, spills them to
    // the stack and reloads one beside every weight. Volatile reads of `x` (two loads
    // the compiler may neither merge nor reorder) keep the broadcasts in row order,
    // each used by its row's multiply-adds and dropped: Intel Xeon Emerald Rapids,
    // RNNCORE_KERNEL=avx2, H = 16 steps 0.87-0.98 (LSTM 0.95-0.98) and blocks 0.85-0.89
    // of the time (7 rounds, then 9 with A and B swapped); at 8 and 32 rows and on
    // AVX-512 volatile reads everywhere were level to 4 % slower, so only there. At 24
    // rows (AMD EPYC Zen 4, RNNCORE_KERNEL=avx2, 9 rounds, both orders) steps took
    // 0.80-0.83 of the time and blocks 0.74-0.80, both cells; the AVX-512 tier's 8-lane
    // 24-unit kernels were level, and so were both at 40 rows. The same values, the same
    // sums: no bit changes.
    let ordered = S::LANES == 8 && matches!(k, 16 | 24);
    // Four rows' floats of `x` from one load, each spread by a shuffle ([`Simd::QUADS`]),
    // for both products (a stacked layer's input product is as long as its recurrent
    // one: two-layer blocks at H = 32 on AVX2 took 0.85-0.95 of the time with it, other
    // rows level). Of the ordered reads they replace only AVX2's at 16 rows: the LSTM
    // stepped in 0.87-0.92 of the time (the GRU and blocks level; the kernels' stack
    // stores no more than before); at AVX2's 24 rows quads took 1.17-1.25 (both cells,
    // steps and blocks), and on the 8-lane AVX-512 body at 16 and 24 rows they were
    // level there but made the GRU's 40-unit kernel (30 accumulators of 32 registers)
    // spill: 1.14-1.32 of its time, a kernel whose rows they did not touch (AMD EPYC Zen
    // 4, 7-9 rounds, both orders). The 8-lane AVX-512 body's passes of three gate
    // vectors (the GRU at 56 and 72 units) were 1.03-1.05 with two shuffles a float, and
    // 0.96-1.00 with one. The same values: no bit changes.
    let quads = S::QUADS && (!ordered || (k == 16 && S::REGISTERS == 16));
    if PAIRS && quads {
        while p + 3 < k {
            // SAFETY: p + 3 < k: x[p..p + 4] and rows p..p + 4 of `w`.
            unsafe {
                let a = s.quad_splats(x.add(p));
                let r0 = w.add(p * ldw);
                for v in 0..NV {
                    even[v] = s.fma(a[0], s.load(r0.add(v * l)), even[v]);
                    odd[v] = s.fma(a[1], s.load(r0.add(ldw + v * l)), odd[v]);
                }
                let r2 = w.add((p + 2) * ldw);
                for v in 0..NV {
                    even[v] = s.fma(a[2], s.load(r2.add(v * l)), even[v]);
                    odd[v] = s.fma(a[3], s.load(r2.add(ldw + v * l)), odd[v]);
                }
            }
            p += 4;
        }
    }
    if PAIRS {
        while p + 1 < k {
            // SAFETY: p + 1 < k: x[p], x[p + 1] and rows p, p + 1 of `w`.
            unsafe {
                let (a0, a1) = (
                    s.splat(read_x(x.add(p), ordered)),
                    s.splat(read_x(x.add(p + 1), ordered)),
                );
                let r0 = w.add(p * ldw);
                for v in 0..NV {
                    even[v] = s.fma(a0, s.load(r0.add(v * l)), even[v]);
                    odd[v] = s.fma(a1, s.load(r0.add(ldw + v * l)), odd[v]);
                }
            }
            p += 2;
        }
    }
    if !PAIRS && quads {
        while p + 3 < k {
            // SAFETY: p + 3 < k: x[p..p + 4] and rows p..p + 4 of `w`.
            unsafe {
                let a = s.quad_splats(x.add(p));
                for (j, aj) in a.iter().enumerate() {
                    let r = w.add((p + j) * ldw);
                    for v in 0..NV {
                        even[v] = s.fma(*aj, s.load(r.add(v * l)), even[v]);
                    }
                }
            }
            p += 4;
        }
    }
    while p < k {
        // SAFETY: p < k: x[p] and row p of `w`.
        unsafe {
            let (a0, r0) = (s.splat(*x.add(p)), w.add(p * ldw));
            for v in 0..NV {
                even[v] = s.fma(a0, s.load(r0.add(v * l)), even[v]);
            }
        }
        p += 1;
    }
    if PAIRS {
        for v in 0..NV {
            even[v] = s.add(even[v], odd[v]);
        }
    }
    even
}

/// The gate pre-activations of chunk `c` at step `st`: `bias + x · W_ihᵀ` (summed as the
/// packed GEMM sums it with a bias start, `k <= KC`: from zero over the inputs in order,
/// then added to the bias), plus `W_hh h` (summed per `PAIRS`).
///
/// # Safety
/// `inp` addresses the weights of a layer of `units` units with `NV` vectors per chunk
/// row and at least `c + 1` chunks, and row `st` of the inputs; `h` holds `units` floats.
#[inline(always)]
unsafe fn chunk_gates<S: Simd, const NV: usize, const PAIRS: bool>(
    s: S,
    inp: StreamInput,
    units: usize,
    c: usize,
    st: usize,
    h: *const f32,
) -> [S::V; NV] {
    let (l, row) = (S::LANES, NV * S::LANES);
    // SAFETY: the caller's extents: chunk c's rows of each region, row st of x.
    unsafe {
        let x = inp.x.add(st * inp.k);
        let mut g = row_product::<S, NV, false>(s, inp.k, x, inp.wi.add(c * inp.k * row));
        let prod = row_product::<S, NV, PAIRS>(s, units, h, inp.wh.add(c * units * row));
        let b = inp.bias.add(c * row);
        for v in 0..NV {
            g[v] = s.add(s.add(s.load(b.add(v * l)), g[v]), prod[v]);
        }
        g
    }
}

/// `steps` timesteps of one LSTM stream of `H = U·LANES` units: per step the gate
/// pre-activations ([`chunk_gates`]), then the state update of [`lstm_state`]; `c` stays
/// in registers from step to step, `h` is stored (the next product broadcasts it) and
/// copied to `out` (rows of `H`). The products run `CH` unit vectors at a time (`NV =
/// 4·CH` vectors: all of them at once where the registers hold them, AVX-512's 32; fewer
/// on AVX2's 16). The same operations, in the same order, as the packed GEMM of the
/// inputs into gate rows, the packed GEMV of `h` into each row and [`lstm_state`], step
/// by step, without the gate rows' stores and reloads and the calls between them.
/// `CHAIN` picks the activations' form (the same bits either way, see `x86_64/mod.rs`):
/// the one for a dependency chain or the one for throughput (`stream_kernel` chooses).
/// `PAD`: the layer has fewer units than the kernel (`inp.units`, weights padded by
/// [`StreamWeights`]); `h`, `c` and the output rows then hold `inp.units` floats.
/// `WIDE`: the sweep over the weights is measured by all of them ([`wide_bytes`], every
/// input row counted), else by [`sweep_bytes`]; the order of the chunks only, no bit.
///
/// # Safety
/// `inp` holds `steps` rows of inputs (`k <= KC`) and [`StreamWeights`] for this `U`,
/// `CH` and 4 gates; `out` holds `steps` rows of `H`; `h`, `c` hold `H` floats (`H`:
/// `inp.units` where `PAD`, else `U·LANES`).
#[inline(always)]
pub(crate) unsafe fn lstm_stream<
    S: Simd,
    const U: usize,
    const CH: usize,
    const NV: usize,
    const PAIRS: bool,
    const CHAIN: bool,
    const PAD: bool,
    const WIDE: bool,
>(
    s: S,
    steps: usize,
    inp: StreamInput,
    h: *mut f32,
    c: *mut f32,
    out: StreamOut,
) {
    debug_assert!(NV == 4 * CH && U.is_multiple_of(CH));
    let (l, units) = (S::LANES, if PAD { inp.units } else { U * S::LANES });
    let bytes = if WIDE {
        wide_bytes(4, U * l, units, inp.k)
    } else {
        sweep_bytes(4, U * l, units)
    };
    let mut hbuf = [s.zero(); U];
    // SAFETY: h holds `units` floats (the caller's).
    let hp = unsafe { h_for_products::<S, U, PAD>(h, units, &mut hbuf) };
    let (mut cv, mut hv) = ([s.zero(); U], [s.zero(); U]);
    for (u, v) in cv.iter_mut().enumerate() {
        // SAFETY: c holds `units` floats.
        *v = unsafe { load_part(s, c, units, u) };
    }
    let per_chunk = per_chunk_update(S::LANES, U * S::LANES, U / CH);
    for st in 0..steps {
        // Small layers: every unit vector's gates, then all their updates in lockstep
        // (one vector's update after another's was a chain each, too far apart in the
        // instruction stream for the processor to overlap: an LSTM step at H = 16 took
        // twice H = 8's). Large ones: each chunk's update after its products
        // (`per_chunk_update`); `h` is stored only after the last chunk either way.
        let mut gq = [[s.zero(); 4]; U];
        for i in 0..U / CH {
            let chunk = sweep_chunk(inp, bytes, st, i, U / CH);
            // SAFETY: the caller's extents.
            let g = unsafe { chunk_gates::<S, NV, PAIRS>(s, inp, units, chunk, st, hp) };
            let gc: [[S::V; 4]; CH] =
                std::array::from_fn(|ci| [g[ci], g[CH + ci], g[2 * CH + ci], g[3 * CH + ci]]);
            if per_chunk {
                let cc = std::array::from_fn(|ci| cv[chunk * CH + ci]);
                let (cn, hn) = lstm_state_rows::<S, CH, CHAIN>(s, gc, cc);
                for ci in 0..CH {
                    cv[chunk * CH + ci] = flush(s, cn[ci]);
                    hv[chunk * CH + ci] = flush(s, hn[ci]);
                }
            } else {
                gq[chunk * CH..(chunk + 1) * CH].copy_from_slice(&gc);
            }
        }
        if !per_chunk {
            let (cn, hn) = lstm_state_rows::<S, U, CHAIN>(s, gq, cv);
            for u in 0..U {
                cv[u] = flush(s, cn[u]);
                hv[u] = flush(s, hn[u]);
            }
        }
        // After every unit's update: the products above read the old h.
        for (u, v) in hv.iter().enumerate() {
            // SAFETY: `hp` holds U vectors where PAD, else it is `h` of U·LANES floats.
            unsafe { s.store(hp.add(l * u), *v) };
        }
        // SAFETY: the caller's extents for `out`.
        unsafe { out.put::<S, U>(s, st, &hv, units) };
    }
    for (u, v) in cv.iter().enumerate() {
        // SAFETY: c holds `units` floats.
        unsafe { store_part(s, c, units, u, *v) };
    }
    // SAFETY: as for `h_for_products`.
    unsafe { h_back::<S, U, PAD>(h, units, hp) };
}

/// Where a fused kernel's products read `h` (each step stores it there as whole vectors):
/// the state itself, or where the kernel is wider than the layer (`PAD`), `buf`, filled
/// here with the state's `units` floats (the rest is never read: `W_hhᵀ` has `units`
/// rows). [`h_back`] copies it back.
///
/// # Safety
/// `h` holds `units` floats, `units <= U·LANES`.
#[inline(always)]
unsafe fn h_for_products<S: Simd, const U: usize, const PAD: bool>(
    h: *mut f32,
    units: usize,
    buf: &mut [S::V; U],
) -> *mut f32 {
    if !PAD {
        return h;
    }
    debug_assert!(std::mem::size_of::<S::V>() == 4 * S::LANES && units <= U * S::LANES);
    let b = buf.as_mut_ptr().cast::<f32>();
    // SAFETY: a vector is LANES floats, so `buf` holds U·LANES >= units of them; `h`
    // holds `units` (the caller's); a local buffer does not overlap the state.
    unsafe { std::ptr::copy_nonoverlapping(h, b, units) };
    b
}

/// The last step's `h` from [`h_for_products`]'s buffer into the state, where `PAD`.
///
/// # Safety
/// As for [`h_for_products`], `hp` its result.
#[inline(always)]
unsafe fn h_back<S: Simd, const U: usize, const PAD: bool>(
    h: *mut f32,
    units: usize,
    hp: *mut f32,
) {
    if PAD {
        // SAFETY: both hold `units` floats (the caller's) and are distinct.
        unsafe { std::ptr::copy_nonoverlapping(hp, h, units) };
    }
}

/// `steps` timesteps of one linear-before-reset GRU stream of `H = U·LANES` units: per
/// step the gates' bias and input parts and `W_hh h` (as in [`lstm_stream`], `NV =
/// 3·CH`; here the two apart, as the update takes them), then the update of
/// [`gru_lbr_state`]; `h` is stored and copied to `out` (rows of `H`). Bit for bit the
/// packed GEMM of the inputs, the packed GEMV into a scratch row and [`gru_lbr_state`],
/// step by step. `CHAIN`, `PAD` and `WIDE` as for [`lstm_stream`].
///
/// # Safety
/// As for [`lstm_stream`], with 3 gates; `b_hn` holds `H` floats.
#[inline(always)]
pub(crate) unsafe fn gru_lbr_stream<
    S: Simd,
    const U: usize,
    const CH: usize,
    const NV: usize,
    const PAIRS: bool,
    const CHAIN: bool,
    const PAD: bool,
    const WIDE: bool,
>(
    s: S,
    steps: usize,
    inp: StreamInput,
    b_hn: *const f32,
    h: *mut f32,
    out: StreamOut,
) {
    debug_assert!(NV == 3 * CH && U.is_multiple_of(CH));
    let (l, row) = (S::LANES, NV * S::LANES);
    let units = if PAD { inp.units } else { U * l };
    let bytes = if WIDE {
        wide_bytes(3, U * l, units, inp.k)
    } else {
        sweep_bytes(3, U * l, units)
    };
    let mut hbuf = [s.zero(); U];
    // SAFETY: h holds `units` floats (the caller's).
    let hp = unsafe { h_for_products::<S, U, PAD>(h, units, &mut hbuf) };
    let (mut hv, mut bv, mut hn) = ([s.zero(); U], [s.zero(); U], [s.zero(); U]);
    for u in 0..U {
        // SAFETY: h holds `units` floats, b_hn U·LANES (padded with zeros where PAD).
        unsafe {
            hv[u] = load_part(s, h, units, u);
            bv[u] = s.load(b_hn.add(l * u));
        }
    }
    let per_chunk = per_chunk_update(S::LANES, U * S::LANES, U / CH);
    for st in 0..steps {
        // Every unit vector's gates, then all their updates in lockstep, or each chunk's
        // update after its products (as in `lstm_stream`).
        let (mut gq, mut wq) = ([[s.zero(); 3]; U], [[s.zero(); 3]; U]);
        for i in 0..U / CH {
            let chunk = sweep_chunk(inp, bytes, st, i, U / CH);
            // SAFETY: as in `lstm_stream`, with 3 gates: chunk `chunk`'s rows.
            let (gin, prod) = unsafe {
                let x = inp.x.add(st * inp.k);
                let wi = inp.wi.add(chunk * inp.k * row);
                let mut gin = row_product::<S, NV, false>(s, inp.k, x, wi);
                let b = inp.bias.add(chunk * row);
                for (v, gv) in gin.iter_mut().enumerate() {
                    *gv = s.add(s.load(b.add(v * l)), *gv);
                }
                let wh = inp.wh.add(chunk * units * row);
                (gin, row_product::<S, NV, PAIRS>(s, units, hp, wh))
            };
            let gc: [[S::V; 3]; CH] =
                std::array::from_fn(|ci| [gin[ci], gin[CH + ci], gin[2 * CH + ci]]);
            let wc: [[S::V; 3]; CH] =
                std::array::from_fn(|ci| [prod[ci], prod[CH + ci], prod[2 * CH + ci]]);
            let u0 = chunk * CH;
            if per_chunk {
                let (bc, hc) = (
                    std::array::from_fn(|ci| bv[u0 + ci]),
                    std::array::from_fn(|ci| hv[u0 + ci]),
                );
                let v = gru_lbr_state_rows::<S, CH, CHAIN>(s, gc, wc, bc, hc);
                for ci in 0..CH {
                    hn[u0 + ci] = flush(s, v[ci]);
                }
            } else {
                gq[u0..u0 + CH].copy_from_slice(&gc);
                wq[u0..u0 + CH].copy_from_slice(&wc);
            }
        }
        if !per_chunk {
            let v = gru_lbr_state_rows::<S, U, CHAIN>(s, gq, wq, bv, hv);
            for u in 0..U {
                hn[u] = flush(s, v[u]);
            }
        }
        hv = hn;
        // After every unit's update: the products above read the old h.
        for (u, v) in hv.iter().enumerate() {
            // SAFETY: `hp` holds U vectors where PAD, else it is `h` of U·LANES floats.
            unsafe { s.store(hp.add(l * u), *v) };
        }
        // SAFETY: the caller's extents for `out`.
        unsafe { out.put::<S, U>(s, st, &hv, units) };
    }
    // SAFETY: as for `h_for_products`.
    unsafe { h_back::<S, U, PAD>(h, units, hp) };
}
