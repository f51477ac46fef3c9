//! Bidirectional models and padded batches with lengths: the optimized passes against
//! the f64 reference (`reference::forward_seq`, written from the definitions), finite
//! differences of the reference against the f32 backward (reverse directions, masked
//! steps), the losses with lengths, the trainer, thread-count independence, bad input,
//! the streaming step's refusal and weight files.

mod common;
use common::*;
use rnncore::__testing::reference as r;
use rnncore::{
    CellKind, Error, Model, ModelConfig, OutputActivation, State, Targets, TrainConfig, Trainer,
};

/// Every cell x {1, 2} layers x {no head, head of 3}, bidirectional.
fn bidir_configs(i: usize, h: usize) -> Vec<ModelConfig> {
    configs(i, h)
        .into_iter()
        .map(|c| c.with_bidirectional(true))
        .collect()
}

#[test]
fn bidirectional_forward_matches_the_reference() {
    for cfg in bidir_configs(3, 5) {
        for batch in [1, 3] {
            check_forward_against_reference(cfg, batch, 6, None, 11, false);
        }
    }
}

#[test]
fn lengths_forward_matches_the_reference() {
    for cfg in configs(3, 5).into_iter().chain(bidir_configs(3, 5)) {
        check_forward_against_reference(cfg, 3, 6, Some(&[6, 2, 4]), 21, false);
        check_forward_against_reference(cfg, 4, 5, Some(&[1, 5, 3, 1]), 22, false);
        check_forward_against_reference(cfg, 1, 6, Some(&[4]), 23, false);
        // Every sequence full: the same as no lengths.
        check_forward_against_reference(cfg, 2, 4, Some(&[4, 4]), 24, false);
    }
}

#[test]
fn padding_does_not_change_valid_outputs() {
    for cfg in [
        ModelConfig::new(CellKind::Lstm, 2, 6, 2).with_bidirectional(true),
        ModelConfig::new(CellKind::Gru, 2, 6, 2).with_head(3, OutputActivation::Softmax),
    ] {
        let model = Model::new(cfg, 3).unwrap();
        let (b, t, ls) = (2, 7, [3usize, 7]);
        let x = vals(b * t * 2, 4, 1.0);
        let mut x2 = x.clone();
        // Other values in sequence 0's padding.
        for v in &mut x2[3 * 2..7 * 2] {
            *v = 5.0;
        }
        let (y1, y2) = (
            model.forward_lengths(&x, b, t, &ls).unwrap(),
            model.forward_lengths(&x2, b, t, &ls).unwrap(),
        );
        assert_eq!(bits(&y1), bits(&y2), "{cfg}");
        // A sequence run alone at its own length gives its outputs.
        let o = cfg.output_dim();
        let alone = model.forward(&x[..3 * 2], 1, 3).unwrap();
        assert!(max_abs_diff(&alone, &y1[..3 * o]) < 1e-6, "{cfg}");
        if cfg.output_activation == OutputActivation::Softmax {
            let s: f32 = y1[..o].iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "{cfg}: softmax on valid steps");
        }
    }
}

#[test]
fn bidirectional_outputs_and_states_are_laid_out_as_pytorch() {
    // Zero weights except the biases: every h is a known constant per direction.
    let cfg = ModelConfig::new(CellKind::RnnTanh, 1, 2, 2).with_bidirectional(true);
    let model = Model::new(cfg, 1).unwrap();
    let mut p = vec![0.0f32; model.parameters().len()];
    let layout = model.layout().clone();
    let names: Vec<&str> = layout.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "weight_ih_l0",
            "weight_hh_l0",
            "bias_ih_l0",
            "bias_hh_l0",
            "weight_ih_l0_reverse",
            "weight_hh_l0_reverse",
            "bias_ih_l0_reverse",
            "bias_hh_l0_reverse",
            "weight_ih_l1",
            "weight_hh_l1",
            "bias_ih_l1",
            "bias_hh_l1",
            "weight_ih_l1_reverse",
            "weight_hh_l1_reverse",
            "bias_ih_l1_reverse",
            "bias_hh_l1_reverse",
        ]
    );
    assert_eq!(layout.find("weight_ih_l1").unwrap().shape, [2, 4]);
    // The reverse direction of layer 0 sees x through weight_ih_l0_reverse only, and
    // it accumulates from the end: with W_hh = identity-ish we can tell directions apart.
    let set = |p: &mut Vec<f32>, name: &str, v: &[f32]| {
        let e = layout.find(name).unwrap();
        p[e.offset..e.offset + e.len].copy_from_slice(v);
    };
    set(&mut p, "bias_ih_l0", &[0.1, 0.2]);
    set(&mut p, "bias_ih_l0_reverse", &[0.3, 0.4]);
    set(&mut p, "bias_ih_l1", &[0.5, 0.6]);
    set(&mut p, "bias_ih_l1_reverse", &[0.7, 0.8]);
    // Layer 0's reverse direction reads x; its forward one does not.
    set(&mut p, "weight_ih_l0_reverse", &[1.0, 0.0]);
    let model = Model::from_parameters(cfg, p).unwrap();
    let x = [0.0f32, 0.0, 2.0]; // one sequence, 3 steps
    let mut y = vec![f32::NAN; 3 * 4];
    let mut fin = vec![f32::NAN; cfg.state_len(1)];
    model
        .forward_with_state(&x, 1, 3, None, &mut y, Some(&mut fin))
        .unwrap();
    let t = |v: f32| v.tanh();
    // Top layer outputs are [fwd(0.5, 0.6) | rev(0.7, 0.8)] everywhere.
    for s in 0..3 {
        assert!((y[s * 4] - t(0.5)).abs() < 1e-6 && (y[s * 4 + 3] - t(0.8)).abs() < 1e-6);
    }
    // h_n order: l0 fwd, l0 rev, l1 fwd, l1 rev. Layer 0's reverse direction ends at
    // position 0 after reading x[2] = 2 first: its final state is tanh(0.3) (x[0] = 0).
    let want = [
        t(0.1),
        t(0.2),
        t(0.3),
        t(0.4),
        t(0.5),
        t(0.6),
        t(0.7),
        t(0.8),
    ];
    assert!(max_abs_diff(&fin, &want) < 1e-6, "{fin:?}");
    // With lengths [2], the reverse direction starts at position 1 (x = 0), never
    // reading x[2]: the same states.
    let mut y2 = vec![f32::NAN; 3 * 4];
    let mut fin2 = vec![f32::NAN; cfg.state_len(1)];
    model
        .forward_with_state_lengths(&x, 1, 3, Some(&[2]), None, &mut y2, Some(&mut fin2))
        .unwrap();
    assert!(max_abs_diff(&fin2, &want) < 1e-6);
    assert_eq!(&y2[8..], &[0.0; 4]);
    // Without lengths the reverse direction at position 2 read x = 2 first.
    let _ = (y, fin);
}

