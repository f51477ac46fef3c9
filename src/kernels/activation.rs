//! Activations over slices, in place, vectorized per instruction set and chosen at run
//! time.
//!
//! [`sigmoid`] and [`tanh`] run on the [`tier`] picked once per process: the best the
//! CPU supports (AVX-512F, then AVX2 + FMA, then AVX, then SSE4.1, then scalar), unless
//! the environment variable `RNNCORE_KERNEL` names another (`scalar`, `sse41`, `avx`,
//! `avx2`, `avx512`; read once, at
//! the first call). A named tier the CPU lacks, or an unknown name, falls back to the
//! best available. [`sigmoid_with`] and [`tanh_with`] run a given tier, so one
//! process can exercise (and compare) all of them.
//!
//! Every tier meets the contract in [`super::reference`]: absolute error at most
//! `1e-6` against `f64` on every `f32` input, NaN propagated, `±∞` mapped to the
//! limits. Measured maximum absolute errors against `f64`, over all 2³² `f32` inputs
//! (`cargo run --release --example activation_error`, a few minutes; the dense sweep
//! in the tests re-checks the SIMD figures):
//!
//! | tier   | sigmoid                 | tanh                    |
//! | ------ | ----------------------- | ----------------------- |
//! | scalar | 8.93e-8 (glibc libm)    | 1.04e-7 (glibc libm)    |
//! | sse41  | 2.27e-7 (at x ≈ 9.880)  | 3.42e-7 (at x ≈ 5.289)  |
//! | avx    | SSE4.1's (the same bits)| SSE4.1's (the same bits)|
//! | neon   | AVX2's (the same bits)  | AVX2's (the same bits)  |
//! | avx2   | 2.05e-7 (at x ≈ 8.379)  | 3.35e-7 (at x ≈ 5.946)  |
//! | avx512 | 2.53e-7 (at x ≈ 11.83)  | 3.19e-7 (at x ≈ 7.603)  |
//!
//! That is 3 to 6 ulp of an output in `[0.5, 1)` (ulp 6e-8), a third of the `1e-6`
//! contract (the numerator `x·P(x²)` in one product, from when the functions took two
//! forms, moved AVX2's tanh from 2.91e-7). The SIMD tiers use a rational `tanh` (degree 9 over 8), whose `f32`
//! evaluation rounds a little more than the `expm1`-based formulas they had before
//! (8.9e-8 and 1.2e-7): the trade buys a dependency chain of about 42 cycles per
//! activation instead of 59 (AVX-512), which a single stream's step waits on twice. The algorithm
//! is in `x86_64/mod.rs`.
//!
//! The SIMD tiers are not bit-identical to the scalar tier (different formulas). AVX2
//! and AVX-512 perform the same operations per lane except the reciprocal (see
//! `x86_64/mod.rs`), and agree to two ulp. SSE4.1 has no fused multiply-add: its
//! products and sums round apart, a few ulp from the others (within 6.8e-7); AVX does
//! SSE4.1's operations on 8 lanes and gives SSE4.1's bits on all 2³² inputs
//! (`cargo run --release --example activation_bits avx`, then `sse41`). NEON does
//! AVX2's operations and gives AVX2's bits on all 2³² inputs (the fingerprints of
//! `cargo run --release --example activation_bits -- TIER`, NEON's under `qemu-aarch64`).

use std::sync::OnceLock;

use super::reference;

/// An implementation level of the kernels, from portable to widest. More may come (a
/// NEON tier on aarch64): match with a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Tier {
    /// Plain Rust, any target: the functions of `kernels/reference.rs`.
    Scalar,
    /// AArch64 NEON (Advanced SIMD), 4 lanes, with fused multiply-add.
    Neon,
    /// x86-64 SSE4.1, 4 lanes, no fused multiply-add: for x86-64 CPUs without AVX.
    Sse41,
    /// x86-64 AVX without AVX2 and FMA, 8 lanes, no fused multiply-add: for x86-64 CPUs
    /// with AVX but not AVX2 (Intel Sandy Bridge and Ivy Bridge, AMD's Bulldozer to
    /// Steamroller cores).
    Avx,
    /// x86-64 AVX2 + FMA, 8 lanes.
    Avx2,
    /// x86-64 AVX-512F, 16 lanes.
    Avx512,
}

impl Tier {
    /// Every tier, in increasing order of preference.
    pub const ALL: [Tier; 6] = [
        Tier::Scalar,
        Tier::Neon,
        Tier::Sse41,
        Tier::Avx,
        Tier::Avx2,
        Tier::Avx512,
    ];

