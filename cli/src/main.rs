//! `rnncore`: train, sample, run, inspect and benchmark vanilla RNN, LSTM and GRU models
//! with the rnncore library, and measure why plain RNN gradients vanish.
//!
//! Every subcommand goes through the library's public API only. Errors are printed as one
//! message with a non-zero exit status; nothing here panics on bad input.

#![forbid(unsafe_code)]

mod bench;
mod common;
mod convert;
mod error;
mod generate;
mod gradients;
mod inspect;
mod modelfile;
mod progress;
mod run;
mod svg;
mod tasks;
mod tour;
mod wav;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Train, run and inspect vanilla RNN, LSTM and GRU models on the CPU (rnncore).
///
/// With no arguments: a tour of about half a minute on embedded data (a character-level
/// language model trained and sampled, dates translated by an encoder-decoder, a
/// classifier, a waveform generator, and the vanishing-gradient table).
#[derive(Parser, Debug)]
#[command(name = "rnncore", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model on a task whose data is made in code, and save it (safetensors).
    Train(tasks::TrainArgs),
    /// Sample text from a model made by `train --task charlm`.
    Generate(generate::GenerateArgs),
    /// Run a model over a CSV, raw float32 or WAV file, streaming in blocks.
    Run(run::RunArgs),
    /// Show a model file: cell, sizes, parameter count, tensors, metadata.
    Inspect(inspect::InspectArgs),
    /// Write any model file rnncore reads (RTNeural, GuitarML, NAM LSTM JSON) as safetensors.
    Convert(convert::ConvertArgs),
    /// Measure step latency, block forward and sequence throughput on this machine.
    Bench(bench::BenchArgs),
    /// The vanishing-gradient experiment: ∂L/∂h_t against distance, and the adding problem.
    Gradients(gradients::GradientsArgs),
    /// The tour that runs when no subcommand is given.
    Tour,
}

/// A closed stdout (`rnncore inspect m.json | head -1`) ends the program quietly, as it
/// would a C program by SIGPIPE, instead of `println!`'s panic and backtrace. Other
/// panics keep the default report.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141); // the shell's status for a process ended by SIGPIPE
        }
        default(info)
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let result = match &cli.command {
        None | Some(Command::Tour) => tour::run(),
        Some(Command::Train(a)) => tasks::run(a),
        Some(Command::Generate(a)) => generate::run(a),
        Some(Command::Run(a)) => run::run(a),
        Some(Command::Inspect(a)) => inspect::run(a),
        Some(Command::Convert(a)) => convert::run(a),
        Some(Command::Bench(a)) => bench::run(a),
        Some(Command::Gradients(a)) => gradients::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
