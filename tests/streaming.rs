//! Streaming: `step` driven T times equals `forward`; block forward in chunks equals one
//! forward; snapshots round-trip exactly; per-stream reset; bad arguments change nothing.

mod common;
use common::*;
use rnncore::{
    CellKind, Error, Model, ModelConfig, OutputActivation, State, Targets, TrainConfig, Trainer,
};

const B: usize = 3;
const T: usize = 7;

fn all_configs() -> Vec<ModelConfig> {
    let mut v = configs(4, 6);
    v.push(ModelConfig::new(CellKind::Lstm, 4, 6, 2).with_head(3, OutputActivation::Softmax));
    v
}

#[test]
fn step_t_times_equals_forward_from_zero_and_from_a_state() {
    for cfg in all_configs() {
        let model = Model::new(cfg, 11).unwrap();
        let o = model.output_size();
        let x = vals(B * T * 4, 3, 1.0);
        let init = vals(cfg.state_len(B), 4, 0.5);
        let mut want = vec![f32::NAN; B * T * o];
        let mut want_final = vec![f32::NAN; cfg.state_len(B)];
        model
            .forward_with_state(&x, B, T, Some(&init), &mut want, Some(&mut want_final))
            .unwrap();

        let mut state = State::new(&model, B).unwrap();
        state.set(&init).unwrap();
        let mut got = vec![f32::NAN; B * T * o];
        for t in 0..T {
            let xt: Vec<f32> = (0..B)
                .flat_map(|b| x[(b * T + t) * 4..(b * T + t + 1) * 4].to_vec())
                .collect();
            let mut yt = vec![f32::NAN; B * o];
            model.step(&mut state, &xt, &mut yt).unwrap();
            for b in 0..B {
                got[(b * T + t) * o..(b * T + t + 1) * o].copy_from_slice(&yt[b * o..(b + 1) * o]);
            }
        }
        assert!(
            max_abs_diff(&got, &want) < 1e-5,
            "{cfg:?}: {}",
            max_abs_diff(&got, &want)
        );
        assert!(
            max_abs_diff(state.as_slice(), &want_final) < 1e-5,
            "{cfg:?} final state"
        );
    }
}

#[test]
fn block_forward_in_chunks_equals_one_forward() {
    for cfg in all_configs() {
        let model = Model::new(cfg, 12).unwrap();
        let o = model.output_size();
        let x = vals(B * T * 4, 5, 1.0);
        let want = model.forward(&x, B, T).unwrap();
        let mut state = State::with_block(&model, B, 4).unwrap();
        let mut got = vec![f32::NAN; B * T * o];
        let mut t0 = 0;
        for len in [3, 4, 0, 0] {
            let len = len.min(T - t0);
            let len = if t0 + len < T && len == 0 {
                T - t0
            } else {
                len
            };
            let xs: Vec<f32> = (0..B)
                .flat_map(|b| x[(b * T + t0) * 4..(b * T + t0 + len) * 4].to_vec())
                .collect();
            let mut ys = vec![f32::NAN; B * len * o];
            model.forward_state(&mut state, &xs, len, &mut ys).unwrap();
            for b in 0..B {
                got[(b * T + t0) * o..(b * T + t0 + len) * o]
                    .copy_from_slice(&ys[b * len * o..(b + 1) * len * o]);
            }
            t0 += len;
        }
        assert_eq!(t0, T);
        assert!(max_abs_diff(&got, &want) < 1e-5, "{cfg:?}");
    }
}

