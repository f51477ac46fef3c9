//! `rnncore convert IN OUT.safetensors`: any file `Model::load` reads (safetensors,
//! RTNeural's Keras or PyTorch JSON, GuitarML / Automated-GuitarAmpModelling JSON, a NAM
//! LSTM) written as rnncore's canonical safetensors: PyTorch's names for the recurrent
//! stack, `pre.{k}.*` / `post.{k}.*` and their metadata for the dense layers around it.
//! The written file is read back and checked to give the same weights.

use crate::error::{fail, Result};
use clap::Args;
use rnncore::Model;
use std::path::PathBuf;

/// Options of `rnncore convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The model to read (safetensors, RTNeural JSON, GuitarML JSON or a NAM LSTM).
    pub input: PathBuf,
    /// The safetensors file to write (replaced atomically).
    pub output: PathBuf,
}

/// `rnncore convert`.
pub fn run(a: &ConvertArgs) -> Result<()> {
    let model = Model::load(&a.input)?;
    model.save(&a.output)?;
    let back = Model::load(&a.output)?;
    if back.parameters() != model.parameters() || back.layers() != model.layers() {
        fail!(
            "{} does not read back as the model that was written",
            a.output.display()
        );
    }
    println!(
        "{} -> {}: {}, {} parameters",
        a.input.display(),
        a.output.display(),
        crate::inspect::describe(&model),
        model.parameters().len()
    );
    Ok(())
}
