//! Model construction: PyTorch-style seeded initialisation, config validation, thread
//! traits.

use rnncore::{CellKind, Error, Model, ModelConfig, OutputActivation, State, Trainer};

#[test]
fn model_and_state_types_are_shareable_as_documented() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Model>();
    send::<State>();
    send::<Trainer>();
}

#[test]
fn init_is_seeded_reproducible_and_in_pytorch_range() {
    let cfg = ModelConfig::new(CellKind::Lstm, 3, 16, 2).with_head(4, OutputActivation::Identity);
    let a = Model::new(cfg, 9).unwrap();
    let b = Model::new(cfg, 9).unwrap();
    let c = Model::new(cfg, 10).unwrap();
    assert_eq!(a.parameters(), b.parameters());
    assert_ne!(a.parameters(), c.parameters());
    let bound = 1.0 / (16f32).sqrt();
    let p = a.parameters();
    assert!(p.iter().all(|v| v.abs() <= bound));
    // Uniform on [-k, k]: mean near 0, spread reaching close to both ends.
    let mean = p.iter().sum::<f32>() / p.len() as f32;
    assert!(mean.abs() < 0.01, "{mean}");
    assert!(p.iter().cloned().fold(f32::MIN, f32::max) > 0.95 * bound);
    assert!(p.iter().cloned().fold(f32::MAX, f32::min) < -0.95 * bound);
    let names: Vec<&str> = a
        .layout()
        .entries()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "weight_ih_l0",
            "weight_hh_l0",
            "bias_ih_l0",
            "bias_hh_l0",
            "weight_ih_l1",
            "weight_hh_l1",
            "bias_ih_l1",
            "bias_hh_l1",
            "head.weight",
            "head.bias"
        ]
    );
    assert_eq!(a.tensor("weight_ih_l1").unwrap().len(), 64 * 16);
}

#[test]
fn bad_configs_are_errors() {
    let ok = ModelConfig::new(CellKind::Gru, 3, 4, 1);
    for bad in [
        ModelConfig {
            input_size: 0,
            ..ok
        },
        ModelConfig {
            hidden_size: 0,
            ..ok
        },
        ModelConfig {
            num_layers: 0,
            ..ok
        },
        ModelConfig {
            hidden_size: usize::MAX,
            ..ok
        },
        ModelConfig {
            output_activation: OutputActivation::Softmax,
            ..ok
        },
    ] {
        assert!(
            matches!(Model::new(bad, 1), Err(Error::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Model::from_parameters(ok, vec![0.0; 3]),
        Err(Error::Invalid(_))
    ));
    let n = rnncore::ParamLayout::new(&ok).unwrap().total();
    let mut p = vec![0.0; n];
    p[n - 1] = f32::NAN;
    assert!(matches!(
        Model::from_parameters(ok, p),
        Err(Error::NonFinite(_))
    ));
}

/// `forward` keeps its buffers between calls (and several threads may call it at once):
/// neither changes a bit of the result, whatever shapes came before.
#[test]
fn forward_buffers_kept_between_calls_change_no_result() {
    let vals =
        |n: usize, s: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * s).sin() * 2.0).collect() };
    for cell in [
        CellKind::Lstm,
        CellKind::GruLbr,
        CellKind::Gru,
        CellKind::RnnTanh,
    ] {
        let cfg = ModelConfig {
            num_layers: 3,
            output_size: 2,
            ..ModelConfig::new(cell, 3, 8, 1)
        };
        let model = Model::new(cfg, 5).unwrap();
        let (xa, xb) = (vals(4 * 6 * 3, 0.37), vals(9 * 11 * 3, 0.11));
        // Each result from a model that never ran (a clone starts with no buffers).
        let fresh_a = model.clone().forward(&xa, 4, 6).unwrap();
        let fresh_b = model.clone().forward(&xb, 9, 11).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for _ in 0..2 {
            assert_eq!(bits(&model.forward(&xa, 4, 6).unwrap()), bits(&fresh_a));
            assert_eq!(bits(&model.forward(&xb, 9, 11).unwrap()), bits(&fresh_b));
        }
        // A batch of one (the streaming path, its state kept): lengths up and down, and a
        // given initial state must not leak into the next call from zeros.
        let (x1, x2) = (vals(20 * 3, 0.23), vals(7 * 3, 0.71));
        let fresh_1 = model.clone().forward(&x1, 1, 20).unwrap();
        let fresh_2 = model.clone().forward(&x2, 1, 7).unwrap();
        let init = vals(cfg.state_len(1), 0.5);
        let mut from_init = vec![0.0; 7 * 2];
        model
            .clone()
            .forward_with_state(&x2, 1, 7, Some(&init), &mut from_init, None)
            .unwrap();
        for _ in 0..2 {
            assert_eq!(bits(&model.forward(&x2, 1, 7).unwrap()), bits(&fresh_2));
            assert_eq!(bits(&model.forward(&x1, 1, 20).unwrap()), bits(&fresh_1));
            let mut y = vec![0.0; 7 * 2];
            model
                .forward_with_state(&x2, 1, 7, Some(&init), &mut y, None)
                .unwrap();
            assert_eq!(bits(&y), bits(&from_init));
        }
        // A failing call leaves the kept buffers usable.
        assert!(model.forward(&[f32::NAN; 3 * 4 * 6], 4, 6).is_err());
        assert!(model.forward(&[f32::NAN; 3 * 7], 1, 7).is_err());
        assert_eq!(bits(&model.forward(&x2, 1, 7).unwrap()), bits(&fresh_2));
        std::thread::scope(|s| {
            for t in 0..4 {
                let (model, xa, xb, fresh_a, fresh_b) = (&model, &xa, &xb, &fresh_a, &fresh_b);
                s.spawn(move || {
                    for i in 0..20 {
                        if (i + t) % 2 == 0 {
                            assert_eq!(bits(&model.forward(xa, 4, 6).unwrap()), bits(fresh_a));
                        } else {
                            assert_eq!(bits(&model.forward(xb, 9, 11).unwrap()), bits(fresh_b));
                        }
                    }
                });
            }
        });
    }
}