#[test]
fn streaming_refuses_a_bidirectional_model() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 4, 1).with_bidirectional(true);
    let model = Model::new(cfg, 1).unwrap();
    let e = State::new(&model, 1).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(_)) && e.message().contains("bidirectional"),
        "{e}"
    );
    // A state made for the unidirectional twin: refused, nothing written or changed.
    let uni = Model::new(ModelConfig::new(CellKind::Lstm, 2, 4, 1), 1).unwrap();
    let mut state = State::new(&uni, 1).unwrap();
    let mut y = [f32::NAN; 8];
    uni.step(&mut state, &[0.3, 0.4], &mut [0.0; 4]).unwrap();
    let before = state.as_slice().to_vec();
    let e = model.step(&mut state, &[0.1, 0.2], &mut y).unwrap_err();
    assert!(e.message().contains("bidirectional"), "{e}");
    assert!(y.iter().all(|v| v.is_nan()));
    assert_eq!(bits(state.as_slice()), bits(&before));
    let e = model
        .forward_state(&mut state, &[0.1, 0.2], 1, &mut y)
        .unwrap_err();
    assert!(e.message().contains("bidirectional"), "{e}");
    assert!(y.iter().all(|v| v.is_nan()));
    assert_eq!(bits(state.as_slice()), bits(&before));
}

#[test]
fn bad_lengths_are_refused_and_nothing_is_written() {
    for cfg in [
        ModelConfig::new(CellKind::Gru, 2, 3, 2).with_bidirectional(true),
        ModelConfig::new(CellKind::Lstm, 2, 3, 1).with_head(2, OutputActivation::Identity),
    ] {
        let mut model = Model::new(cfg, 2).unwrap();
        let (b, t) = (2, 4);
        let x = vals(b * t * 2, 3, 1.0);
        let bad: [&[usize]; 5] = [&[0, 4], &[4, 5], &[4], &[4, 4, 4], &[]];
        for ls in bad {
            let mut y = vec![f32::NAN; b * t * cfg.output_dim()];
            let mut fin = vec![f32::NAN; cfg.state_len(b)];
            let e = model
                .forward_with_state_lengths(&x, b, t, Some(ls), None, &mut y, Some(&mut fin))
                .unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{e}");
            assert!(e.message().contains("lengths"), "{e}");
            assert!(y.iter().all(|v| v.is_nan()) && fin.iter().all(|v| v.is_nan()));
            assert!(model.forward_lengths(&x, b, t, ls).is_err());
            assert!(model
                .forward_train_lengths(&x, b, t, Some(ls), None)
                .is_err());
            let before = model.parameters().to_vec();
            let mut tr = Trainer::new(&model, TrainConfig::sgd(0.1, 0.0)).unwrap();
            let target = vec![0.0f32; b * t * cfg.output_dim()];
            let e = tr
                .step_mse_lengths(
                    &mut model,
                    None,
                    &x,
                    b,
                    t,
                    Some(ls),
                    &target,
                    Targets::EveryStep,
                )
                .unwrap_err();
            assert!(e.message().contains("lengths"), "{e}");
            let labels = vec![0i32; b * t];
            let e = tr
                .step_cross_entropy_lengths(
                    &mut model,
                    None,
                    &x,
                    b,
                    t,
                    Some(ls),
                    &labels,
                    Targets::EveryStep,
                )
                .unwrap_err();
            assert!(e.message().contains("lengths"), "{e}");
            assert_eq!(bits(model.parameters()), bits(&before));
            assert_eq!(tr.steps(), 0);
        }
    }
}

