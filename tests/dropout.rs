//! Dropout between layers in training (`Model::with_dropout`): the f32 backward of a
//! pass with fixed masks against central differences of the f64 reference with the same
//! masks, trainer steps made of exactly those pieces, results independent of the thread
//! count, inference untouched (bit for bit), p = 0 as no dropout, and weight files.

mod common;
use common::*;
use rnncore::__testing::dropout as dm;
use rnncore::__testing::reference as r;
use rnncore::{
    CellKind, Model, ModelConfig, OutputActivation, State, Targets, TrainConfig, Trainer,
};

const B: usize = 3;
const T: usize = 4;

/// Models with dropout worth checking: plain stacks (which infer on the packed stack and
/// train layer by layer), bidirectional, with projections, with a head.
fn dropout_configs() -> Vec<ModelConfig> {
    vec![
        ModelConfig::new(CellKind::Lstm, 2, 4, 3),
        ModelConfig::new(CellKind::GruLbr, 2, 4, 2).with_head(3, OutputActivation::Identity),
        ModelConfig::new(CellKind::Gru, 2, 3, 2).with_bidirectional(true),
        ModelConfig::new(CellKind::RnnTanh, 2, 4, 2),
        ModelConfig::new(CellKind::Lstm, 2, 4, 2)
            .with_proj_size(3)
            .with_bidirectional(true)
            .with_head(2, OutputActivation::Identity),
    ]
}

/// With the masks of `seed` fixed: outputs as the reference's with those masks, and
/// `Σ w·out + Σ v·final` differentiated by the backward as by central differences.
fn fd_check(cfg: ModelConfig, p: f32, lengths: Option<&[usize]>, with_final: bool, seed: u64) {
    let model = Model::new(cfg, seed).unwrap().with_dropout(p).unwrap();
    let x = vals(B * T * cfg.input_size, seed + 1, 1.0);
    let init = vals(cfg.state_len(B), seed + 2, 0.5);
    let w = vals(B * T * cfg.output_dim(), seed + 3, 1.0);
    let v = vals(cfg.state_len(B), seed + 4, 1.0);
    let mseed = seed + 5;
    let mask = |k: usize, b: usize, t: usize, j: usize| dm::factor(p, mseed, k, b, t, j) as f64;
    let loss = |q: &[f64], x: &[f64], s: &[f64]| {
        let (out, fin) = r::forward_seq_masked(&cfg, q, x, B, T, s, lengths, &mask);
        let a: f64 = out.iter().zip(&w).map(|(a, &b)| a * b as f64).sum();
        a + if with_final {
            fin.iter().zip(&v).map(|(a, &b)| a * b as f64).sum::<f64>()
        } else {
            0.0
        }
    };
    let tape = model
        .forward_train_dropout(&x, B, T, lengths, Some(&init), mseed)
        .unwrap();
    let (p64, xf, sf) = (f64s(model.parameters()), f64s(&x), f64s(&init));
    let name = format!("{cfg} dropout {p} lengths {lengths:?}");
    let (ro, _) = r::forward_seq_masked(&cfg, &p64, &xf, B, T, &sf, lengths, &mask);
    let err = tape
        .outputs()
        .iter()
        .zip(&ro)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 2e-5, "{name}: outputs off by {err}");
    let (nro, _) = r::forward_seq(&cfg, &p64, &xf, B, T, &sf, lengths);
    assert!(
        ro.iter().zip(&nro).any(|(a, b)| (a - b).abs() > 1e-3),
        "{name}: the masks change nothing"
    );
    let g = model
        .backward(&tape, &w, with_final.then_some(&v[..]), false)
        .unwrap();
    for e in model.layout().entries() {
        let num: Vec<f64> = (e.offset..e.offset + e.len)
            .map(|i| fd(&p64, i, |q| loss(q, &xf, &sf)))
            .collect();
        compare_fd(
            &format!("{name} {}", e.name),
            &num,
            &g.params[e.offset..e.offset + e.len],
            true,
        );
    }
    let num: Vec<f64> = (0..xf.len())
        .map(|i| fd(&xf, i, |q| loss(&p64, q, &sf)))
        .collect();
    compare_fd(&format!("{name} x"), &num, &g.inputs, true);
    let num: Vec<f64> = (0..sf.len())
        .map(|i| fd(&sf, i, |q| loss(&p64, &xf, q)))
        .collect();
    compare_fd(
        &format!("{name} initial state"),
        &num,
        &g.initial_state,
        true,
    );
}

