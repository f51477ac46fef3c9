#![forbid(unsafe_code)]
//! The plain f64 reference of the whole model, forward and backward (BPTT): the spec.
//!
//! Written for clarity, one batch row, one timestep and one gate at a time, straight
//! from the equations in `cell/`. Finite differences check its gradients in f64; every
//! fast f32 path is tested against it. Not used at run time.

#![allow(clippy::needless_range_loop)] // index loops mirror the equations

use crate::config::ParamLayout;
use crate::config::{CellKind, ModelConfig};

/// Everything the reference backward needs from its forward.
#[derive(Clone, Debug)]
pub struct RefTape {
    /// Per layer, per (b, t): layer input, h_{t-1}, c_{t-1}, activated gates, extra
    /// (`W_hn h + b_hn` for LBR GRU), c_t, h_t.
    steps: Vec<Vec<Step>>,
    /// Head pre-activations (or top h) `[B][T][O]`.
    pub outputs: Vec<f64>,
    /// Final state, snapshot layout.
    pub final_state: Vec<f64>,
    batch: usize,
    seq_len: usize,
}

#[derive(Clone, Debug, Default)]
struct Step {
    x: Vec<f64>,
    h_prev: Vec<f64>,
    c_prev: Vec<f64>,
    gates: Vec<f64>,
    ghn: Vec<f64>,
    c: Vec<f64>,
    h: Vec<f64>,
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

struct View<'a> {
    cfg: &'a ModelConfig,
    layout: ParamLayout,
    p: &'a [f64],
}

impl View<'_> {
    fn t(&self, name: &str) -> &[f64] {
        let e = self.layout.find(name).expect("tensor");
        &self.p[e.offset..e.offset + e.len]
    }
    /// `Σ_j W[row, j] v[j]` for a row-major matrix with `cols` columns.
    fn dot(w: &[f64], row: usize, cols: usize, v: &[f64]) -> f64 {
        (0..cols).map(|j| w[row * cols + j] * v[j]).sum()
    }
    fn in_size(&self, k: usize) -> usize {
        self.cfg.layer_input_dim(k)
    }
}