    /// The tier's name as `RNNCORE_KERNEL` spells it: "scalar", "neon", "sse41", "avx",
    /// "avx2", "avx512".
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Neon => "neon",
            Tier::Sse41 => "sse41",
            Tier::Avx => "avx",
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
            Tier::Sse41 => is_x86_feature_detected!("sse4.1"),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx => is_x86_feature_detected!("avx") && is_x86_feature_detected!("sse4.1"),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Tier::Sse41 | Tier::Avx | Tier::Avx2 | Tier::Avx512 => false,
            #[cfg(target_arch = "aarch64")]
            Tier::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(not(target_arch = "aarch64"))]
            Tier::Neon => false,
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

/// Fused LSTM pointwise pass on [`tier()`]; the math of [`reference::lstm_cell_ref`].
/// `gates` is `[4n]`, the others `[n]` (`n = c.len()`).
#[inline]
pub fn lstm_cell(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    run_lstm(detected(), gates, c_prev, c, h);
}

/// [`lstm_cell`] on `tier` (or the best available).
#[cfg(test)] // only the kernel tests pick a tier explicitly
pub fn lstm_cell_with(tier: Tier, gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    run_lstm(Detected::new(tier), gates, c_prev, c, h);
}

/// Fused linear-before-reset GRU pointwise pass on [`tier()`]; the math of
/// [`reference::gru_lbr_cell_ref`]. `gates` is `[3n]`, the others `[n]`.
#[inline]
pub fn gru_lbr_cell(gates: &mut [f32], ghn: &[f32], h_prev: &[f32], h: &mut [f32]) {
    run_gru_lbr(detected(), gates, ghn, h_prev, h);
}

/// [`gru_lbr_cell`] on `tier` (or the best available).
#[cfg(test)] // only the kernel tests pick a tier explicitly
pub fn gru_lbr_cell_with(
    tier: Tier,
    gates: &mut [f32],
    ghn: &[f32],
    h_prev: &[f32],
    h: &mut [f32],
) {
    run_gru_lbr(Detected::new(tier), gates, ghn, h_prev, h);
}

/// Streaming LSTM update in place on [`tier()`]; the math of
/// [`reference::lstm_state_ref`]. `gates` is `[4n]` (read only), `c` and `h` the state
/// rows `[n]`.
#[inline]
pub fn lstm_state(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    run_lstm_state(detected(), gates, c, h);
}

/// [`lstm_state`] on `tier` (or the best available).
#[cfg(test)] // only the kernel tests pick a tier explicitly
pub fn lstm_state_with(tier: Tier, gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    run_lstm_state(Detected::new(tier), gates, c, h);
}

fn run_lstm_state(tier: Detected, gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    assert!(gates.len() == 4 * c.len() && h.len() == c.len());
    // SAFETY: a `Detected` tier was detected at run time (the entry points, safe
    // `#[target_feature]` functions, ask for nothing else).
    on_tier!(unsafe tier.0 => lstm_state(gates, c, h), _ => reference::lstm_state_ref(gates, c, h))
}

/// Streaming linear-before-reset GRU update in place on [`tier()`]; the math of
/// [`reference::gru_lbr_state_ref`]. `gates` and `gh` are `[3n]` (read only), `b_hn`
/// and the state row `h` `[n]`.
#[inline]
pub fn gru_lbr_state(gates: &[f32], gh: &[f32], b_hn: &[f32], h: &mut [f32]) {
    run_gru_lbr_state(detected(), gates, gh, b_hn, h);
}

/// [`gru_lbr_state`] on `tier` (or the best available).
#[cfg(test)] // only the kernel tests pick a tier explicitly
pub fn gru_lbr_state_with(tier: Tier, gates: &[f32], gh: &[f32], b_hn: &[f32], h: &mut [f32]) {
    run_gru_lbr_state(Detected::new(tier), gates, gh, b_hn, h);
}

fn run_gru_lbr_state(tier: Detected, gates: &[f32], gh: &[f32], b_hn: &[f32], h: &mut [f32]) {
    let n = h.len();
    assert!(gates.len() == 3 * n && gh.len() == 3 * n && b_hn.len() == n);
    // SAFETY: a `Detected` tier was detected at run time (the entry points, safe
    // `#[target_feature]` functions, ask for nothing else).
    on_tier!(unsafe tier.0 => gru_lbr_state(gates, gh, b_hn, h),
        _ => reference::gru_lbr_state_ref(gates, gh, b_hn, h))
}

