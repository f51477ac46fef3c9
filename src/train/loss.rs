//! Losses on the model's pre-activation outputs, reduced exactly as PyTorch's
//! `MSELoss()` and `CrossEntropyLoss(ignore_index=-1)` (mean over the elements, or over
//! the non-ignored labels). Sums run in f64.

use crate::error::{check_len, invalid, Result};

/// Which timesteps carry targets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Targets {
    /// A target at every timestep (many-to-many): `[B][T][·]`.
    EveryStep = 0,
    /// A target at the last timestep only (many-to-one): `[B][·]`.
    LastStep = 1,
}

impl Targets {
    /// Converts the C ABI number (`rnn_targets`).
    pub(crate) fn from_u32(v: u32) -> Option<Targets> {
        match v {
            0 => Some(Targets::EveryStep),
            1 => Some(Targets::LastStep),
            _ => None,
        }
    }
}

/// Row indices (into `[B*T]` rows of outputs) that carry a target, in target order.
fn target_rows(batch: usize, seq_len: usize, targets: Targets) -> impl Iterator<Item = usize> {
    let every = targets == Targets::EveryStep;
    (0..batch).flat_map(move |b| {
        let first = if every { 0 } else { seq_len - 1 };
        (first..seq_len).map(move |t| b * seq_len + t)
    })
}

/// Number of target rows.
pub fn target_count(batch: usize, seq_len: usize, targets: Targets) -> usize {
    match targets {
        Targets::EveryStep => batch * seq_len,
        Targets::LastStep => batch,
    }
}

/// Mean squared error. `out` is `[B][T][w]`; `target` is `[B][T][w]` or `[B][w]`.
/// Writes `∂L/∂out` into `d` (zeros where no target) and returns the loss.
pub fn mse(
    out: &[f32],
    batch: usize,
    seq_len: usize,
    w: usize,
    target: &[f32],
    targets: Targets,
    d: &mut [f32],
) -> Result<f32> {
    let rows = target_count(batch, seq_len, targets);
    check_len("target", target.len(), rows * w)?;
    let n = (rows * w) as f64;
    if targets != Targets::EveryStep {
        d.fill(0.0);
    }
    let scale = 2.0 / n;
    let sums = if targets == Targets::EveryStep {
        // Every output row has a target: partial sums per block, added in order.
        let parts = in_row_blocks(&out[..rows * w], target, d, w, w, |s, o, tg, dr| {
            crate::kernels::passes::squared_errors(o, tg, dr, w, scale, s)
        });
        parts.iter().fold([0.0f64; LANES], |mut acc, p| {
            for (a, v) in acc.iter_mut().zip(p) {
                *a += v;
            }
            acc
        })
    } else {
        let mut sums = [0.0f64; LANES];
        for (ti, r) in target_rows(batch, seq_len, targets).enumerate() {
            let (o, tg) = (&out[r * w..(r + 1) * w], &target[ti * w..(ti + 1) * w]);
            let dr = &mut d[r * w..(r + 1) * w];
            crate::kernels::passes::squared_errors(o, tg, dr, w, scale, &mut sums);
        }
        sums
    };
    let loss = (sums.iter().sum::<f64>() / n) as f32;
    if !loss.is_finite() {
        // A NaN or an infinity in `target` always shows here (as `o − t` and its
        // square), so the check that names it runs only then, not as one more pass
        // over every target.
        crate::parallel::check_finite_par("target", target)?;
    }
    Ok(loss)
}

/// Partial sums in [`mse`].
const LANES: usize = crate::kernels::passes::SUMS;
/// Rows per parallel block of [`mse`] and [`cross_entropy`] (a fixed count, so the
/// order of their sums is too).
const LOSS_BLOCK_ROWS: usize = 128;

