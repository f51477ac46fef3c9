//! Gradient checks. First the f64 reference against central finite differences (every
//! parameter, the inputs and the initial state, every cell kind, 1 and 2 layers, with and
//! without head, both losses, every-step and last-step targets); then the fast f32 BPTT
//! against the f64 reference on the same cases.

mod common;
use common::*;
use rnncore::__testing::reference as r;
use rnncore::{Model, ModelConfig, Targets};

const B: usize = 2;
const T: usize = 4;

#[derive(Clone, Copy, Debug)]
enum Loss {
    Mse(Targets),
    Xent(Targets),
}

const LOSSES: [Loss; 4] = [
    Loss::Mse(Targets::EveryStep),
    Loss::Mse(Targets::LastStep),
    Loss::Xent(Targets::EveryStep),
    Loss::Xent(Targets::LastStep),
];

struct Case {
    cfg: ModelConfig,
    params: Vec<f64>,
    x: Vec<f64>,
    init: Vec<f64>,
    /// Weights on the final state, so that ∂L/∂(final state) is exercised too.
    fin_w: Vec<f64>,
    mse_target: Vec<f64>,
    labels: Vec<i32>,
    loss: Loss,
}

impl Case {
    fn new(cfg: ModelConfig, loss: Loss, seed: u64) -> Case {
        let model = Model::new(cfg, seed).unwrap();
        let o = cfg.output_dim();
        let rows = match loss {
            Loss::Mse(Targets::EveryStep) | Loss::Xent(Targets::EveryStep) => B * T,
            _ => B,
        };
        let labels: Vec<i32> = (0..rows)
            .map(|i| {
                if i % 5 == 3 {
                    -1
                } else {
                    ((i * 7 + seed as usize) % o) as i32
                }
            })
            .collect();
        let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
        Case {
            cfg,
            params: f(model.parameters().to_vec()),
            x: f(vals(B * T * cfg.input_size, seed + 1, 1.0)),
            init: f(vals(cfg.state_len(B), seed + 2, 0.5)),
            fin_w: f(vals(cfg.state_len(B), seed + 3, 1.0)),
            mse_target: f(vals(rows * o, seed + 4, 1.0)),
            labels,
            loss,
        }
    }

    /// Rows of outputs that carry targets.
    fn target_rows(&self) -> Vec<usize> {
        match self.loss {
            Loss::Mse(Targets::EveryStep) | Loss::Xent(Targets::EveryStep) => (0..B * T).collect(),
            _ => (0..B).map(|b| b * T + T - 1).collect(),
        }
    }

    /// Loss value and ∂L/∂outputs from the reference outputs.
    fn loss_of(&self, out: &[f64]) -> (f64, Vec<f64>) {
        let o = self.cfg.output_dim();
        let rows = self.target_rows();
        let sel: Vec<f64> = rows
            .iter()
            .flat_map(|&r| out[r * o..(r + 1) * o].to_vec())
            .collect();
        let (l, dsel) = match self.loss {
            Loss::Mse(_) => r::mse(&sel, &self.mse_target),
            Loss::Xent(_) => r::cross_entropy(&sel, &self.labels, o),
        };
        let mut d = vec![0.0; out.len()];
        for (i, &row) in rows.iter().enumerate() {
            d[row * o..(row + 1) * o].copy_from_slice(&dsel[i * o..(i + 1) * o]);
        }
        (l, d)
    }

    fn total(&self, params: &[f64], x: &[f64], init: &[f64]) -> f64 {
        let tape = r::forward(&self.cfg, params, x, B, T, init);
        let (l, _) = self.loss_of(&tape.outputs);
        l + tape
            .final_state
            .iter()
            .zip(&self.fin_w)
            .map(|(a, b)| a * b)
            .sum::<f64>()
    }

    fn analytic(&self) -> r::RefGrads {
        let tape = r::forward(&self.cfg, &self.params, &self.x, B, T, &self.init);
        let (_, d) = self.loss_of(&tape.outputs);
        r::backward(&self.cfg, &self.params, &tape, &d, &self.fin_w)
    }
}

fn fd_check(name: &str, values: &[f64], analytic: &[f64], f: impl Fn(&[f64]) -> f64) {
    let eps = 1e-6;
    let mut v = values.to_vec();
    for i in 0..v.len() {
        let keep = v[i];
        v[i] = keep + eps;
        let up = f(&v);
        v[i] = keep - eps;
        let down = f(&v);
        v[i] = keep;
        let num = (up - down) / (2.0 * eps);
        let err = (num - analytic[i]).abs();
        assert!(
            err <= 1e-6 + 1e-5 * num.abs(),
            "{name}[{i}]: finite difference {num}, analytic {}",
            analytic[i]
        );
    }
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut n = 0;
    for cfg in configs(3, 4) {
        for (li, loss) in LOSSES.into_iter().enumerate() {
            let case = Case::new(cfg, loss, 10 + li as u64);
            let g = case.analytic();
            let tag = format!(
                "{:?} L={} O={} {:?}",
                cfg.cell, cfg.num_layers, cfg.output_size, loss
            );
            fd_check(&format!("{tag} params"), &case.params, &g.params, |p| {
                case.total(p, &case.x, &case.init)
            });
            fd_check(&format!("{tag} x"), &case.x, &g.x, |x| {
                case.total(&case.params, x, &case.init)
            });
            fd_check(&format!("{tag} init"), &case.init, &g.init, |s| {
                case.total(&case.params, &case.x, s)
            });
            n += 1;
        }
    }
    assert_eq!(n, 5 * 2 * 2 * 4);
}

