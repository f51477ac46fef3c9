//! Plain scalar activations: the spec every vectorized kernel is tested against.
//!
//! The `*_ref` functions are the obvious formulas in `f32` on top of `std`'s `exp` and
//! `tanh`; the `*_f64` functions are the same formulas in `f64`, the "exact" values the
//! `f32` kernels are measured against (and what an `f64` gradient check should use).
//!
//! The contract every tier of [`super::activation`] meets, checked in its tests: the
//! absolute error against the `f64` value is at most [`MAX_ABS_ERROR`] for every `f32`
//! input; NaN gives NaN; `±∞` give the limits (`0`/`1` for sigmoid, `∓1`/`±1` for tanh).

/// The largest absolute error, against [`sigmoid_f64`] and [`tanh_f64`], that any
/// activation kernel may have on any `f32` input.
pub const MAX_ABS_ERROR: f64 = 1e-6;

/// The logistic sigmoid `1 / (1 + exp(-x))` in `f64`.
pub fn sigmoid_f64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The hyperbolic tangent in `f64`.
pub fn tanh_f64(x: f64) -> f64 {
    x.tanh()
}

/// The logistic sigmoid `1 / (1 + exp(-x))` in `f32`.
///
/// For `x < -88.7`, `exp(-x)` overflows to `+∞` and the result is `0`: the correct limit.
pub fn sigmoid_ref(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The hyperbolic tangent in `f32` (`std`'s `tanhf`).
pub fn tanh_ref(x: f32) -> f32 {
    x.tanh()
}

/// `x <- sigmoid_ref(x)` elementwise.
pub fn sigmoid_ref_slice(x: &mut [f32]) {
    for v in x {
        *v = sigmoid_ref(*v);
    }
}

/// `x <- tanh_ref(x)` elementwise.
pub fn tanh_ref_slice(x: &mut [f32]) {
    for v in x {
        *v = tanh_ref(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, f: fn(f32) -> f32, exact: fn(f64) -> f64, x: f32) {
        let (got, want) = (f(x), exact(x as f64));
        let err = (got as f64 - want).abs();
        assert!(
            err <= MAX_ABS_ERROR,
            "{name}({x:e}) = {got:e}, want {want:e} (error {err:e})"
        );
    }

    #[test]
    fn reference_meets_the_contract_on_a_sweep() {
        let mut x = -30.0f32;
        while x <= 30.0 {
            check("sigmoid_ref", sigmoid_ref, sigmoid_f64, x);
            check("tanh_ref", tanh_ref, tanh_f64, x);
            x += 1.0 / 512.0;
        }
        for x in [88.0, 100.0, 1e30, f32::MAX, f32::INFINITY] {
            for x in [x, -x] {
                check("sigmoid_ref", sigmoid_ref, sigmoid_f64, x);
                check("tanh_ref", tanh_ref, tanh_f64, x);
            }
        }
    }

    #[test]
    fn reference_limits_and_nan() {
        assert_eq!(sigmoid_ref(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_ref(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid_ref(-100.0), 0.0);
        assert_eq!(tanh_ref(f32::INFINITY), 1.0);
        assert_eq!(tanh_ref(f32::NEG_INFINITY), -1.0);
        assert!(sigmoid_ref(f32::NAN).is_nan());
        assert!(tanh_ref(f32::NAN).is_nan());
        assert!(sigmoid_f64(f64::NAN).is_nan());
        assert_eq!(sigmoid_f64(0.0), 0.5);
    }

    #[test]
    fn slice_versions_apply_the_scalar_function() {
        let xs = [-3.0f32, -0.5, 0.0, 0.25, 7.0];
        let (mut s, mut t) = (xs, xs);
        sigmoid_ref_slice(&mut s);
        tanh_ref_slice(&mut t);
        for i in 0..xs.len() {
            assert_eq!(s[i], sigmoid_ref(xs[i]));
            assert_eq!(t[i], tanh_ref(xs[i]));
        }
    }
}