#[test]
fn gradients_with_a_fixed_mask_match_finite_differences() {
    for (i, cfg) in dropout_configs().into_iter().enumerate() {
        let seed = 300 + 10 * i as u64;
        fd_check(cfg, 0.4, None, true, seed);
        fd_check(cfg, 0.25, Some(&[4, 2, 3]), false, seed + 7);
    }
}

#[test]
fn a_final_state_gradient_of_short_sequences_with_dropout_is_refused() {
    let model = Model::new(ModelConfig::new(CellKind::Lstm, 2, 3, 2), 1)
        .unwrap()
        .with_dropout(0.5)
        .unwrap();
    let x = vals(B * T * 2, 1, 1.0);
    let tape = model
        .forward_train_dropout(&x, B, T, Some(&[4, 2, 4]), None, 1)
        .unwrap();
    let d = vec![0.5; B * T * 3];
    let dfin = vec![0.5; model.config().state_len(B)];
    let err = model.backward(&tape, &d, Some(&dfin), false).unwrap_err();
    assert!(err.message().contains("dropout"), "{err}");
    // Full lengths, or no final-state gradient, are fine.
    assert!(model.backward(&tape, &d, None, false).is_ok());
}

#[test]
fn trainer_steps_are_the_masked_pieces_and_seeded() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 5, 2).with_head(1, OutputActivation::Identity);
    let base = Model::new(cfg, 4).unwrap().with_dropout(0.3).unwrap();
    let (b, t) = (4, 5);
    let x = vals(b * t * 2, 5, 1.0);
    let target = vals(b * t, 6, 1.0);
    for seed in [0u64, 99] {
        let mut model = base.clone();
        let mut trainer = Trainer::new(&model, TrainConfig::sgd(0.1, 0.0)).unwrap();
        trainer.set_dropout_seed(seed);
        assert_eq!(trainer.dropout_seed(), seed);
        for step in 0..3u64 {
            let tape = model
                .forward_train_dropout(&x, b, t, None, None, dm::step_seed(seed, step))
                .unwrap();
            let mut d = vec![0.0; b * t];
            let want = rnncore::train::loss::mse(
                tape.outputs(),
                b,
                t,
                1,
                &target,
                Targets::EveryStep,
                &mut d,
            )
            .unwrap();
            let g = model.backward(&tape, &d, None, false).unwrap();
            let before = model.parameters().to_vec();
            let l = trainer
                .step_mse(&mut model, None, &x, b, t, &target, Targets::EveryStep)
                .unwrap();
            assert_eq!(l.to_bits(), want.to_bits(), "seed {seed} step {step}");
            for ((a, p), gv) in model.parameters().iter().zip(&before).zip(&g.params) {
                assert_eq!(a.to_bits(), (p - 0.1 * gv).to_bits());
            }
        }
    }
    // Different seeds, different masks, different weights; without dropout, others again.
    let run = |m: &Model, seed: u64| {
        let mut m = m.clone();
        let mut tr = Trainer::new(&m, TrainConfig::adam(0.01)).unwrap();
        tr.set_dropout_seed(seed);
        for _ in 0..2 {
            tr.step_mse(&mut m, None, &x, b, t, &target, Targets::EveryStep)
                .unwrap();
        }
        bits(m.parameters())
    };
    assert_eq!(run(&base, 1), run(&base, 1));
    assert_ne!(run(&base, 1), run(&base, 2));
    let plain = Model::new(cfg, 4).unwrap();
    assert_ne!(run(&base, 1), run(&plain, 1));
    // p = 0 is no dropout, bit for bit.
    assert_eq!(
        run(&plain.clone().with_dropout(0.0).unwrap(), 1),
        run(&plain, 1)
    );
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let cfg = ModelConfig::new(CellKind::GruLbr, 8, 24, 3).with_head(4, OutputActivation::Identity);
    let (b, t) = (37, 9);
    let x = vals(b * t * 8, 1, 1.0);
    let lengths: Vec<usize> = (0..b).map(|i| 1 + (i * 7) % t).collect();
    let target = vals(b * t * 4, 2, 1.0);
    let run = |threads: usize| {
        rnncore::set_num_threads(threads).unwrap();
        let mut m = Model::new(cfg, 3).unwrap().with_dropout(0.5).unwrap();
        let mut mp = Model::new(
            ModelConfig::new(CellKind::Lstm, 8, 12, 2)
                .with_proj_size(5)
                .with_head(4, OutputActivation::Identity),
            4,
        )
        .unwrap()
        .with_dropout(0.2)
        .unwrap();
        for (m, ls) in [(&mut m, None), (&mut mp, Some(&lengths[..]))] {
            let mut tr = Trainer::new(m, TrainConfig::adam(0.01)).unwrap();
            for _ in 0..2 {
                tr.step_mse_lengths(m, None, &x, b, t, ls, &target, Targets::EveryStep)
                    .unwrap();
            }
        }
        (bits(m.parameters()), bits(mp.parameters()))
    };
    let one = run(1);
    for threads in [2, 4] {
        assert!(one == run(threads), "{threads} threads");
    }
    rnncore::set_num_threads(0).unwrap();
}