#[test]
fn dense_layers_around_a_bidirectional_stack_are_refused() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 3, 1).with_bidirectional(true);
    let layers = rnncore::Layers {
        pre: vec![rnncore::Dense::new(4, 2, rnncore::Activation::Tanh)],
        ..Default::default()
    };
    let e = Model::new_with_layers(cfg, layers, 1).unwrap_err();
    assert!(e.message().contains("bidirectional"), "{e}");
}

// ---------------------------------------------------------------------------------
// Weight files
// ---------------------------------------------------------------------------------

#[test]
fn bidirectional_models_round_trip_through_safetensors() {
    for cfg in bidir_configs(3, 4) {
        let model = Model::new(cfg, 9).unwrap();
        let bytes = model.to_safetensors().unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["bidirectional"], "true");
        let back = Model::from_safetensors(&bytes).unwrap();
        assert_eq!(*back.config(), cfg);
        assert_eq!(bits(back.parameters()), bits(model.parameters()));
        let x = vals(2 * 3 * 3, 1, 1.0);
        assert_eq!(
            bits(&back.forward(&x, 2, 3).unwrap()),
            bits(&model.forward(&x, 2, 3).unwrap())
        );
    }
    // Unidirectional files say so.
    let uni = Model::new(ModelConfig::new(CellKind::Gru, 2, 3, 1), 1).unwrap();
    let bytes = uni.to_safetensors().unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().clone().unwrap()["bidirectional"], "false");
}

#[test]
fn pytorch_files_with_reverse_tensors_load_without_metadata() {
    // The cells the shapes decide (relu RNN and the notes' GRU need the `cell` key).
    let inferred = [CellKind::RnnTanh, CellKind::Lstm, CellKind::GruLbr];
    for cfg in bidir_configs(3, 4)
        .into_iter()
        .filter(|c| inferred.contains(&c.cell))
    {
        let model = Model::new(cfg, 4).unwrap();
        for (prefix, head) in [("", "head"), ("lstm.", "fc")] {
            let bytes = plain_file(&model, prefix, head, None);
            let back = Model::from_safetensors(&bytes).unwrap();
            assert_eq!(*back.config(), cfg, "{prefix}");
            assert_eq!(bits(back.parameters()), bits(model.parameters()));
        }
    }
    // A reverse tensor missing is named.
    let cfg = ModelConfig::new(CellKind::Lstm, 3, 4, 2).with_bidirectional(true);
    let model = Model::new(cfg, 4).unwrap();
    let bytes = plain_file(&model, "", "head", None);
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "bias_hh_l1_reverse")
        .collect();
    let short = safetensors::serialize(kept, None).unwrap();
    let e = Model::from_safetensors(&short).unwrap_err();
    assert!(e.message().contains("bias_hh_l1_reverse"), "{e}");
    // Metadata saying unidirectional with reverse tensors present: the extra tensor named.
    let meta = vec![("bidirectional".to_string(), "false".to_string())];
    let e = Model::from_safetensors(&plain_file(&model, "", "head", Some(meta))).unwrap_err();
    assert!(e.message().contains("_reverse"), "{e}");
    let meta = vec![("bidirectional".to_string(), "yes".to_string())];
    let e = Model::from_safetensors(&plain_file(&model, "", "head", Some(meta))).unwrap_err();
    assert!(e.message().contains("bidirectional"), "{e}");
}