/// Runs the model in f64. `params` in [`ParamLayout`] order, `x` `[B][T][I]`,
/// `init` a snapshot-layout state. Unidirectional models, every sequence `seq_len`
/// long; [`forward_seq`] covers bidirectional models and lengths. With LSTM projections
/// each step's `h = W_hr (o ⊙ tanh(c))` (`P` wide); [`backward`] does not cover them
/// (their gradients are checked by finite differences of this forward).
pub fn forward(
    cfg: &ModelConfig,
    params: &[f64],
    x: &[f64],
    batch: usize,
    seq_len: usize,
    init: &[f64],
) -> RefTape {
    let v = View {
        cfg,
        layout: ParamLayout::new(cfg).unwrap(),
        p: params,
    };
    assert!(
        !cfg.bidirectional,
        "reference::forward is unidirectional: forward_seq"
    );
    let (h, l, p) = (cfg.hidden_size, cfg.num_layers, cfg.real_hidden_size());
    let lbh = l * batch * p;
    let mut steps = vec![vec![Step::default(); batch * seq_len]; l];
    let mut final_state = vec![0.0; cfg.state_len(batch)];
    let mut top = vec![0.0; batch * seq_len * p];
    for b in 0..batch {
        for k in 0..l {
            let wih = v.t(&format!("weight_ih_l{k}"));
            let whh = v.t(&format!("weight_hh_l{k}"));
            let bih = v.t(&format!("bias_ih_l{k}"));
            let bhh = v.t(&format!("bias_hh_l{k}"));
            let whr = (cfg.proj_size > 0).then(|| v.t(&format!("weight_hr_l{k}")));
            let inp = v.in_size(k);
            let (so, sc) = ((k * batch + b) * p, (k * batch + b) * h);
            let mut hp = init[so..so + p].to_vec();
            let mut cp = if cfg.cell == CellKind::Lstm {
                init[lbh + sc..lbh + sc + h].to_vec()
            } else {
                vec![0.0; h]
            };
            for t in 0..seq_len {
                let xin: Vec<f64> = if k == 0 {
                    x[(b * seq_len + t) * inp..(b * seq_len + t + 1) * inp].to_vec()
                } else {
                    steps[k - 1][b * seq_len + t].h.clone()
                };
                let gi = |j: usize| View::dot(wih, j, inp, &xin) + bih[j];
                let gh = |j: usize, hv: &[f64]| View::dot(whh, j, hv.len(), hv) + bhh[j];
                let mut st = Step {
                    x: xin.clone(),
                    h_prev: hp.clone(),
                    c_prev: cp.clone(),
                    ..Step::default()
                };
                let mut hn = vec![0.0; h];
                let mut cn = vec![0.0; h];
                match cfg.cell {
                    CellKind::RnnTanh | CellKind::RnnRelu => {
                        for j in 0..h {
                            let a = gi(j) + gh(j, &hp);
                            hn[j] = if cfg.cell == CellKind::RnnTanh {
                                a.tanh()
                            } else {
                                a.max(0.0)
                            };
                        }
                        st.gates = hn.clone();
                    }
                    CellKind::Lstm => {
                        let mut g = vec![0.0; 4 * h];
                        for j in 0..h {
                            let pre = |q: usize| gi(q * h + j) + gh(q * h + j, &hp);
                            let (i_, f_, g_, o_) = (
                                sigmoid(pre(0)),
                                sigmoid(pre(1)),
                                pre(2).tanh(),
                                sigmoid(pre(3)),
                            );
                            cn[j] = f_ * cp[j] + i_ * g_;
                            hn[j] = o_ * cn[j].tanh();
                            g[j] = i_;
                            g[h + j] = f_;
                            g[2 * h + j] = g_;
                            g[3 * h + j] = o_;
                        }
                        st.gates = g;
                    }
                    CellKind::GruLbr => {
                        let mut g = vec![0.0; 3 * h];
                        st.ghn = vec![0.0; h];
                        for j in 0..h {
                            let r = sigmoid(gi(j) + gh(j, &hp));
                            let z = sigmoid(gi(h + j) + gh(h + j, &hp));
                            let ghn = gh(2 * h + j, &hp);
                            let n = (gi(2 * h + j) + r * ghn).tanh();
                            hn[j] = (1.0 - z) * n + z * hp[j];
                            g[j] = r;
                            g[h + j] = z;
                            g[2 * h + j] = n;
                            st.ghn[j] = ghn;
                        }
                        st.gates = g;
                    }
                    CellKind::Gru => {
                        let mut g = vec![0.0; 3 * h];
                        let mut rh = vec![0.0; h];
                        for j in 0..h {
                            g[j] = sigmoid(gi(j) + gh(j, &hp));
                            g[h + j] = sigmoid(gi(h + j) + gh(h + j, &hp));
                            rh[j] = g[j] * hp[j];
                        }
                        for j in 0..h {
                            let n = (gi(2 * h + j) + gh(2 * h + j, &rh)).tanh();
                            g[2 * h + j] = n;
                            hn[j] = (1.0 - g[h + j]) * n + g[h + j] * hp[j];
                        }
                        st.gates = g;
                    }
                }
                if let Some(whr) = whr {
                    // The projection: h = W_hr m, m = o ⊙ tanh(c) as computed above.
                    hn = (0..p).map(|q| View::dot(whr, q, h, &hn)).collect();
                }
                st.h = hn.clone();
                st.c = cn.clone();
                steps[k][b * seq_len + t] = st;
                hp = hn;
                cp = cn;
            }
            final_state[so..so + p].copy_from_slice(&hp);
            if cfg.cell == CellKind::Lstm {
                final_state[lbh + sc..lbh + sc + h].copy_from_slice(&cp);
            }
        }
        for t in 0..seq_len {
            let r = (b * seq_len + t) * p;
            top[r..r + p].copy_from_slice(&steps[l - 1][b * seq_len + t].h);
        }
    }
    let outputs = if cfg.has_head() {
        let (w, bias) = (v.t("head.weight"), v.t("head.bias"));
        let o = cfg.output_size;
        let mut out = vec![0.0; batch * seq_len * o];
        for r in 0..batch * seq_len {
            for q in 0..o {
                out[r * o + q] = View::dot(w, q, p, &top[r * p..(r + 1) * p]) + bias[q];
            }
        }
        out
    } else {
        top
    };
    RefTape {
        steps,
        outputs,
        final_state,
        batch,
        seq_len,
    }
}

/// The reference of any model without dense layers, bidirectional or not, on a padded
/// batch with optional `lengths` (`None`: every sequence `seq_len` long). Written
/// straight from the definitions, one sequence at a time: sequence `b` is its first
/// `n = lengths[b]` steps; each layer `k` runs each direction `d` as a one-layer model
/// ([`forward`]) over that layer's inputs at positions `0..n` (forward) or `n-1` down to
/// `0` (reverse), and its output at position `p` is `[h_fwd(p) | h_rev(p)]`; the head
/// reads it. Returns the pre-activation outputs `[B][T][O]` (zero past each length) and
/// the final state in snapshot layout (`[L·D][B][H]` layer-major, direction-minor, then
/// `c` for LSTM): each direction's state after its last step.
#[allow(clippy::too_many_arguments)]
pub fn forward_seq(
    cfg: &ModelConfig,
    params: &[f64],
    x: &[f64],
    batch: usize,
    seq_len: usize,
    init: &[f64],
    lengths: Option<&[usize]>,
) -> (Vec<f64>, Vec<f64>) {
    forward_seq_masked(
        cfg,
        params,
        x,
        batch,
        seq_len,
        init,
        lengths,
        &|_, _, _, _| 1.0,
    )
}

