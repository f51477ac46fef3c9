//! Activations over slices, in place, vectorized per instruction set and chosen at run
//! time.
//!
//! [`sigmoid`] and [`tanh`] run on the [`tier`] picked once per process: the best the
//! CPU supports (AVX-512F, then AVX2 + FMA, then scalar), unless the environment
//! variable `RNNCORE_KERNEL` names another (`scalar`, `avx2`, `avx512`; read once, at
//! the first call). A named tier the CPU lacks, or an unknown name, falls back to the
//! best available. [`sigmoid_with`] and [`tanh_with`] run a given tier, so one
//! process can exercise (and compare) all of them.
//!
//! Every tier meets the contract in [`super::reference`]: absolute error at most
//! `1e-6` against `f64` on every `f32` input, NaN propagated, `±∞` mapped to the
//! limits. Measured maximum absolute errors against `f64`, over all 2³² `f32` inputs
//! (a one-off exhaustive run; the dense sweep in the tests re-checks the SIMD figures):
//!
//! | tier   | sigmoid                 | tanh                    |
//! | ------ | ----------------------- | ----------------------- |
//! | scalar | 8.93e-8 (glibc libm)    | 1.04e-7 (glibc libm)    |
//! | avx2   | 8.93e-8 (at x ≈ 7.859)  | 8.09e-8 (at x ≈ 0.6310) |
//! | avx512 | 8.93e-8 (at x ≈ 7.859)  | 8.09e-8 (at x ≈ 0.6310) |
//!
//! That is 1.3 to 1.5 ulp of an output in `[0.5, 1)` (ulp 6e-8): far inside `1e-6`.
//! The algorithm (Cephes polynomials, an exact IEEE division) is in `x86_64/mod.rs`.
//!
//! The SIMD tiers are not bit-identical to the scalar tier (different formulas), but
//! AVX2 and AVX-512 perform the same operations per lane and agree bit for bit.

use std::sync::OnceLock;

use super::reference;

/// An implementation level of the kernels, from portable to widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Plain Rust, any target: the functions of [`super::reference`].
    Scalar,
    /// x86-64 AVX2 + FMA, 8 lanes.
    Avx2,
    /// x86-64 AVX-512F, 16 lanes.
    Avx512,
}

impl Tier {
    /// Every tier, in increasing order of preference.
    pub const ALL: [Tier; 3] = [Tier::Scalar, Tier::Avx2, Tier::Avx512];

    /// The tier's name as `RNNCORE_KERNEL` spells it: "scalar", "avx2", "avx512".
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
        }
    }

    /// The tier named `name` (as [`Tier::name`] spells it, ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Tier> {
        Tier::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU can run the tier (detected at run time).
    pub fn is_available(self) -> bool {
        match self {
            Tier::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Tier::Avx2 | Tier::Avx512 => false,
        }
    }
}

/// The tiers this CPU can run, in increasing order of preference; `Scalar` is first.
pub fn available_tiers() -> Vec<Tier> {
    Tier::ALL.into_iter().filter(|t| t.is_available()).collect()
}

/// The tier [`sigmoid`] and [`tanh`] use in this process (chosen at the first call).
pub fn tier() -> Tier {
    detected().0
}

/// `x <- 1 / (1 + exp(-x))` elementwise, on [`tier()`].
#[inline]
pub fn sigmoid(x: &mut [f32]) {
    run_sigmoid(detected(), x);
}

/// `x <- tanh(x)` elementwise, on [`tier()`].
#[inline]
pub fn tanh(x: &mut [f32]) {
    run_tanh(detected(), x);
}

/// [`sigmoid`] on `tier`, or on the best available tier if this CPU lacks `tier`.
pub fn sigmoid_with(tier: Tier, x: &mut [f32]) {
    run_sigmoid(Detected::new(tier), x);
}

/// [`tanh`] on `tier`, or on the best available tier if this CPU lacks `tier`.
pub fn tanh_with(tier: Tier, x: &mut [f32]) {
    run_tanh(Detected::new(tier), x);
}