#[test]
fn files_without_the_bidirectional_key_load_as_before() {
    let cfg = ModelConfig::new(CellKind::GruLbr, 3, 4, 2).with_head(2, OutputActivation::Identity);
    let model = Model::new(cfg, 5).unwrap();
    let meta: Vec<(String, String)> = [
        ("cell", "gru_lbr"),
        ("input_size", "3"),
        ("hidden_size", "4"),
        ("num_layers", "2"),
        ("output_size", "2"),
        ("output_activation", "identity"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    for m in [None, Some(meta)] {
        let back = Model::from_safetensors(&plain_file(&model, "", "head", m)).unwrap();
        assert_eq!(*back.config(), cfg);
        assert!(!back.config().bidirectional);
    }
}

// ---------------------------------------------------------------------------------
// Gradients: central differences of the f64 reference against the f32 backward
// ---------------------------------------------------------------------------------

const B: usize = 3;
const T: usize = 5;

/// A loss on the reference's outputs and final state, and its gradient for the f32
/// backward.
enum Loss {
    /// `Σ w·out + Σ v·final` with fixed random weights (`v` optional).
    Linear(Vec<f64>, Option<Vec<f64>>),
    /// `loss::mse_lengths` against targets.
    Mse(Targets, Vec<f32>),
    /// `loss::cross_entropy_lengths` against labels.
    Xent(Targets, Vec<i32>),
}

struct Fd {
    cfg: ModelConfig,
    model: Model,
    x: Vec<f32>,
    init: Vec<f32>,
    lengths: Option<Vec<usize>>,
    loss: Loss,
}

impl Fd {
    fn lens(&self) -> Vec<usize> {
        self.lengths.clone().unwrap_or(vec![T; B])
    }

    /// Rows carrying a target (as the losses with lengths pick them).
    fn rows(&self, targets: Targets) -> Vec<usize> {
        let mut v = Vec::new();
        for (b, &n) in self.lens().iter().enumerate() {
            match targets {
                Targets::EveryStep => v.extend((0..n).map(|t| b * T + t)),
                Targets::LastStep => v.push(b * T + n - 1),
            }
        }
        v
    }

    /// The loss in f64 from the reference, written from its definition.
    fn reference_loss(&self, p: &[f64], x: &[f64], init: &[f64]) -> f64 {
        let (out, fin) = r::forward_seq(&self.cfg, p, x, B, T, init, self.lengths.as_deref());
        let o = self.cfg.output_dim();
        match &self.loss {
            Loss::Linear(w, v) => {
                let a: f64 = out.iter().zip(w).map(|(a, b)| a * b).sum();
                a + v
                    .as_ref()
                    .map_or(0.0, |v| fin.iter().zip(v).map(|(a, b)| a * b).sum())
            }
            Loss::Mse(tg, target) => {
                // Mean over the valid rows' elements.
                let rows = self.rows(*tg);
                let mut s = 0.0;
                for (i, &rw) in rows.iter().enumerate() {
                    let ti = match tg {
                        Targets::EveryStep => rw,
                        Targets::LastStep => i,
                    };
                    for q in 0..o {
                        let e = out[rw * o + q] - target[ti * o + q] as f64;
                        s += e * e;
                    }
                }
                s / (rows.len() * o) as f64
            }
            Loss::Xent(tg, labels) => {
                let rows = self.rows(*tg);
                let mut sel = Vec::new();
                let mut lab = Vec::new();
                for (i, &rw) in rows.iter().enumerate() {
                    sel.extend_from_slice(&out[rw * o..(rw + 1) * o]);
                    lab.push(match tg {
                        Targets::EveryStep => labels[rw],
                        Targets::LastStep => labels[i],
                    });
                }
                r::cross_entropy(&sel, &lab, o).0
            }
        }
    }

    /// The f32 gradients: the recorded pass, the loss's ∂L/∂out, backward.
    fn analytic(&self) -> rnncore::Gradients {
        let tape = self
            .model
            .forward_train_lengths(&self.x, B, T, self.lengths.as_deref(), Some(&self.init))
            .unwrap();
        let o = self.cfg.output_dim();
        let lens = self.lens();
        let mut d = vec![0.0f32; B * T * o];
        let dfin: Option<Vec<f32>> = match &self.loss {
            Loss::Linear(w, v) => {
                d = w.iter().map(|&a| a as f32).collect();
                v.as_ref().map(|v| v.iter().map(|&a| a as f32).collect())
            }
            Loss::Mse(tg, target) => {
                rnncore::train::loss::mse_lengths(
                    tape.outputs(),
                    B,
                    T,
                    o,
                    &lens,
                    target,
                    *tg,
                    &mut d,
                )
                .unwrap();
                None
            }
            Loss::Xent(tg, labels) => {
                rnncore::train::loss::cross_entropy_lengths(
                    tape.outputs(),
                    B,
                    T,
                    o,
                    &lens,
                    labels,
                    *tg,
                    &mut d,
                )
                .unwrap();
                None
            }
        };
        let g = self
            .model
            .backward(&tape, &d, dfin.as_deref(), true)
            .unwrap();
        // The total ∂L/∂h_t of every layer: zero past each length; without a head, the
        // top layer's forward half at a sequence's last step is ∂L/∂out there alone.
        let (h, w) = (self.cfg.hidden_size, self.cfg.layer_output_dim());
        assert_eq!(g.hidden.len(), self.cfg.num_layers);
        for hid in &g.hidden {
            assert_eq!(hid.len(), B * T * w);
            for (b, &n) in lens.iter().enumerate() {
                assert!(hid[(b * T + n) * w..(b + 1) * T * w]
                    .iter()
                    .all(|&v| v == 0.0));
                if !self.cfg.has_head()
                    && dfin.is_none()
                    && std::ptr::eq(hid, g.hidden.last().unwrap())
                {
                    let r = (b * T + n - 1) * w;
                    assert_eq!(bits(&hid[r..r + h]), bits(&d[r..r + h]), "{}", self.cfg);
                }
            }
        }
        g
    }

    fn check(&self) {
        let g = self.analytic();
        let p = f64s(self.model.parameters());
        let (x, init) = (f64s(&self.x), f64s(&self.init));
        let name = format!("{} lengths {:?}", self.cfg, self.lengths);
        for e in self.model.layout().entries() {
            let num: Vec<f64> = (e.offset..e.offset + e.len)
                .map(|i| fd(&p, i, |v| self.reference_loss(v, &x, &init)))
                .collect();
            compare_fd(
                &format!("{name} {}", e.name),
                &num,
                &g.params[e.offset..e.offset + e.len],
                false,
            );
        }
        let num: Vec<f64> = (0..x.len())
            .map(|i| fd(&x, i, |v| self.reference_loss(&p, v, &init)))
            .collect();
        compare_fd(&format!("{name} x"), &num, &g.inputs, false);
        let num: Vec<f64> = (0..init.len())
            .map(|i| fd(&init, i, |v| self.reference_loss(&p, &x, v)))
            .collect();
        compare_fd(
            &format!("{name} initial state"),
            &num,
            &g.initial_state,
            false,
        );
    }
}

fn fd_case(cfg: ModelConfig, lengths: Option<&[usize]>, loss: Loss, seed: u64) -> Fd {
    Fd {
        cfg,
        model: Model::new(cfg, seed).unwrap(),
        x: vals(B * T * cfg.input_size, seed + 1, 1.0),
        init: vals(cfg.state_len(B), seed + 2, 0.5),
        lengths: lengths.map(<[usize]>::to_vec),
        loss,
    }
}

fn linear(cfg: &ModelConfig, with_final: bool, seed: u64) -> Loss {
    let w = f64s(&vals(B * T * cfg.output_dim(), seed, 1.0));
    let v = with_final.then(|| f64s(&vals(cfg.state_len(B), seed + 1, 1.0)));
    Loss::Linear(w, v)
}

#[test]
fn reverse_direction_gradients_match_finite_differences() {
    for (i, cfg) in bidir_configs(2, 3).into_iter().enumerate() {
        let loss = linear(&cfg, true, 40 + i as u64);
        fd_case(cfg, None, loss, 50 + i as u64).check();
    }
}

#[test]
fn masked_gradients_match_finite_differences() {
    let lengths: &[usize] = &[5, 2, 4];
    for (i, cfg) in configs(2, 3)
        .into_iter()
        .chain(bidir_configs(2, 3))
        .enumerate()
    {
        // With a gradient on the final state too: it enters at each sequence's own end.
        let loss = linear(&cfg, i % 2 == 0, 60 + i as u64);
        fd_case(cfg, Some(lengths), loss, 70 + i as u64).check();
    }
}

#[test]
fn masked_losses_match_finite_differences() {
    let lengths: &[usize] = &[3, 5, 1];
    let cfgs = [
        ModelConfig::new(CellKind::Lstm, 2, 3, 2)
            .with_bidirectional(true)
            .with_head(3, OutputActivation::Identity),
        ModelConfig::new(CellKind::GruLbr, 2, 3, 1).with_head(3, OutputActivation::Identity),
        ModelConfig::new(CellKind::Gru, 2, 3, 1).with_bidirectional(true),
    ];
    for (i, cfg) in cfgs.into_iter().enumerate() {
        let o = cfg.output_dim();
        for tg in [Targets::EveryStep, Targets::LastStep] {
            let rows = match tg {
                Targets::EveryStep => B * T,
                Targets::LastStep => B,
            };
            let seed = 80 + 10 * i as u64;
            let target = vals(rows * o, seed, 1.0);
            fd_case(cfg, Some(lengths), Loss::Mse(tg, target), seed).check();
            let labels: Vec<i32> = (0..rows)
                .map(|j| if j % 4 == 2 { -1 } else { ((j * 5) % o) as i32 })
                .collect();
            fd_case(cfg, Some(lengths), Loss::Xent(tg, labels), seed + 1).check();
        }
    }
}

#[test]
fn full_lengths_backward_exactly_as_no_lengths() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 3, 1).with_bidirectional(true);
    let model = Model::new(cfg, 1).unwrap();
    let x = vals(2 * 3 * 2, 1, 1.0);
    let d = vals(2 * 3 * 6, 2, 1.0);
    let dfin = vals(cfg.state_len(2), 3, 1.0);
    let tape2 = model
        .forward_train_lengths(&x, 2, 3, Some(&[3, 3]), None)
        .unwrap();
    let tape3 = model.forward_train(&x, 2, 3, None).unwrap();
    let g2 = model.backward(&tape2, &d, Some(&dfin), false).unwrap();
    let g3 = model.backward(&tape3, &d, Some(&dfin), false).unwrap();
    assert_eq!(bits(&g2.params), bits(&g3.params));
    assert_eq!(bits(&g2.inputs), bits(&g3.inputs));
    assert_eq!(bits(&g2.initial_state), bits(&g3.initial_state));
}

