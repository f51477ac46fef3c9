//! Neural Amp Modeler `.nam` files whose `architecture` is `LSTM`, as NeuralAmpModelerCore
//! reads them (`NAM/lstm.cpp`, `NAM/get_dsp.cpp`): `{"version", "architecture": "LSTM",
//! "config": {"input_size", "hidden_size", "num_layers", "in_channels"?, "out_channels"?},
//! "weights": [...], "sample_rate"?}`. `weights` is one flat list:
//!
//! - per layer `k`: `W` `[4H][in_k + H]` row-major (the input columns first, then the
//!   recurrent ones; gates `i,f,g,o` as PyTorch), `b` `[4H]`, then the layer's learned
//!   initial `h` `[H]` and `c` `[H]`;
//! - the head: `[out_channels][H]` row-major, then `[out_channels]`.
//!
//! `W` is split into `W_ih` and `W_hh` and `b` becomes `b_ih` (`b_hh = 0`); nothing is
//! permuted. File versions 0.5.0 up to 0.7.x are read (the range NeuralAmpModelerCore
//! 0.5.5 supports); others, and every other architecture (WaveNet, ConvNet, Linear,
//! containers, ...), are refused. The learned initial state has no place in a [`Model`]
//! (streams start from zeros): [`parse`] returns it beside the model, and
//! [`Model::load`] leaves it out (NAM itself runs half a second of silence through a
//! model before use, which washes most of it out).

use super::{bad, Builder, DenseW, Recurrent};
use crate::config::CellKind;
use crate::error::Result;
use crate::layers::{Activation, Dense};
use crate::model::Model;
use serde_json::Value;

/// A NAM LSTM: the model, its learned initial state (snapshot layout for one stream),
/// and the sample rate the file names (if any).
pub struct NamLstm {
    /// The LSTM stack and its dense head.
    pub model: Model,
    /// The learned initial state, in [`crate::State`]'s snapshot layout for one stream
    /// (set it with [`crate::State::set`] before the first step).
    pub initial_state: Vec<f32>,
    /// The sample rate the file names, if it names one.
    pub sample_rate: Option<f64>,
}

/// Parses a `.nam` file's JSON.
pub fn parse(v: &Value) -> Result<NamLstm> {
    let version = v
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| bad!("NAM file: missing `version`"))?;
    let parts: Vec<Option<u64>> = version.split('.').map(|p| p.parse().ok()).collect();
    let ok = matches!(parts[..], [Some(0), Some(5..=7), Some(_)]);
    if !ok {
        return Err(bad!(
            "NAM file version {version:?} is not supported (rnncore reads 0.5.0 to 0.7.x)"
        ));
    }
    let arch = v
        .get("architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| bad!("NAM file: missing `architecture`"))?;
    if arch != "LSTM" {
        return Err(bad!(
            "NAM architecture {arch:?} is not supported (rnncore reads NAM's LSTM models)"
        ));
    }
    let c = v
        .get("config")
        .ok_or_else(|| bad!("NAM file: missing `config`"))?;
    let input_size = super::size(c.get("input_size"), "config.input_size")?;
    let h = super::size(c.get("hidden_size"), "config.hidden_size")?;
    let layers = super::size(c.get("num_layers"), "config.num_layers")?;
    let in_ch = c
        .get("in_channels")
        .map_or(Ok(1), |x| super::size(Some(x), "config.in_channels"))?;
    let out_ch = c
        .get("out_channels")
        .map_or(Ok(1), |x| super::size(Some(x), "config.out_channels"))?;
    if in_ch != input_size {
        return Err(bad!(
            "config.in_channels {in_ch} differs from config.input_size {input_size}"
        ));
    }
    if layers == 0 || h == 0 || input_size == 0 || out_ch == 0 {
        return Err(bad!(
            "NAM LSTM with num_layers {layers}, hidden_size {h}, input_size {input_size}, \
             out_channels {out_ch}: every size must be at least 1"
        ));
    }
    let w = super::vector(
        v.get("weights")
            .ok_or_else(|| bad!("NAM file: missing `weights`"))?,
        "weights",
    )?;
    // Expected count, overflow-checked.
    let mut need: u128 = 0;
    for k in 0..layers {
        let inp = if k == 0 { input_size } else { h } as u128;
        let h = h as u128;
        need += 4 * h * (inp + h) + 4 * h + 2 * h;
    }
    need += (out_ch as u128) * (h as u128) + out_ch as u128;
    if need != w.len() as u128 {
        return Err(bad!(
            "`weights` has {} values, but an LSTM with input_size {input_size}, hidden_size \
             {h}, num_layers {layers} and out_channels {out_ch} needs {need}",
            w.len()
        ));
    }
    let mut it = w.into_iter();
    let mut take = |n: usize| -> Vec<f32> { it.by_ref().take(n).collect() };
    let mut b = Builder::default();
    let (mut h0, mut c0) = (Vec::new(), Vec::new());
    for k in 0..layers {
        let inp = if k == 0 { input_size } else { h };
        let wcat = take(4 * h * (inp + h));
        let mut w_ih = Vec::with_capacity(4 * h * inp);
        let mut w_hh = Vec::with_capacity(4 * h * h);
        for row in wcat.chunks_exact(inp + h) {
            w_ih.extend_from_slice(&row[..inp]);
            w_hh.extend_from_slice(&row[inp..]);
        }
        let b_ih = take(4 * h);
        h0.extend(take(h));
        c0.extend(take(h));
        b.recurrent(Recurrent {
            cell: CellKind::Lstm,
            input_size: inp,
            hidden_size: h,
            w_ih,
            w_hh,
            b_ih,
            b_hh: vec![0.0; 4 * h],
            what: format!("LSTM layer {k}"),
        })?;
    }
    let weight = take(out_ch * h);
    let bias = take(out_ch);
    b.dense(DenseW {
        dense: Dense::new(h, out_ch, Activation::Identity),
        weight,
        bias,
    });
    let model = b.build()?;
    h0.extend(c0);
    super::finite("initial state", &h0)?;
    Ok(NamLstm {
        model,
        initial_state: h0,
        sample_rate: v.get("sample_rate").and_then(Value::as_f64),
    })
}