/// Relative error of `a` against the reference `b`, scaled by the block's magnitude.
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn fast_bptt_matches_reference() {
    // Narrow layers (outer sums), and wide ones (input plus hidden from 96: the weight
    // gradients by GEMM and the bias by column sums), at input plus hidden of 100 and 96.
    let wide = configs(40, 60).into_iter().chain(configs(32, 64));
    for cfg in configs(3, 5).into_iter().chain(wide) {
        for (li, loss) in LOSSES.into_iter().enumerate() {
            let case = Case::new(cfg, loss, 40 + li as u64);
            let want = case.analytic();
            let p32: Vec<f32> = case.params.iter().map(|&v| v as f32).collect();
            let model = Model::from_parameters(cfg, p32).unwrap();
            let x32: Vec<f32> = case.x.iter().map(|&v| v as f32).collect();
            let s32: Vec<f32> = case.init.iter().map(|&v| v as f32).collect();
            let tape = model.forward_train(&x32, B, T, Some(&s32)).unwrap();
            let rt = r::forward(&cfg, &case.params, &case.x, B, T, &case.init);
            let tag = format!(
                "{:?} L={} O={} {:?}",
                cfg.cell, cfg.num_layers, cfg.output_size, loss
            );
            assert!(
                rel_err(tape.outputs(), &rt.outputs) < 1e-5,
                "{tag}: outputs"
            );
            assert!(
                rel_err(tape.final_state(), &rt.final_state) < 1e-5,
                "{tag}: final state"
            );
            let (_, d) = case.loss_of(&rt.outputs);
            let d32: Vec<f32> = d.iter().map(|&v| v as f32).collect();
            let f32w: Vec<f32> = case.fin_w.iter().map(|&v| v as f32).collect();
            let g = model.backward(&tape, &d32, Some(&f32w), true).unwrap();
            for e in model.layout().entries() {
                let got = &g.params[e.offset..e.offset + e.len];
                let exp = &want.params[e.offset..e.offset + e.len];
                assert!(
                    rel_err(got, exp) < 1e-4,
                    "{tag}: {} {}",
                    e.name,
                    rel_err(got, exp)
                );
            }
            assert!(rel_err(&g.inputs, &want.x) < 1e-4, "{tag}: inputs");
            assert!(
                rel_err(&g.initial_state, &want.init) < 1e-4,
                "{tag}: initial state"
            );
            assert_eq!(g.hidden.len(), cfg.num_layers);
            // Without the hidden gradients (the record's totals are then not kept):
            // the same bits.
            let lean = model.backward(&tape, &d32, Some(&f32w), false).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&lean.params), bits(&g.params), "{tag}: params");
            assert_eq!(bits(&lean.inputs), bits(&g.inputs), "{tag}: inputs");
            assert_eq!(bits(&lean.initial_state), bits(&g.initial_state), "{tag}");
            assert!(lean.hidden.is_empty());
        }
    }
}

#[test]
fn hidden_gradients_are_dl_dh() {
    // ∂L/∂h_t of the top layer without a head, MSE on the last step only, and no
    // gradient on the final state: at t = T-1 it equals ∂L/∂out, and earlier ones
    // come only through the recurrence.
    let cfg = ModelConfig::new(rnncore::CellKind::RnnTanh, 2, 3, 1);
    let model = Model::new(cfg, 5).unwrap();
    let x = vals(T * 2, 1, 1.0);
    let tape = model.forward_train(&x, 1, T, None).unwrap();
    let mut d = vec![0.0f32; T * 3];
    d[(T - 1) * 3..].copy_from_slice(&[0.5, -1.0, 2.0]);
    let g = model.backward(&tape, &d, None, true).unwrap();
    let top = &g.hidden[0];
    assert_eq!(&top[(T - 1) * 3..], &[0.5, -1.0, 2.0]);
    // One step earlier: W_hhᵀ (dh ⊙ (1 − h²)).
    let h = tape.outputs();
    let whh = model.tensor("weight_hh_l0").unwrap();
    for q in 0..3 {
        let want: f32 = (0..3)
            .map(|j| {
                let hv = h[(T - 1) * 3 + j];
                d[(T - 1) * 3 + j] * (1.0 - hv * hv) * whh[j * 3 + q]
            })
            .sum();
        assert!((top[(T - 2) * 3 + q] - want).abs() < 1e-6);
    }
}
