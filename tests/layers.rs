//! Dense layers before and after the recurrent stack, and the skip connection: the f64
//! reference against central finite differences (every parameter, the inputs and the
//! initial state), the f32 forward, streaming step and block, and BPTT against the
//! reference, training through them, and their weight files.

mod common;
use common::counting::{allocations, Counting};
use common::*;

#[global_allocator]
static ALLOC: Counting = Counting;
use rnncore::__testing::layers_reference as lr;
use rnncore::{
    Activation, CellKind, Dense, Layers, Model, ModelConfig, State, TrainConfig, Trainer,
};

const B: usize = 2;
const T: usize = 4;

/// Shapes covering every activation on both sides, several layers on each side, the
/// skip connection, and a head-only pre stack; each with every cell kind.
fn cases() -> Vec<(ModelConfig, Layers)> {
    use Activation::*;
    let mut out = Vec::new();
    for cell in CellKind::ALL {
        // Pre tanh -> stack -> post sigmoid -> post identity, skip (RTNeural / GuitarML).
        out.push((
            ModelConfig::new(cell, 3, 4, 1),
            Layers {
                pre: vec![Dense::new(2, 3, Tanh)],
                post: vec![Dense::new(4, 3, Sigmoid), Dense::new(3, 2, Identity)],
                skip: true,
            },
        ));
        // Two pre layers (relu, elu), two stack layers, post elu then tanh.
        out.push((
            ModelConfig::new(cell, 2, 3, 2),
            Layers {
                pre: vec![Dense::new(3, 4, Relu), Dense::new(4, 2, Elu)],
                post: vec![Dense::new(3, 2, Elu), Dense::new(2, 3, Tanh)],
                skip: true,
            },
        ));
        // Pre only, with the stack's own head.
        out.push((
            ModelConfig::new(cell, 2, 3, 1).with_head(2, rnncore::OutputActivation::Identity),
            Layers {
                pre: vec![Dense::new(1, 2, Sigmoid)],
                post: vec![],
                skip: false,
            },
        ));
        // Post ending in softmax (the losses see its pre-activation).
        out.push((
            ModelConfig::new(cell, 2, 3, 1),
            Layers {
                pre: vec![],
                post: vec![Dense::new(3, 3, Tanh), Dense::new(3, 4, Softmax)],
                skip: false,
            },
        ));
    }
    out
}

struct Case {
    cfg: ModelConfig,
    layers: Layers,
    params: Vec<f64>,
    x: Vec<f64>,
    init: Vec<f64>,
    out_w: Vec<f64>,
    fin_w: Vec<f64>,
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&v| f64::from(v)).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&v| v as f32).collect()
}

impl Case {
    fn new(cfg: ModelConfig, layers: Layers, seed: u64) -> Case {
        let model = Model::new_with_layers(cfg, layers.clone(), seed).unwrap();
        let (i, o) = (model.input_size(), model.output_size());
        Case {
            params: f64s(model.parameters()),
            // Inputs away from relu's kink would need care; values from vals() are
            // spread, and the finite-difference step is far smaller than any gap.
            x: f64s(&vals(B * T * i, seed + 1, 1.0)),
            init: f64s(&vals(cfg.state_len(B), seed + 2, 0.5)),
            out_w: f64s(&vals(B * T * o, seed + 3, 1.0)),
            fin_w: f64s(&vals(cfg.state_len(B), seed + 4, 1.0)),
            cfg,
            layers,
        }
    }

    /// A loss that weighs every output and every element of the final state.
    fn total(&self, params: &[f64], x: &[f64], init: &[f64]) -> f64 {
        let t = lr::forward(&self.cfg, &self.layers, params, x, B, T, init);
        let a: f64 = t.outputs.iter().zip(&self.out_w).map(|(a, b)| a * b).sum();
        let b: f64 = t
            .final_state
            .iter()
            .zip(&self.fin_w)
            .map(|(a, b)| a * b)
            .sum();
        a + b
    }

