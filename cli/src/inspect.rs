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
    /// A model file: safetensors, or an RTNeural / GuitarML / NAM (LSTM) JSON file.
    pub file: PathBuf,
}

/// One line for the model's structure: `dense 1->8 (tanh) | gru_lbr x1 H=8 | ...`.
pub fn describe(model: &Model) -> String {
    let c = model.config();
    let mut parts = Vec::new();
    let dense = |d: &rnncore::Dense| {
        format!(
            "dense {} -> {} ({})",
            d.in_size,
            d.out_size,
            d.activation.name()
        )
    };
    if let Some(l) = model.layers() {
        parts.extend(l.pre.iter().map(dense));
    }
    parts.push(format!(
        "{} x{} (input {}, hidden {}{}{})",
        c.cell.name(),
        c.num_layers,
        c.input_size,
        c.hidden_size,
        proj(c),
        if c.bidirectional {
            ", bidirectional"
        } else {
            ""
        }
    ));
    if c.has_head() {
        parts.push(format!(
            "head {} -> {} ({})",
            c.layer_output_dim(),
            c.output_size,
            c.output_activation.name()
        ));
    }
    if let Some(l) = model.layers() {
        parts.extend(l.post.iter().map(dense));
        if l.skip {
            parts.push("+ input (skip)".into());
        }
    }
    parts.join(" | ")
}

/// `, projection P` for an LSTM with projections (`h` is then `P` wide), else nothing.
fn proj(c: &rnncore::ModelConfig) -> String {
    if c.proj_size > 0 {
        format!(", projection {} (h_t = W_hr (o * tanh(c_t)))", c.proj_size)
    } else {
        String::new()
    }
}

/// `rnncore inspect`.
pub fn run(a: &InspectArgs) -> Result<()> {
    let model = Model::load(&a.file)?;
    let c = model.config();
    println!("{}", a.file.display());
    let head = if c.has_head() {
        format!(
            "dense head {} -> {} ({})",
            c.layer_output_dim(),
            c.output_size,
            c.output_activation.name()
        )
    } else if model.layers().is_some_and(|l| !l.post.is_empty()) {
        "dense layers after the stack".into()
    } else {
        "no head (outputs are the top layer's h)".into()
    };
    println!(
        "  cell {}, {} layer(s){}, input {}, hidden {}{}, {head}",
        c.cell.name(),
        c.num_layers,
        if c.bidirectional {
            " (bidirectional: outputs [h_fwd | h_rev])"
        } else {
            ""
        },
        c.input_size,
        c.hidden_size,
        proj(c)
    );
    if model.dropout() > 0.0 {
        println!(
            "  dropout {} between layers (training only)",
            model.dropout()
        );
    }
    if model.layers().is_some() {
        println!("  model: {}", describe(&model));
        println!(
            "  input {} per timestep, output {} per timestep",
            model.input_size(),
            model.output_size()
        );
    }
    let n = model.parameters().len();
    println!(
        "  parameters: {n} ({:.1} KiB as f32)",
        n as f64 * 4.0 / 1024.0
    );
    println!("  state per stream: {} floats", c.state_len(1));
    let header = match modelfile::read_header(&a.file) {
        Ok(h) if !h.tensors.is_empty() => h,
        _ => {
            // Not safetensors (an RTNeural, GuitarML or NAM file): the canonical tensors
            // it was converted to, as `rnncore convert` would write them.
            println!(
                "  imported; canonical tensors ({}):",
                model.layout().entries().len()
            );
            let w = model
                .layout()
                .entries()
                .iter()
                .map(|e| e.name.len())
                .max()
                .unwrap_or(0);
            for e in model.layout().entries() {
                println!("    {:<w$}  {:?}", e.name, e.shape);
            }
            return Ok(());
        }
    };
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
