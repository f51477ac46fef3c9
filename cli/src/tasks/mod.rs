//! `rnncore train`: the three shapes of the lecture notes as tasks whose data is made in
//! code. Each task module has the data generator, a `train` that returns the trained
//! model(s) in memory (the tour uses that), and the evaluation on fresh data.
//!
//! | task | shape | model |
//! | --- | --- | --- |
//! | `charlm` | many-to-many, same length | one-hot chars in, softmax over chars out, every step |
//! | `classify` | many-to-one | one-hot symbols in, softmax over K motifs at the last step |
//! | `dates` | many-to-many, different lengths | encoder (words) → state → decoder (digits) |
//! | `generate-from-vector` | one-to-many | a (shape, frequency) vector repeated as input, a waveform out |

pub mod charlm;
pub mod classify;
pub mod dates;
pub mod wave;

use crate::common::{train_config, Cell, Opt};
use crate::error::{fail, Result};
use clap::{Args, ValueEnum};
use rnncore::{CellKind, TrainConfig};
use std::path::PathBuf;

/// `--task`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Character-level language model on a text file (many-to-many).
    Charlm,
    /// Which of K motifs does a sequence of symbols contain (many-to-one).
    Classify,
    /// Dates in words to digits, "twelfth of march nineteen ninety" -> "1990-03-12"
    /// (encoder-decoder).
    Dates,
    /// A waveform of a given shape and frequency from a vector (one-to-many).
    #[value(name = "generate-from-vector")]
    GenerateFromVector,
}

/// Options of `rnncore train`. Unset options take the task's defaults (see `--help`).
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// What to learn.
    #[arg(long, value_enum, default_value_t = Task::Charlm)]
    pub task: Task,
    /// Recurrent cell [default: lstm for charlm and dates, gru otherwise].
    #[arg(long, value_enum)]
    pub cell: Option<Cell>,
    /// Hidden units per layer [default: 128 charlm, 32 classify, 64 dates, 32 generate-from-vector].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Recurrent layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = Opt::Adam)]
    pub optimizer: Opt,
    /// Learning rate [default: 0.1 for sgd; adam/adamw: 0.005].
    #[arg(long)]
    pub lr: Option<f32>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f32,
    /// Clip the global gradient norm to this (0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f32,
    /// Timesteps per training sequence [default: 64 charlm, 24 classify, 48 generate-from-vector;
    /// dates: fixed by the data, 10 words in and 10 characters out].
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Optimizer steps [default: 1500 charlm, 400 classify, 1500 dates, 1500 generate-from-vector].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Sequences per step [default: 32].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Threads for batched work (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Seed for the weights and the data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to save the model (safetensors) [default: TASK.safetensors; dates writes
    /// OUT_STEM.encoder.safetensors and OUT_STEM.decoder.safetensors].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// charlm: the text to learn (UTF-8) [default: an embedded selection of Shakespeare's sonnets].
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// classify: number of motifs K (2..=8).
    #[arg(long, default_value_t = 4)]
    pub classes: usize,
    /// Print a log line every N steps [default: steps / 10].
    #[arg(long)]
    pub log_every: Option<usize>,
}

/// Fully resolved settings of one training run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub cell: CellKind,
    pub hidden: usize,
    pub layers: usize,
    pub seq_len: usize,
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
    pub log_every: usize,
    pub train: TrainConfig,
}

/// A task's defaults for the options left unset.
pub struct Defaults {
    pub cell: Cell,
    pub hidden: usize,
    pub seq_len: usize,
    pub steps: usize,
    /// Adam/AdamW learning rate (SGD defaults to 0.1).
    pub lr: f32,
}

impl TrainArgs {
    /// The settings for a task with these defaults.
    pub fn settings(&self, d: Defaults) -> Settings {
        let steps = self.steps.unwrap_or(d.steps);
        let lr = self.lr.unwrap_or(if self.optimizer == Opt::Sgd {
            0.1
        } else {
            d.lr
        });
        Settings {
            cell: self.cell.unwrap_or(d.cell).kind(),
            hidden: self.hidden.unwrap_or(d.hidden),
            layers: self.layers,
            seq_len: self.seq_len.unwrap_or(d.seq_len),
            steps,
            batch: self.batch.unwrap_or(32),
            seed: self.seed,
            log_every: self.log_every.unwrap_or((steps / 10).max(1)),
            train: train_config(
                self.optimizer,
                lr,
                self.momentum,
                self.weight_decay,
                self.clip,
            ),
        }
    }

    /// `--out`, or `default` when unset.
    pub fn out_or(&self, default: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from(default))
    }
}

impl Settings {
    /// One line describing the run.
    pub fn describe(&self) -> String {
        let t = &self.train;
        let clip = if t.clip_norm > 0.0 {
            format!("clip {}", t.clip_norm)
        } else {
            "no clip".into()
        };
        format!(
            "{} H={} layers={}, {:?} lr {}, {clip}, batch {}, {} steps",
            self.cell.name(),
            self.hidden,
            self.layers,
            t.optimizer,
            t.learning_rate,
            self.batch,
            self.steps
        )
    }
}

/// `rnncore train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    for (name, v) in [
        ("--batch", args.batch),
        ("--seq-len", args.seq_len),
        ("--hidden", args.hidden),
    ] {
        if v == Some(0) {
            fail!("{name} is 0, expected >= 1");
        }
    }
    rnncore::set_num_threads(args.threads)?;
    match args.task {
        Task::Charlm => charlm::command(args),
        Task::Classify => classify::command(args),
        Task::Dates => dates::command(args),
        Task::GenerateFromVector => wave::command(args),
    }
}
