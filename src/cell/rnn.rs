//! Vanilla RNN: one gate. `h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`, φ = tanh or relu.

use crate::kernels::{self, activation};

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

/// `dpre = dh ⊙ φ'(·)`, written from `h = φ(pre)` (`kernels::backward::rnn`).
pub fn backward(h: &[f32], dh: &[f32], relu: bool, dpre: &mut [f32]) {
    kernels::backward::rnn(h, dh, relu, dpre);
}
