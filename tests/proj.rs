//! LSTM projections (`proj_size`): the optimized passes against the f64 reference
//! (`reference::forward_seq`, which applies `h = W_hr (o ⊙ tanh(c))` per step), finite
//! differences of the reference against the f32 backward (`W_hr` and every other tensor,
//! unidirectional and bidirectional, with lengths and a final-state gradient), the
//! streaming step against the sequence forward, training, weight files and bad input.

mod common;
use common::*;
use rnncore::__testing::reference as r;
use rnncore::{
    CellKind, Error, Model, ModelConfig, OutputActivation, State, Targets, TrainConfig, Trainer,
};

/// Projected LSTMs: {1, 2} layers x {uni, bidir} x {no head, head of 3}.
fn proj_configs(i: usize, h: usize, p: usize) -> Vec<ModelConfig> {
    let mut v = Vec::new();
    for layers in [1, 2] {
        for bidir in [false, true] {
            for head in [0, 3] {
                let mut c = ModelConfig::new(CellKind::Lstm, i, h, layers)
                    .with_proj_size(p)
                    .with_bidirectional(bidir);
                if head > 0 {
                    c = c.with_head(head, OutputActivation::Identity);
                }
                v.push(c);
            }
        }
    }
    v
}

#[test]
fn shapes_follow_pytorch() {
    let cfg = ModelConfig::new(CellKind::Lstm, 3, 6, 2)
        .with_proj_size(4)
        .with_bidirectional(true)
        .with_head(2, OutputActivation::Identity);
    let layout = rnncore::ParamLayout::new(&cfg).unwrap();
    let names: Vec<(&str, Vec<usize>)> = layout
        .entries()
        .iter()
        .map(|e| (e.name.as_str(), e.shape.clone()))
        .collect();
    let want: Vec<(&str, Vec<usize>)> = vec![
        ("weight_ih_l0", vec![24, 3]),
        ("weight_hh_l0", vec![24, 4]),
        ("bias_ih_l0", vec![24]),
        ("bias_hh_l0", vec![24]),
        ("weight_hr_l0", vec![4, 6]),
        ("weight_ih_l0_reverse", vec![24, 3]),
        ("weight_hh_l0_reverse", vec![24, 4]),
        ("bias_ih_l0_reverse", vec![24]),
        ("bias_hh_l0_reverse", vec![24]),
        ("weight_hr_l0_reverse", vec![4, 6]),
        ("weight_ih_l1", vec![24, 8]),
        ("weight_hh_l1", vec![24, 4]),
        ("bias_ih_l1", vec![24]),
        ("bias_hh_l1", vec![24]),
        ("weight_hr_l1", vec![4, 6]),
        ("weight_ih_l1_reverse", vec![24, 8]),
        ("weight_hh_l1_reverse", vec![24, 4]),
        ("bias_ih_l1_reverse", vec![24]),
        ("bias_hh_l1_reverse", vec![24]),
        ("weight_hr_l1_reverse", vec![4, 6]),
        ("head.weight", vec![2, 8]),
        ("head.bias", vec![2]),
    ];
    assert_eq!(names, want);
    // h_n [L·D][B][P], then c_n [L·D][B][H].
    assert_eq!(cfg.state_len(3), 4 * 3 * 4 + 4 * 3 * 6);
    assert_eq!(
        cfg.to_string(),
        "lstm I=3 H=6 P=4 layers=2 bidir head=2 (identity)"
    );
}

#[test]
fn forward_matches_the_reference() {
    for cfg in proj_configs(3, 5, 2) {
        for batch in [1, 3] {
            check_forward_against_reference(cfg, batch, 6, None, 11, true);
        }
        check_forward_against_reference(cfg, 3, 6, Some(&[6, 2, 4]), 12, true);
    }
}

