//! `rnncore inspect FILE`: what a model file holds. The file is loaded with
//! `Model::load` first, so anything the library would refuse is reported with the
//! loader's own message and a non-zero exit.

use crate::error::Result;
use crate::modelfile;
use clap::Args;
use rnncore::Model;
use std::path::PathBuf;

/// Options of `rnncore inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A safetensors model file.
    pub file: PathBuf,
}

/// `rnncore inspect`.
pub fn run(a: &InspectArgs) -> Result<()> {
    let model = Model::load(&a.file)?;
    let header = modelfile::read_header(&a.file)?;
    let c = model.config();
    println!("{}", a.file.display());
    let head = if c.has_head() {
        format!(
            "dense head {} -> {} ({})",
            c.hidden_size,
            c.output_size,
            c.output_activation.name()
        )
    } else {
        "no head (outputs are the top layer's h)".into()
    };
    println!(
        "  cell {}, {} layer(s), input {}, hidden {}, {head}",
        c.cell.name(),
        c.num_layers,
        c.input_size,
        c.hidden_size
    );
    let n = model.parameters().len();
    println!(
        "  parameters: {n} ({:.1} KiB as f32)",
        n as f64 * 4.0 / 1024.0
    );
    println!("  state per stream: {} floats", c.state_len(1));
    println!("  tensors ({}):", header.tensors.len());
    let w = header
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0);
    for t in &header.tensors {
        println!("    {:<w$}  {:<4} {:?}", t.name, t.dtype, t.shape);
    }
    if header.metadata.is_empty() {
        println!("  metadata: none (config inferred from the shapes)");
    } else {
        println!("  metadata:");
        let w = header.metadata.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, v) in &header.metadata {
            let full = format!("{v:?}");
            let mut shown: String = full.chars().take(100).collect();
            if shown.len() < full.len() {
                shown += "...";
            }
            println!("    {k:<w$} = {shown}");
        }
    }
    Ok(())
}
