//! Training: every cell learns a small deterministic task; non-finite steps are refused
//! with nothing changed; truncated BPTT carries the state; an encoder-decoder trains end
//! to end with gradients matching the f64 reference; 1 and N threads are bit-identical.

mod common;
use common::*;
use rnncore::__testing::reference as r;
use rnncore::Rng;
use rnncore::{
    CellKind, Error, Model, ModelConfig, OutputActivation, State, Targets, TrainConfig, Trainer,
};

/// Delayed copy: y_t = x_{t-2} (0 before), inputs uniform in [-1, 1).
fn delayed_copy(batch: usize, t: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..batch * t)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    let mut y = vec![0.0; batch * t];
    for b in 0..batch {
        for s in 2..t {
            y[b * t + s] = x[b * t + s - 2];
        }
    }
    (x, y)
}

#[test]
fn every_cell_learns_a_delayed_copy() {
    // Predicting x_{t-2} from the stream: variance of the target is about 1/3 (0.31 with
    // the two leading zeros); each cell must get the MSE below 0.02 within 400 Adam steps.
    for cell in CellKind::ALL {
        let cfg = ModelConfig::new(cell, 1, 16, 1).with_head(1, OutputActivation::Identity);
        let mut model = Model::new(cfg, 1).unwrap();
        let mut trainer = Trainer::new(&model, TrainConfig::adam(0.01).with_clip(1.0)).unwrap();
        let mut rng = Rng::new(99);
        let (mut first, mut last) = (0.0, 0.0);
        for step in 0..400 {
            let (x, y) = delayed_copy(16, 12, &mut rng);
            let loss = trainer
                .step_mse(&mut model, None, &x, 16, 12, &y, Targets::EveryStep)
                .unwrap();
            if step == 0 {
                first = loss;
            }
            last = loss;
        }
        eprintln!("{cell:?}: delayed-copy MSE {first:.4} -> {last:.5}");
        assert!(first > 0.2, "{cell:?}: initial loss {first}");
        assert!(
            last < 0.02,
            "{cell:?}: loss {first} -> {last} after 400 steps"
        );
        assert_eq!(trainer.steps(), 400);
    }
}

#[test]
fn many_to_one_classification_learns_the_sign_of_a_sum() {
    // Label = 1 when the sum of the sequence is positive: needs the whole sequence.
    let cfg = ModelConfig::new(CellKind::Gru, 1, 12, 1).with_head(2, OutputActivation::Softmax);
    let mut model = Model::new(cfg, 4).unwrap();
    let mut trainer = Trainer::new(&model, TrainConfig::adam(0.02)).unwrap();
    let mut rng = Rng::new(5);
    let batch = |rng: &mut Rng| {
        let x: Vec<f32> = (0..32 * 10)
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect();
        let labels: Vec<i32> = x
            .chunks(10)
            .map(|c| (c.iter().sum::<f32>() > 0.0) as i32)
            .collect();
        (x, labels)
    };
    for _ in 0..300 {
        let (x, l) = batch(&mut rng);
        trainer
            .step_cross_entropy(&mut model, None, &x, 32, 10, &l, Targets::LastStep)
            .unwrap();
    }
    let (x, l) = batch(&mut rng);
    let y = model.forward(&x, 32, 10).unwrap();
    let correct = (0..32)
        .filter(|&b| {
            let p = &y[(b * 10 + 9) * 2..(b * 10 + 10) * 2];
            ((p[1] > p[0]) as i32) == l[b]
        })
        .count();
    assert!(correct >= 29, "{correct}/32 correct");
}

