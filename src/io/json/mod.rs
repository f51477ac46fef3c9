//! Models from the audio world's JSON files, recognised by their content:
//!
//! | format | recognised by | see |
//! | --- | --- | --- |
//! | RTNeural's Keras export (`python/model_utils.py`) | `layers` list | `keras.rs` |
//! | RTNeural's PyTorch helper files (a `state_dict` of nested lists) | `*.weight_ih_l{k}` keys | `torch.rs` |
//! | GuitarML / Automated-GuitarAmpModelling (`SimpleRNN.save_model`) | `model_data` + `state_dict` | `torch.rs` |
//! | Neural Amp Modeler `.nam`, architecture `LSTM` | `architecture` + `weights` | [`nam`] |
//!
//! Every importer writes the same canonical form: PyTorch's layout and gate order for
//! the recurrent stack (LSTM `i,f,g,o`, GRU `r,z,n`), `[out, in]` dense weights. Weights
//! are transposed and gates permuted here and nowhere else. Anything a format can hold
//! that rnncore does not run (convolutions, batch norm, PReLU, WaveNet, ...) is refused
//! with an [`Error::Format`] naming it; nothing is guessed.
#![forbid(unsafe_code)]

pub(crate) mod keras;
pub mod nam;
pub(crate) mod torch;

use crate::config::{CellKind, ModelConfig};
use crate::error::{Error, Result};
use crate::layers::{Dense, Layers};
use crate::model::Model;
use serde_json::Value;

/// Largest JSON model file read: 256 MiB (about ten million weights written as text),
/// far beyond any model these formats hold, so a hostile file cannot make the parser
/// build an unbounded tree. Files are also bounded by [`super::MAX_FILE_BYTES`].
pub const MAX_JSON_BYTES: u64 = 256 << 20;

macro_rules! bad {
    ($($arg:tt)*) => { $crate::error::Error::Format(format!($($arg)*)) };
}
pub(crate) use bad;

/// Whether `bytes` look like a JSON document (first non-blank byte `{`) rather than a
/// safetensors file (an 8-byte header length, then the header's `{`).
pub(crate) fn looks_like_json(bytes: &[u8]) -> bool {
    let safetensors = bytes.len() >= 9 && bytes[8] == b'{';
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    !safetensors && first == Some(&b'{')
}