/// [`forward_seq`] with dropout between layers: layer `k`'s output (`k` below the top)
/// at sequence `b`, position `p`, unit `j` is multiplied by `mask(k, b, p, j)` before
/// the layer above reads it.
#[allow(clippy::too_many_arguments)]
pub fn forward_seq_masked(
    cfg: &ModelConfig,
    params: &[f64],
    x: &[f64],
    batch: usize,
    seq_len: usize,
    init: &[f64],
    lengths: Option<&[usize]>,
    mask: &dyn Fn(usize, usize, usize, usize) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let v = View {
        cfg,
        layout: ParamLayout::new(cfg).unwrap(),
        p: params,
    };
    let (h, l, dirs) = (cfg.hidden_size, cfg.num_layers, cfg.num_directions());
    let p = cfg.real_hidden_size();
    let (i_sz, w) = (cfg.input_size, dirs * p);
    let o = cfg.output_dim();
    let lbh = cfg.state_c_offset(batch);
    let lstm = cfg.cell == CellKind::Lstm;
    let mut out = vec![0.0; batch * seq_len * o];
    let mut fin = vec![0.0; cfg.state_len(batch)];
    for b in 0..batch {
        let n = lengths.map_or(seq_len, |ls| ls[b]);
        // The layer's input at each valid position.
        let mut inp: Vec<Vec<f64>> = (0..n)
            .map(|p| x[(b * seq_len + p) * i_sz..(b * seq_len + p + 1) * i_sz].to_vec())
            .collect();
        for k in 0..l {
            let in_w = inp[0].len();
            let mut next = vec![vec![0.0; w]; n];
            for d in 0..dirs {
                let sfx = if d == 1 { "_reverse" } else { "" };
                let sub = ModelConfig::new(cfg.cell, in_w, h, 1).with_proj_size(cfg.proj_size);
                let mut sp = Vec::new();
                let names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"];
                for name in &names[..cfg.tensors_per_direction()] {
                    sp.extend_from_slice(v.t(&format!("{name}_l{k}{sfx}")));
                }
                let order: Vec<usize> = if d == 0 {
                    (0..n).collect()
                } else {
                    (0..n).rev().collect()
                };
                let xs: Vec<f64> = order.iter().flat_map(|&p| inp[p].clone()).collect();
                let (so, sc) = (
                    ((k * dirs + d) * batch + b) * p,
                    ((k * dirs + d) * batch + b) * h,
                );
                let mut s0 = init[so..so + p].to_vec();
                if lstm {
                    s0.extend_from_slice(&init[lbh + sc..lbh + sc + h]);
                }
                let tape = forward(&sub, &sp, &xs, 1, n, &s0);
                for (t, &pos) in order.iter().enumerate() {
                    next[pos][d * p..(d + 1) * p]
                        .copy_from_slice(&tape.outputs[t * p..(t + 1) * p]);
                }
                fin[so..so + p].copy_from_slice(&tape.final_state[..p]);
                if lstm {
                    fin[lbh + sc..lbh + sc + h].copy_from_slice(&tape.final_state[p..p + h]);
                }
            }
            if k + 1 < l {
                for (pos, row) in next.iter_mut().enumerate() {
                    for (j, a) in row.iter_mut().enumerate() {
                        *a *= mask(k, b, pos, j);
                    }
                }
            }
            inp = next;
        }
        for (p, top) in inp.iter().enumerate() {
            let r = (b * seq_len + p) * o;
            if cfg.has_head() {
                let (hw, hb) = (v.t("head.weight"), v.t("head.bias"));
                for q in 0..o {
                    out[r + q] = View::dot(hw, q, w, top) + hb[q];
                }
            } else {
                out[r..r + o].copy_from_slice(top);
            }
        }
    }
    (out, fin)
}

/// Gradients from the reference backward.
#[derive(Clone, Debug)]
pub struct RefGrads {
    /// `[ParamLayout::total]`.
    pub params: Vec<f64>,
    /// `[B][T][I]`.
    pub x: Vec<f64>,
    /// Snapshot layout.
    pub init: Vec<f64>,
}