/// Softmax cross-entropy on logits `out` `[B][T][classes]`; `labels` `[B][T]` or `[B]`,
/// `-1` ignored. Writes `∂L/∂out` into `d` and returns the mean over counted labels.
pub fn cross_entropy(
    out: &[f32],
    batch: usize,
    seq_len: usize,
    classes: usize,
    labels: &[i32],
    targets: Targets,
    d: &mut [f32],
) -> Result<f32> {
    let rows = target_count(batch, seq_len, targets);
    check_len("labels", labels.len(), rows)?;
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l < -1 || l as i64 >= classes as i64)
    {
        return Err(invalid!(
            "labels[{i}] is {l}, expected -1 (ignore) or 0..{classes}"
        ));
    }
    let count = labels.iter().filter(|&&l| l >= 0).count();
    if count == 0 {
        return Err(invalid!(
            "every label is -1 (ignored): the mean loss is undefined"
        ));
    }
    let inv = 1.0 / count as f64;
    let sum = if targets == Targets::EveryStep {
        // As in `mse`: per-block sums, added in order.
        let out = &out[..rows * classes];
        let parts = in_row_blocks(out, labels, d, classes, 1, |s: &mut f64, o, lab, dr| {
            let rows = o.chunks(classes).zip(lab).zip(dr.chunks_mut(classes));
            for ((row, &l), dr) in rows {
                *s += ce_row(row, l, inv, dr);
            }
        });
        parts.iter().sum()
    } else {
        d.fill(0.0);
        let mut sum = 0.0f64;
        for (ti, r) in target_rows(batch, seq_len, targets).enumerate() {
            let dr = &mut d[r * classes..(r + 1) * classes];
            sum += ce_row(&out[r * classes..(r + 1) * classes], labels[ti], inv, dr);
        }
        sum
    };
    Ok((sum * inv) as f32)
}

/// Runs `rows(acc, out_rows, aux_rows, d_rows)` on fixed blocks of [`LOSS_BLOCK_ROWS`]
/// rows of `out` and `d` (`w` wide) and of `aux` (`aux_w` per row) in parallel, each
/// block's accumulator starting from `A::default()`; returns them in block order. The
/// blocks do not depend on the thread count, so neither does a sum over them.
fn in_row_blocks<A, X>(
    out: &[f32],
    aux: &[X],
    d: &mut [f32],
    w: usize,
    aux_w: usize,
    rows: impl Fn(&mut A, &[f32], &[X], &mut [f32]) + Sync,
) -> Vec<A>
where
    A: Default + Send,
    X: Sync,
{
    let (w, aux_w) = (w.max(1), aux_w.max(1));
    let d = &mut d[..out.len()];
    let (bw, bx) = (LOSS_BLOCK_ROWS * w, LOSS_BLOCK_ROWS * aux_w);
    let block = |((dc, oc), xc): ((&mut [f32], &[f32]), &[X])| {
        let mut acc = A::default();
        rows(&mut acc, oc, xc, dc);
        acc
    };
    crate::parallel::install(|| {
        if crate::parallel::threads() == 1 {
            let blocks = d.chunks_mut(bw).zip(out.chunks(bw)).zip(aux.chunks(bx));
            blocks.map(block).collect()
        } else {
            let blocks = d.chunks_mut(bw).zip(out.chunks(bw)).zip(aux.chunks(bx));
            crate::parallel::map_each(blocks.collect(), block)
        }
    })
}

/// One row of [`cross_entropy`]: writes `(softmax(row) − onehot(lab)) · inv` into `dr`
/// (zeros for an ignored label, -1) and returns the row's loss term.
fn ce_row(row: &[f32], lab: i32, inv: f64, dr: &mut [f32]) -> f64 {
    if lab < 0 {
        dr.fill(0.0);
        return 0.0;
    }
    let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
    let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
    let lz = z.ln();
    for (q, (dv, &v)) in dr.iter_mut().zip(row).enumerate() {
        let p = (v as f64 - m - lz).exp();
        let y = if q == lab as usize { 1.0 } else { 0.0 };
        *dv = ((p - y) * inv) as f32;
    }
    -(row[lab as usize] as f64 - m - lz)
}

