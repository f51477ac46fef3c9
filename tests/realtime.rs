//! The real-time contract of the streaming path, tested rather than promised: no heap
//! allocation in `step` or `forward_state` (a counting global allocator, per thread), and
//! no subnormal values left in the state after long silence (subnormal arithmetic is
//! what makes silent audio slow on x86).

mod common;
use common::counting::{allocations, Counting};
use rnncore::{CellKind, Model, ModelConfig, OutputActivation, State};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn models() -> Vec<Model> {
    let mut v = Vec::new();
    for cell in CellKind::ALL {
        for (i, h, l, o) in [(1, 8, 1, 0), (1, 32, 2, 1), (3, 13, 1, 4)] {
            let mut cfg = ModelConfig::new(cell, i, h, l);
            if o > 0 {
                cfg = cfg.with_head(o, OutputActivation::Softmax);
            }
            v.push(Model::new(cfg, 3).unwrap());
        }
    }
    // LSTM projections run their own streaming path (`proj.rs`).
    for (i, h, l, o, p) in [(1, 32, 2, 1, 8), (3, 13, 1, 4, 5), (2, 16, 1, 0, 3)] {
        let mut cfg = ModelConfig::new(CellKind::Lstm, i, h, l).with_proj_size(p);
        if o > 0 {
            cfg = cfg.with_head(o, OutputActivation::Softmax);
        }
        v.push(Model::new(cfg, 3).unwrap());
    }
    v
}

#[test]
fn step_and_block_forward_never_allocate() {
    for model in models() {
        let cfg = *model.config();
        let (i, o) = (cfg.input_size, model.output_size());
        for batch in [1, 4] {
            let mut state = State::with_block(&model, batch, 64).unwrap();
            let x: Vec<f32> = (0..batch * 64 * i)
                .map(|k| (k as f32 * 0.37).sin())
                .collect();
            let mut y = vec![0.0; batch * 64 * o];
            let mut ys = vec![0.0; batch * o];
            let before = allocations();
            for n in 0..2000 {
                model.step(&mut state, &x[..batch * i], &mut ys).unwrap();
                if n % 50 == 0 {
                    model.forward_state(&mut state, &x, 64, &mut y).unwrap();
                    model
                        .forward_state(
                            &mut state,
                            &x[..batch * 17 * i],
                            17,
                            &mut y[..batch * 17 * o],
                        )
                        .unwrap();
                    state.reset_stream(batch - 1).unwrap();
                }
            }
            assert_eq!(allocations() - before, 0, "{cfg:?} batch {batch}");
        }
    }
}

#[test]
fn the_counter_sees_allocations() {
    // The allocator above really counts on this thread (so zero means zero).
    let before = allocations();
    let v: Vec<u64> = std::hint::black_box(vec![1, 2, 3]);
    assert!(allocations() > before);
    drop(v);
}

#[test]
fn long_silence_leaves_no_subnormal_state() {
    for model in models() {
        // Zero biases: with no input the state then decays towards zero geometrically,
        // through the subnormal range unless something stops it.
        let cfg = *model.config();
        let mut p = model.parameters().to_vec();
        for e in model.layout().entries() {
            if e.name.contains("bias") {
                p[e.offset..e.offset + e.len].fill(0.0);
            }
        }
        let model = Model::from_parameters(cfg, p).unwrap();
        let mut state = State::with_block(&model, 1, 512).unwrap();
        // Start from a large state, then feed silence and tiny (subnormal) inputs.
        state.set(&vec![0.9; state.len()]).unwrap();
        let mut y = vec![0.0; 512 * model.output_size()];
        for block in 0..40 {
            let v = if block % 2 == 0 { 0.0 } else { 1e-40 };
            let x = vec![v; 512 * cfg.input_size];
            model.forward_state(&mut state, &x, 512, &mut y).unwrap();
            assert!(
                state.as_slice().iter().chain(&y).all(|v| !v.is_subnormal()),
                "{cfg:?}: subnormal state after {} silent samples",
                (block + 1) * 512
            );
        }
    }
}

#[test]
fn subnormal_inputs_are_treated_as_silence() {
    // Products with subnormal operands are many times slower on x86; the streaming path
    // flushes them, so a fading tail of 1e-40 behaves exactly like zeros.
    for model in models() {
        let cfg = *model.config();
        let run = |v: f32| {
            let mut state = State::with_block(&model, 2, 64).unwrap();
            state.set(&vec![0.3; state.len()]).unwrap();
            let x = vec![v; 2 * 64 * cfg.input_size];
            let mut y = vec![0.0; 2 * 64 * model.output_size()];
            model.forward_state(&mut state, &x, 64, &mut y).unwrap();
            let mut y1 = vec![0.0; 2 * model.output_size()];
            model
                .step(&mut state, &x[..2 * cfg.input_size], &mut y1)
                .unwrap();
            (y, y1, state.as_slice().to_vec())
        };
        assert_eq!(run(1e-40), run(0.0), "{cfg:?}");
        assert_eq!(run(-3e-39), run(0.0), "{cfg:?}");
    }
}
