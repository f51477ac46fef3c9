//! Dense products through `matrixmultiply::sgemm` (its own threading off: rayon owns the
//! cores). Used for the hoisted input projections, the per-step recurrent product of a
//! batch, and the backward weight/input gradients. Not used by the streaming step:
//! `sgemm` allocates and re-packs its operands on every call.

/// A strided read-only matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Copy, Clone, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix with row stride `ld`.
    pub fn rm(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// One past the largest index touched, or 0 for an empty matrix.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `C = alpha * A·B + beta * C` with `C` row-major `[a.rows, b.cols]`, row stride `ldc`.
/// With `beta == 0`, `C` is overwritten (its old contents, even NaN, are ignored).
///
/// Panics (a bug, caught at the FFI boundary) if a view does not fit its slice.
pub fn gemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32], ldc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    let c_extent = (m - 1) * ldc + n;
    assert!(c.len() >= c_extent && ldc >= n, "gemm: C does not fit");
    if k == 0 {
        for r in 0..m {
            for v in &mut c[r * ldc..r * ldc + n] {
                *v = if beta == 0.0 { 0.0 } else { *v * beta };
            }
        }
        return;
    }
    assert!(a.data.len() >= a.extent(), "gemm: A does not fit");
    assert!(b.data.len() >= b.extent(), "gemm: B does not fit");
    // SAFETY: the asserts above prove that every index matrixmultiply touches,
    // `(r*rs + c*cs)` for r < rows and c < cols, lies inside the three slices; `c`
    // is borrowed mutably so it aliases neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0.0f64;
                for p in 0..a.cols {
                    s += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
                }
                c[i * b.cols + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn matches_naive_with_transposes_and_beta() {
        let a: Vec<f32> = (0..35).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..35).map(|i| (i as f32 * 0.11).cos()).collect();
        let am = Mat::rm(&a, 5, 7, 7);
        let bm = Mat::rm(&b, 5, 7, 7).t(); // 7 x 5
        let want = naive(am, bm);
        let mut c = vec![f32::NAN; 25];
        gemm(1.0, am, bm, 0.0, &mut c, 5);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5);
        }
        let mut c2 = vec![1.0; 25];
        gemm(2.0, am, bm, 0.5, &mut c2, 5);
        for (x, y) in c2.iter().zip(&want) {
            assert!((x - (2.0 * y + 0.5)).abs() < 1e-4);
        }
        let mut c3 = vec![3.0; 4];
        gemm(
            1.0,
            Mat::rm(&a, 2, 0, 0),
            Mat::rm(&b, 0, 2, 2),
            0.0,
            &mut c3,
            2,
        );
        assert_eq!(c3, vec![0.0; 4]);
    }
}