    fn analytic(&self) -> rnncore::__testing::reference::RefGrads {
        let t = lr::forward(
            &self.cfg,
            &self.layers,
            &self.params,
            &self.x,
            B,
            T,
            &self.init,
        );
        lr::backward(
            &self.cfg,
            &self.layers,
            &self.params,
            &t,
            &self.out_w,
            &self.fin_w,
        )
    }

    fn model(&self) -> Model {
        Model::with_layers(self.cfg, self.layers.clone(), f32s(&self.params)).unwrap()
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
    for (n, (cfg, layers)) in cases().into_iter().enumerate() {
        let case = Case::new(cfg, layers, 100 + n as u64);
        let g = case.analytic();
        let tag = format!("case {n} {:?} {:?}", cfg.cell, case.layers);
        fd_check(&format!("{tag} params"), &case.params, &g.params, |p| {
            case.total(p, &case.x, &case.init)
        });
        fd_check(&format!("{tag} x"), &case.x, &g.x, |x| {
            case.total(&case.params, x, &case.init)
        });
        fd_check(&format!("{tag} init"), &case.init, &g.init, |s| {
            case.total(&case.params, &case.x, s)
        });
    }
}

/// Max error relative to the reference block's magnitude.
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - y).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn f32_forward_and_bptt_match_the_reference() {
    for (n, (cfg, layers)) in cases().into_iter().enumerate() {
        let case = Case::new(cfg, layers, 200 + n as u64);
        let model = case.model();
        let tag = format!("case {n} {:?}", cfg.cell);
        let want = case.analytic();
        let rt = lr::forward(&cfg, &case.layers, &case.params, &case.x, B, T, &case.init);
        let (x32, s32) = (f32s(&case.x), f32s(&case.init));
        let tape = model.forward_train(&x32, B, T, Some(&s32)).unwrap();
        assert!(
            rel_err(tape.outputs(), &rt.outputs) < 1e-5,
            "{tag}: outputs"
        );
        assert!(
            rel_err(tape.final_state(), &rt.final_state) < 1e-5,
            "{tag}: final"
        );
        let g = model
            .backward(&tape, &f32s(&case.out_w), Some(&f32s(&case.fin_w)), false)
            .unwrap();
        for e in model.layout().entries() {
            let got = &g.params[e.offset..e.offset + e.len];
            let exp = &want.params[e.offset..e.offset + e.len];
            assert!(rel_err(got, exp) < 1e-4, "{tag}: d{}", e.name);
        }
        assert!(rel_err(&g.inputs, &want.x) < 1e-4, "{tag}: dx");
        assert!(rel_err(&g.initial_state, &want.init) < 1e-4, "{tag}: dinit");
    }
}

/// The inference paths (batched forward, batch-1 forward, single steps, blocks) agree
/// with the reference, with a final softmax applied.
#[test]
fn forward_step_and_block_match_the_reference() {
    for (n, (cfg, layers)) in cases().into_iter().enumerate() {
        let case = Case::new(cfg, layers, 300 + n as u64);
        let model = case.model();
        let tag = format!("case {n} {:?}", cfg.cell);
        let zeros = vec![0.0; cfg.state_len(B)];
        let rt = lr::forward(&cfg, &case.layers, &case.params, &case.x, B, T, &zeros);
        let mut want = rt.outputs.clone();
        let o = model.output_size();
        if case.layers.post.last().map(|d| d.activation) == Some(Activation::Softmax) {
            for row in want.chunks_mut(o) {
                let m = row.iter().cloned().fold(f64::MIN, f64::max);
                let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
                row.iter_mut().for_each(|v| *v = (*v - m).exp() / s);
            }
        }
        let x32 = f32s(&case.x);
        let y = model.forward(&x32, B, T).unwrap();
        assert!(rel_err(&y, &want) < 1e-5, "{tag}: forward");
        // Batch 1 (the streaming path inside forward), then steps, then a block.
        let i = model.input_size();
        for b in 0..B {
            let xb = &x32[b * T * i..(b + 1) * T * i];
            let wb = &want[b * T * o..(b + 1) * T * o];
            let y1 = model.forward(xb, 1, T).unwrap();
            assert!(rel_err(&y1, wb) < 1e-5, "{tag}: forward batch 1");
            let mut st = State::new(&model, 1).unwrap();
            let mut ys = vec![f32::NAN; T * o];
            for t in 0..T {
                model
                    .step(
                        &mut st,
                        &xb[t * i..(t + 1) * i],
                        &mut ys[t * o..(t + 1) * o],
                    )
                    .unwrap();
            }
            assert!(rel_err(&ys, wb) < 1e-5, "{tag}: steps");
        }
        let mut st = State::with_block(&model, B, T).unwrap();
        let mut yb = vec![f32::NAN; B * T * o];
        model.forward_state(&mut st, &x32, T, &mut yb).unwrap();
        assert!(rel_err(&yb, &want) < 1e-5, "{tag}: block");
    }
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let (cfg, layers) = cases().remove(0);
    let model = Model::new_with_layers(cfg, layers, 5).unwrap();
    let mut st = State::new(&model, 1).unwrap();
    let mut y = vec![0.0; model.output_size()];
    let before = st.as_slice().to_vec();
    assert!(model.step(&mut st, &[f32::NAN, 0.0], &mut y).is_err());
    assert!(model.step(&mut st, &[0.0], &mut y).is_err());
    assert_eq!(st.as_slice(), &before[..]);
    // A state of another model (same stack, no layers) is refused.
    let plain = Model::new(cfg, 5).unwrap();
    let mut other = State::new(&plain, 1).unwrap();
    assert!(model.step(&mut other, &[0.0, 0.0], &mut y).is_err());
}