#[test]
fn non_finite_steps_are_refused_and_change_nothing() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 5, 2).with_head(2, OutputActivation::Identity);
    let mut model = Model::new(cfg, 3).unwrap();
    let mut trainer = Trainer::new(&model, TrainConfig::sgd(0.1, 0.9)).unwrap();
    let x = vals(2 * 3 * 2, 1, 1.0);
    let y = vals(2 * 3 * 2, 2, 1.0);
    trainer
        .step_mse(&mut model, None, &x, 2, 3, &y, Targets::EveryStep)
        .unwrap();
    let before = model.parameters().to_vec();
    let mut state = State::new(&model, 2).unwrap();
    state.set(&vals(state.len(), 3, 0.5)).unwrap();
    let snap = state.as_slice().to_vec();

    let mut bad_x = x.clone();
    bad_x[5] = f32::NAN;
    let mut bad_y = y.clone();
    bad_y[0] = f32::INFINITY;
    let huge_y = vec![3e38f32; y.len()]; // finite, but the loss overflows f32
    let names = ["x[5]", "target[0]", "the loss is inf"];
    for ((xx, yy), name) in [(&bad_x, &y), (&x, &bad_y), (&x, &huge_y)]
        .into_iter()
        .zip(names)
    {
        let e = trainer.step_mse(
            &mut model,
            Some(&mut state),
            xx,
            2,
            3,
            yy,
            Targets::EveryStep,
        );
        assert!(
            matches!(&e, Err(Error::NonFinite(m)) if m.contains(name)),
            "{e:?}"
        );
        assert_eq!(model.parameters(), &before[..]);
        assert_eq!(state.as_slice(), &snap[..]);
        assert_eq!(trainer.steps(), 1);
    }
    let e = trainer.apply_gradients(&mut model, vec![f32::NAN; before.len()]);
    assert!(matches!(e, Err(Error::NonFinite(_))));
    // A learning rate so large that the update overflows.
    let mut wild = Trainer::new(&model, TrainConfig::sgd(3e38, 0.0)).unwrap();
    let e = wild.apply_gradients(&mut model, vec![10.0; before.len()]);
    assert!(matches!(e, Err(Error::NonFinite(_))), "{e:?}");
    assert_eq!(model.parameters(), &before[..]);
    // Bad labels and sizes are Invalid, also with nothing changed.
    let e = trainer.step_cross_entropy(
        &mut model,
        None,
        &x,
        2,
        3,
        &[0, 1, 2, 0, 1, 0],
        Targets::EveryStep,
    );
    assert!(matches!(e, Err(Error::Invalid(_))), "{e:?}");
    let e = trainer.step_cross_entropy(&mut model, None, &x, 2, 3, &[-1; 6], Targets::EveryStep);
    assert!(matches!(e, Err(Error::Invalid(_))), "{e:?}");
    let e = trainer.step_mse(&mut model, None, &x, 2, 3, &y[..4], Targets::EveryStep);
    assert!(matches!(e, Err(Error::Invalid(_))));
    assert_eq!(model.parameters(), &before[..]);
    assert!(Trainer::new(&model, TrainConfig::sgd(f32::NAN, 0.0)).is_err());
    assert!(Trainer::new(&model, TrainConfig::sgd(0.1, 1.5)).is_err());
}

#[test]
fn a_state_that_overflows_is_refused_with_weights_and_state_unchanged() {
    // relu RNN with huge recurrent weights: h overflows to inf within a few steps while
    // the zero head keeps the outputs (and so the loss) finite.
    let cfg = ModelConfig::new(CellKind::RnnRelu, 1, 2, 1).with_head(1, OutputActivation::Identity);
    let mut p = vec![0.0f32; rnncore::ParamLayout::new(&cfg).unwrap().total()];
    let model0 = Model::from_parameters(cfg, p.clone()).unwrap();
    let whh = model0.layout().find("weight_hh_l0").unwrap().clone();
    let wih = model0.layout().find("weight_ih_l0").unwrap().clone();
    p[whh.offset..whh.offset + whh.len].fill(1e20);
    p[wih.offset..wih.offset + wih.len].fill(1.0);
    let mut model = Model::from_parameters(cfg, p).unwrap();
    let before = model.parameters().to_vec();
    let mut trainer = Trainer::new(&model, TrainConfig::sgd(0.1, 0.0)).unwrap();
    let mut state = State::new(&model, 1).unwrap();
    let e = trainer.step_mse(
        &mut model,
        Some(&mut state),
        &[1.0; 5],
        1,
        5,
        &[0.0; 5],
        Targets::EveryStep,
    );
    assert!(matches!(e, Err(Error::NonFinite(_))), "{e:?}");
    assert_eq!(model.parameters(), &before[..]);
    assert!(state.as_slice().iter().all(|&v| v == 0.0));
    assert_eq!(trainer.steps(), 0);
}