/// A tier this CPU is known to support. The field is private, and the only
/// constructor checks [`Tier::is_available`]: holding a `Detected(t)` is the proof the
/// `unsafe` calls into `t`'s `#[target_feature]` functions rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Detected(Tier);

impl Detected {
    /// `want` if available, else the best available tier.
    fn new(want: Tier) -> Detected {
        Detected(pick(Some(want), &available_tiers()))
    }
}

/// The process-wide tier: `RNNCORE_KERNEL` if set and available, else the best.
fn detected() -> Detected {
    static TIER: OnceLock<Detected> = OnceLock::new();
    *TIER.get_or_init(|| {
        let requested = std::env::var("RNNCORE_KERNEL").ok();
        let want = requested.as_deref().and_then(Tier::from_name);
        Detected(pick(want, &available_tiers()))
    })
}

/// `want` if it is in `available`, else the last (best) of `available`, else scalar.
fn pick(want: Option<Tier>, available: &[Tier]) -> Tier {
    match want {
        Some(t) if available.contains(&t) => t,
        _ => available.last().copied().unwrap_or(Tier::Scalar),
    }
}

fn run_sigmoid(tier: Detected, x: &mut [f32]) {
    match tier.0 {
        // SAFETY: `Detected(Avx2)` exists only if AVX2 and FMA were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => unsafe { super::x86_64::avx2::sigmoid(x) },
        // SAFETY: `Detected(Avx512)` exists only if AVX-512F was detected at run time.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => unsafe { super::x86_64::avx512::sigmoid(x) },
        _ => reference::sigmoid_ref_slice(x),
    }
}