#[test]
fn invalid_layer_shapes_are_refused() {
    use Activation::*;
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 3, 1);
    let bad = [
        // pre does not end at input_size
        Layers {
            pre: vec![Dense::new(1, 3, Tanh)],
            post: vec![],
            skip: false,
        },
        // post does not start at hidden_size
        Layers {
            pre: vec![],
            post: vec![Dense::new(2, 1, Identity)],
            skip: false,
        },
        // softmax before the end
        Layers {
            pre: vec![],
            post: vec![Dense::new(3, 2, Softmax), Dense::new(2, 1, Identity)],
            skip: false,
        },
        // skip with widths that differ
        Layers {
            pre: vec![],
            post: vec![Dense::new(3, 1, Tanh)],
            skip: true,
        },
        // zero width
        Layers {
            pre: vec![Dense::new(0, 2, Tanh)],
            post: vec![],
            skip: false,
        },
    ];
    for l in bad {
        assert!(Model::new_with_layers(cfg, l.clone(), 1).is_err(), "{l:?}");
    }
}

#[test]
fn a_lone_identity_layer_after_the_stack_is_the_plain_head() {
    let cfg = ModelConfig::new(CellKind::Gru, 2, 3, 1);
    let l = Layers {
        pre: vec![],
        post: vec![Dense::new(3, 2, Activation::Identity)],
        skip: false,
    };
    let m = Model::new_with_layers(cfg, l, 1).unwrap();
    assert!(m.layers().is_none());
    assert_eq!(m.config().output_size, 2);
}

#[test]
fn training_through_the_layers_lowers_the_loss() {
    let (cfg, layers) = cases().remove(0);
    let mut model = Model::new_with_layers(cfg, layers, 9).unwrap();
    let (i, o) = (model.input_size(), model.output_size());
    let x = vals(B * T * i, 1, 1.0);
    let target = vals(B * T * o, 2, 0.5);
    let mut tr = Trainer::new(&model, TrainConfig::adam(0.02)).unwrap();
    let mut state = State::new(&model, B).unwrap();
    let first = tr
        .step_mse(
            &mut model,
            Some(&mut state),
            &x,
            B,
            T,
            &target,
            rnncore::Targets::EveryStep,
        )
        .unwrap();
    let mut last = first;
    for _ in 0..60 {
        last = tr
            .step_mse(
                &mut model,
                None,
                &x,
                B,
                T,
                &target,
                rnncore::Targets::EveryStep,
            )
            .unwrap();
    }
    assert!(last < 0.5 * first, "loss {first} -> {last}");
}

