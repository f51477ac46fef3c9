//! The packing layout: `B` cut into panels of [`NR`] columns, groups of panels stored
//! row-interleaved (see the module above), and where each panel starts.

use crate::kernels::activation::{kernel_tier, Tier};
use crate::kernels::aligned::LineAligned;

/// Panel width in floats.
pub const NR: usize = 32;
/// Panels per interleaved group.
pub const GROUP: usize = 4;

/// Where panel `jp` starts in the packed data, and the row stride of its group, for
/// `panels` panels of `k` rows interleaved `group` at a time.
#[inline(always)]
pub(crate) fn panel_at(jp: usize, k: usize, panels: usize, group: usize) -> (usize, usize) {
    let g = jp / group;
    let in_group = (panels - g * group).min(group);
    (g * group * k * NR + (jp % group) * NR, in_group * NR)
}

/// Panels per interleaved group for `tier`: [`GROUP`] on AVX-512, whose one-row products
/// read a whole group row (512 bytes) per step of `k`; 1 elsewhere. AVX2's one-row
/// product holds a panel's sums (16 registers), and reading a quarter of each 512-byte
/// group row, four passes per group, ran at 65 GB/s from L2 on an AMD Zen 3 core where
/// contiguous panels ran at 103 (`k = 128`, `n = 512`: the H = 128 LSTM step's product).
fn group_for(tier: Tier) -> usize {
    match tier {
        Tier::Avx512 => GROUP,
        _ => 1,
    }
}

/// `B` (`[k][n]`) packed into `ceil(n / NR)` panels of `[k][NR]`.
///
/// The panels start on a 64-byte boundary ([`LineAligned`]), so that every 16-float row
/// of a panel is one cache line.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedB {
    /// Rows (the inner dimension).
    pub(super) k: usize,
    /// Columns.
    pub(super) n: usize,
    /// Panels per interleaved group ([`group_for`] the process tier when packed).
    pub(super) group: usize,
    data: LineAligned,
}

impl Default for PackedB {
    /// An empty `[0][0]` matrix.
    fn default() -> PackedB {
        PackedB::zeroed(0, 0, 1)
    }
}

impl PackedB {
    /// Packs `B = Wᵀ` for a row-major `W` of `n` rows and `k` columns (a weight matrix
    /// `[out][in]` used as `x · Wᵀ`).
    pub fn from_transposed(w: &[f32], n: usize, k: usize) -> PackedB {
        assert!(w.len() >= n * k, "PackedB::from_transposed: W too short");
        PackedB::pack(k, n, |p, j| w[j * k + p])
    }

    /// Packs a row-major `B` of `k` rows and `n` columns with row stride `ldb`.
    pub fn from_rows(b: &[f32], k: usize, n: usize, ldb: usize) -> PackedB {
        assert!(
            k == 0 || n == 0 || b.len() >= (k - 1) * ldb + n,
            "PackedB::from_rows: B too short"
        );
        PackedB::pack(k, n, |p, j| b[p * ldb + j])
    }

    /// Zero panels for `[k][n]`, aligned.
    fn zeroed(k: usize, n: usize, group: usize) -> PackedB {
        let data = LineAligned::zeroed(n.div_ceil(NR) * k * NR);
        PackedB { k, n, group, data }
    }

    /// The packed panels.
    pub(super) fn panels(&self) -> &[f32] {
        self.data.as_slice()
    }

    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32) -> PackedB {
        let panels = n.div_ceil(NR);
        let group = group_for(kernel_tier());
        #[cfg(test)]
        let group = super::tests::GROUP_OVERRIDE
            .with(|g| g.get())
            .unwrap_or(group);
        let mut out = PackedB::zeroed(k, n, group);
        let data = out.data.as_mut_slice();
        for jp in 0..panels {
            let (off, ldb) = panel_at(jp, k, panels, group);
            for p in 0..k {
                let dst = &mut data[off + p * ldb..off + p * ldb + NR];
                for (c, d) in dst.iter_mut().enumerate() {
                    let j = jp * NR + c;
                    if j < n {
                        *d = at(p, j);
                    }
                }
            }
        }
        out
    }

    /// Rows of `B` (the inner dimension).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `B`.
    pub fn n(&self) -> usize {
        self.n
    }
}