fn run_tanh(tier: Detected, x: &mut [f32]) {
    match tier.0 {
        // SAFETY: `Detected(Avx2)` exists only if AVX2 and FMA were detected at run time.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => unsafe { super::x86_64::avx2::tanh(x) },
        // SAFETY: `Detected(Avx512)` exists only if AVX-512F was detected at run time.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => unsafe { super::x86_64::avx512::tanh(x) },
        _ => reference::tanh_ref_slice(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference::{sigmoid_f64, sigmoid_ref, tanh_f64, tanh_ref, MAX_ABS_ERROR};

    /// The widest vector any tier uses.
    const MAX_LANES: usize = 16;

    type Kernel = fn(&mut [f32]);

    /// One implementation under test: `f[0]` is its sigmoid, `f[1]` its tanh.
    struct Impl {
        label: &'static str,
        tier: Tier,
        f: [Kernel; 2],
    }

    /// Every available tier through the public `*_with` entry points and, on x86-64,
    /// each ISA's functions called directly: AVX2 and AVX-512 agree bit for bit, so a
    /// dispatch arm wired to the wrong ISA could not be seen through the dispatcher
    /// alone, and would leave a kernel untested.
    fn impls() -> Vec<Impl> {
        #[allow(unused_mut)]
        let mut v = vec![
            Impl {
                label: "scalar",
                tier: Tier::Scalar,
                f: [
                    |x| sigmoid_with(Tier::Scalar, x),
                    |x| tanh_with(Tier::Scalar, x),
                ],
            },
            Impl {
                label: "avx2",
                tier: Tier::Avx2,
                f: [
                    |x| sigmoid_with(Tier::Avx2, x),
                    |x| tanh_with(Tier::Avx2, x),
                ],
            },
            Impl {
                label: "avx512",
                tier: Tier::Avx512,
                f: [
                    |x| sigmoid_with(Tier::Avx512, x),
                    |x| tanh_with(Tier::Avx512, x),
                ],
            },
        ];
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::x86_64::{avx2, avx512};
            // Each closure calls a `#[target_feature]` function; `retain` below drops the
            // entry unless its tier's features were detected at run time.
            v.push(Impl {
                label: "avx2 direct",
                tier: Tier::Avx2,
                f: [
                    // SAFETY: kept only if AVX2 and FMA are detected (`retain`).
                    |x| unsafe { avx2::sigmoid(x) },
                    // SAFETY: kept only if AVX2 and FMA are detected (`retain`).
                    |x| unsafe { avx2::tanh(x) },
                ],
            });
            v.push(Impl {
                label: "avx512 direct",
                tier: Tier::Avx512,
                f: [
                    // SAFETY: kept only if AVX-512F is detected (`retain`).
                    |x| unsafe { avx512::sigmoid(x) },
                    // SAFETY: kept only if AVX-512F is detected (`retain`).
                    |x| unsafe { avx512::tanh(x) },
                ],
            });
        }
        v.retain(|i| i.tier.is_available());
        v
    }

    struct Act {
        name: &'static str,
        index: usize,
        exact: fn(f64) -> f64,
        lo: f32,
    }

    const SIGMOID: Act = Act {
        name: "sigmoid",
        index: 0,
        exact: sigmoid_f64,
        lo: 0.0,
    };
    const TANH: Act = Act {
        name: "tanh",
        index: 1,
        exact: tanh_f64,
        lo: -1.0,
    };
    const ACTS: [Act; 2] = [SIGMOID, TANH];

    /// Inputs cycling through ordinary values, both saturation tails and the specials.
    fn mixed(i: usize) -> f32 {
        const V: [f32; 23] = [
            0.3,
            -1.7,
            10.0,
            -10.0,
            20.0,
            -20.0,
            88.0,
            -88.0,
            100.0,
            -100.0,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            0.0,
            -0.0,
            0.6,
            -0.65,
            4.5,
            -3.25,
            1e-20,
            -87.5,
        ];
        V[(i * 7) % V.len()]
            + if i.is_multiple_of(5) {
                0.01 * i as f32
            } else {
                0.0
            }
    }

    /// Checks `got` against the f64 value of `x`: NaN iff `x` is NaN, inside the range,
    /// within `MAX_ABS_ERROR`. Returns the absolute error (0 for NaN).
    fn check(act: &Act, imp: &Impl, x: f32, got: f32) -> f64 {
        let ctx = || format!("{}[{}]({x:e}) = {got:e}", act.name, imp.label);
        if x.is_nan() {
            assert!(got.is_nan(), "{}: NaN must propagate", ctx());
            return 0.0;
        }
        assert!(
            (act.lo..=1.0).contains(&got),
            "{}: outside [{}, 1]",
            ctx(),
            act.lo
        );
        let err = (got as f64 - (act.exact)(x as f64)).abs();
        assert!(err <= MAX_ABS_ERROR, "{}: error {err:e}", ctx());
        err
    }

    /// Runs `act` of `imp` on a copy of `xs`, checks every element, returns the outputs
    /// and the max error.
    fn run(act: &Act, imp: &Impl, xs: &[f32]) -> (Vec<f32>, f64) {
        let mut ys = xs.to_vec();
        (imp.f[act.index])(&mut ys);
        let err = xs
            .iter()
            .zip(&ys)
            .map(|(&x, &y)| check(act, imp, x, y))
            .fold(0.0, f64::max);
        (ys, err)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|y| y.to_bits()).collect()
    }

    #[test]
    fn every_length_and_offset_and_nothing_outside_is_touched() {
        const GUARD: f32 = 3.0; // a value both activations would change
        for imp in impls() {
            for act in &ACTS {
                for len in 0..=4 * MAX_LANES + 3 {
                    for offset in 0..=3 {
                        let mut buf = vec![GUARD; offset + len + MAX_LANES];
                        for i in 0..len {
                            buf[offset + i] = mixed(i + offset);
                        }
                        let xs = buf[offset..offset + len].to_vec();
                        (imp.f[act.index])(&mut buf[offset..offset + len]);
                        for (&x, &y) in xs.iter().zip(&buf[offset..]) {
                            check(act, &imp, x, y);
                        }
                        let mut outside = buf[..offset].iter().chain(&buf[offset + len..]);
                        assert!(
                            outside.all(|&g| g.to_bits() == GUARD.to_bits()),
                            "{}[{}] len {len} offset {offset} wrote outside the slice",
                            act.name,
                            imp.label
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn saturation_tails_give_the_limits() {
        let big = [
            10.0,
            20.0,
            87.0,
            88.0,
            89.0,
            100.0,
            1e4,
            1e30,
            f32::MAX,
            f32::INFINITY,
        ];
        let xs: Vec<f32> = big.iter().flat_map(|&b| [b, -b]).collect();
        for imp in impls() {
            for act in &ACTS {
                let (ys, _) = run(act, &imp, &xs);
                for (&x, &y) in xs.iter().zip(&ys) {
                    // Exactly ±1 where the f64 value rounds to it in f32.
                    let limit = (act.exact)(x as f64) as f32;
                    if limit.abs() == 1.0 {
                        assert_eq!(y, limit, "{}[{}]({x:e})", act.name, imp.label);
                    }
                }
            }
            let inf = [f32::INFINITY, f32::NEG_INFINITY];
            let (s, _) = run(&SIGMOID, &imp, &inf);
            assert_eq!(s, [1.0, 0.0], "sigmoid[{}](±inf)", imp.label);
            let (t, _) = run(&TANH, &imp, &inf);
            assert_eq!(t, [1.0, -1.0], "tanh[{}](±inf)", imp.label);
        }
    }

    #[test]
    fn nan_propagates_in_every_lane_and_leaves_neighbours_alone() {
        let n = 2 * MAX_LANES + 1;
        for imp in impls() {
            for act in &ACTS {
                for pos in 0..n {
                    let mut xs: Vec<f32> = (0..n).map(|i| i as f32 - 16.0).collect();
                    xs[pos] = if pos % 2 == 0 { f32::NAN } else { -f32::NAN };
                    run(act, &imp, &xs);
                }
            }
        }
    }

    #[test]
    fn tiny_inputs_keep_relative_accuracy() {
        // Near 0, tanh(x) ≈ x: the odd polynomial must not lose x to cancellation (the
        // relative error matters here, not only the absolute one), and keeps the sign.
        let xs = [1e-3f32, 1e-5, 1e-10, 1e-30, f32::MIN_POSITIVE, 1e-45, 0.0];
        // Interleaved signs: xs[4..] are the magnitudes from 1e-10 down.
        let xs: Vec<f32> = xs.iter().flat_map(|&x| [x, -x]).collect();
        for imp in impls() {
            let (ys, _) = run(&TANH, &imp, &xs);
            for (&x, &y) in xs.iter().zip(&ys) {
                let want = tanh_f64(x as f64);
                let rel = if want == 0.0 {
                    y as f64
                } else {
                    (y as f64 - want) / want
                };
                assert!(rel.abs() <= 1e-6, "tanh[{}]({x:e}) = {y:e}", imp.label);
                assert_eq!(y.is_sign_negative(), x.is_sign_negative());
            }
            // sigmoid(x) = 1/2 + x/4 + O(x³) rounds to 1/2 for these.
            let (ys, _) = run(&SIGMOID, &imp, &xs[4..]);
            assert!(ys.iter().all(|&y| y == 0.5), "sigmoid[{}]", imp.label);
        }
    }

    /// The maxima over all 2^32 inputs stated in the module doc, (sigmoid, tanh), per
    /// SIMD tier. The scalar tier is `std`'s libm, which varies by platform; it is held
    /// to `MAX_ABS_ERROR` only.
    fn documented(tier: Tier) -> (f64, f64) {
        match tier {
            Tier::Scalar => (MAX_ABS_ERROR, MAX_ABS_ERROR),
            Tier::Avx2 | Tier::Avx512 => (8.94e-8, 8.09e-8),
        }
    }

    #[test]
    fn dense_sweep_is_within_the_contract_and_the_documented_maxima() {
        // [-20, 20] in steps of 2^-13, then magnitudes 1e-38..1e38 (ratio 1.001), both signs.
        let mut xs: Vec<f32> = (-20 * 8192..=20 * 8192)
            .map(|i| i as f32 / 8192.0)
            .collect();
        let mut m = 1e-38f32;
        while m < 1e38 {
            xs.extend([m, -m]);
            m *= 1.001;
        }
        for imp in impls() {
            // `check` asserts MAX_ABS_ERROR per element; this keeps the doc honest.
            let (ds, dt) = documented(imp.tier);
            let (_, s) = run(&SIGMOID, &imp, &xs);
            assert!(s <= ds, "sigmoid[{}] max error {s:e} > {ds:e}", imp.label);
            let (_, t) = run(&TANH, &imp, &xs);
            assert!(t <= dt, "tanh[{}] max error {t:e} > {dt:e}", imp.label);
        }
    }

    #[test]
    fn scalar_tier_is_the_reference() {
        let xs: Vec<f32> = (0..200).map(mixed).collect();
        let (mut s, mut t) = (xs.clone(), xs.clone());
        sigmoid_with(Tier::Scalar, &mut s);
        tanh_with(Tier::Scalar, &mut t);
        for (i, &x) in xs.iter().enumerate() {
            assert_eq!(s[i].to_bits(), sigmoid_ref(x).to_bits());
            assert_eq!(t[i].to_bits(), tanh_ref(x).to_bits());
        }
    }

    #[test]
    fn simd_implementations_agree_bit_for_bit() {
        let mut xs: Vec<f32> = (-4000..4000).map(|i| i as f32 / 97.0).collect();
        xs.extend((0..100).map(mixed));
        let simd: Vec<Impl> = impls()
            .into_iter()
            .filter(|i| i.tier != Tier::Scalar)
            .collect();
        for act in &ACTS {
            let outs: Vec<Vec<u32>> = simd.iter().map(|i| bits(&run(act, i, &xs).0)).collect();
            for (i, out) in simd.iter().zip(&outs).skip(1) {
                assert!(
                    out == &outs[0],
                    "{}: {} differs from {}",
                    act.name,
                    i.label,
                    simd[0].label
                );
            }
        }
    }

    #[test]
    fn simd_tiers_are_not_the_scalar_formula() {
        // Guards against a SIMD tier silently running the scalar code.
        let xs: Vec<f32> = (0..100).map(|i| i as f32 / 7.0 - 7.0).collect();
        let all = impls();
        let scalar = bits(&run(&TANH, &all[0], &xs).0);
        for imp in all.iter().filter(|i| i.tier != Tier::Scalar) {
            assert_ne!(bits(&run(&TANH, imp, &xs).0), scalar, "tanh[{}]", imp.label);
        }
    }

    #[test]
    fn default_entry_points_use_the_chosen_tier() {
        let xs: Vec<f32> = (0..100).map(mixed).collect();
        let (mut a, mut b) = (xs.clone(), xs.clone());
        sigmoid(&mut a);
        sigmoid_with(tier(), &mut b);
        assert_eq!(bits(&a), bits(&b));
        let (mut a, mut b) = (xs.clone(), xs);
        tanh(&mut a);
        tanh_with(tier(), &mut b);
        assert_eq!(bits(&a), bits(&b));
        assert!(available_tiers().contains(&tier()));
    }

    #[test]
    fn names_round_trip_and_pick_falls_back() {
        for t in Tier::ALL {
            assert_eq!(Tier::from_name(t.name()), Some(t));
        }
        assert_eq!(Tier::from_name(" AVX2 "), Some(Tier::Avx2));
        assert_eq!(Tier::from_name("neon"), None);
        let all = [Tier::Scalar, Tier::Avx2, Tier::Avx512];
        assert_eq!(pick(None, &all), Tier::Avx512);
        assert_eq!(pick(Some(Tier::Scalar), &all), Tier::Scalar);
        assert_eq!(pick(Some(Tier::Avx2), &all), Tier::Avx2);
        assert_eq!(pick(Some(Tier::Avx512), &all[..2]), Tier::Avx2);
        assert_eq!(pick(Some(Tier::Avx2), &all[..1]), Tier::Scalar);
        assert_eq!(pick(Some(Tier::Avx512), &[]), Tier::Scalar);
        let avail = available_tiers();
        assert_eq!(avail[0], Tier::Scalar);
        assert!(avail.windows(2).all(|w| w[0] < w[1]));
        for t in Tier::ALL {
            assert_eq!(Detected::new(t).0, pick(Some(t), &avail));
        }
    }
}