#[test]
fn forget_bias_sets_only_the_forget_gates_and_every_path_sees_it() {
    let (h, layers) = (8, 2);
    let cfg =
        ModelConfig::new(CellKind::Lstm, 3, h, layers).with_head(2, OutputActivation::Identity);
    let base = Model::new(cfg, 4).unwrap();
    // a forward and a step first, so that kept buffers and packed weights exist
    let x: Vec<f32> = (0..5 * 6 * 3)
        .map(|i| ((i * 37 % 19) as f32 - 9.0) / 9.0)
        .collect();
    let y0 = base.forward(&x, 5, 6).unwrap();
    let fb = base.clone().with_forget_bias(1.0).unwrap();

    // exactly the forget rows change: bias_ih = 1, bias_hh = 0, so the sum is 1
    let mut want = base.parameters().to_vec();
    for k in 0..layers {
        for (name, v) in [
            (format!("bias_ih_l{k}"), 1.0),
            (format!("bias_hh_l{k}"), 0.0),
        ] {
            let e = base.layout().find(&name).unwrap();
            want[e.offset + h..e.offset + 2 * h].fill(v);
        }
    }
    assert_eq!(fb.parameters(), &want[..]);

    // the derived weights were rebuilt: the same bits as a model made from those parameters
    let same = Model::from_parameters(cfg, want).unwrap();
    let y1 = fb.forward(&x, 5, 6).unwrap();
    assert_eq!(y1, same.forward(&x, 5, 6).unwrap());
    assert_ne!(y1, y0);
    let (mut s1, mut s2) = (State::new(&fb, 1).unwrap(), State::new(&same, 1).unwrap());
    let (mut o1, mut o2) = ([0.0f32; 2], [0.0f32; 2]);
    for t in 0..6 {
        fb.step(&mut s1, &x[t * 3..t * 3 + 3], &mut o1).unwrap();
        same.step(&mut s2, &x[t * 3..t * 3 + 3], &mut o2).unwrap();
        assert_eq!(o1, o2);
    }

    // other cells and non-finite values are refused
    let gru = Model::new(ModelConfig::new(CellKind::Gru, 3, h, 1), 1).unwrap();
    let e = gru.with_forget_bias(1.0).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(_)) && e.to_string().contains("LSTM"),
        "{e}"
    );
    for bad in [f32::NAN, f32::INFINITY] {
        let e = base.clone().with_forget_bias(bad).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    }
}
