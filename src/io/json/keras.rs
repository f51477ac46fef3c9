//! RTNeural's JSON export of a Keras model (RTNeural `python/model_utils.py`,
//! `save_model_json`): `{"in_shape": [.., I], "layers": [{"type", "activation", "shape",
//! "weights"}, ...]}`, each layer's `weights` as Keras holds them:
//!
//! | type | weights | here |
//! | --- | --- | --- |
//! | `dense`, `time-distributed-dense` | kernel `[in][out]`, bias `[out]` (absent without bias) | transposed to `[out, in]` |
//! | `activation` | none | folded into the dense layer before it |
//! | `lstm` | kernel `[in][4H]`, recurrent kernel `[H][4H]`, bias `[4H]`; gates `i,f,c,o` | transposed; `i,f,c,o` is PyTorch's `i,f,g,o`; `b_hh = 0` |
//! | `gru`, `reset_after=True` | kernel `[in][3H]`, recurrent `[H][3H]`, bias `[2][3H]` (input, recurrent); gates `z,r,h` | transposed, permuted to `r,z,n`: [`CellKind::GruLbr`] |
//! | `gru`, `reset_after=False` | as above with bias `[3H]` | [`CellKind::Gru`] (the notes' form), `b_hh = 0` |
//!
//! Keras' recurrent layers must use their default `tanh` activation. Other layer types
//! the exporter writes (`conv1d`, `conv2d`, `prelu`, `batchnorm`, ...) are refused.

use super::{bad, matrix, transpose, vector, Builder, DenseW, Recurrent};
use crate::config::CellKind;
use crate::error::Result;
use crate::layers::{Activation, Dense};
use crate::model::Model;
use serde_json::Value;

/// Keras' gate blocks in rnncore's order: GRU `z,r,h` -> `r,z,n`.
const GRU_FROM_KERAS: [usize; 3] = [1, 0, 2];

