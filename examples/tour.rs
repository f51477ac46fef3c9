//! A short tour of the library: train an LSTM to echo its input two steps late, watch
//! the loss fall, then run the trained model one sample at a time as a stream.
//!
//! Run: `cargo run --release --example tour`

use rnncore::rng::Rng;
use rnncore::{
    CellKind, Model, ModelConfig, OutputActivation, State, Targets, TrainConfig, Trainer,
};

fn main() -> Result<(), rnncore::Error> {
    let (batch, t, delay) = (32, 16, 2);
    let cfg = ModelConfig::new(CellKind::Lstm, 1, 24, 1).with_head(1, OutputActivation::Identity);
    let mut model = Model::new(cfg, 42)?;
    let mut trainer = Trainer::new(&model, TrainConfig::adam(0.01).with_clip(1.0))?;
    let mut rng = Rng::new(7);
    let sample = |rng: &mut Rng| {
        let x: Vec<f32> = (0..batch * t)
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect();
        let mut y = vec![0.0; batch * t];
        for b in 0..batch {
            for s in delay..t {
                y[b * t + s] = x[b * t + s - delay];
            }
        }
        (x, y)
    };
    println!("Training an LSTM (H=24) to output its input delayed by {delay} steps (MSE):");
    let start = std::time::Instant::now();
    for step in 0..=300 {
        let (x, y) = sample(&mut rng);
        let loss = trainer.step_mse(&mut model, None, &x, batch, t, &y, Targets::EveryStep)?;
        if step % 50 == 0 {
            println!(
                "  step {step:4}  loss {loss:.5}  grad norm {:.3}",
                trainer.last_grad_norm()
            );
        }
    }
    println!("  ({:.2} s)", start.elapsed().as_secs_f64());

    println!("Streaming the trained model one sample at a time:");
    let mut state = State::new(&model, 1)?;
    let mut y = [0.0f32];
    let input: Vec<f32> = (0..10).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    println!("  t   input   output  (should equal input two steps earlier)");
    for (s, &v) in input.iter().enumerate() {
        model.step(&mut state, &[v], &mut y)?;
        let want = if s >= delay { input[s - delay] } else { 0.0 };
        println!("  {s:<3} {v:+.3}  {:+.3}  (want {want:+.3})", y[0]);
    }
    Ok(())
}