#[test]
fn truncated_bptt_carries_the_state_between_chunks() {
    let cfg = ModelConfig::new(CellKind::Gru, 1, 6, 1).with_head(1, OutputActivation::Identity);
    let mut model = Model::new(cfg, 8).unwrap();
    let mut trainer = Trainer::new(&model, TrainConfig::sgd(0.0, 0.0)).unwrap();
    // lr = 0: the weights stay, so chunked training must walk the same states as one
    // forward over the whole sequence.
    let x = vals(12, 4, 1.0);
    let mut full_final = vec![0.0; cfg.state_len(1)];
    let mut y = vec![0.0; 12];
    model
        .forward_with_state(&x, 1, 12, None, &mut y, Some(&mut full_final))
        .unwrap();
    let mut state = State::new(&model, 1).unwrap();
    for c in 0..3 {
        let xs = &x[c * 4..(c + 1) * 4];
        trainer
            .step_mse(
                &mut model,
                Some(&mut state),
                xs,
                1,
                4,
                &[0.0; 4],
                Targets::EveryStep,
            )
            .unwrap();
    }
    assert!(max_abs_diff(state.as_slice(), &full_final) < 1e-6);
    // And a state of the wrong batch is refused.
    let mut wrong = State::new(&model, 2).unwrap();
    let e = trainer.step_mse(
        &mut model,
        Some(&mut wrong),
        &x[..4],
        1,
        4,
        &[0.0; 4],
        Targets::EveryStep,
    );
    assert!(matches!(e, Err(Error::Invalid(_))));
}

/// Encoder reads x; the decoder starts from the encoder's final state and reads zeros.
struct EncDec {
    enc: ModelConfig,
    dec: ModelConfig,
}

const ED: EncDec = EncDec {
    enc: ModelConfig {
        cell: CellKind::Lstm,
        input_size: 2,
        hidden_size: 10,
        num_layers: 1,
        output_size: 0,
        output_activation: OutputActivation::Identity,
        bidirectional: false,
        proj_size: 0,
    },
    dec: ModelConfig {
        cell: CellKind::Lstm,
        input_size: 1,
        hidden_size: 10,
        num_layers: 1,
        output_size: 2,
        output_activation: OutputActivation::Identity,
        bidirectional: false,
        proj_size: 0,
    },
};