#[test]
fn a_step_at_a_time_is_the_sequence_forward() {
    for cfg in proj_configs(3, 7, 3)
        .into_iter()
        .filter(|c| !c.bidirectional)
    {
        let cfg = if cfg.has_head() {
            cfg.with_head(cfg.output_size, OutputActivation::Softmax)
        } else {
            cfg
        };
        let model = Model::new(cfg, 5).unwrap();
        let (b, t, i, o) = (2, 7, cfg.input_size, cfg.output_dim());
        let x = vals(b * t * i, 6, 1.0);
        let init = vals(cfg.state_len(b), 7, 0.5);
        let mut y = vec![f32::NAN; b * t * o];
        let mut fin = vec![f32::NAN; cfg.state_len(b)];
        model
            .forward_with_state(&x, b, t, Some(&init), &mut y, Some(&mut fin))
            .unwrap();
        // One step at a time.
        let mut state = State::new(&model, b).unwrap();
        state.set(&init).unwrap();
        let mut ys = vec![f32::NAN; b * t * o];
        for s in 0..t {
            let xs: Vec<f32> = (0..b)
                .flat_map(|r| x[(r * t + s) * i..(r * t + s + 1) * i].to_vec())
                .collect();
            let mut yo = vec![f32::NAN; b * o];
            model.step(&mut state, &xs, &mut yo).unwrap();
            for r in 0..b {
                ys[(r * t + s) * o..(r * t + s + 1) * o].copy_from_slice(&yo[r * o..(r + 1) * o]);
            }
        }
        assert_eq!(bits(&ys), bits(&y), "{cfg}: steps");
        assert_eq!(
            bits(state.as_slice()),
            bits(&fin),
            "{cfg}: state after steps"
        );
        // Blocks of 3 (and a remainder).
        let mut state = State::with_block(&model, b, 3).unwrap();
        state.set(&init).unwrap();
        let mut yb = vec![f32::NAN; b * t * o];
        let mut s = 0;
        while s < t {
            let n = (t - s).min(3);
            let xs: Vec<f32> = (0..b)
                .flat_map(|r| x[(r * t + s) * i..(r * t + s + n) * i].to_vec())
                .collect();
            let mut yo = vec![f32::NAN; b * n * o];
            model.forward_state(&mut state, &xs, n, &mut yo).unwrap();
            for r in 0..b {
                yb[(r * t + s) * o..(r * t + s + n) * o]
                    .copy_from_slice(&yo[r * n * o..(r + 1) * n * o]);
            }
            s += n;
        }
        assert_eq!(bits(&yb), bits(&y), "{cfg}: blocks");
        assert_eq!(
            bits(state.as_slice()),
            bits(&fin),
            "{cfg}: state after blocks"
        );
        // A batch of one runs as well (through the same path).
        let y1 = model.forward(&x[..t * i], 1, t).unwrap();
        let y1r = model.forward(&x, b, t).unwrap();
        assert_eq!(bits(&y1), bits(&y1r[..t * o]), "{cfg}: batch of one");
    }
}