/// Rows (into `[B*T]` rows of outputs) that carry a target in a padded batch: every
/// valid step of each sequence (`EveryStep`), or each sequence's own last step.
fn length_rows(seq_len: usize, lengths: &[usize], targets: Targets) -> Vec<usize> {
    let every = targets == Targets::EveryStep;
    lengths
        .iter()
        .enumerate()
        .flat_map(|(b, &n)| {
            let first = if every { 0 } else { n - 1 };
            (first..n).map(move |t| b * seq_len + t)
        })
        .collect()
}

/// Gathers rows `rows` (each `w` wide) of `v`.
fn gather<X: Copy>(v: &[X], rows: &[usize], w: usize) -> Vec<X> {
    rows.iter()
        .flat_map(|&r| v[r * w..(r + 1) * w].iter().copied())
        .collect()
}

/// Writes the gathered rows `g` back into `d` at `rows`, zeros elsewhere.
fn scatter(g: &[f32], rows: &[usize], w: usize, d: &mut [f32]) {
    d.fill(0.0);
    for (i, &r) in rows.iter().enumerate() {
        d[r * w..(r + 1) * w].copy_from_slice(&g[i * w..(i + 1) * w]);
    }
}

/// [`mse`] of a padded batch of sequences of different lengths (`lengths[b]` in
/// `1..=seq_len`): the squared errors of the valid steps only, averaged over their
/// elements, as `MSELoss()` of the packed (valid) outputs in PyTorch. `target` is
/// `[B][T][w]` (`EveryStep`; values past a length are ignored) or `[B][w]`
/// (`LastStep`: compared with each sequence's output at its own last step,
/// `lengths[b] − 1`). `∂L/∂out` is zero past each length. With every length `seq_len`,
/// the bits of [`mse`].
#[allow(clippy::too_many_arguments)]
pub fn mse_lengths(
    out: &[f32],
    batch: usize,
    seq_len: usize,
    w: usize,
    lengths: &[usize],
    target: &[f32],
    targets: Targets,
    d: &mut [f32],
) -> Result<f32> {
    crate::bidir::check_lengths(lengths, batch, seq_len)?;
    check_len(
        "target",
        target.len(),
        target_count(batch, seq_len, targets) * w,
    )?;
    let rows = length_rows(seq_len, lengths, targets);
    let o = gather(out, &rows, w);
    let tg = match targets {
        Targets::EveryStep => gather(target, &rows, w),
        Targets::LastStep => target.to_vec(),
    };
    let mut g = vec![0.0f32; o.len()];
    let loss = mse(&o, rows.len(), 1, w, &tg, Targets::EveryStep, &mut g)?;
    scatter(&g, &rows, w, d);
    Ok(loss)
}

/// [`cross_entropy`] of a padded batch of sequences of different lengths (see
/// [`mse_lengths`]): `labels` `[B][T]` (`EveryStep`; labels past a length are ignored,
/// as `-1`) or `[B]` (`LastStep`: at each sequence's own last step); the mean is over
/// the counted (not `-1`) labels of valid steps, as `CrossEntropyLoss(ignore_index=-1)`
/// of the packed outputs.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_lengths(
    out: &[f32],
    batch: usize,
    seq_len: usize,
    classes: usize,
    lengths: &[usize],
    labels: &[i32],
    targets: Targets,
    d: &mut [f32],
) -> Result<f32> {
    crate::bidir::check_lengths(lengths, batch, seq_len)?;
    check_len(
        "labels",
        labels.len(),
        target_count(batch, seq_len, targets),
    )?;
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l < -1 || l as i64 >= classes as i64)
    {
        return Err(invalid!(
            "labels[{i}] is {l}, expected -1 (ignore) or 0..{classes}"
        ));
    }
    let rows = length_rows(seq_len, lengths, targets);
    let o = gather(out, &rows, classes);
    let lab = match targets {
        Targets::EveryStep => gather(labels, &rows, 1),
        Targets::LastStep => labels.to_vec(),
    };
    let mut g = vec![0.0f32; o.len()];
    let loss = cross_entropy(&o, rows.len(), 1, classes, &lab, Targets::EveryStep, &mut g)?;
    scatter(&g, &rows, classes, d);
    Ok(loss)
}