#[test]
fn encoder_decoder_gradients_match_reference_and_it_learns_to_reverse() {
    let (b, te, td) = (4usize, 3usize, 3usize);
    let mut enc = Model::new(ED.enc, 1).unwrap();
    let mut dec = Model::new(ED.dec, 2).unwrap();
    let mut rng = Rng::new(3);
    let sample = |rng: &mut Rng| {
        let x: Vec<f32> = (0..b * te * 2)
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect();
        // Target: the input sequence reversed.
        let mut y = vec![0.0; b * td * 2];
        for i in 0..b {
            for s in 0..td {
                let src = (i * te + te - 1 - s) * 2;
                y[(i * td + s) * 2..(i * td + s) * 2 + 2].copy_from_slice(&x[src..src + 2]);
            }
        }
        (x, y)
    };
    let zeros = vec![0.0f32; b * td];
    let grads = |enc: &Model, dec: &Model, x: &[f32], y: &[f32]| {
        let et = enc.forward_train(x, b, te, None).unwrap();
        let dt = dec
            .forward_train(&zeros, b, td, Some(et.final_state()))
            .unwrap();
        let mut d = vec![0.0; y.len()];
        let loss = rnncore::train::loss::mse(dt.outputs(), b, td, 2, y, Targets::EveryStep, &mut d)
            .unwrap();
        let gd = dec.backward(&dt, &d, None, false).unwrap();
        let d_enc_out = vec![0.0; et.outputs().len()];
        let ge = enc
            .backward(&et, &d_enc_out, Some(&gd.initial_state), false)
            .unwrap();
        (loss, ge.params, gd.params)
    };

    // Gradients through the join against the f64 reference composition.
    let (x, y) = sample(&mut rng);
    let (_, ge, gd) = grads(&enc, &dec, &x, &y);
    let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (pe, pd) = (f(enc.parameters()), f(dec.parameters()));
    let et = r::forward(&ED.enc, &pe, &f(&x), b, te, &vec![0.0; ED.enc.state_len(b)]);
    let dt = r::forward(&ED.dec, &pd, &f(&zeros), b, td, &et.final_state);
    let (_, d) = r::mse(&dt.outputs, &f(&y));
    let rd = r::backward(&ED.dec, &pd, &dt, &d, &vec![0.0; ED.dec.state_len(b)]);
    let re = r::backward(&ED.enc, &pe, &et, &vec![0.0; et.outputs.len()], &rd.init);
    for (got, want) in [(&ge, &re.params), (&gd, &rd.params)] {
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(err / scale < 1e-4, "relative error {}", err / scale);
    }

    // End-to-end training: two trainers, one per model.
    let mut te_ = Trainer::new(&enc, TrainConfig::adam(0.01)).unwrap();
    let mut td_ = Trainer::new(&dec, TrainConfig::adam(0.01)).unwrap();
    let mut losses = Vec::new();
    for _ in 0..600 {
        let (x, y) = sample(&mut rng);
        let (loss, ge, gd) = grads(&enc, &dec, &x, &y);
        te_.apply_gradients(&mut enc, ge).unwrap();
        td_.apply_gradients(&mut dec, gd).unwrap();
        losses.push(loss);
    }
    let early: f32 = losses[..20].iter().sum::<f32>() / 20.0;
    let late: f32 = losses[losses.len() - 20..].iter().sum::<f32>() / 20.0;
    assert!(late < 0.25 * early, "loss {early} -> {late}");
}

/// 37 rows split 13/13/11 at 3 threads. (Calls below about 4M multiply-adds run on the
/// calling thread whatever the setting, so the shape is large enough to split: 7464
/// multiply-adds per LSTM row, 740 rows; the GRU and the RNN take longer sequences.)
/// The layers are narrow, so the weight gradients split by gate units (`weight_sums`).
#[test]
fn one_and_many_threads_are_bit_identical() {
    for (cell, t) in [
        (CellKind::Lstm, 20),
        (CellKind::GruLbr, 27),
        (CellKind::RnnTanh, 80),
    ] {
        one_and_many_threads_agree(cell, t);
    }
}