#[test]
fn reset_stream_clears_h_and_c_of_one_stream() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 5, 2).with_proj_size(2);
    let model = Model::new(cfg, 1).unwrap();
    let mut state = State::new(&model, 3).unwrap();
    state.set(&vals(cfg.state_len(3), 2, 1.0)).unwrap();
    let before = state.as_slice().to_vec();
    state.reset_stream(1).unwrap();
    let after = state.as_slice();
    // h: [2][3][2], then c: [2][3][5].
    for (start, w) in [(0, 2), (6, 2), (12, 5), (27, 5)] {
        for b in 0..3 {
            let row = &after[start + b * w..start + (b + 1) * w];
            if b == 1 {
                assert!(row.iter().all(|&v| v == 0.0));
            } else {
                assert_eq!(row, &before[start + b * w..start + (b + 1) * w]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Gradients: central differences of the f64 reference against the f32 backward
// ---------------------------------------------------------------------------------

const B: usize = 3;
const T: usize = 4;

/// `Σ w·out + Σ v·final` from the reference and from the f32 backward: every tensor,
/// the input and the initial state.
fn fd_check(cfg: ModelConfig, lengths: Option<&[usize]>, seed: u64) {
    let model = Model::new(cfg, seed).unwrap();
    let x = vals(B * T * cfg.input_size, seed + 1, 1.0);
    let init = vals(cfg.state_len(B), seed + 2, 0.5);
    let w = vals(B * T * cfg.output_dim(), seed + 3, 1.0);
    let v = vals(cfg.state_len(B), seed + 4, 1.0);
    let loss = |p: &[f64], x: &[f64], s: &[f64]| {
        let (out, fin) = r::forward_seq(&cfg, p, x, B, T, s, lengths);
        let a: f64 = out.iter().zip(&w).map(|(a, &b)| a * b as f64).sum();
        a + fin.iter().zip(&v).map(|(a, &b)| a * b as f64).sum::<f64>()
    };
    let tape = model
        .forward_train_lengths(&x, B, T, lengths, Some(&init))
        .unwrap();
    let g = model.backward(&tape, &w, Some(&v), true).unwrap();
    assert_eq!(g.hidden.len(), cfg.num_layers);
    for h in &g.hidden {
        assert_eq!(h.len(), B * T * cfg.layer_output_dim());
    }
    let (p, xf, sf) = (f64s(model.parameters()), f64s(&x), f64s(&init));
    let name = format!("{cfg} lengths {lengths:?}");
    for e in model.layout().entries() {
        let num: Vec<f64> = (e.offset..e.offset + e.len)
            .map(|i| fd(&p, i, |q| loss(q, &xf, &sf)))
            .collect();
        compare_fd(
            &format!("{name} {}", e.name),
            &num,
            &g.params[e.offset..e.offset + e.len],
            true,
        );
    }
    let num: Vec<f64> = (0..xf.len())
        .map(|i| fd(&xf, i, |q| loss(&p, q, &sf)))
        .collect();
    compare_fd(&format!("{name} x"), &num, &g.inputs, true);
    let num: Vec<f64> = (0..sf.len())
        .map(|i| fd(&sf, i, |q| loss(&p, &xf, q)))
        .collect();
    compare_fd(
        &format!("{name} initial state"),
        &num,
        &g.initial_state,
        true,
    );
}

#[test]
fn gradients_match_finite_differences() {
    for (i, cfg) in proj_configs(2, 4, 2).into_iter().enumerate() {
        fd_check(cfg, None, 100 + 10 * i as u64);
    }
}

#[test]
fn masked_gradients_match_finite_differences() {
    for (i, cfg) in proj_configs(2, 4, 3)
        .into_iter()
        .filter(|c| c.num_layers == 2)
        .enumerate()
    {
        fd_check(cfg, Some(&[4, 1, 3]), 200 + 10 * i as u64);
    }
}

// ---------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------

#[test]
fn trainer_steps_apply_the_backward_gradients_and_learn() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 8, 2)
        .with_proj_size(3)
        .with_head(1, OutputActivation::Identity);
    let mut model = Model::new(cfg, 3).unwrap();
    let (b, t) = (4, 6);
    let x = vals(b * t * 2, 4, 1.0);
    let target: Vec<f32> = (0..b * t).map(|j| x[2 * j] * 0.5).collect();
    // One SGD step moves the weights by exactly -lr · the backward's gradient.
    let tape = model.forward_train(&x, b, t, None).unwrap();
    let mut d = vec![0.0f32; b * t];
    let loss0 =
        rnncore::train::loss::mse(tape.outputs(), b, t, 1, &target, Targets::EveryStep, &mut d)
            .unwrap();
    let g = model.backward(&tape, &d, None, false).unwrap();
    let before = model.parameters().to_vec();
    let mut trainer = Trainer::new(&model, TrainConfig::sgd(0.1, 0.0)).unwrap();
    let l = trainer
        .step_mse(&mut model, None, &x, b, t, &target, Targets::EveryStep)
        .unwrap();
    assert_eq!(l.to_bits(), loss0.to_bits());
    for ((a, p), gv) in model.parameters().iter().zip(&before).zip(&g.params) {
        assert_eq!(a.to_bits(), (p - 0.1 * gv).to_bits());
    }
    let mut trainer = Trainer::new(&model, TrainConfig::adam(0.01)).unwrap();
    let mut last = l;
    for _ in 0..150 {
        last = trainer
            .step_mse(&mut model, None, &x, b, t, &target, Targets::EveryStep)
            .unwrap();
    }
    assert!(last < 0.2 * loss0, "loss {loss0} -> {last}");
}

// ---------------------------------------------------------------------------------
// Weight files and bad input
// ---------------------------------------------------------------------------------

#[test]
fn weight_files_round_trip_and_pytorch_files_load_without_metadata() {
    for cfg in proj_configs(3, 5, 2) {
        let model = Model::new(cfg, 9).unwrap();
        let bytes = model.to_safetensors().unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().clone().unwrap()["proj_size"], "2");
        let back = Model::from_safetensors(&bytes).unwrap();
        assert_eq!(*back.config(), cfg);
        assert_eq!(bits(back.parameters()), bits(model.parameters()));
        let x = vals(2 * 3 * 3, 1, 1.0);
        assert_eq!(
            bits(&back.forward(&x, 2, 3).unwrap()),
            bits(&model.forward(&x, 2, 3).unwrap())
        );
        for prefix in ["", "lstm."] {
            let back = Model::from_safetensors(&plain_file(&model, prefix, "head", None)).unwrap();
            assert_eq!(*back.config(), cfg, "{prefix}");
            assert_eq!(bits(back.parameters()), bits(model.parameters()));
        }
    }
    // Metadata saying no projection while the file has one is named.
    let model = Model::new(proj_configs(3, 5, 2)[0], 1).unwrap();
    let meta = vec![("proj_size", "0")];
    let err = Model::from_safetensors(&{
        let mut bytes = plain_file(&model, "", "head", None);
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert!(m.metadata().is_none());
        bytes = rewrite_with_metadata(&model, &meta);
        bytes
    })
    .unwrap_err();
    assert!(err.message().contains("weight_hr_l0"), "{err}");
}

fn rewrite_with_metadata(model: &Model, meta: &[(&str, &str)]) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = model
        .layout()
        .entries()
        .iter()
        .map(|e| {
            let v = &model.parameters()[e.offset..e.offset + e.len];
            (
                e.name.clone(),
                e.shape.clone(),
                v.iter().flat_map(|f| f.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

#[test]
fn bad_projections_are_refused() {
    for cell in [CellKind::RnnTanh, CellKind::Gru, CellKind::GruLbr] {
        let cfg = ModelConfig::new(cell, 2, 4, 1).with_proj_size(2);
        let err = Model::new(cfg, 1).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert!(err.message().contains("LSTM only"), "{err}");
    }
    for p in [4, 5] {
        let cfg = ModelConfig::new(CellKind::Lstm, 2, 4, 1).with_proj_size(p);
        let err = Model::new(cfg, 1).unwrap_err();
        assert!(err.message().contains("below hidden_size"), "{err}");
    }
    // Dense layers around a stack with projections.
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 4, 1).with_proj_size(2);
    let layers = rnncore::Layers {
        pre: vec![rnncore::Dense::new(3, 2, rnncore::Activation::Tanh)],
        post: vec![],
        skip: false,
    };
    let err = Model::new_with_layers(cfg, layers, 1).unwrap_err();
    assert!(err.message().contains("projections"), "{err}");
    // A state of the wrong length is refused, nothing written.
    let model = Model::new(cfg, 1).unwrap();
    let mut state = State::new(&model, 2).unwrap();
    assert_eq!(state.len(), 2 * 2 + 2 * 4);
    assert!(state.set(&[0.0; 16]).is_err());
    let mut y = vec![f32::NAN; 2 * 2];
    assert!(model.step(&mut state, &[0.0; 3], &mut y).is_err());
    assert!(y.iter().all(|v| v.is_nan()));
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Large enough that every pass runs on the pool, in several batch chunks.
    let (b, t) = (37, 20);
    let cfgs = [
        ModelConfig::new(CellKind::Lstm, 16, 64, 2)
            .with_proj_size(32)
            .with_head(4, OutputActivation::Identity),
        ModelConfig::new(CellKind::Lstm, 16, 48, 2)
            .with_proj_size(20)
            .with_bidirectional(true)
            .with_head(4, OutputActivation::Identity),
    ];
    let x = vals(b * t * 16, 1, 1.0);
    let lengths: Vec<usize> = (0..b).map(|i| 1 + (i * 7) % t).collect();
    let target = vals(b * t * 4, 2, 1.0);
    for cfg in cfgs {
        let run = |threads: usize| {
            rnncore::set_num_threads(threads).unwrap();
            let model = Model::new(cfg, 3).unwrap();
            let y = model.forward(&x, b, t).unwrap();
            let yl = model.forward_lengths(&x, b, t, &lengths).unwrap();
            let tape = model
                .forward_train_lengths(&x, b, t, Some(&lengths), None)
                .unwrap();
            let g = model.backward(&tape, &target, None, true).unwrap();
            let mut m = model.clone();
            let mut tr = Trainer::new(&m, TrainConfig::adam(0.01)).unwrap();
            for _ in 0..2 {
                tr.step_mse(&mut m, None, &x, b, t, &target, Targets::EveryStep)
                    .unwrap();
            }
            (
                bits(&y),
                bits(&yl),
                bits(&g.params),
                bits(&g.inputs),
                bits(&g.hidden.concat()),
                bits(m.parameters()),
            )
        };
        let one = run(1);
        for threads in [2, 4] {
            assert!(one == run(threads), "{cfg}: {threads} threads");
        }
    }
    rnncore::set_num_threads(0).unwrap();
}