#[test]
fn snapshot_round_trips_exactly_and_streams_reset_alone() {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 5, 2);
    let model = Model::new(cfg, 1).unwrap();
    let mut state = State::new(&model, 3).unwrap();
    assert_eq!(state.len(), 2 * 2 * 3 * 5);
    let mut y = vec![0.0; 3 * 5];
    model
        .step(&mut state, &[0.3, -0.2, 0.1, 0.9, -1.0, 0.5], &mut y)
        .unwrap();
    let mut snap = vec![f32::NAN; state.len()];
    state.get(&mut snap).unwrap();
    let mut other = State::new(&model, 3).unwrap();
    other.set(&snap).unwrap();
    assert_eq!(other.as_slice(), state.as_slice());
    // The same next step from both gives identical bits.
    let mut y1 = vec![0.0; 15];
    let mut y2 = vec![0.0; 15];
    model.step(&mut state, &[1.0; 6], &mut y1).unwrap();
    model.step(&mut other, &[1.0; 6], &mut y2).unwrap();
    assert_eq!(y1, y2);
    // Resetting stream 1 zeroes its h and c in every layer and nothing else.
    let before = state.as_slice().to_vec();
    state.reset_stream(1).unwrap();
    for (i, (a, b)) in state.as_slice().iter().zip(&before).enumerate() {
        let stream = (i / 5) % 3;
        if stream == 1 {
            assert_eq!(*a, 0.0);
        } else {
            assert_eq!(a, b);
        }
    }
    assert!(matches!(state.reset_stream(3), Err(Error::Invalid(_))));
    state.reset();
    assert!(state.as_slice().iter().all(|&v| v == 0.0));
}

#[test]
fn bad_arguments_change_nothing() {
    let cfg = ModelConfig::new(CellKind::Gru, 2, 4, 1).with_head(2, OutputActivation::Identity);
    let model = Model::new(cfg, 2).unwrap();
    let mut state = State::with_block(&model, 2, 3).unwrap();
    state.set(&vals(state.len(), 9, 0.5)).unwrap();
    let snap = state.as_slice().to_vec();
    let mut y = vec![7.0f32; 2 * 2];
    // Wrong x length, wrong y length, NaN input, block longer than max_block.
    assert!(matches!(
        model.step(&mut state, &[0.0; 3], &mut y),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        model.step(&mut state, &[0.0; 4], &mut y[..3]),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        model.step(&mut state, &[0.0, f32::NAN, 0.0, 0.0], &mut y),
        Err(Error::NonFinite(_))
    ));
    let mut y4 = vec![7.0f32; 2 * 4 * 2];
    assert!(matches!(
        model.forward_state(&mut state, &[0.0; 16], 4, &mut y4),
        Err(Error::Invalid(_))
    ));
    assert!(y.iter().chain(&y4).all(|&v| v == 7.0));
    assert_eq!(state.as_slice(), &snap[..]);
    // set refuses non-finite and keeps the old snapshot.
    let mut bad = snap.clone();
    bad[3] = f32::INFINITY;
    assert!(matches!(state.set(&bad), Err(Error::NonFinite(_))));
    assert_eq!(state.as_slice(), &snap[..]);
    // A state made for another model.
    let other = Model::new(ModelConfig::new(CellKind::Gru, 2, 5, 1), 2).unwrap();
    let mut foreign = State::new(&other, 2).unwrap();
    assert!(matches!(
        model.step(&mut foreign, &[0.0; 4], &mut y),
        Err(Error::Invalid(_))
    ));
    // Sequence forward: zero batch, zero length, overflowing sizes.
    assert!(matches!(model.forward(&[], 0, 3), Err(Error::Invalid(_))));
    assert!(matches!(model.forward(&[], 1, 0), Err(Error::Invalid(_))));
    assert!(matches!(
        model.forward(&[0.0; 4], usize::MAX, usize::MAX),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        State::new(&model, usize::MAX / 2),
        Err(Error::Invalid(_))
    ));
}