#[test]
fn no_allocation_in_a_layered_step() {
    let (cfg, layers) = cases().remove(0);
    let model = Model::new_with_layers(cfg, layers, 3).unwrap();
    let mut st = State::with_block(&model, 1, 8).unwrap();
    let x = vals(8 * model.input_size(), 4, 1.0);
    let mut y = vec![0.0; 8 * model.output_size()];
    let i = model.input_size();
    let o = model.output_size();
    model.step(&mut st, &x[..i], &mut y[..o]).unwrap();
    let before = allocations();
    for _ in 0..50 {
        model.step(&mut st, &x[..i], &mut y[..o]).unwrap();
        model.forward_state(&mut st, &x, 8, &mut y).unwrap();
    }
    assert_eq!(allocations() - before, 0);
}

/// At the fused sizes a layered model's steps after the first take a shorter path (the
/// state remembers the model it was checked against): the outputs still match the f64
/// reference, bad input is still refused with nothing changed, and a model with other
/// dense layers still refuses the state.
#[test]
fn layered_steps_after_the_first_keep_every_check() {
    use Activation::*;
    for cell in [CellKind::Lstm, CellKind::GruLbr] {
        for h in [8usize, 16] {
            let cfg = ModelConfig::new(cell, 4, h, 1);
            let layers = Layers {
                pre: vec![Dense::new(1, 4, Tanh)],
                post: vec![Dense::new(h, 3, Sigmoid), Dense::new(3, 1, Identity)],
                skip: true,
            };
            let case = Case::new(cfg, layers.clone(), 700 + h as u64);
            let model = case.model();
            let tag = format!("{cell:?} H={h}");
            let zeros = vec![0.0; cfg.state_len(B)];
            let rt = lr::forward(&cfg, &layers, &case.params, &case.x, B, T, &zeros);
            let x32 = f32s(&case.x);
            let mut st = State::new(&model, 1).unwrap();
            let mut ys = vec![f32::NAN; T];
            for t in 0..T {
                model
                    .step(&mut st, &x32[t..t + 1], &mut ys[t..t + 1])
                    .unwrap();
            }
            assert!(rel_err(&ys, &rt.outputs[..T]) < 1e-5, "{tag}: steps");
            // After those steps: NaN, wrong lengths; nothing changes.
            let before = st.as_slice().to_vec();
            let mut y = [7.0f32; 2];
            assert!(model.step(&mut st, &[f32::NAN], &mut y[..1]).is_err());
            assert!(model.step(&mut st, &[0.0, 0.0], &mut y[..1]).is_err());
            assert!(model.step(&mut st, &[0.0], &mut y).is_err());
            assert_eq!(st.as_slice(), &before[..], "{tag}");
            assert_eq!(y, [7.0; 2], "{tag}");
            // The same stack with other dense layers: refused.
            let other_layers = Layers {
                post: vec![Dense::new(h, 2, Tanh), Dense::new(2, 1, Identity)],
                ..layers.clone()
            };
            let other = Model::new_with_layers(cfg, other_layers, 1).unwrap();
            assert!(other.step(&mut st, &[0.1], &mut y[..1]).is_err(), "{tag}");
            assert_eq!(st.as_slice(), &before[..], "{tag}");
            // And the state still steps its own model as before.
            model.step(&mut st, &[0.25], &mut y[..1]).unwrap();
            assert!(y[0].is_finite(), "{tag}");
        }
    }
}

