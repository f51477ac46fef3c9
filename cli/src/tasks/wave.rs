//! `--task generate-from-vector`: one vector in, a sequence out (one-to-many).
//!
//! The vector is a waveform's shape (one-hot over sine, square, triangle, sawtooth) and
//! its frequency (`16 / period`, periods 8 to 32 samples); it is fed as the input at
//! every step (the "repeated input" form of one-to-many), and the model writes the
//! waveform, phase 0, one sample per step. MSE at every step. The reference for "chance"
//! is predicting 0 everywhere, whose MSE is the mean square of the waveforms.

use super::{Defaults, Settings, TrainArgs};
use crate::common::Cell;
use crate::error::{fail, Result};
use crate::modelfile;
use crate::progress::Log;
use rnncore::Rng;
use rnncore::{Model, ModelConfig, OutputActivation, State, Targets, Trainer};

/// The shapes, in one-hot order.
pub const SHAPES: [&str; 4] = ["sine", "square", "triangle", "sawtooth"];
/// Input width: the shape one-hot and the frequency.
pub const INPUT: usize = SHAPES.len() + 1;
/// Shortest and longest period, in samples.
pub const PERIODS: (f64, f64) = (8.0, 32.0);

/// The defaults of `train --task generate-from-vector`.
pub fn defaults() -> Defaults {
    Defaults {
        cell: Cell::Gru,
        hidden: 32,
        seq_len: 48,
        steps: 1500,
        // 0.01 spiked the fresh-vector MSE to 70-75 % of predicting zeros at some seeds
        // and step counts (200, 400); 0.005 stays at 15-26 % there (seeds 1-6).
        lr: 0.005,
    }
}

/// Sample `t` of waveform `shape` with period `period` (phase 0, amplitude 1).
pub fn wave(shape: usize, period: f64, t: usize) -> f32 {
    let ph = (t as f64 / period).fract();
    let v = match shape {
        0 => (std::f64::consts::TAU * ph).sin(),
        1 => {
            if ph < 0.5 {
                1.0
            } else {
                -1.0
            }
        }
        2 => 1.0 - 4.0 * ((ph + 0.25).fract() - 0.5).abs(),
        _ => 2.0 * (ph + 0.5 - (ph + 0.5).floor()) - 1.0,
    };
    v as f32
}

/// The conditioning vector of (shape, period).
pub fn vector(shape: usize, period: f64) -> [f32; INPUT] {
    let mut v = [0.0f32; INPUT];
    v[shape] = 1.0;
    v[SHAPES.len()] = (16.0 / period) as f32;
    v
}

/// `b` random (shape, period) pairs: inputs `[b][t][INPUT]` and targets `[b][t][1]`.
pub fn batch(b: usize, t: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    let mut x = vec![0.0f32; b * t * INPUT];
    let mut y = vec![0.0f32; b * t];
    for r in 0..b {
        let shape = rng.below(SHAPES.len());
        let period = rng.uniform(PERIODS.0, PERIODS.1);
        let v = vector(shape, period);
        for k in 0..t {
            x[(r * t + k) * INPUT..(r * t + k + 1) * INPUT].copy_from_slice(&v);
            y[r * t + k] = wave(shape, period, k);
        }
    }
    (x, y)
}

/// MSE of `model` on `b` fresh pairs, and the MSE of predicting zeros.
pub fn evaluate(model: &Model, b: usize, t: usize, rng: &mut Rng) -> Result<(f64, f64)> {
    let (x, y) = batch(b, t, rng);
    let p = model.forward(&x, b, t)?;
    let mse = p
        .iter()
        .zip(&y)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / y.len() as f64;
    let zero = y.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / y.len() as f64;
    Ok((mse, zero))
}

/// Generates `t` samples of (shape, period) by streaming the vector through `Model::step`.
pub fn generate(model: &Model, shape: usize, period: f64, t: usize) -> Result<Vec<f32>> {
    let mut state = State::new(model, 1)?;
    let v = vector(shape, period);
    let mut y = [0.0f32];
    let mut out = Vec::with_capacity(t);
    for _ in 0..t {
        model.step(&mut state, &v, &mut y)?;
        out.push(y[0]);
    }
    Ok(out)
}

/// A one-line picture of samples in [-1, 1].
pub fn sparkline(v: &[f32]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    v.iter()
        .map(|&s| BARS[(((s.clamp(-1.0, 1.0) + 1.0) / 2.0 * 7.0).round()) as usize])
        .collect()
}

/// `rnncore train --task generate-from-vector`.
pub fn command(args: &TrainArgs) -> Result<()> {
    let s = args.settings(defaults());
    let model = train(&s)?;
    let out = args.out_or("generate-from-vector.safetensors");
    modelfile::save(
        &model,
        &out,
        &[
            ("task", "generate-from-vector".into()),
            (
                "inputs",
                format!("one-hot {} then 16/period", SHAPES.join(",")),
            ),
        ],
    )?;
    println!("saved {}", out.display());
    Ok(())
}

/// Trains the generator.
pub fn train(s: &Settings) -> Result<Model> {
    let t = s.seq_len;
    if t < 2 {
        fail!("--seq-len is {t}, expected at least 2");
    }
    let cfg = ModelConfig::new(s.cell, INPUT, s.hidden, s.layers)
        .with_head(1, OutputActivation::Identity);
    let mut model = Model::new(cfg, s.seed)?;
    let mut trainer = Trainer::new(&model, s.train)?;
    println!(
        "generate-from-vector: (shape one-hot, 16/period) repeated -> {t} samples of {}; {}",
        SHAPES.join("/"),
        s.describe()
    );
    let mut rng = Rng::new(s.seed.wrapping_add(1));
    let mut eval_rng = Rng::new(s.seed.wrapping_add(2));
    let mut log = Log::new(s.steps, s.log_every, "seq");
    for step in 0..s.steps {
        let (x, y) = batch(s.batch, t, &mut rng);
        log.step(s.batch, || {
            trainer.step_mse(&mut model, None, &x, s.batch, t, &y, Targets::EveryStep)
        })?;
        if log.due(step) {
            let (mse, zero) = evaluate(&model, 256, t, &mut eval_rng)?;
            log.report(step, &format!("fresh mse {mse:.4} (zeros {zero:.3})"));
        }
    }
    log.finish();
    let (mse, zero) = evaluate(&model, 1000, t, &mut eval_rng)?;
    println!(
        "final: MSE {mse:.4} on 1000 fresh vectors (predicting zeros: {zero:.4}, {:.1}% of it)",
        100.0 * mse / zero
    );
    println!("  generated (above) and target (below), period 12, {t} samples:");
    for (i, name) in SHAPES.iter().enumerate() {
        let g = generate(&model, i, 12.0, t)?;
        let w: Vec<f32> = (0..t).map(|k| wave(i, 12.0, k)).collect();
        println!("  {name:<9} {}", sparkline(&g));
        println!("  {:<9} {}", "", sparkline(&w));
    }
    Ok(model)
}
