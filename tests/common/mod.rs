//! Shared test helpers.
#![allow(dead_code)]

pub mod counting;

use rnncore::{CellKind, ModelConfig, OutputActivation};

/// Deterministic pseudo-random values in [-a, a).
pub fn vals(n: usize, seed: u64, a: f32) -> Vec<f32> {
    let mut r = rnncore::Rng::new(seed);
    (0..n)
        .map(|_| r.uniform(-a as f64, a as f64) as f32)
        .collect()
}

/// The bit patterns of `v`, for bit-for-bit comparisons with readable failures.
#[allow(dead_code)] // not every test binary compares bits
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every cell kind x {1, 2} layers x {no head, head of 3}.
pub fn configs(i: usize, h: usize) -> Vec<ModelConfig> {
    let mut v = Vec::new();
    for cell in CellKind::ALL {
        for layers in [1, 2] {
            for head in [0, 3] {
                let mut c = ModelConfig::new(cell, i, h, layers);
                if head > 0 {
                    c = c.with_head(head, OutputActivation::Identity);
                }
                v.push(c);
            }
        }
    }
    v
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
