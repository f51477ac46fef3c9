#![forbid(unsafe_code)]
//! Dropout between layers in training (PyTorch's `dropout` argument): inverted dropout
//! on each layer's output that feeds the layer above (not the top layer's).
//!
//! Every mask element is a pure function of `(seed, layer, batch row, timestep, unit)`
//! (a counter-based hash, SplitMix64's finalizer over the combined counters), never of a
//! generator's running state: forward and backward recompute the same element, and the
//! mask is the same whichever thread or chunk computes it. An element is kept when its
//! 24-bit uniform `u ∈ [0, 1)` is at least `p` (probability `1 − p` up to `2^-24`) and
//! then scaled by `1 / (1 − p)`; otherwise it is zero. A [`crate::Trainer`] draws step
//! `n`'s masks from `step_seed(seed, n)` (its dropout seed, see
//! [`crate::Trainer::set_dropout_seed`], and its step counter).

/// The masks of one recorded pass: probability `p` (`0 < p < 1`) and the pass's seed.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(crate) struct DropoutMask {
    pub p: f32,
    pub seed: u64,
}

/// SplitMix64's finalizer: a bijection of `u64` whose outputs look independent.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of a trainer's step `step` from its dropout seed.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    mix(mix(seed ^ 0x6472_6f70_6f75_7421).wrapping_add(step))
}

impl DropoutMask {
    /// The factor of unit `unit` of layer `layer`'s output at row `row`, step `t`: 0
    /// (dropped) or `1 / (1 − p)` (kept).
    pub(crate) fn factor(&self, layer: usize, row: usize, t: usize, unit: usize) -> f32 {
        let mut z = mix(self.seed.wrapping_add(layer as u64));
        z = mix(z ^ (row as u64));
        z = mix(z ^ (t as u64));
        z = mix(z ^ (unit as u64));
        let u = (z >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
        if u >= self.p {
            1.0 / (1.0 - self.p)
        } else {
            0.0
        }
    }

    /// Multiplies `v` (`[batch][seq_len][w]`, layer `layer`'s output, or the gradient
    /// reaching it) by the layer's mask, in place.
    pub(crate) fn apply(
        &self,
        v: &mut [f32],
        layer: usize,
        batch: usize,
        seq_len: usize,
        w: usize,
    ) {
        for b in 0..batch {
            for t in 0..seq_len {
                let r = (b * seq_len + t) * w;
                for (j, a) in v[r..r + w].iter_mut().enumerate() {
                    *a *= self.factor(layer, b, t, j);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_rate_and_scale_are_as_asked() {
        for p in [0.1f32, 0.3, 0.5, 0.9] {
            let m = DropoutMask { p, seed: 7 };
            let (mut kept, mut n) = (0usize, 0usize);
            for layer in 0..3 {
                for row in 0..20 {
                    for t in 0..50 {
                        for unit in 0..40 {
                            let f = m.factor(layer, row, t, unit);
                            n += 1;
                            if f != 0.0 {
                                assert_eq!(f, 1.0 / (1.0 - p));
                                kept += 1;
                            }
                        }
                    }
                }
            }
            // 120 000 draws: the keep rate within 5 standard deviations of 1 − p.
            let rate = kept as f64 / n as f64;
            let sd = ((p * (1.0 - p)) as f64 / n as f64).sqrt();
            assert!(
                (rate - (1.0 - p) as f64).abs() < 5.0 * sd,
                "p {p}: keep rate {rate}"
            );
        }
    }

    #[test]
    fn masks_differ_by_seed_layer_row_time_and_unit() {
        let m = DropoutMask { p: 0.5, seed: 1 };
        let pattern = |f: &dyn Fn(usize) -> f32| (0..64).map(f).collect::<Vec<f32>>();
        let base = pattern(&|j| m.factor(0, 0, 0, j));
        let others = [
            pattern(&|j| DropoutMask { p: 0.5, seed: 2 }.factor(0, 0, 0, j)),
            pattern(&|j| m.factor(1, 0, 0, j)),
            pattern(&|j| m.factor(0, 1, 0, j)),
            pattern(&|j| m.factor(0, 0, 1, j)),
            pattern(&|j| m.factor(0, 0, 0, j + 64)),
        ];
        for o in others {
            assert_ne!(o, base);
        }
        assert_ne!(step_seed(1, 0), step_seed(1, 1));
        assert_ne!(step_seed(1, 0), step_seed(2, 0));
    }
}