// ---------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------

/// One SGD step of the trainer is `θ − lr·∂L/∂θ` with the gradient of the public pieces
/// (`forward_train_lengths`, the loss with lengths, `backward`): the trainer's steps
/// with and without lengths, both losses, bidirectional and not.
#[test]
fn trainer_steps_apply_the_masked_gradients() {
    let cfgs = [
        ModelConfig::new(CellKind::Lstm, 2, 4, 2)
            .with_bidirectional(true)
            .with_head(3, OutputActivation::Identity),
        ModelConfig::new(CellKind::GruLbr, 2, 4, 2).with_bidirectional(true),
        ModelConfig::new(CellKind::Gru, 2, 4, 1).with_head(3, OutputActivation::Softmax),
    ];
    let lr = 0.5f32;
    for cfg in cfgs {
        let o = cfg.output_dim();
        for lengths in [None, Some(&[5usize, 2, 3][..])] {
            for (li, tg) in [Targets::EveryStep, Targets::LastStep]
                .into_iter()
                .enumerate()
            {
                let rows = if tg == Targets::EveryStep { B * T } else { B };
                let x = vals(B * T * 2, 5 + li as u64, 1.0);
                let target = vals(rows * o, 6, 1.0);
                let labels: Vec<i32> = (0..rows).map(|j| (j % o) as i32).collect();
                let lens = lengths.map_or(vec![T; B], <[usize]>::to_vec);
                for xent in [false, true] {
                    let mut model = Model::new(cfg, 7).unwrap();
                    let before = model.parameters().to_vec();
                    let tape = model
                        .forward_train_lengths(&x, B, T, lengths, None)
                        .unwrap();
                    let mut d = vec![0.0f32; B * T * o];
                    let want_loss = if xent {
                        rnncore::train::loss::cross_entropy_lengths(
                            tape.outputs(),
                            B,
                            T,
                            o,
                            &lens,
                            &labels,
                            tg,
                            &mut d,
                        )
                    } else {
                        rnncore::train::loss::mse_lengths(
                            tape.outputs(),
                            B,
                            T,
                            o,
                            &lens,
                            &target,
                            tg,
                            &mut d,
                        )
                    }
                    .unwrap();
                    let g = model.backward(&tape, &d, None, false).unwrap();
                    let mut tr = Trainer::new(&model, TrainConfig::sgd(lr, 0.0)).unwrap();
                    let loss = if xent {
                        tr.step_cross_entropy_lengths(
                            &mut model, None, &x, B, T, lengths, &labels, tg,
                        )
                    } else {
                        tr.step_mse_lengths(&mut model, None, &x, B, T, lengths, &target, tg)
                    }
                    .unwrap();
                    assert_eq!(loss.to_bits(), want_loss.to_bits(), "{cfg}");
                    let want: Vec<f32> = before
                        .iter()
                        .zip(&g.params)
                        .map(|(p, g)| p - lr * g)
                        .collect();
                    assert!(
                        max_abs_diff(model.parameters(), &want) < 1e-6,
                        "{cfg} lengths {lengths:?} {tg:?} xent {xent}"
                    );
                    assert!(g.params.iter().any(|&v| v != 0.0));
                }
            }
        }
    }
}

