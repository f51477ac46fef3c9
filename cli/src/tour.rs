//! The tour: what `rnncore` with no arguments does, in about a minute on two cores.
//!
//! 1. many-to-many: a character-level LSTM learns the embedded sonnets (loss falling);
//! 2. it writes text, one character at a time through `State` and `Model::step`;
//! 3. encoder-decoder: dates in words to digits, two models joined through the state;
//! 4. many-to-one: which of four motifs a sequence contains;
//! 5. one-to-many: a waveform from a (shape, frequency) vector;
//! 6. the vanishing-gradient experiment, shortened: ∂L/∂h_t against distance at
//!    initialisation and the adding problem at T = 100 only (with the trained models'
//!    gradient profile), chart written to the temp directory.

use crate::error::Result;
use crate::gradients::{self, GradientsArgs};
use crate::tasks::{charlm, classify, dates, wave, Settings};
use clap::Parser;
use rnncore::Rng;
use rnncore::{CellKind, TrainConfig};
use std::time::Instant;

#[derive(Parser)]
struct GradientsOnly {
    #[command(flatten)]
    args: GradientsArgs,
}

/// Runs the tour.
pub fn run() -> Result<()> {
    let start = Instant::now();
    println!(
        "rnncore {}: a one-minute tour. `rnncore --help` lists the subcommands.\n",
        rnncore::version()
    );
    println!("[1/6] Many-to-many: a character-level LSTM reads the sonnets and predicts each next character.");
    let s = Settings {
        cell: CellKind::Lstm,
        hidden: 128,
        layers: 1,
        seq_len: 64,
        steps: 500,
        batch: 32,
        seed: 1,
        log_every: 50,
        train: TrainConfig::adam(0.005).with_clip(1.0),
    };
    let lm = charlm::train(&s, charlm::DEFAULT_TEXT, "the embedded sonnets")?;

    println!("\n[2/6] Sampling from it one character at a time (State + Model::step, temperature 0.7):\n");
    let text = charlm::generate(&lm, "Shall I", 320, 0.7, &mut Rng::new(3))?;
    for line in text.lines() {
        println!("    {line}");
    }

    println!(
        "\n    (The held-out loss stops improving long before the training loss: 8.6 KB of text is \
         soon memorised. `rnncore train --task charlm --text FILE` learns from any text.)"
    );

    println!("\n[3/6] Many-to-many, different lengths: an encoder reads a date in words, its final state starts a decoder that writes digits.");
    let s = Settings {
        cell: CellKind::Lstm,
        hidden: 64,
        layers: 1,
        seq_len: dates::MAX_WORDS,
        steps: 800,
        batch: 32,
        seed: 1,
        log_every: 200,
        train: TrainConfig::adam(0.01).with_clip(1.0),
    };
    dates::train(&s)?;

    println!("\n[4/6] Many-to-one: a GRU reads 24 symbols and says which of four 3-symbol motifs was among them.");
    let s = Settings {
        cell: CellKind::Gru,
        hidden: 32,
        layers: 1,
        seq_len: 24,
        steps: 400,
        batch: 32,
        seed: 1,
        log_every: 100,
        train: TrainConfig::adam(0.005).with_clip(1.0),
    };
    classify::train(&s, 4)?;

    println!("\n[5/6] One-to-many: a GRU turns a (shape, frequency) vector into a waveform.");
    let s = Settings {
        cell: CellKind::Gru,
        hidden: 32,
        layers: 1,
        seq_len: 48,
        steps: 1500,
        batch: 32,
        seed: 1,
        log_every: 500,
        train: TrainConfig::adam(0.005).with_clip(1.0),
    };
    wave::train(&s)?;

    println!(
        "\n[6/6] Why LSTM and GRU: how much gradient reaches a state d steps before the loss."
    );
    let svg = std::env::temp_dir().join("rnncore-tour-gradients.svg");
    let g = GradientsOnly::try_parse_from([
        "gradients".as_ref(),
        "--lengths".as_ref(),
        "100".as_ref(),
        "--svg".as_ref(),
        svg.as_os_str(),
    ])
    .map_err(|e| crate::error::CliError(e.to_string()))?;
    gradients::run(&g.args)?;
    println!(
        "\nTour finished in {:.0} s. Next: `rnncore gradients` (all lengths, about 20 s), \
         `rnncore train --task dates|classify|generate-from-vector`, `rnncore bench`.",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