/// Parses RTNeural's Keras JSON.
pub fn parse(v: &Value) -> Result<Model> {
    let in_shape = v
        .get("in_shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad!("RTNeural model: missing `in_shape` list"))?;
    let mut width = super::size(in_shape.last(), "in_shape[-1]")?;
    let layers = v
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad!("RTNeural model: `layers` is not a list"))?;
    let mut b = Builder::default();
    for (i, l) in layers.iter().enumerate() {
        let ty = l
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad!("layer {i}: missing `type`"))?;
        let what = format!("layer {i} ({ty})");
        let act = l.get("activation").and_then(Value::as_str).unwrap_or("");
        let weights = || {
            l.get("weights")
                .and_then(Value::as_array)
                .ok_or_else(|| bad!("{what}: missing `weights` list"))
        };
        match ty {
            "dense" | "time-distributed-dense" => {
                let w = weights()?;
                let (k, rows, out) = matrix(
                    w.first().ok_or_else(|| bad!("{what}: no kernel"))?,
                    &format!("{what} kernel"),
                )?;
                if rows != width {
                    return Err(bad!(
                        "{what}: kernel has {rows} rows but the layer gets {width} features"
                    ));
                }
                let bias = match w.get(1) {
                    Some(bv) => vector(bv, &format!("{what} bias"))?,
                    None => vec![0.0; out],
                };
                if bias.len() != out || w.len() > 2 {
                    return Err(bad!(
                        "{what}: expected a kernel [{rows}][{out}] and a bias [{out}]"
                    ));
                }
                b.dense(DenseW {
                    dense: Dense::new(rows, out, activation(act, &what)?),
                    weight: transpose(&k, rows, out),
                    bias,
                });
                width = out;
            }
            "activation" => {
                let a = activation(act, &what)?;
                let last = if b.rec.is_empty() {
                    b.pre.last_mut()
                } else {
                    b.post.last_mut()
                };
                match last {
                    Some(d) if d.dense.activation == Activation::Identity => d.dense.activation = a,
                    _ => {
                        return Err(bad!(
                            "{what}: a separate activation is supported only right after a \
                             dense layer without one"
                        ))
                    }
                }
            }
            "lstm" | "gru" => {
                if act != "tanh" {
                    return Err(bad!(
                        "{what}: activation {act:?}; rnncore's cells use tanh (Keras' default)"
                    ));
                }
                let w = weights()?;
                if w.len() != 3 {
                    return Err(bad!(
                        "{what}: expected 3 weight tensors (kernel, recurrent kernel, bias), found {}",
                        w.len()
                    ));
                }
                let g = if ty == "lstm" { 4 } else { 3 };
                let (k, rows, cols) = matrix(&w[0], &format!("{what} kernel"))?;
                if cols % g != 0 || cols == 0 {
                    return Err(bad!(
                        "{what}: kernel has {cols} columns, not a multiple of {g}"
                    ));
                }
                let h = cols / g;
                if rows != width {
                    return Err(bad!(
                        "{what}: kernel has {rows} rows but the layer gets {width} features"
                    ));
                }
                if let Some(units) = l
                    .get("shape")
                    .and_then(Value::as_array)
                    .and_then(|s| s.last())
                {
                    if units.as_u64() != Some(h as u64) {
                        return Err(bad!(
                            "{what}: `shape` says {units} units but the kernel holds {h}"
                        ));
                    }
                }
                let (r, rr, rc) = matrix(&w[1], &format!("{what} recurrent kernel"))?;
                if (rr, rc) != (h, g * h) {
                    return Err(bad!(
                        "{what}: recurrent kernel is [{rr}][{rc}], expected [{h}][{}]",
                        g * h
                    ));
                }
                let w_ih = transpose(&k, rows, g * h);
                let w_hh = transpose(&r, h, g * h);
                let rec = if ty == "lstm" {
                    let bias = vector(&w[2], &format!("{what} bias"))?;
                    if bias.len() != 4 * h {
                        return Err(bad!(
                            "{what}: bias has {} values, expected {}",
                            bias.len(),
                            4 * h
                        ));
                    }
                    Recurrent {
                        cell: CellKind::Lstm,
                        input_size: rows,
                        hidden_size: h,
                        w_ih,
                        w_hh,
                        b_ih: bias,
                        b_hh: vec![0.0; 4 * h],
                        what,
                    }
                } else {
                    let (cell, b_ih, b_hh) = match &w[2] {
                        Value::Array(a) if a.first().is_some_and(Value::is_array) => {
                            let (bm, br, bc) = matrix(&w[2], &format!("{what} bias"))?;
                            if (br, bc) != (2, 3 * h) {
                                return Err(bad!(
                                    "{what}: bias is [{br}][{bc}], expected [2][{}] \
                                     (reset_after=True) or [{}]",
                                    3 * h,
                                    3 * h
                                ));
                            }
                            (CellKind::GruLbr, bm[..3 * h].to_vec(), bm[3 * h..].to_vec())
                        }
                        other => {
                            let bv = vector(other, &format!("{what} bias"))?;
                            if bv.len() != 3 * h {
                                return Err(bad!(
                                    "{what}: bias has {} values, expected [2][{}] \
                                     (reset_after=True) or {} (reset_after=False)",
                                    bv.len(),
                                    3 * h,
                                    3 * h
                                ));
                            }
                            (CellKind::Gru, bv, vec![0.0; 3 * h])
                        }
                    };
                    Recurrent {
                        cell,
                        input_size: rows,
                        hidden_size: h,
                        w_ih: permute_rows(&w_ih, h, rows, &GRU_FROM_KERAS),
                        w_hh: permute_rows(&w_hh, h, h, &GRU_FROM_KERAS),
                        b_ih: permute_rows(&b_ih, h, 1, &GRU_FROM_KERAS),
                        b_hh: permute_rows(&b_hh, h, 1, &GRU_FROM_KERAS),
                        what,
                    }
                };
                b.recurrent(rec)?;
                width = h;
            }
            other => {
                return Err(bad!(
                    "layer {i} is of type {other:?}, which rnncore does not run (it runs \
                     dense, time-distributed-dense, activation, lstm and gru layers)"
                ))
            }
        }
    }
    b.build()
}

/// Gate blocks of `[G*h][cols]` rearranged: block `k` of the result is block `from[k]`.
fn permute_rows(m: &[f32], h: usize, cols: usize, from: &[usize]) -> Vec<f32> {
    let n = h * cols;
    from.iter()
        .flat_map(|&k| m[k * n..(k + 1) * n].iter().copied())
        .collect()
}

/// A Keras activation name as RTNeural writes it (`""` is linear).
fn activation(name: &str, what: &str) -> Result<Activation> {
    match name {
        "" | "linear" => Ok(Activation::Identity),
        "tanh" => Ok(Activation::Tanh),
        "relu" => Ok(Activation::Relu),
        "sigmoid" => Ok(Activation::Sigmoid),
        "elu" => Ok(Activation::Elu),
        "softmax" => Ok(Activation::Softmax),
        other => Err(bad!(
            "{what}: activation {other:?} is not supported (identity, tanh, relu, sigmoid, \
             elu, softmax)"
        )),
    }
}