#[test]
fn full_lengths_train_exactly_as_no_lengths() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 4, 2).with_head(2, OutputActivation::Identity);
    let x = vals(B * T * 2, 1, 1.0);
    let target = vals(B * T * 2, 2, 1.0);
    let (mut a, mut b) = (Model::new(cfg, 3).unwrap(), Model::new(cfg, 3).unwrap());
    let mut ta = Trainer::new(&a, TrainConfig::adam(0.01)).unwrap();
    let mut tb = Trainer::new(&b, TrainConfig::adam(0.01)).unwrap();
    for _ in 0..3 {
        let la = ta
            .step_mse(&mut a, None, &x, B, T, &target, Targets::EveryStep)
            .unwrap();
        let lb = tb
            .step_mse_lengths(
                &mut b,
                None,
                &x,
                B,
                T,
                Some(&[T; B]),
                &target,
                Targets::EveryStep,
            )
            .unwrap();
        assert_eq!(la.to_bits(), lb.to_bits());
    }
    assert!(max_abs_diff(a.parameters(), b.parameters()) < 1e-6);
}

#[test]
fn a_state_carried_through_steps_with_lengths_is_each_sequences_own_last() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 4, 2).with_head(2, OutputActivation::Identity);
    let mut model = Model::new(cfg, 3).unwrap();
    let x = vals(B * T * 2, 1, 1.0);
    let target = vals(B * T * 2, 2, 1.0);
    let lengths = [2usize, 5, 1];
    let want = model
        .forward_train_lengths(&x, B, T, Some(&lengths), None)
        .unwrap()
        .final_state()
        .to_vec();
    let mut state = State::new(&model, B).unwrap();
    let mut tr = Trainer::new(&model, TrainConfig::sgd(0.1, 0.0)).unwrap();
    tr.step_mse_lengths(
        &mut model,
        Some(&mut state),
        &x,
        B,
        T,
        Some(&lengths),
        &target,
        Targets::EveryStep,
    )
    .unwrap();
    assert_eq!(bits(state.as_slice()), bits(&want));
}

/// A task only a model that sees the future can solve: the target at step t is the
/// input at step t + 1. A bidirectional GRU learns it; its unidirectional twin cannot.
#[test]
fn a_bidirectional_model_learns_to_look_ahead() {
    let (b, t) = (8, 10);
    let x = vals(b * t, 3, 1.0);
    let mut target = vec![0.0f32; b * t];
    for s in 0..b {
        for u in 0..t - 1 {
            target[s * t + u] = x[s * t + u + 1];
        }
    }
    let mut losses = Vec::new();
    for bidir in [false, true] {
        let cfg = ModelConfig::new(CellKind::GruLbr, 1, 12, 1)
            .with_bidirectional(bidir)
            .with_head(1, OutputActivation::Identity);
        let mut model = Model::new(cfg, 5).unwrap();
        let mut tr = Trainer::new(&model, TrainConfig::adam(0.02)).unwrap();
        let mut last = 0.0;
        for _ in 0..300 {
            last = tr
                .step_mse(&mut model, None, &x, b, t, &target, Targets::EveryStep)
                .unwrap();
        }
        losses.push(last);
    }
    assert!(
        losses[1] < 0.02 && losses[1] < losses[0] / 5.0,
        "unidirectional {}, bidirectional {}",
        losses[0],
        losses[1]
    );
}

