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

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
}

/// Largest `|a - b|` over f32 against f64.
fn max_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

/// Runs `forward_with_state_lengths` into NaN-filled buffers and checks outputs and
/// final state against the reference (outputs without activation: identity heads).
fn check_forward(cfg: ModelConfig, batch: usize, t: usize, lengths: Option<&[usize]>, seed: u64) {
    let model = Model::new(cfg, seed).unwrap();
    let x = vals(batch * t * cfg.input_size, seed + 1, 1.0);
    let init = vals(cfg.state_len(batch), seed + 2, 0.5);
    let mut y = vec![f32::NAN; batch * t * cfg.output_dim()];
    let mut fin = vec![f32::NAN; cfg.state_len(batch)];
    model
        .forward_with_state_lengths(
            x.as_slice(),
            batch,
            t,
            lengths,
            Some(&init),
            &mut y,
            Some(&mut fin),
        )
        .unwrap();
    let (ry, rf) = r::forward_seq(
        &cfg,
        &f64s(model.parameters()),
        &f64s(&x),
        batch,
        t,
        &f64s(&init),
        lengths,
    );
    let (ey, ef) = (max_err(&y, &ry), max_err(&fin, &rf));
    assert!(
        ey < 2e-5 && ef < 2e-5,
        "{cfg} batch {batch} lengths {lengths:?}: outputs off by {ey}, final state by {ef}"
    );
    if let Some(ls) = lengths {
        let o = cfg.output_dim();
        for (b, &n) in ls.iter().enumerate() {
            assert!(
                y[(b * t + n) * o..(b + 1) * t * o]
                    .iter()
                    .all(|&v| v == 0.0),
                "{cfg}: outputs past length {n} of sequence {b} are not zero"
            );
        }
    }
    // The recorded pass gives the same outputs and final state.
    let tape = model
        .forward_train_lengths(&x, batch, t, lengths, Some(&init))
        .unwrap();
    assert!(
        max_abs_diff(tape.outputs(), &y) < 1e-6,
        "{cfg}: tape outputs"
    );
    assert!(
        max_abs_diff(tape.final_state(), &fin) < 1e-6,
        "{cfg}: tape final state"
    );
}

#[test]
fn bidirectional_forward_matches_the_reference() {
    for cfg in bidir_configs(3, 5) {
        for batch in [1, 3] {
            check_forward(cfg, batch, 6, None, 11);
        }
    }
}

#[test]
fn lengths_forward_matches_the_reference() {
    for cfg in configs(3, 5).into_iter().chain(bidir_configs(3, 5)) {
        check_forward(cfg, 3, 6, Some(&[6, 2, 4]), 21);
        check_forward(cfg, 4, 5, Some(&[1, 5, 3, 1]), 22);
        check_forward(cfg, 1, 6, Some(&[4]), 23);
        // Every sequence full: the same as no lengths.
        check_forward(cfg, 2, 4, Some(&[4, 4]), 24);
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

/// A file as `safetensors.torch.save_file(module.state_dict())` writes it: the tensors
/// by name, no metadata.
fn plain_file(
    model: &Model,
    prefix: &str,
    head: &str,
    meta: Option<Vec<(String, String)>>,
) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = model
        .layout()
        .entries()
        .iter()
        .map(|e| {
            let name = match e.name.strip_prefix("head.") {
                Some(f) => format!("{head}.{f}"),
                None => format!("{prefix}{}", e.name),
            };
            let v = &model.parameters()[e.offset..e.offset + e.len];
            (
                name,
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
    let meta = meta.map(|m| m.into_iter().collect());
    safetensors::serialize(views, meta).unwrap()
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