/// After a first step a state takes a shorter path (the model's identity stands for the
/// checks it passed): bad arguments still fail there and change nothing, a state of
/// another config is still refused, and a clone of the model steps the state as the
/// model does.
#[test]
fn bad_arguments_change_nothing_after_a_first_step() {
    for cell in [CellKind::Lstm, CellKind::GruLbr] {
        let cfg = ModelConfig::new(cell, 1, 16, 1).with_head(1, OutputActivation::Identity);
        let model = Model::new(cfg, 5).unwrap();
        let mut state = State::new(&model, 1).unwrap();
        let mut y = [0.0f32];
        model.step(&mut state, &[0.3], &mut y).unwrap();
        let snap = state.as_slice().to_vec();
        let mut y2 = [7.0f32; 2];
        assert!(matches!(
            model.step(&mut state, &[0.3, 0.1], &mut y2[..1]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            model.step(&mut state, &[0.3], &mut y2),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            model.step(&mut state, &[f32::INFINITY], &mut y2[..1]),
            Err(Error::NonFinite(_))
        ));
        assert_eq!(y2, [7.0; 2], "{cell:?}");
        assert_eq!(state.as_slice(), &snap[..], "{cell:?}");
        let other = Model::new(ModelConfig::new(cell, 1, 8, 1), 5).unwrap();
        assert!(matches!(
            other.step(&mut state, &[0.3], &mut y),
            Err(Error::Invalid(_))
        ));
        let twin = model.clone();
        let mut copy = state.clone();
        let (mut a, mut b) = ([0.0f32], [0.0f32]);
        model.step(&mut state, &[0.5], &mut a).unwrap();
        twin.step(&mut copy, &[0.5], &mut b).unwrap();
        assert_eq!(a[0].to_bits(), b[0].to_bits(), "{cell:?}");
        assert_eq!(state.as_slice(), copy.as_slice(), "{cell:?}");
        // A training step changes the weights, the head's too (which the fused kernel
        // keeps a copy of): a state's steps, the first through the whole path and the
        // next through the shortcut, then follow the new weights, as the batched
        // forward (the head as a product of its own) does.
        let mut model = model;
        let mut trainer = Trainer::new(&model, TrainConfig::sgd(0.5, 0.0)).unwrap();
        let (xs, ts) = ([0.3f32, -0.7, 0.2], [0.9f32, -0.4, 0.1]);
        trainer
            .step_mse(&mut model, None, &xs, 1, 3, &ts, Targets::EveryStep)
            .unwrap();
        // Two streams: the batched path (one stream would run the fused kernels too).
        let x2: Vec<f32> = xs.iter().chain(&xs).copied().collect();
        let want = model.forward(&x2, 2, 3).unwrap();
        let before = twin.forward(&x2, 2, 3).unwrap();
        let mut fresh = State::new(&model, 1).unwrap();
        for (t, &x) in xs.iter().enumerate() {
            model.step(&mut fresh, &[x], &mut a).unwrap();
            assert!(
                (a[0] - want[t]).abs() < 1e-5,
                "{cell:?} t={t}: {} vs {}",
                a[0],
                want[t]
            );
            assert!(
                (want[t] - before[t]).abs() > 1e-3,
                "{cell:?}: training changed nothing"
            );
        }
    }
}

#[test]
fn zero_weights_give_known_states() {
    // With every weight and bias zero: RNN h = tanh(0) = 0; LSTM gates 0.5, g = 0, so
    // c_t = 0.5 c_{t-1}, h_t = 0.5 tanh(c_t); GRU z = 0.5, n = 0: h_t = 0.5 h_{t-1}.
    for cell in [
        CellKind::RnnTanh,
        CellKind::Lstm,
        CellKind::Gru,
        CellKind::GruLbr,
    ] {
        let cfg = ModelConfig::new(cell, 2, 3, 1);
        let n = rnncore::ParamLayout::new(&cfg).unwrap().total();
        let model = Model::from_parameters(cfg, vec![0.0; n]).unwrap();
        let mut state = State::new(&model, 1).unwrap();
        let init: Vec<f32> = (0..state.len()).map(|i| 0.4 + 0.1 * i as f32).collect();
        state.set(&init).unwrap();
        let mut y = vec![0.0; 3];
        model.step(&mut state, &[5.0, -5.0], &mut y).unwrap();
        for j in 0..3 {
            let want = match cell {
                CellKind::Lstm => 0.5 * (0.5 * init[3 + j]).tanh(),
                CellKind::RnnTanh => 0.0,
                _ => 0.5 * init[j],
            };
            assert!((y[j] - want).abs() < 1e-6, "{cell:?}: {} vs {want}", y[j]);
        }
    }
}

#[test]
fn a_batch_of_one_equals_the_same_row_of_a_batch() {
    // Batch 1 takes the streaming path inside forward_with_state; it must agree with the
    // batched path on the same sequence, outputs and final state.
    for cfg in all_configs() {
        let model = Model::new(cfg, 21).unwrap();
        let o = model.output_size();
        let x = vals(B * T * 4, 6, 1.0);
        let init = vals(cfg.state_len(B), 7, 0.5);
        let mut yb = vec![f32::NAN; B * T * o];
        let mut fb = vec![f32::NAN; cfg.state_len(B)];
        model
            .forward_with_state(&x, B, T, Some(&init), &mut yb, Some(&mut fb))
            .unwrap();
        let row = 1;
        let x1 = &x[row * T * 4..(row + 1) * T * 4];
        let (h, l) = (cfg.hidden_size, cfg.num_layers);
        let planes = cfg.state_len(B) / (B * h);
        let pick = |s: &[f32]| -> Vec<f32> {
            (0..planes)
                .flat_map(|p| s[(p * B + row) * h..(p * B + row + 1) * h].to_vec())
                .collect()
        };
        let init1 = pick(&init);
        let mut y1 = vec![f32::NAN; T * o];
        let mut f1 = vec![f32::NAN; cfg.state_len(1)];
        model
            .forward_with_state(x1, 1, T, Some(&init1), &mut y1, Some(&mut f1))
            .unwrap();
        assert!(
            max_abs_diff(&y1, &yb[row * T * o..(row + 1) * T * o]) < 1e-5,
            "{cfg:?}"
        );
        assert!(max_abs_diff(&f1, &pick(&fb)) < 1e-5, "{cfg:?} final state");
        assert_eq!(planes, if cfg.cell == CellKind::Lstm { 2 * l } else { l });
    }
}

/// A long block runs in chunks of timesteps inside (32 KB of gate rows each: 64 steps for
/// one H = 32 LSTM stream, fewer for more streams); fed as short blocks that each fit one
/// chunk, the same samples must give the same bits, outputs and final state. Without a
/// head the top layer writes `y` directly (after 0 or 2 layers that use the block
/// buffers).
#[test]
fn a_long_block_equals_short_blocks_bit_for_bit() {
    let t = 150;
    for cell in [
        CellKind::Lstm,
        CellKind::GruLbr,
        CellKind::Gru,
        CellKind::RnnTanh,
    ] {
        // H = 32 takes the fused kernels for one LSTM or GRU stream, H = 24 the
        // general path.
        for (b, layers, head, h) in [
            (1, 1, true, 32),
            (3, 2, true, 32),
            (1, 1, false, 32),
            (3, 3, false, 32),
            (1, 2, false, 24),
            (3, 1, true, 24),
        ] {
            let mut cfg = ModelConfig::new(cell, 2, h, layers);
            if head {
                cfg = cfg.with_head(3, OutputActivation::Identity);
            }
            let o = cfg.output_dim();
            let model = Model::new(cfg, 21).unwrap();
            let x = vals(b * t * 2, 22, 1.0);
            let mut whole = State::with_block(&model, b, t).unwrap();
            let mut want = vec![f32::NAN; b * t * o];
            model.forward_state(&mut whole, &x, t, &mut want).unwrap();
            if b > 1 {
                // Against the batched path (other code; a batch of one would take this one).
                let batched = model.forward(&x, b, t).unwrap();
                let d = max_abs_diff(&want, &batched);
                assert!(
                    d < 1e-5,
                    "{cell:?} b={b} H={h} layers={layers} head={head}: {d}"
                );
            }

            let mut parts = State::with_block(&model, b, t).unwrap();
            let mut got = vec![f32::NAN; b * t * o];
            let mut t0 = 0;
            // A block of one step (with b > 1 the multi-stream step's path) among them.
            for len in [2, 19, 1, 2, 20, 21, 2, 20, 21, 20, 20, 2] {
                let xs: Vec<f32> = (0..b)
                    .flat_map(|i| x[(i * t + t0) * 2..(i * t + t0 + len) * 2].to_vec())
                    .collect();
                let mut ys = vec![f32::NAN; b * len * o];
                model.forward_state(&mut parts, &xs, len, &mut ys).unwrap();
                for i in 0..b {
                    got[(i * t + t0) * o..(i * t + t0 + len) * o]
                        .copy_from_slice(&ys[i * len * o..(i + 1) * len * o]);
                }
                t0 += len;
            }
            assert_eq!(t0, t);
            let what = format!("{cell:?} b={b} H={h} layers={layers} head={head}");
            assert_eq!(bits(&got), bits(&want), "{what}");
            assert_eq!(bits(parts.as_slice()), bits(whole.as_slice()), "{what}");
        }
    }
}

/// A stack of `layers` layers of `h` units on `i` inputs, with a dense head of `head`
/// outputs (none for 0; softmax on it where `soft`).
fn stack_with_head(
    cell: CellKind,
    i: usize,
    h: usize,
    layers: usize,
    head: usize,
    soft: bool,
) -> ModelConfig {
    let cfg = ModelConfig::new(cell, i, h, layers);
    if head == 0 {
        return cfg;
    }
    let act = if soft {
        OutputActivation::Softmax
    } else {
        OutputActivation::Identity
    };
    cfg.with_head(head, act)
}

/// One stream at the sizes with fused kernels (H = 8, 16, 32, 48, 64, 96 and 128 on the
/// SIMD tiers, 24, 40, 56 (LSTM) and 72 on AVX2, and sizes padded to them: 6, 12, 20,
/// 44, 52, 60, 124; a head of up to 8 outputs inside the top layer's
/// kernel; a block and a single step both run them, elsewhere the general path):
/// stepping sample by sample gives the bits of one block, several layers and inputs
/// deep, and both agree with the batched forward (other code) to rounding.
#[test]
fn one_stream_steps_equal_a_block_bit_for_bit_at_the_fused_sizes() {
    let t = 70;
    for cell in [CellKind::Lstm, CellKind::GruLbr] {
        // `head`: outputs of a dense head (0: none; up to 8 run inside the top layer's
        // kernel, 9 as the general head after it), `soft`: softmax on it.
        for (i, h, layers, head, soft) in [
            (1, 32, 1, 0, false),
            (3, 16, 2, 2, false),
            (5, 32, 3, 0, false),
            (2, 8, 2, 2, false),
            (1, 8, 1, 0, false),
            (20, 16, 1, 0, false),
            (2, 24, 2, 2, false),
            (1, 16, 1, 1, false),
            (1, 32, 1, 5, false),
            (4, 8, 1, 8, true),
            (1, 16, 2, 9, false),
            (2, 32, 1, 3, true),
            (1, 40, 1, 1, false),
            (2, 48, 2, 0, false),
            (1, 96, 1, 1, false),
            (2, 64, 2, 1, false),
            (1, 128, 1, 1, false),
            // Sizes between the kernels', padded to the next one (`stream_size`).
            (1, 20, 1, 1, false),
            (3, 12, 2, 0, false),
            (2, 6, 1, 8, true),
            (1, 44, 2, 2, false),
            (1, 60, 1, 1, false),
            (2, 124, 1, 9, false),
            (1, 80, 2, 1, false),
            (1, 52, 1, 2, false),
        ] {
            let cfg = stack_with_head(cell, i, h, layers, head, soft);
            let o = cfg.output_dim();
            let model = Model::new(cfg, 31).unwrap();
            let x = vals(t * i, 32, 1.5);
            let init = vals(cfg.state_len(1), 33, 0.5);

            let mut block = State::with_block(&model, 1, t).unwrap();
            block.set(&init).unwrap();
            let mut want = vec![f32::NAN; t * o];
            model.forward_state(&mut block, &x, t, &mut want).unwrap();

            let mut steps = State::new(&model, 1).unwrap();
            steps.set(&init).unwrap();
            let mut got = vec![f32::NAN; t * o];
            for s in 0..t {
                let ys = &mut got[s * o..(s + 1) * o];
                model.step(&mut steps, &x[s * i..(s + 1) * i], ys).unwrap();
            }
            let what = format!("{cell:?} I={i} H={h} layers={layers} head={head} {soft}");
            assert_eq!(bits(&got), bits(&want), "{what}");
            assert_eq!(bits(steps.as_slice()), bits(block.as_slice()), "{what}");
            let mut batched = vec![f32::NAN; t * o];
            model
                .forward_with_state(&x, 1, t, Some(&init), &mut batched, None)
                .unwrap();
            let d = max_abs_diff(&want, &batched).max(max_abs_diff(&got, &batched));
            assert!(d < 1e-5, "{what}: {d}");
        }
    }
}

/// A few streams in one state (stereo, a handful of voices) at the fused sizes run the
/// fused kernels one stream at a time: each stream's outputs and state are the bits it
/// has stepped alone, by steps and by blocks, several layers deep, with heads inside the
/// top layer's kernel or after it. On the scalar tier (no fused kernels) the batched
/// path runs, held to rounding. More streams or larger layers take the batched path,
/// also held to rounding here.
#[test]
fn a_few_streams_in_one_state_each_get_their_bits_alone() {
    let fused = rnncore::kernel_name() != "scalar";
    let t = 9;
    for cell in [CellKind::Lstm, CellKind::GruLbr] {
        // (inputs, H, layers, head outputs, softmax, streams)
        for (i, h, layers, head, soft, b) in [
            (1, 16, 1, 1, false, 2),
            (2, 8, 2, 0, false, 3),
            (1, 32, 1, 3, true, 4),
            (3, 20, 2, 9, false, 2),
            (1, 16, 1, 1, false, 16),
            (1, 40, 1, 1, false, 4),
            // The batched path: too many streams for these weights, or too large ones.
            (1, 40, 1, 1, false, 8),
            (1, 64, 1, 1, false, 2),
        ] {
            let cfg = stack_with_head(cell, i, h, layers, head, soft);
            let o = cfg.output_dim();
            let model = Model::new(cfg, 41).unwrap();
            let what = format!("{cell:?} I={i} H={h} layers={layers} head={head} b={b}");
            let x = vals(b * t * i, 42, 1.5);
            let init = vals(cfg.state_len(b), 43, 0.5);
            let per = cfg.state_len(1) / h;
            let stream_state = |s: &[f32], r: usize| -> Vec<f32> {
                (0..per)
                    .flat_map(|p| s[(p * b + r) * h..(p * b + r + 1) * h].to_vec())
                    .collect()
            };
            let exact = fused && (b <= 4 || h <= 16) && h <= 40;

            // All streams together: per-sample steps and one block.
            let mut steps = State::new(&model, b).unwrap();
            steps.set(&init).unwrap();
            let mut got = vec![f32::NAN; b * t * o];
            for s in 0..t {
                let xt: Vec<f32> = (0..b)
                    .flat_map(|r| x[(r * t + s) * i..(r * t + s + 1) * i].to_vec())
                    .collect();
                let mut yt = vec![f32::NAN; b * o];
                model.step(&mut steps, &xt, &mut yt).unwrap();
                for r in 0..b {
                    got[(r * t + s) * o..(r * t + s + 1) * o]
                        .copy_from_slice(&yt[r * o..(r + 1) * o]);
                }
            }
            let mut block = State::with_block(&model, b, t).unwrap();
            block.set(&init).unwrap();
            let mut blk = vec![f32::NAN; b * t * o];
            model.forward_state(&mut block, &x, t, &mut blk).unwrap();

            // Each stream alone.
            for r in 0..b {
                let mut one = State::with_block(&model, 1, t).unwrap();
                one.set(&stream_state(&init, r)).unwrap();
                let mut want = vec![f32::NAN; t * o];
                model
                    .forward_state(&mut one, &x[r * t * i..(r + 1) * t * i], t, &mut want)
                    .unwrap();
                let rows = r * t * o..(r + 1) * t * o;
                let (fs, fb) = (
                    stream_state(steps.as_slice(), r),
                    stream_state(block.as_slice(), r),
                );
                if exact {
                    assert_eq!(
                        bits(&got[rows.clone()]),
                        bits(&want),
                        "{what} steps, stream {r}"
                    );
                    assert_eq!(bits(&blk[rows]), bits(&want), "{what} block, stream {r}");
                    assert_eq!(bits(&fs), bits(one.as_slice()), "{what} state, stream {r}");
                    assert_eq!(bits(&fb), bits(one.as_slice()), "{what} state, stream {r}");
                } else {
                    let d = max_abs_diff(&got[rows.clone()], &want)
                        .max(max_abs_diff(&blk[rows], &want))
                        .max(max_abs_diff(&fs, one.as_slice()))
                        .max(max_abs_diff(&fb, one.as_slice()));
                    assert!(d < 1e-5, "{what} stream {r}: {d}");
                }
            }
        }
    }
}