/// Forward, backward and trainer steps give the same bits on 1 thread and on several,
/// at a size that takes the parallel paths.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let cfg = ModelConfig::new(CellKind::Lstm, 8, 64, 2)
        .with_bidirectional(true)
        .with_head(4, OutputActivation::Identity);
    let (b, t) = (16, 24);
    let x = vals(b * t * 8, 1, 1.0);
    let lengths: Vec<usize> = (0..b).map(|i| 1 + (i * 7) % t).collect();
    let target = vals(b * t * 4, 2, 1.0);
    let run = |threads: usize| {
        rnncore::set_num_threads(threads).unwrap();
        let model = Model::new(cfg, 3).unwrap();
        let y = model.forward(&x, b, t).unwrap();
        let yl = model.forward_lengths(&x, b, t, &lengths).unwrap();
        let tape = model
            .forward_train_lengths(&x, b, t, Some(&lengths), None)
            .unwrap();
        let g = model.backward(&tape, &target, None, false).unwrap();
        let mut m = model.clone();
        let mut tr = Trainer::new(&m, TrainConfig::adam(0.01)).unwrap();
        for _ in 0..2 {
            tr.step_mse_lengths(
                &mut m,
                None,
                &x,
                b,
                t,
                Some(&lengths),
                &target,
                Targets::EveryStep,
            )
            .unwrap();
        }
        (
            bits(&y),
            bits(&yl),
            bits(&g.params),
            bits(&g.inputs),
            bits(m.parameters()),
        )
    };
    let one = run(1);
    for threads in [2, 3, 4] {
        assert!(one == run(threads), "{threads} threads");
    }
    rnncore::set_num_threads(0).unwrap();
}

#[test]
fn forget_bias_reaches_both_directions() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 3, 2).with_bidirectional(true);
    let model = Model::new(cfg, 1).unwrap().with_forget_bias(1.0).unwrap();
    for k in 0..2 {
        for sfx in ["", "_reverse"] {
            let b = model.tensor(&format!("bias_ih_l{k}{sfx}")).unwrap();
            assert!(b[3..6].iter().all(|&v| v == 1.0), "l{k}{sfx}");
            let b = model.tensor(&format!("bias_hh_l{k}{sfx}")).unwrap();
            assert!(b[3..6].iter().all(|&v| v == 0.0), "l{k}{sfx}");
        }
    }
    // The directions' own copies were remade: forward sees the new biases.
    let x = vals(2 * 4 * 2, 2, 1.0);
    let y = model.forward(&x, 2, 4).unwrap();
    let (ry, _) = r::forward_seq(
        &cfg,
        &f64s(model.parameters()),
        &f64s(&x),
        2,
        4,
        &vec![0.0; cfg.state_len(2)],
        None,
    );
    assert!(max_err(&y, &ry) < 2e-5);
}

/// A padded batch is its sequences run one by one at their own lengths: outputs, final
/// states and the gradients (of the outputs and of the final state, which enters at each
/// sequence's own end) summed over the sequences (each an exact identity up to f32
/// rounding). Covers a bidirectional stack with a head, and a unidirectional
/// one with dense layers before and after it and the skip connection.
#[test]
fn a_padded_batch_is_its_sequences_run_alone() {
    let layered = rnncore::Layers {
        pre: vec![rnncore::Dense::new(3, 4, rnncore::Activation::Tanh)],
        post: vec![rnncore::Dense::new(5, 3, rnncore::Activation::Identity)],
        skip: true,
    };
    let models = [
        Model::new(
            ModelConfig::new(CellKind::Lstm, 3, 5, 2)
                .with_bidirectional(true)
                .with_head(2, OutputActivation::Identity),
            1,
        )
        .unwrap(),
        Model::new_with_layers(ModelConfig::new(CellKind::GruLbr, 4, 5, 2), layered, 2).unwrap(),
    ];
    for model in models {
        let cfg = *model.config();
        let (i, o) = (model.input_size(), model.output_size());
        let (b, t, ls) = (3usize, 6usize, [2usize, 6, 4]);
        let x = vals(b * t * i, 3, 1.0);
        let init = vals(cfg.state_len(b), 4, 0.5);
        let w = vals(b * t * o, 5, 1.0);
        let dfin = vals(cfg.state_len(b), 6, 1.0);
        let tape = model
            .forward_train_lengths(&x, b, t, Some(&ls), Some(&init))
            .unwrap();
        let g = model.backward(&tape, &w, Some(&dfin), true).unwrap();
        let mut y = vec![f32::NAN; b * t * o];
        let mut fin = vec![f32::NAN; cfg.state_len(b)];
        model
            .forward_with_state_lengths(&x, b, t, Some(&ls), Some(&init), &mut y, Some(&mut fin))
            .unwrap();
        let mut sum = vec![0.0f32; g.params.len()];
        let h = cfg.hidden_size;
        // Row s of a [parts][B][H] snapshot (h, then c for LSTM) of `batch` streams.
        let pick = |s: &[f32], batch: usize, row: usize| -> Vec<f32> {
            let parts = s.len() / (batch * h);
            (0..parts)
                .flat_map(|p| s[(p * batch + row) * h..(p * batch + row + 1) * h].to_vec())
                .collect()
        };
        for (s, &n) in ls.iter().enumerate() {
            let xs = &x[s * t * i..(s * t + n) * i];
            let s0 = pick(&init, b, s);
            let tp = model.forward_train(xs, 1, n, Some(&s0)).unwrap();
            let ws = &w[s * t * o..(s * t + n) * o];
            let gs = model
                .backward(&tp, ws, Some(&pick(&dfin, b, s)), true)
                .unwrap();
            for (k, (hid, hs)) in g.hidden.iter().zip(&gs.hidden).enumerate() {
                let hw = hid.len() / (b * t);
                let r = s * t * hw..(s * t + n) * hw;
                assert!(
                    max_abs_diff(&hid[r], hs) < 1e-6,
                    "{cfg}: hidden of layer {k}"
                );
            }
            sum.iter_mut().zip(&gs.params).for_each(|(a, v)| *a += v);
            assert!(
                max_abs_diff(
                    &tp.outputs()[..n * o],
                    &tape.outputs()[s * t * o..(s * t + n) * o]
                ) < 1e-6
            );
            assert!(max_abs_diff(&pick(tape.final_state(), b, s), tp.final_state()) < 1e-6);
            assert!(max_abs_diff(&pick(&fin, b, s), tp.final_state()) < 1e-6);
            assert!(max_abs_diff(&g.inputs[s * t * i..(s * t + n) * i], &gs.inputs) < 1e-6);
            assert!(g.inputs[(s * t + n) * i..(s + 1) * t * i]
                .iter()
                .all(|&v| v == 0.0));
            assert!(max_abs_diff(&pick(&g.initial_state, b, s), &gs.initial_state) < 1e-6);
            assert!(y[(s * t + n) * o..(s + 1) * t * o]
                .iter()
                .all(|&v| v == 0.0));
            let r = s * t * o..(s * t + n) * o;
            assert!(max_abs_diff(&y[r.clone()], &tape.outputs()[r]) < 1e-6);
        }
        let scale = sum.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            max_abs_diff(&g.params, &sum) < 1e-5 * scale.max(1.0),
            "{cfg}: parameter gradients"
        );
    }
}