/// Parses a model from the bytes of a JSON model file of any of the formats above.
pub fn from_json(bytes: &[u8]) -> Result<Model> {
    if bytes.len() as u64 > MAX_JSON_BYTES {
        return Err(bad!(
            "JSON model is {} bytes, over the {MAX_JSON_BYTES}-byte limit",
            bytes.len()
        ));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad!("not valid JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err(bad!("JSON model is not an object"));
    };
    if obj.contains_key("layers") {
        keras::parse(&v)
    } else if obj.contains_key("model_data") {
        torch::parse_guitarml(&v)
    } else if obj.contains_key("architecture") {
        nam::parse(&v).map(|n| n.model)
    } else if obj.keys().any(|k| k.contains("weight_ih_l")) {
        torch::parse_torch_bytes(bytes)
    } else {
        Err(bad!(
            "unrecognised JSON model: expected RTNeural's `layers` list, GuitarML's \
             `model_data` and `state_dict`, a NAM file's `architecture`, or a PyTorch \
             state_dict with `weight_ih_l0`"
        ))
    }
}

/// One recurrent layer in canonical form.
pub(crate) struct Recurrent {
    pub cell: CellKind,
    pub input_size: usize,
    pub hidden_size: usize,
    /// `[G*H, in]`, `[G*H, H]`, `[G*H]`, `[G*H]`.
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub b_ih: Vec<f32>,
    pub b_hh: Vec<f32>,
    /// Where it came from, for messages (`layer 2 (gru)`).
    pub what: String,
}

/// One dense layer in canonical form: `weight` `[out, in]`.
pub(crate) struct DenseW {
    pub dense: Dense,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A model read from a file: dense layers, recurrent layers, dense layers, skip.
#[derive(Default)]
pub(crate) struct Builder {
    pub pre: Vec<DenseW>,
    pub rec: Vec<Recurrent>,
    pub post: Vec<DenseW>,
    pub skip: bool,
}

impl Builder {
    /// Appends a dense layer where it falls: before the stack while there is none, after
    /// it otherwise.
    pub fn dense(&mut self, d: DenseW) {
        if self.rec.is_empty() {
            self.pre.push(d)
        } else {
            self.post.push(d)
        }
    }

    /// Appends a recurrent layer; refuses one after dense layers that follow the stack.
    pub fn recurrent(&mut self, r: Recurrent) -> Result<()> {
        if !self.post.is_empty() {
            return Err(bad!(
                "{}: a recurrent layer after a dense layer that follows the recurrent stack; \
                 rnncore runs dense layers only before and after one stack",
                r.what
            ));
        }
        if let Some(first) = self.rec.first() {
            if first.cell != r.cell || first.hidden_size != r.hidden_size {
                return Err(bad!(
                    "{}: {} with {} units after {} with {}; every recurrent layer of a model \
                     must have the same cell and size",
                    r.what,
                    r.cell.name(),
                    r.hidden_size,
                    first.cell.name(),
                    first.hidden_size
                ));
            }
        }
        self.rec.push(r);
        Ok(())
    }

    /// The model, every shape checked and every weight finite.
    pub fn build(self) -> Result<Model> {
        let Some(first) = self.rec.first() else {
            return Err(bad!(
                "the model has no recurrent layer (LSTM, GRU or RNN); rnncore runs recurrent \
                 models"
            ));
        };
        let config = ModelConfig::new(
            first.cell,
            first.input_size,
            first.hidden_size,
            self.rec.len(),
        );
        config.validate().map_err(|e| bad!("{}", e.message()))?;
        let mut params = Vec::new();
        for (k, r) in self.rec.iter().enumerate() {
            let inp = if k == 0 {
                config.input_size
            } else {
                config.hidden_size
            };
            if r.input_size != inp {
                return Err(bad!(
                    "{} takes {} features but gets {inp}",
                    r.what,
                    r.input_size
                ));
            }
            let gh = r.cell.gates() * r.hidden_size;
            for (name, t, n) in [
                ("input weights", &r.w_ih, gh * inp),
                ("recurrent weights", &r.w_hh, gh * r.hidden_size),
                ("input bias", &r.b_ih, gh),
                ("recurrent bias", &r.b_hh, gh),
            ] {
                if t.len() != n {
                    return Err(bad!(
                        "{}: {name} have {} values, expected {n}",
                        r.what,
                        t.len()
                    ));
                }
                finite(&format!("{} {name}", r.what), t)?;
                params.extend_from_slice(t);
            }
        }
        for d in self.pre.iter().chain(&self.post) {
            finite("dense weights", &d.weight)?;
            finite("dense bias", &d.bias)?;
            params.extend_from_slice(&d.weight);
            params.extend_from_slice(&d.bias);
        }
        let layers = Layers {
            pre: self.pre.iter().map(|d| d.dense).collect(),
            post: self.post.iter().map(|d| d.dense).collect(),
            skip: self.skip,
        };
        Model::with_layers(config, layers, params).map_err(|e| match e {
            Error::Alloc(m) => Error::Alloc(m),
            other => bad!("{}", other.message()),
        })
    }
}

fn finite(what: &str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(bad!("{what}: non-finite value ({}) at index {i}", v[i])),
        None => Ok(()),
    }
}

/// A JSON number as f32, refusing values outside f32's range.
fn number(v: &Value, what: &str) -> Result<f32> {
    let x = v
        .as_f64()
        .ok_or_else(|| bad!("{what}: expected a number, found {}", short(v)))?;
    let f = x as f32;
    if !f.is_finite() {
        return Err(bad!("{what}: {x} is not a finite f32"));
    }
    Ok(f)
}

/// A short rendering of a JSON value for messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(37).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// A list of numbers.
pub(crate) fn vector(v: &Value, what: &str) -> Result<Vec<f32>> {
    let a = v
        .as_array()
        .ok_or_else(|| bad!("{what}: expected a list of numbers, found {}", short(v)))?;
    a.iter().map(|x| number(x, what)).collect()
}

/// A rectangular list of lists of numbers: `(values row-major, rows, cols)`.
pub(crate) fn matrix(v: &Value, what: &str) -> Result<(Vec<f32>, usize, usize)> {
    let rows = v.as_array().ok_or_else(|| {
        bad!(
            "{what}: expected a matrix (list of lists), found {}",
            short(v)
        )
    })?;
    let mut out = Vec::new();
    let mut cols = None;
    for (i, r) in rows.iter().enumerate() {
        let row = vector(r, what)?;
        match cols {
            None => cols = Some(row.len()),
            Some(c) if c != row.len() => {
                return Err(bad!(
                    "{what}: row {i} has {} values, row 0 has {c}",
                    row.len()
                ))
            }
            _ => {}
        }
        out.extend(row);
    }
    let cols = cols.unwrap_or(0);
    if rows.is_empty() || cols == 0 {
        return Err(bad!("{what}: empty matrix"));
    }
    Ok((out, rows.len(), cols))
}

/// `m` `[rows][cols]` transposed to `[cols][rows]`.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

/// A non-negative integer field.
pub(crate) fn size(v: Option<&Value>, what: &str) -> Result<usize> {
    let v = v.ok_or_else(|| bad!("missing `{what}`"))?;
    v.as_u64()
        .and_then(|u| usize::try_from(u).ok())
        .filter(|&u| u <= crate::config::MAX_DIM)
        .ok_or_else(|| bad!("`{what}` is {}, expected a size", short(v)))
}
