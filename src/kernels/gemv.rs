//! The streaming step's matrix-vector products. Weights are packed once, when the model
//! is built, transposed to `[in][G*H]`, so that `y += W x` is a sequence of broadcast-FMAs
//! over contiguous rows: `y[..] += x[j] * Wt[j][..]`. No allocation, no call into
//! `matrixmultiply` (whose `sgemm` allocates and re-packs on every call).

use crate::config::ModelConfig;
use crate::model::LayerWeights;

/// One layer's recurrent and input weights, transposed for broadcast-FMA.
#[derive(Clone, Debug, Default)]
pub struct PackedLayer {
    /// `W_ihᵀ`, `[in][G*H]`.
    pub w_ih_t: Vec<f32>,
    /// `W_hhᵀ`, `[H][G*H]`.
    pub w_hh_t: Vec<f32>,
}

impl PackedLayer {
    /// Packs one layer's weights.
    pub fn new(config: &ModelConfig, lw: &LayerWeights<'_>) -> PackedLayer {
        let gh = config.cell.gates() * config.hidden_size;
        PackedLayer {
            w_ih_t: transpose(lw.w_ih, gh, lw.input_size),
            w_hh_t: transpose(lw.w_hh, gh, config.hidden_size),
        }
    }
}

/// Row-major `[rows][cols]` to row-major `[cols][rows]`.
pub fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// `y[c] += Σ_j x[j] * wt[j * ld + col0 + c]` for `c < y.len()`: a product with columns
/// `col0..col0+y.len()` of a transposed, packed weight matrix with row length `ld`.
#[inline]
pub fn matvec_t_acc(wt: &[f32], ld: usize, col0: usize, x: &[f32], y: &mut [f32]) {
    let n = y.len();
    for (j, &xj) in x.iter().enumerate() {
        let row = &wt[j * ld + col0..j * ld + col0 + n];
        for (yc, &w) in y.iter_mut().zip(row) {
            *yc += xj * w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matvec_matches_plain_product() {
        let (rows, cols) = (6, 5);
        let w: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
        let x: Vec<f32> = (0..cols).map(|i| 1.0 + i as f32).collect();
        let wt = transpose(&w, rows, cols);
        let mut y = vec![1.0; 4];
        matvec_t_acc(&wt, rows, 2, &x, &mut y);
        for (c, yc) in y.iter().enumerate() {
            let want: f32 = 1.0 + (0..cols).map(|j| w[(c + 2) * cols + j] * x[j]).sum::<f32>();
            assert_eq!(*yc, want);
        }
    }
}
