//! Small pieces every subcommand shares: the cell and optimizer names on the command
//! line, one-hot encoding, argmax and temperature sampling.

use clap::ValueEnum;
use rnncore::Rng;
use rnncore::{CellKind, TrainConfig};

/// `--cell`: the names are the ones weight files use (`CellKind::name`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Vanilla RNN, tanh.
    #[value(name = "rnn_tanh")]
    RnnTanh,
    /// Vanilla RNN, relu.
    #[value(name = "rnn_relu")]
    RnnRelu,
    /// LSTM (gate order i, f, g, o).
    Lstm,
    /// GRU as in the lecture notes (reset before the product).
    Gru,
    /// GRU linear-before-reset (PyTorch's form).
    #[value(name = "gru_lbr")]
    GruLbr,
}

impl Cell {
    /// The library's cell kind.
    pub fn kind(self) -> CellKind {
        match self {
            Cell::RnnTanh => CellKind::RnnTanh,
            Cell::RnnRelu => CellKind::RnnRelu,
            Cell::Lstm => CellKind::Lstm,
            Cell::Gru => CellKind::Gru,
            Cell::GruLbr => CellKind::GruLbr,
        }
    }
}

/// `--optimizer`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    /// SGD with momentum `--momentum`.
    Sgd,
    /// Adam (PyTorch defaults besides the learning rate).
    Adam,
    /// AdamW with decoupled weight decay `--weight-decay`.
    Adamw,
}

/// The library's optimizer settings for the command-line choices; `clip <= 0` is off.
pub fn train_config(opt: Opt, lr: f32, momentum: f32, weight_decay: f32, clip: f32) -> TrainConfig {
    let c = match opt {
        Opt::Sgd => TrainConfig::sgd(lr, momentum),
        Opt::Adam => TrainConfig::adam(lr),
        Opt::Adamw => TrainConfig::adamw(lr, weight_decay),
    };
    if clip > 0.0 {
        c.with_clip(clip)
    } else {
        c
    }
}

/// Writes the one-hot vector of `index` into `out` (zeros elsewhere).
pub fn one_hot(index: usize, out: &mut [f32]) {
    out.fill(0.0);
    out[index] = 1.0;
}

/// Index of the largest element (the first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Draws an index from probabilities `probs` sharpened by `temperature`:
/// `p_i^(1/T)` renormalised, which equals `softmax(logits / T)`. `T = 0` is argmax.
pub fn sample(probs: &[f32], temperature: f32, rng: &mut Rng) -> usize {
    if temperature <= 0.0 {
        return argmax(probs);
    }
    let inv = 1.0 / temperature as f64;
    // Work in logs relative to the largest probability so that low temperatures do not
    // underflow every weight to zero.
    let top = probs[argmax(probs)].max(f32::MIN_POSITIVE) as f64;
    let w: Vec<f64> = probs
        .iter()
        .map(|&p| ((p.max(f32::MIN_POSITIVE) as f64).ln() - top.ln()) * inv)
        .map(f64::exp)
        .collect();
    let total: f64 = w.iter().sum();
    let mut u = rng.next_f64() * total;
    for (i, wi) in w.iter().enumerate() {
        if u < *wi {
            return i;
        }
        u -= wi;
    }
    argmax(probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_temperature() {
        let p = [0.7f32, 0.2, 0.1];
        let mut rng = Rng::new(1);
        let count = |t: f32, rng: &mut Rng| {
            (0..4000).filter(|_| sample(&p, t, rng) == 0).count() as f64 / 4000.0
        };
        assert!((count(1.0, &mut rng) - 0.7).abs() < 0.03);
        assert!(count(0.3, &mut rng) > 0.95);
        assert_eq!(sample(&p, 0.0, &mut rng), 0);
    }
}
