//! Activations over slices, in place. Scalar for now; the SIMD tiers plug in here.

/// `x <- 1 / (1 + exp(-x))` elementwise.
pub fn sigmoid(x: &mut [f32]) {
    for v in x {
        *v = 1.0 / (1.0 + (-*v).exp());
    }
}

/// `x <- tanh(x)` elementwise.
pub fn tanh(x: &mut [f32]) {
    for v in x {
        *v = v.tanh();
    }
}