/// BPTT in f64: `d_out` is `∂L/∂outputs` (`[B][T][O]`), `d_final` is `∂L/∂final_state`.
pub fn backward(
    cfg: &ModelConfig,
    params: &[f64],
    tape: &RefTape,
    d_out: &[f64],
    d_final: &[f64],
) -> RefGrads {
    assert_eq!(cfg.proj_size, 0, "reference::backward has no projections");
    let layout = ParamLayout::new(cfg).unwrap();
    let v = View {
        cfg,
        layout: layout.clone(),
        p: params,
    };
    let (batch, seq_len) = (tape.batch, tape.seq_len);
    let (h, l) = (cfg.hidden_size, cfg.num_layers);
    let lbh = l * batch * h;
    let mut gp = vec![0.0; layout.total()];
    let off = |name: &str| layout.find(name).unwrap().offset;
    // dH of the top layer.
    let mut dhs = vec![0.0; batch * seq_len * h];
    if cfg.has_head() {
        let o = cfg.output_size;
        let w = v.t("head.weight");
        let (wo, bo) = (off("head.weight"), off("head.bias"));
        for b in 0..batch {
            for t in 0..seq_len {
                let r = b * seq_len + t;
                let hv = &tape.steps[l - 1][r].h;
                for q in 0..o {
                    let d = d_out[r * o + q];
                    gp[bo + q] += d;
                    for j in 0..h {
                        gp[wo + q * h + j] += d * hv[j];
                        dhs[r * h + j] += d * w[q * h + j];
                    }
                }
            }
        }
    } else {
        dhs.copy_from_slice(d_out);
    }
    let mut dinit = vec![0.0; cfg.state_len(batch)];
    let mut dx = vec![0.0; batch * seq_len * cfg.input_size];
    for k in (0..l).rev() {
        let inp = v.in_size(k);
        let g = cfg.cell.gates();
        let wih = v.t(&format!("weight_ih_l{k}"));
        let whh = v.t(&format!("weight_hh_l{k}"));
        let (owih, owhh, obih, obhh) = (
            off(&format!("weight_ih_l{k}")),
            off(&format!("weight_hh_l{k}")),
            off(&format!("bias_ih_l{k}")),
            off(&format!("bias_hh_l{k}")),
        );
        let mut dbelow = vec![0.0; batch * seq_len * inp];
        for b in 0..batch {
            let so = (k * batch + b) * h;
            let mut dh_next = d_final[so..so + h].to_vec();
            let mut dc_next = if cfg.cell == CellKind::Lstm {
                d_final[lbh + so..lbh + so + h].to_vec()
            } else {
                vec![0.0; h]
            };
            for t in (0..seq_len).rev() {
                let st = &tape.steps[k][b * seq_len + t];
                let r = b * seq_len + t;
                let dh: Vec<f64> = (0..h).map(|j| dhs[r * h + j] + dh_next[j]).collect();
                // Gradients of the input-side and hidden-side pre-activations, and the
                // hidden operand each hidden-side row multiplies.
                let mut dgx = vec![0.0; g * h];
                let mut dgh = vec![0.0; g * h];
                let mut hop: Vec<Vec<f64>> = vec![st.h_prev.clone(); g];
                let mut dhp = vec![0.0; h];
                let mut dcp = vec![0.0; h];
                match cfg.cell {
                    CellKind::RnnTanh | CellKind::RnnRelu => {
                        for j in 0..h {
                            let a = st.gates[j];
                            dgx[j] = dh[j]
                                * if cfg.cell == CellKind::RnnTanh {
                                    1.0 - a * a
                                } else if a > 0.0 {
                                    1.0
                                } else {
                                    0.0
                                };
                        }
                        dgh.copy_from_slice(&dgx);
                    }
                    CellKind::Lstm => {
                        for j in 0..h {
                            let (i_, f_, g_, o_) = (
                                st.gates[j],
                                st.gates[h + j],
                                st.gates[2 * h + j],
                                st.gates[3 * h + j],
                            );
                            let tc = st.c[j].tanh();
                            let dc = dc_next[j] + dh[j] * o_ * (1.0 - tc * tc);
                            dgx[j] = dc * g_ * i_ * (1.0 - i_);
                            dgx[h + j] = dc * st.c_prev[j] * f_ * (1.0 - f_);
                            dgx[2 * h + j] = dc * i_ * (1.0 - g_ * g_);
                            dgx[3 * h + j] = dh[j] * tc * o_ * (1.0 - o_);
                            dcp[j] = dc * f_;
                        }
                        dgh.copy_from_slice(&dgx);
                    }
                    CellKind::GruLbr => {
                        for j in 0..h {
                            let (r_, z_, n_) = (st.gates[j], st.gates[h + j], st.gates[2 * h + j]);
                            let dnp = dh[j] * (1.0 - z_) * (1.0 - n_ * n_);
                            let dzp = dh[j] * (st.h_prev[j] - n_) * z_ * (1.0 - z_);
                            let drp = dnp * st.ghn[j] * r_ * (1.0 - r_);
                            dgx[j] = drp;
                            dgx[h + j] = dzp;
                            dgx[2 * h + j] = dnp;
                            dgh[j] = drp;
                            dgh[h + j] = dzp;
                            dgh[2 * h + j] = dnp * r_;
                            dhp[j] += dh[j] * z_;
                        }
                    }
                    CellKind::Gru => {
                        let rh: Vec<f64> = (0..h).map(|j| st.gates[j] * st.h_prev[j]).collect();
                        let mut drh = vec![0.0; h];
                        for j in 0..h {
                            let (z_, n_) = (st.gates[h + j], st.gates[2 * h + j]);
                            dgx[2 * h + j] = dh[j] * (1.0 - z_) * (1.0 - n_ * n_);
                        }
                        for q in 0..h {
                            for j in 0..h {
                                drh[q] += dgx[2 * h + j] * whh[(2 * h + j) * h + q];
                            }
                        }
                        for j in 0..h {
                            let (r_, z_, n_) = (st.gates[j], st.gates[h + j], st.gates[2 * h + j]);
                            dgx[j] = drh[j] * st.h_prev[j] * r_ * (1.0 - r_);
                            dgx[h + j] = dh[j] * (st.h_prev[j] - n_) * z_ * (1.0 - z_);
                            dhp[j] += dh[j] * z_ + drh[j] * r_;
                        }
                        dgh.copy_from_slice(&dgx);
                        hop[2] = rh;
                    }
                }
                // Parameter gradients and the gradients flowing to x and h_{t-1}.
                for row in 0..g * h {
                    let gate = row / h;
                    gp[obih + row] += dgx[row];
                    gp[obhh + row] += dgh[row];
                    for q in 0..inp {
                        gp[owih + row * inp + q] += dgx[row] * st.x[q];
                        dbelow[r * inp + q] += dgx[row] * wih[row * inp + q];
                    }
                    for q in 0..h {
                        gp[owhh + row * h + q] += dgh[row] * hop[gate][q];
                        // The notes' GRU reaches h_{t-1} from the n rows through r ⊙ h only
                        // (already in dhp).
                        if !(cfg.cell == CellKind::Gru && gate == 2) {
                            dhp[q] += dgh[row] * whh[row * h + q];
                        }
                    }
                }
                dh_next = dhp;
                dc_next = dcp;
            }
            dinit[so..so + h].copy_from_slice(&dh_next);
            if cfg.cell == CellKind::Lstm {
                dinit[lbh + so..lbh + so + h].copy_from_slice(&dc_next);
            }
        }
        if k == 0 {
            dx = dbelow;
        } else {
            dhs = dbelow;
        }
    }
    RefGrads {
        params: gp,
        x: dx,
        init: dinit,
    }
}

