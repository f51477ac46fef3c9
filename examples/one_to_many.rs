//! One-to-many: one input vector, a whole sequence out.
//!
//! The input is a one-hot class at the first step and zeros after it, so everything the
//! model writes afterwards must come from what its state remembers. Class k asks for a
//! sine wave of k+1 cycles over 24 steps. A GRU learns the three waves, then writes them
//! one sample at a time through `State` and `Model::step`.
//!
//! Run: `cargo run --release --example one_to_many`

use rnncore::Rng;
use rnncore::{
    CellKind, Model, ModelConfig, OutputActivation, State, Targets, TrainConfig, Trainer,
};

const CLASSES: usize = 3;
const T: usize = 24;

fn target(class: usize, t: usize) -> f32 {
    let cycles = (class + 1) as f32;
    (std::f32::consts::TAU * cycles * t as f32 / T as f32).sin()
}

fn main() -> Result<(), rnncore::Error> {
    let cfg =
        ModelConfig::new(CellKind::Gru, CLASSES, 32, 1).with_head(1, OutputActivation::Identity);
    let mut model = Model::new(cfg, 1)?;
    let mut trainer = Trainer::new(&model, TrainConfig::adam(0.01).with_clip(1.0))?;
    let mut rng = Rng::new(2);
    let batch = 16;
    println!("GRU H=32: class k (one-hot at step 0, zeros after) -> sin of k+1 cycles over {T} steps (MSE)");
    for step in 0..=600 {
        let mut x = vec![0.0f32; batch * T * CLASSES];
        let mut y = vec![0.0f32; batch * T];
        for b in 0..batch {
            let class = rng.below(CLASSES);
            x[b * T * CLASSES + class] = 1.0; // step 0 only
            for t in 0..T {
                y[b * T + t] = target(class, t);
            }
        }
        let loss = trainer.step_mse(&mut model, None, &x, batch, T, &y, Targets::EveryStep)?;
        if step % 100 == 0 {
            println!("  step {step:3}  loss {loss:.4}");
        }
    }
    println!("Generated one sample at a time (above) against the target (below):");
    let bars = |v: &[f32]| -> String {
        const B: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        v.iter()
            .map(|s| B[((s.clamp(-1.0, 1.0) + 1.0) * 3.5).round() as usize])
            .collect()
    };
    for class in 0..CLASSES {
        let mut state = State::new(&model, 1)?;
        let mut out = Vec::with_capacity(T);
        let mut y = [0.0f32];
        for t in 0..T {
            let mut x = [0.0f32; CLASSES];
            if t == 0 {
                x[class] = 1.0;
            }
            model.step(&mut state, &x, &mut y)?;
            out.push(y[0]);
        }
        let want: Vec<f32> = (0..T).map(|t| target(class, t)).collect();
        let mse = out
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            / T as f32;
        println!("  class {class}  {}  (MSE {mse:.4})", bars(&out));
        println!("           {}", bars(&want));
    }
    Ok(())
}