fn one_and_many_threads_agree(cell: CellKind, t: usize) {
    let cfg = ModelConfig::new(cell, 5, 24, 2).with_head(3, OutputActivation::Identity);
    let model = Model::new(cfg, 6).unwrap();
    let b = 37;
    let x = vals(b * t * 5, 7, 1.0);
    let d = vals(b * t * 3, 8, 1.0);
    let run = |threads: usize| {
        rnncore::set_num_threads(threads).unwrap();
        let y = model.forward(&x, b, t).unwrap();
        let tape = model.forward_train(&x, b, t, None).unwrap();
        let g = model.backward(&tape, &d, None, false).unwrap();
        (y, g.params, g.inputs)
    };
    let one = run(1);
    let three = run(3);
    rnncore::set_num_threads(0).unwrap();
    let default = run(0);
    for other in [&three, &default] {
        assert!(one
            .0
            .iter()
            .zip(&other.0)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(one
            .1
            .iter()
            .zip(&other.1)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(one
            .2
            .iter()
            .zip(&other.2)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

/// With several threads and few rows per thread, large recurrent weights make forward
/// and backward split each step by hidden units instead of by batch rows: the bits of
/// outputs, final state and every gradient must not change.
#[test]
fn unit_split_is_bit_identical_to_one_thread() {
    for (cell, h) in [
        (CellKind::Lstm, 384),
        (CellKind::GruLbr, 448),
        (CellKind::RnnTanh, 768),
    ] {
        let cfg = ModelConfig::new(cell, 3, h, 2).with_head(2, OutputActivation::Identity);
        let model = Model::new(cfg, 9).unwrap();
        let (b, t) = (16, 3);
        let x = vals(b * t * 3, 11, 1.0);
        let init = vals(cfg.state_len(b), 12, 0.5);
        let d = vals(b * t * 2, 13, 1.0);
        let run = |threads: usize| {
            rnncore::set_num_threads(threads).unwrap();
            let mut y = vec![0.0; b * t * 2];
            let mut fin = vec![0.0; cfg.state_len(b)];
            model
                .forward_with_state(&x, b, t, Some(&init), &mut y, Some(&mut fin))
                .unwrap();
            // Training: the recorded forward and the backward take the same split.
            let tape = model.forward_train(&x, b, t, Some(&init)).unwrap();
            let g = model.backward(&tape, &d, None, true).unwrap();
            let hidden: Vec<u32> = g.hidden.iter().flat_map(|v| bits(v)).collect();
            (
                bits(&y),
                bits(&fin),
                bits(tape.outputs()),
                bits(&g.params),
                bits(&g.inputs),
                bits(&g.initial_state),
                hidden,
            )
        };
        let one = run(1);
        for threads in [2, 3, 4] {
            assert!(
                run(threads) == one,
                "{cell:?} H{h}: {threads} threads differ"
            );
        }
        rnncore::set_num_threads(0).unwrap();
    }
}

/// Inference makes each batch chunk's input product a block of timesteps at a time
/// (the last block shorter) and, without a head, writes the top layer into the caller's
/// buffer; the recorded forward makes the product for every timestep up front and keeps
/// everything in its tape. Outputs and final state must agree bit for bit, on one thread
/// and three (other chunks, other block lengths), from zero and from a given state.
#[test]
fn inference_blocks_match_the_recorded_forward_bit_for_bit() {
    // Hidden sizes that make 64 rows need several blocks over 19 steps (see
    // `BLOCK_GATE_BYTES` in src/forward.rs).
    for (cell, h) in [
        (CellKind::Lstm, 64),
        (CellKind::GruLbr, 64),
        (CellKind::Gru, 64),
        (CellKind::RnnTanh, 160),
        (CellKind::RnnRelu, 160),
    ] {
        // With a head, and without (the top layer then writes the caller's `y`).
        for head in [true, false] {
            let mut cfg = ModelConfig::new(cell, 5, h, 2);
            if head {
                cfg = cfg.with_head(3, OutputActivation::Identity);
            }
            let o = cfg.output_dim();
            let model = Model::new(cfg, 11).unwrap();
            let (b, t) = (64, 19);
            let x = vals(b * t * 5, 12, 1.0);
            let init = vals(cfg.state_len(b), 13, 0.5);
            for threads in [1, 3] {
                rnncore::set_num_threads(threads).unwrap();
                for start in [None, Some(&init[..])] {
                    let tape = model.forward_train(&x, b, t, start).unwrap();
                    let mut y = vec![f32::NAN; b * t * o];
                    let mut fin = vec![f32::NAN; cfg.state_len(b)];
                    model
                        .forward_with_state(&x, b, t, start, &mut y, Some(&mut fin))
                        .unwrap();
                    let what = format!(
                        "{cell:?} head {head} threads {threads} init {}",
                        start.is_some()
                    );
                    assert_eq!(bits(&y), bits(tape.outputs()), "outputs, {what}");
                    assert_eq!(bits(&fin), bits(tape.final_state()), "final state, {what}");
                }
            }
        }
    }
    rnncore::set_num_threads(0).unwrap();
}

/// The MSE over every step runs in fixed blocks of rows in parallel (300 rows: two full
/// blocks and a partial one): at 1 and 3 threads the loss must match an f64 sum and the
/// gradient `2 (o − t) / n` elementwise, and both runs must agree bit for bit.
#[test]
fn mse_in_parallel_blocks_matches_an_f64_sum() {
    let (b, t, w) = (3, 100, 5);
    let out = vals(b * t * w, 31, 2.0);
    let target = vals(b * t * w, 32, 2.0);
    let n = (b * t * w) as f64;
    let want: f64 = out
        .iter()
        .zip(&target)
        .map(|(&o, &y)| (o as f64 - y as f64).powi(2))
        .sum::<f64>()
        / n;
    let mut runs = Vec::new();
    for threads in [1, 3] {
        rnncore::set_num_threads(threads).unwrap();
        let mut d = vec![f32::NAN; b * t * w];
        let loss =
            rnncore::train::loss::mse(&out, b, t, w, &target, Targets::EveryStep, &mut d).unwrap();
        assert!(
            ((loss as f64) - want).abs() <= 1e-6 * want,
            "{loss} vs {want}"
        );
        for ((&dv, &o), &y) in d.iter().zip(&out).zip(&target) {
            let g = 2.0 * (o as f64 - y as f64) / n;
            assert!((dv as f64 - g).abs() <= 1e-7 * g.abs(), "{dv} vs {g}");
        }
        runs.push((loss.to_bits(), bits(&d)));
    }
    rnncore::set_num_threads(0).unwrap();
    assert_eq!(runs[0], runs[1]);
}

/// Cross-entropy over every step runs in the same fixed blocks (300 rows, every fifth
/// label ignored): at 1 and 3 threads the loss must match an f64 computation, the
/// gradient `(softmax − onehot) / count` elementwise (zero rows where ignored), and both
/// runs must agree bit for bit.
#[test]
fn cross_entropy_in_parallel_blocks_matches_an_f64_sum() {
    let (b, t, c) = (3, 100, 7);
    let out = vals(b * t * c, 33, 3.0);
    let labels: Vec<i32> = (0..b * t)
        .map(|i| if i % 5 == 4 { -1 } else { (i * 3 % c) as i32 })
        .collect();
    let count = labels.iter().filter(|&&l| l >= 0).count() as f64;
    let mut want = 0.0f64;
    let mut grad = vec![0.0f64; b * t * c];
    for (r, &lab) in labels.iter().enumerate() {
        if lab < 0 {
            continue;
        }
        let row: Vec<f64> = out[r * c..(r + 1) * c].iter().map(|&v| v as f64).collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        want += lse - row[lab as usize];
        for q in 0..c {
            let y = if q == lab as usize { 1.0 } else { 0.0 };
            grad[r * c + q] = ((row[q] - lse).exp() - y) / count;
        }
    }
    want /= count;
    let mut runs = Vec::new();
    for threads in [1, 3] {
        rnncore::set_num_threads(threads).unwrap();
        let mut d = vec![f32::NAN; b * t * c];
        let loss =
            rnncore::train::loss::cross_entropy(&out, b, t, c, &labels, Targets::EveryStep, &mut d)
                .unwrap();
        assert!(
            ((loss as f64) - want).abs() <= 1e-6 * want,
            "{loss} vs {want}"
        );
        for (&dv, &g) in d.iter().zip(&grad) {
            assert!(
                (dv as f64 - g).abs() <= 1e-7 * g.abs() + 1e-12,
                "{dv} vs {g}"
            );
        }
        runs.push((loss.to_bits(), bits(&d)));
    }
    rnncore::set_num_threads(0).unwrap();
    assert_eq!(runs[0], runs[1]);
}