/// Mean squared error over every element, as `torch.nn.MSELoss()`; returns the loss and
/// `∂L/∂out`.
pub fn mse(out: &[f64], target: &[f64]) -> (f64, Vec<f64>) {
    let n = out.len() as f64;
    let loss = out
        .iter()
        .zip(target)
        .map(|(o, t)| (o - t) * (o - t))
        .sum::<f64>()
        / n;
    let d = out
        .iter()
        .zip(target)
        .map(|(o, t)| 2.0 * (o - t) / n)
        .collect();
    (loss, d)
}

/// Cross-entropy over rows of `classes` logits, label -1 ignored, mean over the rest,
/// as `torch.nn.CrossEntropyLoss(ignore_index=-1)`.
pub fn cross_entropy(logits: &[f64], labels: &[i32], classes: usize) -> (f64, Vec<f64>) {
    let count = labels.iter().filter(|&&l| l >= 0).count() as f64;
    let mut loss = 0.0;
    let mut d = vec![0.0; logits.len()];
    for (r, &lab) in labels.iter().enumerate() {
        if lab < 0 {
            continue;
        }
        let row = &logits[r * classes..(r + 1) * classes];
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        loss += -(row[lab as usize] - m - z.ln());
        for q in 0..classes {
            let p = (row[q] - m).exp() / z;
            d[r * classes + q] = (p - if q == lab as usize { 1.0 } else { 0.0 }) / count;
        }
    }
    (loss / count, d)
}
