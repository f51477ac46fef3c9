//! Many-to-one: a whole sequence in, one answer out.
//!
//! An LSTM reads 12 random bits and, at the last step only, says how many of them were
//! 1 (13 classes, cross-entropy on the last step: `Targets::LastStep`). Chance is about
//! 23% (always answering 6).
//!
//! Run: `cargo run --release --example many_to_one`

use rnncore::Rng;
use rnncore::{CellKind, Model, ModelConfig, OutputActivation, Targets, TrainConfig, Trainer};

const T: usize = 12;
const CLASSES: usize = T + 1;

fn batch(b: usize, rng: &mut Rng) -> (Vec<f32>, Vec<i32>) {
    let mut x = vec![0.0f32; b * T];
    let mut labels = vec![0i32; b];
    for (r, label) in labels.iter_mut().enumerate() {
        for t in 0..T {
            let bit = rng.below(2) as f32;
            x[r * T + t] = bit;
            *label += bit as i32;
        }
    }
    (x, labels)
}

fn accuracy(model: &Model, rng: &mut Rng) -> Result<f64, rnncore::Error> {
    let n = 500;
    let (x, labels) = batch(n, rng);
    let p = model.forward(&x, n, T)?; // softmax at every step; read the last
    let hits = (0..n)
        .filter(|&r| {
            let last = &p[((r + 1) * T - 1) * CLASSES..(r + 1) * T * CLASSES];
            let best = (0..CLASSES).fold(0, |m, k| if last[k] > last[m] { k } else { m });
            best as i32 == labels[r]
        })
        .count();
    Ok(hits as f64 / n as f64)
}

fn main() -> Result<(), rnncore::Error> {
    let cfg =
        ModelConfig::new(CellKind::Lstm, 1, 32, 1).with_head(CLASSES, OutputActivation::Softmax);
    let mut model = Model::new(cfg, 1)?;
    let mut trainer = Trainer::new(&model, TrainConfig::adam(0.01).with_clip(1.0))?;
    let mut rng = Rng::new(3);
    let mut eval_rng = Rng::new(4);
    println!("LSTM H=32 counts the ones among {T} bits (answer at the last step; chance ~23%)");
    for step in 0..=800 {
        let (x, labels) = batch(32, &mut rng);
        let loss =
            trainer.step_cross_entropy(&mut model, None, &x, 32, T, &labels, Targets::LastStep)?;
        if step % 100 == 0 {
            let acc = accuracy(&model, &mut eval_rng)?;
            println!(
                "  step {step:3}  loss {loss:.4}  accuracy on fresh sequences {:5.1}%",
                100.0 * acc
            );
        }
    }
    let (x, labels) = batch(4, &mut eval_rng);
    let p = model.forward(&x, 4, T)?;
    for r in 0..4 {
        let bits: String = x[r * T..(r + 1) * T]
            .iter()
            .map(|&b| if b > 0.5 { '1' } else { '0' })
            .collect();
        let last = &p[((r + 1) * T - 1) * CLASSES..(r + 1) * T * CLASSES];
        let best = (0..CLASSES).fold(0, |m, k| if last[k] > last[m] { k } else { m });
        println!(
            "  {bits} -> {best} (p = {:.2}; true {})",
            last[best], labels[r]
        );
    }
    Ok(())
}