/// `Model::forward_state_lengths`: with every length full it is `forward_state` (same
/// bits, state included); a shorter stream keeps the state at its own last step, its
/// outputs past it are zero, and the others are unaffected; bad lengths change nothing.
#[test]
fn streaming_blocks_with_lengths_keep_each_streams_own_last_state() {
    for cfg in [
        ModelConfig::new(CellKind::Lstm, 2, 5, 2).with_head(3, OutputActivation::Identity),
        ModelConfig::new(CellKind::GruLbr, 2, 4, 1),
    ] {
        let model = Model::new(cfg, 7).unwrap();
        let (b, t, i, o) = (3, 4, cfg.input_size, cfg.output_dim());
        let warm = vals(b * 2 * i, 1, 1.0);
        let x = vals(b * t * i, 2, 1.0);
        let mut s0 = State::with_block(&model, b, t).unwrap();
        let mut scratch = vec![0.0; b * 2 * o];
        model
            .forward_state(&mut s0, &warm, 2, &mut scratch)
            .unwrap();

        let (mut sa, mut sb) = (s0.clone(), s0.clone());
        let (mut ya, mut yb) = (vec![f32::NAN; b * t * o], vec![f32::NAN; b * t * o]);
        model.forward_state(&mut sa, &x, t, &mut ya).unwrap();
        model
            .forward_state_lengths(&mut sb, &x, t, &[t; 3], &mut yb)
            .unwrap();
        assert_eq!(bits(&ya), bits(&yb), "{cfg}");
        assert_eq!(bits(sa.as_slice()), bits(sb.as_slice()), "{cfg}");

        let lengths = [t, 2, 1];
        let mut sl = s0.clone();
        let mut yl = vec![f32::NAN; b * t * o];
        model
            .forward_state_lengths(&mut sl, &x, t, &lengths, &mut yl)
            .unwrap();
        let bh = b * cfg.hidden_size;
        let h = cfg.hidden_size;
        for (s, &n) in lengths.iter().enumerate() {
            // Stream s alone, from its own state, for its own length.
            let mut one = State::with_block(&model, 1, t).unwrap();
            let mine: Vec<f32> = s0
                .as_slice()
                .chunks(bh)
                .flat_map(|p| p[s * h..(s + 1) * h].to_vec())
                .collect();
            one.set(&mine).unwrap();
            let mut y1 = vec![0.0; n * o];
            model
                .forward_state(&mut one, &x[s * t * i..(s * t + n) * i], n, &mut y1)
                .unwrap();
            let row = &yl[s * t * o..(s + 1) * t * o];
            assert!(max_abs_diff(&row[..n * o], &y1) < 1e-6, "{cfg} stream {s}");
            assert!(row[n * o..].iter().all(|&v| v == 0.0), "{cfg} stream {s}");
            let got: Vec<f32> = sl
                .as_slice()
                .chunks(bh)
                .flat_map(|p| p[s * h..(s + 1) * h].to_vec())
                .collect();
            assert!(
                max_abs_diff(&got, one.as_slice()) < 1e-6,
                "{cfg} stream {s}"
            );
        }

        // Bad lengths: an error, and neither y nor the state changes.
        let before = sl.as_slice().to_vec();
        for bad in [&[t, 0, 1][..], &[t, t + 1, 1], &[t, 1]] {
            let mut y = vec![f32::NAN; b * t * o];
            let e = model.forward_state_lengths(&mut sl, &x, t, bad, &mut y);
            assert!(matches!(e, Err(Error::Invalid(_))), "{cfg} {bad:?}: {e:?}");
            assert!(y.iter().all(|v| v.is_nan()));
            assert_eq!(bits(sl.as_slice()), bits(&before));
        }
    }
}