fn run_lstm(tier: Detected, gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    // SAFETY: a `Detected` tier was detected at run time (the entry points, safe
    // `#[target_feature]` functions, ask for nothing else).
    on_tier!(unsafe tier.0 => lstm_cell(gates, c_prev, c, h),
        _ => reference::lstm_cell_ref(gates, c_prev, c, h))
}

fn run_gru_lbr(tier: Detected, gates: &mut [f32], ghn: &[f32], h_prev: &[f32], h: &mut [f32]) {
    // SAFETY: a `Detected` tier was detected at run time (the entry points, safe
    // `#[target_feature]` functions, ask for nothing else).
    on_tier!(unsafe tier.0 => gru_lbr_cell(gates, ghn, h_prev, h),
        _ => reference::gru_lbr_cell_ref(gates, ghn, h_prev, h))
}

/// A tier this CPU is known to support. The field is private, and the only
/// constructor checks [`Tier::is_available`]: holding a `Detected(t)` is the proof the
/// `unsafe` calls into `t`'s `#[target_feature]` functions rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Detected(Tier);

impl Detected {
    /// `want` if available, else the best available tier.
    fn new(want: Tier) -> Detected {
        Detected(want.available_or_best())
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

impl Tier {
    /// This tier if the CPU runs it, else the best one it does run.
    pub fn available_or_best(self) -> Tier {
        if self.is_available() {
            self
        } else {
            detected_best()
        }
    }
}

/// The process-wide tier every kernel uses (see [`tier`]); cheap to call.
#[inline]
pub(crate) fn kernel_tier() -> Tier {
    detected().0
}

/// The best tier this CPU runs (detected once).
fn detected_best() -> Tier {
    static BEST: OnceLock<Tier> = OnceLock::new();
    *BEST.get_or_init(|| pick(None, &available_tiers()))
}

/// `want` if it is in `available`, else the last (best) of `available`, else scalar.
fn pick(want: Option<Tier>, available: &[Tier]) -> Tier {
    match want {
        Some(t) if available.contains(&t) => t,
        _ => available.last().copied().unwrap_or(Tier::Scalar),
    }
}

fn run_sigmoid(tier: Detected, x: &mut [f32]) {
    // SAFETY: a `Detected` tier was detected at run time (the entry points, safe
    // `#[target_feature]` functions, ask for nothing else).
    on_tier!(unsafe tier.0 => sigmoid(x), _ => reference::sigmoid_ref_slice(x))
}

fn run_tanh(tier: Detected, x: &mut [f32]) {
    // SAFETY: a `Detected` tier was detected at run time (the entry points, safe
    // `#[target_feature]` functions, ask for nothing else).
    on_tier!(unsafe tier.0 => tanh(x), _ => reference::tanh_ref_slice(x))
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
    /// each ISA's functions called directly: AVX2 and AVX-512 agree to two ulp, so a
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
                label: "neon",
                tier: Tier::Neon,
                f: [
                    |x| sigmoid_with(Tier::Neon, x),
                    |x| tanh_with(Tier::Neon, x),
                ],
            },
            Impl {
                label: "sse41",
                tier: Tier::Sse41,
                f: [
                    |x| sigmoid_with(Tier::Sse41, x),
                    |x| tanh_with(Tier::Sse41, x),
                ],
            },
            Impl {
                label: "avx",
                tier: Tier::Avx,
                f: [|x| sigmoid_with(Tier::Avx, x), |x| tanh_with(Tier::Avx, x)],
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
            use crate::kernels::x86_64::{avx, avx2, avx512, sse};
            // Each closure calls a `#[target_feature]` function; `retain` below drops the
            // entry unless its tier's features were detected at run time.
            v.push(Impl {
                label: "sse41 direct",
                tier: Tier::Sse41,
                f: [
                    // SAFETY: kept only if SSE4.1 is detected (`retain`).
                    |x| unsafe { sse::sigmoid(x) },
                    // SAFETY: kept only if SSE4.1 is detected (`retain`).
                    |x| unsafe { sse::tanh(x) },
                ],
            });
            v.push(Impl {
                label: "avx direct",
                tier: Tier::Avx,
                f: [
                    // SAFETY: kept only if AVX and SSE4.1 are detected (`retain`).
                    |x| unsafe { avx::sigmoid(x) },
                    // SAFETY: kept only if AVX and SSE4.1 are detected (`retain`).
                    |x| unsafe { avx::tanh(x) },
                ],
            });
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
        #[cfg(target_arch = "aarch64")]
        {
            use crate::kernels::aarch64::neon;
            v.push(Impl {
                label: "neon direct",
                tier: Tier::Neon,
                f: [
                    // SAFETY: kept only if NEON is detected (`retain`).
                    |x| unsafe { neon::sigmoid(x) },
                    // SAFETY: kept only if NEON is detected (`retain`).
                    |x| unsafe { neon::tanh(x) },
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
            // The AVX tier's operations are SSE4.1's lane for lane (a multiply and an add,
            // exact division, the same minima and maxima): the same bits
            // (`avx_activations_are_sse41s_bit_for_bit`).
            Tier::Sse41 | Tier::Avx => (2.27e-7, 3.42e-7),
            // AVX2's operations lane for lane (fused multiply-add, exact division, x86's
            // min/max): AVX2's maxima, held here on the dense sweep.
            Tier::Neon => (2.06e-7, 3.35e-7),
            Tier::Avx2 => (2.06e-7, 3.35e-7),
            Tier::Avx512 => (2.53e-7, 3.20e-7),
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
    fn avx_activations_are_sse41s_bit_for_bit() {
        if !Tier::Avx.is_available() {
            return; // no AVX here: the dispatcher never picks it
        }
        // Lengths across whole vectors of both tiers and partial ones, the dense sweep's
        // range and the edges (limits, tiny values, infinities, NaN).
        let mut xs: Vec<f32> = (-20 * 512..=20 * 512).map(|i| i as f32 / 512.0).collect();
        xs.extend((0..400).map(mixed));
        xs.extend([0.0, -0.0, 1e-40, -1e-40, 9.02, -9.02, 17.5, f32::INFINITY]);
        xs.extend([f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN]);
        for n in [xs.len(), 1, 3, 7, 9, 13] {
            for act in &ACTS {
                let (avx, _) = run(act, &impl_of(Tier::Avx), &xs[..n]);
                let (sse, _) = run(act, &impl_of(Tier::Sse41), &xs[..n]);
                let same = avx
                    .iter()
                    .zip(&sse)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{}: the AVX tier differs from SSE4.1's (n = {n})",
                    act.name
                );
            }
        }
    }

    /// The dispatched implementation of `tier` from [`impls`].
    fn impl_of(tier: Tier) -> Impl {
        impls()
            .into_iter()
            .find(|i| i.tier == tier && !i.label.ends_with("direct"))
            .expect("every tier has an entry")
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
    fn simd_implementations_agree_to_two_ulp() {
        // Same operations per lane except the reciprocal (AVX-512's estimate and Newton
        // step, AVX2's division): outputs differ by at most two ulp of 1 (2.4e-7).
        // SSE4.1 rounds each product and sum apart (no fused multiply-add): a few ulp
        // more, within two tiers' documented maxima added (3.4e-7 each).
        let mut xs: Vec<f32> = (-4000..4000).map(|i| i as f32 / 97.0).collect();
        xs.extend((0..100).map(mixed));
        let mut simd: Vec<Impl> = impls()
            .into_iter()
            .filter(|i| i.tier != Tier::Scalar)
            .collect();
        // The baseline: a fused tier where the CPU has one.
        let unfused = |t: Tier| matches!(t, Tier::Sse41 | Tier::Avx);
        simd.sort_by_key(|i| unfused(i.tier));
        for act in &ACTS {
            let outs: Vec<Vec<f32>> = simd.iter().map(|i| run(act, i, &xs).0).collect();
            for (i, out) in simd.iter().zip(&outs).skip(1) {
                let fused = !unfused(i.tier) && !unfused(simd[0].tier);
                let bound = if fused { 2.4e-7 } else { 6.8e-7 };
                for (k, (a, b)) in out.iter().zip(&outs[0]).enumerate() {
                    assert!(
                        (a.is_nan() && b.is_nan()) || (a - b).abs() <= bound,
                        "{}({}): {} gives {a}, {} gives {b}",
                        act.name,
                        xs[k],
                        i.label,
                        simd[0].label
                    );
                }
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
        assert_eq!(Tier::from_name("altivec"), None);
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

    /// The fused cell kernels of every tier against the scalar specs: lengths
    /// 0..4*16+3 units, saturating and NaN inputs; every output within 1e-6 (or NaN
    /// where the spec gives NaN).
    #[test]
    fn fused_cells_match_the_reference_on_every_tier() {
        use crate::kernels::reference::{gru_lbr_cell_ref, lstm_cell_ref};
        let close = |a: &[f32], b: &[f32], what: &str| {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x.is_nan() && y.is_nan()) || (x - y).abs() <= 2e-6,
                    "{what}[{i}]: {x} vs {y}"
                );
            }
        };
        let mut seed = 7u32;
        let mut rnd = |scale: f32| {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0 * scale
        };
        for tier in available_tiers() {
            for n in 0..=4 * MAX_LANES + 3 {
                let scale = if n % 3 == 0 { 30.0 } else { 3.0 };
                let mut g: Vec<f32> = (0..4 * n).map(|_| rnd(scale)).collect();
                if n > 2 {
                    g[n + 1] = f32::NAN;
                }
                let cp: Vec<f32> = (0..n).map(|_| rnd(2.0)).collect();
                let (mut g1, mut c1, mut h1) = (g.clone(), vec![0.0; n], vec![0.0; n]);
                let (mut g2, mut c2, mut h2) = (g.clone(), vec![0.0; n], vec![0.0; n]);
                lstm_cell_ref(&mut g1, &cp, &mut c1, &mut h1);
                lstm_cell_with(tier, &mut g2, &cp, &mut c2, &mut h2);
                close(&g2, &g1, "lstm gates");
                close(&c2, &c1, "lstm c");
                close(&h2, &h1, "lstm h");
                let mut g: Vec<f32> = (0..3 * n).map(|_| rnd(scale)).collect();
                let ghn: Vec<f32> = (0..n).map(|_| rnd(2.0)).collect();
                let (mut g1, mut h1) = (g.clone(), vec![0.0; n]);
                gru_lbr_cell_ref(&mut g1, &ghn, &cp, &mut h1);
                let mut h2 = vec![0.0; n];
                gru_lbr_cell_with(tier, &mut g, &ghn, &cp, &mut h2);
                close(&g, &g1, "gru gates");
                close(&h2, &h1, "gru h");
            }
        }
    }
    /// The streaming (in-place, flushing) cell kernels of every tier against the scalar
    /// specs: lengths 0..4*16+3 units, saturating, NaN and tiny inputs; outputs within
    /// 2e-6, and values the spec flushes to 0 are exactly 0.
    #[test]
    fn state_kernels_match_the_reference_on_every_tier() {
        use crate::kernels::reference::{gru_lbr_state_ref, lstm_state_ref};
        let close = |a: &[f32], b: &[f32], what: &str| {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x.is_nan() && y.is_nan()) || (x - y).abs() <= 2e-6,
                    "{what}[{i}]: {x} vs {y}"
                );
                if *y == 0.0 {
                    assert_eq!(*x, 0.0, "{what}[{i}] not flushed");
                }
            }
        };
        let mut seed = 11u32;
        let mut rnd = |scale: f32| {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0 * scale
        };
        for tier in available_tiers() {
            for n in 0..=4 * MAX_LANES + 3 {
                let scale = if n % 3 == 0 { 30.0 } else { 3.0 };
                let mut g: Vec<f32> = (0..4 * n).map(|_| rnd(scale)).collect();
                let mut c: Vec<f32> = (0..n).map(|_| rnd(2.0)).collect();
                if n > 2 {
                    g[n + 1] = f32::NAN;
                    // i = 0 exactly and f tiny: c becomes subnormal-small, then flushed.
                    g[2] = -200.0;
                    g[n + 2] = -60.0;
                    c[2] = 1e-5;
                }
                let (mut c1, mut h1) = (c.clone(), vec![9.0; n]);
                let (mut c2, mut h2) = (c.clone(), vec![9.0; n]);
                lstm_state_ref(&g, &mut c1, &mut h1);
                lstm_state_with(tier, &g, &mut c2, &mut h2);
                if n > 2 {
                    assert_eq!(c1[2], 0.0, "the spec flushes");
                }
                close(&c2, &c1, "lstm c");
                close(&h2, &h1, "lstm h");
                let g: Vec<f32> = (0..3 * n).map(|_| rnd(scale)).collect();
                let gh: Vec<f32> = (0..3 * n).map(|_| rnd(2.0)).collect();
                let bhn: Vec<f32> = (0..n).map(|_| rnd(1.0)).collect();
                let mut h: Vec<f32> = (0..n).map(|_| rnd(1.0)).collect();
                if n > 2 {
                    h[1] = f32::NAN;
                    h[2] = 1e-33;
                }
                let (mut h1, mut h2) = (h.clone(), h);
                gru_lbr_state_ref(&g, &gh, &bhn, &mut h1);
                gru_lbr_state_with(tier, &g, &gh, &bhn, &mut h2);
                close(&h2, &h1, "gru h");
            }
        }
    }
}
