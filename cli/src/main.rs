//! `rnncore`: train, sample, run, inspect and benchmark vanilla RNN, LSTM and GRU models
//! with the rnncore library, and measure why plain RNN gradients vanish.
//!
//! Every subcommand goes through the library's public API only. Errors are printed as one
//! message with a non-zero exit status; nothing here panics on bad input.

#![forbid(unsafe_code)]

mod common;
mod error;
mod generate;
mod modelfile;
mod progress;
mod tasks;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Train, run and inspect vanilla RNN, LSTM and GRU models on the CPU (rnncore).
///
/// With no arguments: a one-minute tour (trains a character-level language model on
/// embedded text, samples from it, and prints the vanishing-gradient table).
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => Ok(()),
        Some(Command::Train(a)) => tasks::run(a),
        Some(Command::Generate(a)) => generate::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