#[test]
fn inference_is_untouched_by_dropout() {
    for cfg in dropout_configs() {
        let plain = Model::new(cfg, 8).unwrap();
        let model = plain.clone().with_dropout(0.6).unwrap();
        assert_eq!(model.dropout(), 0.6);
        for b in [1, 3] {
            let x = vals(b * T * cfg.input_size, 9, 1.0);
            assert_eq!(
                bits(&model.forward(&x, b, T).unwrap()),
                bits(&plain.forward(&x, b, T).unwrap()),
                "{cfg}"
            );
            let a = model.forward_train(&x, b, T, None).unwrap();
            let p = plain.forward_train(&x, b, T, None).unwrap();
            assert_eq!(bits(a.outputs()), bits(p.outputs()), "{cfg}");
            // A one-layer model, or p = 0: forward_train_dropout is forward_train.
            let zero = plain.clone().with_dropout(0.0).unwrap();
            let z = zero.forward_train_dropout(&x, b, T, None, None, 5).unwrap();
            assert_eq!(bits(z.outputs()), bits(p.outputs()), "{cfg}");
        }
        if !cfg.bidirectional {
            let mut s1 = State::new(&model, 2).unwrap();
            let mut s2 = State::new(&plain, 2).unwrap();
            let (mut y1, mut y2) = (
                vec![0.0; 2 * cfg.output_dim()],
                vec![0.0; 2 * cfg.output_dim()],
            );
            for i in 0..4 {
                let x = vals(2 * cfg.input_size, 20 + i, 1.0);
                model.step(&mut s1, &x, &mut y1).unwrap();
                plain.step(&mut s2, &x, &mut y2).unwrap();
                assert_eq!(bits(&y1), bits(&y2), "{cfg}");
            }
        }
    }
    let one = Model::new(ModelConfig::new(CellKind::Lstm, 2, 3, 1), 1)
        .unwrap()
        .with_dropout(0.5)
        .unwrap();
    let x = vals(2 * T * 2, 1, 1.0);
    assert_eq!(
        bits(
            one.forward_train_dropout(&x, 2, T, None, None, 3)
                .unwrap()
                .outputs()
        ),
        bits(one.forward_train(&x, 2, T, None).unwrap().outputs()),
        "one layer: nothing between layers"
    );
}

#[test]
fn bad_probabilities_are_refused() {
    let m = Model::new(ModelConfig::new(CellKind::Gru, 2, 3, 2), 1).unwrap();
    for p in [1.0f32, 1.5, -0.1, f32::NAN, f32::INFINITY] {
        let err = m.clone().with_dropout(p).unwrap_err();
        assert!(matches!(err, rnncore::Error::Invalid(_)), "{p}: {err}");
        assert!(err.message().contains("dropout"), "{err}");
    }
    assert!(m.clone().with_dropout(0.0).is_ok());
    assert!(m.with_dropout(0.999).is_ok());
}

#[test]
fn dropout_round_trips_through_weight_files() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 3, 2);
    for p in [0.0f32, 0.3, 0.125] {
        let model = Model::new(cfg, 1).unwrap().with_dropout(p).unwrap();
        let bytes = model.to_safetensors().unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().clone().unwrap()["dropout"], p.to_string());
        let back = Model::from_safetensors(&bytes).unwrap();
        assert_eq!(back.dropout().to_bits(), p.to_bits());
    }
    // A bad value in the metadata is named.
    let model = Model::new(cfg, 1).unwrap();
    let mut bytes = model.to_safetensors().unwrap();
    let key = b"\"dropout\":\"0\"";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() - 2;
    bytes[at] = b'2';
    let err = Model::from_safetensors(&bytes).unwrap_err();
    assert!(err.message().contains("dropout"), "{err}");
}
