#![forbid(unsafe_code)]
//! The dense layers and skip connection in plain f64 around [`crate::reference`]: the
//! spec the f32 paths of [`crate::layers`] are tested against, and the function the
//! finite-difference checks differentiate.
//!
//! `params` is the model's whole flat buffer in f64: the stack's tensors in
//! [`ParamLayout`] order, then each dense layer's `weight` (`[out][in]`) and `bias`,
//! pre layers first.

use super::{Activation, Dense, Layers};
use crate::config::ModelConfig;
use crate::config::ParamLayout;
use crate::reference::{self as core, RefGrads, RefTape};

/// A recorded f64 forward of a model with layers.
pub struct RefLayersTape {
    core: RefTape,
    x: Vec<f64>,
    /// Each pre layer's output, after its activation.
    pre: Vec<Vec<f64>>,
    /// Each post layer's output, after its activation (the last without softmax).
    post: Vec<Vec<f64>>,
    /// The outputs the losses see (a final softmax not applied), skip added.
    pub outputs: Vec<f64>,
    /// Final state of the stack, snapshot layout.
    pub final_state: Vec<f64>,
}

fn act(a: Activation, v: f64) -> f64 {
    match a {
        Activation::Identity | Activation::Softmax => v,
        Activation::Tanh => v.tanh(),
        Activation::Relu => v.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        Activation::Elu => {
            if v > 0.0 {
                v
            } else {
                v.exp_m1()
            }
        }
    }
}

/// `act'` at the pre-activation `v`.
fn act_grad(a: Activation, v: f64) -> f64 {
    match a {
        Activation::Identity | Activation::Softmax => 1.0,
        Activation::Tanh => 1.0 - v.tanh().powi(2),
        Activation::Relu => {
            if v > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-v).exp());
            s * (1.0 - s)
        }
        Activation::Elu => {
            if v > 0.0 {
                1.0
            } else {
                v.exp()
            }
        }
    }
}

/// Offsets of each dense layer's weight in `params`, pre layers first.
fn offsets(cfg: &ModelConfig, layers: &Layers) -> Vec<usize> {
    let mut off = ParamLayout::new(cfg).expect("valid config").total();
    layers
        .pre
        .iter()
        .chain(&layers.post)
        .map(|d| {
            let o = off;
            off += d.out_size * (d.in_size + 1);
            o
        })
        .collect()
}

/// Pre-activations of one dense layer over `rows` rows.
fn pre_act(d: &Dense, p: &[f64], a: &[f64], rows: usize) -> Vec<f64> {
    let (ni, no) = (d.in_size, d.out_size);
    let (w, b) = (&p[..no * ni], &p[no * ni..no * ni + no]);
    let mut z = vec![0.0; rows * no];
    for r in 0..rows {
        for o in 0..no {
            z[r * no + o] = b[o] + (0..ni).map(|i| w[o * ni + i] * a[r * ni + i]).sum::<f64>();
        }
    }
    z
}

/// Runs the model in f64 (see the module docs for `params`).
pub fn forward(
    cfg: &ModelConfig,
    layers: &Layers,
    params: &[f64],
    x: &[f64],
    batch: usize,
    seq_len: usize,
    init: &[f64],
) -> RefLayersTape {
    let rows = batch * seq_len;
    let offs = offsets(cfg, layers);
    let mut pre: Vec<Vec<f64>> = Vec::new();
    for (k, d) in layers.pre.iter().enumerate() {
        let a: &[f64] = if k == 0 { x } else { &pre[k - 1] };
        let z = pre_act(d, &params[offs[k]..], a, rows);
        pre.push(
            z.iter()
                .map(|&v| act(d.activation, v))
                .collect::<Vec<f64>>(),
        );
    }
    let u: &[f64] = pre.last().map_or(x, |v| v.as_slice());
    let core_len = ParamLayout::new(cfg).expect("valid config").total();
    let ct = core::forward(cfg, &params[..core_len], u, batch, seq_len, init);
    let mut post: Vec<Vec<f64>> = Vec::new();
    for (k, d) in layers.post.iter().enumerate() {
        let a: &[f64] = if k == 0 { &ct.outputs } else { &post[k - 1] };
        let z = pre_act(d, &params[offs[layers.pre.len() + k]..], a, rows);
        post.push(
            z.iter()
                .map(|&v| act(d.activation, v))
                .collect::<Vec<f64>>(),
        );
    }
    let mut outputs = post.last().unwrap_or(&ct.outputs).clone();
    if layers.skip {
        outputs.iter_mut().zip(x).for_each(|(o, xi)| *o += xi);
    }
    RefLayersTape {
        final_state: ct.final_state.clone(),
        core: ct,
        x: x.to_vec(),
        pre,
        post,
        outputs,
    }
}

/// Backward of one dense layer from its input `a`; adds into `g` (weight then bias) and
/// returns `∂L/∂a`.
fn dense_back(
    d: &Dense,
    p: &[f64],
    a: &[f64],
    d_out: &[f64],
    rows: usize,
    g: &mut [f64],
) -> Vec<f64> {
    let (ni, no) = (d.in_size, d.out_size);
    let z = pre_act(d, p, a, rows);
    let w = &p[..no * ni];
    let mut da = vec![0.0; rows * ni];
    for r in 0..rows {
        for o in 0..no {
            let dz = d_out[r * no + o] * act_grad(d.activation, z[r * no + o]);
            g[no * ni + o] += dz;
            for i in 0..ni {
                g[o * ni + i] += dz * a[r * ni + i];
                da[r * ni + i] += dz * w[o * ni + i];
            }
        }
    }
    da
}

/// Backward in f64: `d_out` is `∂L/∂outputs`, `d_final` is `∂L/∂(final state)`.
pub fn backward(
    cfg: &ModelConfig,
    layers: &Layers,
    params: &[f64],
    tape: &RefLayersTape,
    d_out: &[f64],
    d_final: &[f64],
) -> RefGrads {
    let rows = tape.x.len() / layers.input_size(cfg);
    let offs = offsets(cfg, layers);
    let core_len = ParamLayout::new(cfg).expect("valid config").total();
    let mut g = vec![0.0; params.len()];
    let mut d = d_out.to_vec();
    let np = layers.pre.len();
    for (k, dl) in layers.post.iter().enumerate().rev() {
        let a: &[f64] = if k == 0 {
            &tape.core.outputs
        } else {
            &tape.post[k - 1]
        };
        let o = offs[np + k];
        let n = dl.out_size * (dl.in_size + 1);
        d = dense_back(dl, &params[o..], a, &d, rows, &mut g[o..o + n]);
    }
    let cg = core::backward(cfg, &params[..core_len], &tape.core, &d, d_final);
    g[..core_len].copy_from_slice(&cg.params);
    let mut d = cg.x;
    for (k, dl) in layers.pre.iter().enumerate().rev() {
        let a: &[f64] = if k == 0 { &tape.x } else { &tape.pre[k - 1] };
        let o = offs[k];
        let n = dl.out_size * (dl.in_size + 1);
        d = dense_back(dl, &params[o..], a, &d, rows, &mut g[o..o + n]);
    }
    if layers.skip {
        d.iter_mut().zip(d_out).for_each(|(a, b)| *a += b);
    }
    RefGrads {
        params: g,
        x: d,
        init: cg.init,
    }
}
