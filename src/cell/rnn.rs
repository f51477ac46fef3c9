//! Vanilla RNN: one gate. `h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`, φ = tanh or relu.

use crate::kernels::activation;

/// `pre` (`[H]`, the summed pre-activation) becomes `h_t` in place.
pub fn forward(pre: &mut [f32], relu: bool) {
    if relu {
        for v in pre.iter_mut() {
            // `max` would turn NaN into 0; keep NaN visible.
            if *v < 0.0 {
                *v = 0.0;
            }
        }
    } else {
        activation::tanh(pre);
    }
}

/// `dpre = dh ⊙ φ'(·)`, written from `h = φ(pre)`.
pub fn backward(h: &[f32], dh: &[f32], relu: bool, dpre: &mut [f32]) {
    for ((d, &hv), &g) in dpre.iter_mut().zip(h).zip(dh) {
        *d = if relu {
            if hv > 0.0 {
                g
            } else {
                0.0
            }
        } else {
            g * (1.0 - hv * hv)
        };
    }
}
