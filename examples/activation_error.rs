//! Maximum absolute error of every kernel tier's sigmoid and tanh against `f64`, over
//! all 2³² `f32` bit patterns (NaNs skipped). This is the run behind the table in
//! `src/kernels/activation.rs`; it takes a few minutes.
//!
//! `cargo run --release --example activation_error`

use rnncore::__testing::activation::{available_tiers, sigmoid_with, tanh_with, Tier};

type Apply = fn(Tier, &mut [f32]);
/// Name, the tier-taking kernel, and the `f64` truth.
type Act = (&'static str, Apply, fn(f64) -> f64);

fn main() {
    let acts: [Act; 2] = [
        ("sigmoid", sigmoid_with, |x| 1.0 / (1.0 + (-x).exp())),
        ("tanh", tanh_with, f64::tanh),
    ];
    const CHUNK: u64 = 1 << 20;
    let tiers = available_tiers();
    // (max error, at x) per tier and activation.
    let mut worst = vec![[(0.0f64, 0.0f32); 2]; tiers.len()];
    let (mut xs, mut ys) = (
        Vec::with_capacity(CHUNK as usize),
        vec![0.0f32; CHUNK as usize],
    );
    let mut exact = vec![0.0f64; CHUNK as usize];
    let mut start = 0u64;
    while start < 1 << 32 {
        xs.clear();
        xs.extend(
            (start..start + CHUNK)
                .map(|b| f32::from_bits(b as u32))
                .filter(|x| !x.is_nan()),
        );
        for (a, (_, apply, f)) in acts.iter().enumerate() {
            for (e, &x) in exact.iter_mut().zip(&xs) {
                *e = f(x as f64);
            }
            for (t, &tier) in tiers.iter().enumerate() {
                let ys = &mut ys[..xs.len()];
                ys.copy_from_slice(&xs);
                apply(tier, ys);
                for ((&y, &e), &x) in ys.iter().zip(&exact).zip(&xs) {
                    let err = (y as f64 - e).abs();
                    if err > worst[t][a].0 {
                        worst[t][a] = (err, x);
                    }
                }
            }
        }
        start += CHUNK;
    }
    for (t, tier) in tiers.iter().enumerate() {
        for (a, (name, _, _)) in acts.iter().enumerate() {
            let (err, x) = worst[t][a];
            println!(
                "{:7} {name:8} max abs error {err:.3e} at x = {x:e}",
                tier.name()
            );
        }
    }
}