/// The per-sample step after the first takes its own one-row pass through the dense
/// layers (`chain_one`); a block takes the general one (`chain`). Their outputs and
/// states must be the same bits: three layers a side (both scratch rows in turn), small
/// layers (the tier's `dense_small`) and others (dot products), every activation with
/// an in-kernel or an after-kernel form, with the skip connection; LSTM and GRU.
#[test]
fn layered_steps_are_the_block_bit_for_bit() {
    use Activation::*;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for cell in [CellKind::Lstm, CellKind::GruLbr] {
        for h in [8usize, 16, 32] {
            let cfg = ModelConfig::new(cell, 4, h, 1);
            let layers = Layers {
                // 1 -> 6 and 6 -> 20 small (the second with ReLU after the kernel),
                // 20 -> 4 not (20 inputs).
                pre: vec![
                    Dense::new(1, 6, Tanh),
                    Dense::new(6, 20, Relu),
                    Dense::new(20, 4, Sigmoid),
                ],
                // h -> 5 small up to 16 units, 5 -> 3 small, 3 -> 1 not (one output).
                post: vec![
                    Dense::new(h, 5, Elu),
                    Dense::new(5, 3, Sigmoid),
                    Dense::new(3, 1, Identity),
                ],
                skip: true,
            };
            let model = Model::new_with_layers(cfg, layers, 900 + h as u64).unwrap();
            let steps = 40;
            let x: Vec<f32> = (0..steps)
                .map(|t| ((t * 37 % 23) as f32 - 11.0) / 5.0)
                .collect();
            let mut st = State::new(&model, 1).unwrap();
            let mut ys = vec![f32::NAN; steps];
            for t in 0..steps {
                model
                    .step(&mut st, &x[t..t + 1], &mut ys[t..t + 1])
                    .unwrap();
            }
            let mut sb = State::with_block(&model, 1, steps).unwrap();
            let mut yb = vec![f32::NAN; steps];
            model.forward_state(&mut sb, &x, steps, &mut yb).unwrap();
            let tag = format!("{cell:?} H={h}");
            assert_eq!(bits(&ys), bits(&yb), "{tag}: outputs");
            assert_eq!(bits(st.as_slice()), bits(sb.as_slice()), "{tag}: state");
        }
    }
}

/// A one-layer stack followed by one dense layer: its per-sample step after the first
/// computes that layer straight after the stack's fused kernel, on the new `h`
/// (GuitarML's captures, RTNeural's `lstm.json`), with the dense layers' sums. Step by
/// step and in one block the outputs and states must be the same bits: with none, one
/// or two layers before the stack, with and without the skip connection, every
/// activation, one to eight outputs (more, and a small layer's kernel, take the dense
/// layers' chain after the kernel), sizes on every kernel.
#[test]
fn a_dense_layer_after_the_stack_steps_as_the_block_bit_for_bit() {
    use Activation::*;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut case = 0u64;
    for cell in [CellKind::Lstm, CellKind::GruLbr] {
        for h in [8usize, 16, 20, 24, 32, 40, 64] {
            // (outputs, activation, layers before the stack, skip connection)
            for (outs, act, pre, skip) in [
                (1, Identity, 0, true),
                (1, Tanh, 1, false),
                (2, Identity, 1, false),
                (1, Identity, 2, true),
                (3, Softmax, 0, false),
                (8, Elu, 0, false),
                (9, Identity, 0, false),
            ] {
                case += 1;
                let input = if pre > 0 { 3 } else { 1 };
                let cfg = ModelConfig::new(cell, input, h, 1);
                let layers = Layers {
                    pre: match pre {
                        0 => vec![],
                        1 => vec![Dense::new(1, 3, Tanh)],
                        _ => vec![Dense::new(1, 4, Relu), Dense::new(4, 3, Tanh)],
                    },
                    post: vec![Dense::new(h, outs, act)],
                    // The skip connection adds the input to each output: one of each.
                    skip: skip && outs == 1,
                };
                let model = Model::new_with_layers(cfg, layers, 1300 + case).unwrap();
                let steps = 37;
                let x: Vec<f32> = (0..steps)
                    .map(|t| ((t * 29 % 17) as f32 - 8.0) / 4.0)
                    .collect();
                let mut st = State::new(&model, 1).unwrap();
                let mut ys = vec![f32::NAN; steps * outs];
                for t in 0..steps {
                    let y = &mut ys[t * outs..(t + 1) * outs];
                    model.step(&mut st, &x[t..t + 1], y).unwrap();
                }
                let mut sb = State::with_block(&model, 1, steps).unwrap();
                let mut yb = vec![f32::NAN; steps * outs];
                model.forward_state(&mut sb, &x, steps, &mut yb).unwrap();
                let tag = format!("{cell:?} H={h} outputs={outs} {act:?} pre={pre} skip={skip}");
                assert_eq!(bits(&ys), bits(&yb), "{tag}: outputs");
                assert_eq!(bits(st.as_slice()), bits(sb.as_slice()), "{tag}: state");
            }
        }
    }
}
