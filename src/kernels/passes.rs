//! Plain passes over whole buffers (a squared-error loss, a finiteness check), written
//! once in portable Rust and compiled per kernel tier, so that the same loops vectorize
//! with the tier's vectors (AVX-512: 16 lanes where the x86-64 baseline has SSE2's 4).
//! Each body is `#[inline(always)]` into a `#[target_feature]` copy per tier.
//!
//! The bits cannot depend on the tier: Rust never contracts `a * b + c` into a fused
//! multiply-add, and the sums are kept per lane in the written order, so every tier does
//! the same operations on the same values.

use super::activation::kernel_tier;
#[cfg(target_arch = "x86_64")]
use super::activation::Tier;

/// Running sums of [`squared_errors`]: lane `l` sums every eighth element of a row.
pub(crate) const SUMS: usize = 8;

/// For `w`-wide rows of outputs `o` and targets `tg`: `d = scale·(o − t)` (in `f64`,
/// rounded once) and `(o − t)²` added to `sums`, lane `l` taking the elements at `l`
/// modulo 8 of each row.
pub(crate) fn squared_errors(
    o: &[f32],
    tg: &[f32],
    d: &mut [f32],
    w: usize,
    scale: f64,
    sums: &mut [f64; SUMS],
) {
    match kernel_tier() {
        // SAFETY: `kernel_tier()` only gives tiers whose features were detected at run
        // time.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => unsafe { x86::squared_errors_avx512(o, tg, d, w, scale, sums) },
        // SAFETY: as above (AVX2 and FMA detected).
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => unsafe { x86::squared_errors_avx2(o, tg, d, w, scale, sums) },
        _ => squared_errors_body(o, tg, d, w, scale, sums),
    }
}

/// Whether every element is finite (one branch-free pass). A few elements (a step's
/// inputs) take the plain loop inline: the call to a tier's pass cost more than they do.
#[inline]
pub(crate) fn all_finite(data: &[f32]) -> bool {
    if data.len() <= 16 {
        return all_finite_body(data);
    }
    match kernel_tier() {
        // SAFETY: as in `squared_errors`.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => unsafe { x86::all_finite_avx512(data) },
        // SAFETY: as in `squared_errors`.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => unsafe { x86::all_finite_avx2(data) },
        _ => all_finite_body(data),
    }
}

#[inline(always)]
fn squared_errors_body(
    o: &[f32],
    tg: &[f32],
    d: &mut [f32],
    w: usize,
    scale: f64,
    sums: &mut [f64; SUMS],
) {
    let w = w.max(1);
    for ((o, tg), dr) in o.chunks(w).zip(tg.chunks(w)).zip(d.chunks_mut(w)) {
        let (oc, tc) = (o.chunks_exact(SUMS), tg.chunks_exact(SUMS));
        let (orest, trest) = (oc.remainder(), tc.remainder());
        let mut dc = dr.chunks_exact_mut(SUMS);
        for ((o8, t8), d8) in oc.zip(tc).zip(&mut dc) {
            for l in 0..SUMS {
                let e = o8[l] as f64 - t8[l] as f64;
                sums[l] += e * e;
                d8[l] = (e * scale) as f32;
            }
        }
        let drest = dc.into_remainder();
        for (l, ((&ov, &tv), dv)) in orest.iter().zip(trest).zip(drest).enumerate() {
            let e = ov as f64 - tv as f64;
            sums[l] += e * e;
            *dv = (e * scale) as f32;
        }
    }
}

/// On the bits, with integer operations: `is_finite` compiles to a float compare whose
/// ordered-not-equal predicate valgrind's AVX emulation gets wrong for NaN (it passed
/// NaNs under memcheck), where the integer compare is exact everywhere.
#[inline(always)]
fn all_finite_body(data: &[f32]) -> bool {
    data.iter().fold(true, |ok, v| {
        ok & ((v.to_bits() & 0x7fff_ffff) < 0x7f80_0000)
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn squared_errors_avx512(
        o: &[f32],
        tg: &[f32],
        d: &mut [f32],
        w: usize,
        scale: f64,
        sums: &mut [f64; SUMS],
    ) {
        squared_errors_body(o, tg, d, w, scale, sums)
    }

    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn squared_errors_avx2(
        o: &[f32],
        tg: &[f32],
        d: &mut [f32],
        w: usize,
        scale: f64,
        sums: &mut [f64; SUMS],
    ) {
        squared_errors_body(o, tg, d, w, scale, sums)
    }

    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn all_finite_avx512(data: &[f32]) -> bool {
        all_finite_body(data)
    }

    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn all_finite_avx2(data: &[f32]) -> bool {
        all_finite_body(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Tier;

    #[test]
    fn every_tier_gives_the_portable_bits() {
        let n = 1000;
        let o: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 2003) as f32 / 997.0 - 1.0)
            .collect();
        let tg: Vec<f32> = (0..n)
            .map(|i| ((i * 104729) % 1999) as f32 / 1009.0 - 0.9)
            .collect();
        for w in [1, 3, 8, 13, 32, 1000] {
            let rows = n / w;
            let (o, tg) = (&o[..rows * w], &tg[..rows * w]);
            let mut want_d = vec![0.0f32; rows * w];
            let mut want = [0.0f64; SUMS];
            squared_errors_body(o, tg, &mut want_d, w, 0.37, &mut want);
            for tier in Tier::ALL.into_iter().filter(|t| t.is_available()) {
                let (mut d, mut sums) = (vec![f32::NAN; rows * w], [0.0f64; SUMS]);
                match tier {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the tier is available.
                    Tier::Avx512 => unsafe {
                        x86::squared_errors_avx512(o, tg, &mut d, w, 0.37, &mut sums)
                    },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the tier is available.
                    Tier::Avx2 => unsafe {
                        x86::squared_errors_avx2(o, tg, &mut d, w, 0.37, &mut sums)
                    },
                    _ => squared_errors_body(o, tg, &mut d, w, 0.37, &mut sums),
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&d), bits(&want_d), "{} w {w}", tier.name());
                assert_eq!(
                    sums.map(f64::to_bits),
                    want.map(f64::to_bits),
                    "{}",
                    tier.name()
                );
                // The plain formula: lane l holds the elements at l modulo 8 of each row.
                for (l, s) in sums.iter().enumerate() {
                    let e: f64 = (0..rows * w)
                        .filter(|i| (i % w) % SUMS == l)
                        .map(|i| (o[i] as f64 - tg[i] as f64).powi(2))
                        .sum();
                    assert!((s - e).abs() <= 1e-12 * (1.0 + e), "lane {l}");
                }
            }
        }
    }

    #[test]
    fn finiteness_is_seen_at_every_position() {
        for tier in Tier::ALL.into_iter().filter(|t| t.is_available()) {
            let check = |d: &[f32]| match tier {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the tier is available.
                Tier::Avx512 => unsafe { x86::all_finite_avx512(d) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the tier is available.
                Tier::Avx2 => unsafe { x86::all_finite_avx2(d) },
                _ => all_finite_body(d),
            };
            let mut v = vec![1.5f32; 77];
            assert!(check(&v));
            assert!(check(&[]));
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for i in 0..v.len() {
                    v[i] = bad;
                    assert!(!check(&v), "{} {bad} at {i}", tier.name());
                    v[i] = f32::MAX;
                }
            }
        }
    }
}
