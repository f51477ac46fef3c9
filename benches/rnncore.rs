//! Criterion benchmarks of the real library paths. Groups (filter with a substring):
//! - `step/{cell}/H{h}`: one streaming step, batch 1, I = 1 (an audio sample).
//! - `block{n}/{cell}/H32`: a block of n samples through `forward_state`; per-sample
//!   time = reported time / n (throughput is reported in samples).
//! - `streams64/lstm/H32`: 64 independent streams stepped together.
//! - `audio/{tier}/{cell}_H{h}_{step|block512}`: the RTNeural comparison's model (I = 1,
//!   one layer, a dense head to 1 output), LSTM and GRU at H = 8..128: one sample per
//!   call, and 512-sample blocks (throughput in samples). `{tier}` is the kernel tier
//!   that ran (`RNNCORE_KERNEL=avx2` / `avx` / `sse41` / `scalar` picks another; the fused
//!   single-stream kernels run every row on the SIMD tiers).
//! - `infer/{cell}/I{i}_H{h}_B{b}_T{t}`, `train/...`: sequence forward and one training
//!   step (forward + BPTT + SGD), throughput in FLOPs (training counted as 3x forward).
//! - `sgemm/...`: matrixmultiply's sgemm on the same FLOP count and shape
//!   (`[B*T, I+H] x [I+H, G*H]`), the yardstick for the batched paths.
//! - `packed/{tier}/{step|input}_...`: the packed GEMM the batched paths run, on an LSTM's
//!   products for each harness shape: one step's recurrent product `[B, H] x [H, 4H]`
//!   (the sweep alternated as the forward alternates it) and the input product of 8
//!   timesteps `[8B, I] x [I, 4H]` (a block of the forward's hoisted product).
//!
//! Run: `cargo bench --bench rnncore -- step/` (all: `cargo bench --bench rnncore`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rnncore::{
    CellKind, Model, ModelConfig, OutputActivation, State, Targets, TrainConfig, Trainer,
};
use std::hint::black_box;
use std::time::Duration;

const CELLS: [(CellKind, &str); 3] = [
    (CellKind::Lstm, "lstm"),
    (CellKind::GruLbr, "gru"),
    (CellKind::RnnTanh, "rnn"),
];

fn vals(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

fn step(c: &mut Criterion) {
    let mut g = c.benchmark_group("step");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (cell, name) in CELLS {
        for h in [8, 16, 32, 64, 128] {
            let model = Model::new(ModelConfig::new(cell, 1, h, 1), 1).unwrap();
            let mut state = State::new(&model, 1).unwrap();
            let mut y = vec![0.0; h];
            let mut x = 0.1f32;
            g.bench_function(BenchmarkId::new(name, format!("H{h}")), |b| {
                b.iter(|| {
                    x = -x;
                    model.step(&mut state, black_box(&[x]), &mut y).unwrap();
                    black_box(&y);
                })
            });
        }
    }
    g.finish();
}

fn audio(c: &mut Criterion) {
    let mut g = c.benchmark_group("audio");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let tier = rnncore::kernel_name();
    for (cell, name) in &CELLS[..2] {
        // 20, 24 and 40: sizes between the powers of two (padded, or a kernel of their own
        // on AVX2, on AVX-512 on AMD, and at 24 and 40 on SSE4.1).
        for h in [8, 16, 20, 24, 32, 40, 64, 128] {
            let cfg = ModelConfig::new(*cell, 1, h, 1).with_head(1, OutputActivation::Identity);
            let model = Model::new(cfg, 1).unwrap();
            let mut state = State::with_block(&model, 1, 512).unwrap();
            let (x, mut y) = (vals(512), vec![0.0; 512]);
            let mut i = 0;
            g.throughput(Throughput::Elements(1));
            g.bench_function(format!("{tier}/{name}_H{h}_step"), |b| {
                b.iter(|| {
                    i = (i + 1) % 512;
                    model
                        .step(&mut state, black_box(&x[i..i + 1]), &mut y[..1])
                        .unwrap();
                })
            });
            g.throughput(Throughput::Elements(512));
            g.bench_function(format!("{tier}/{name}_H{h}_block512"), |b| {
                b.iter(|| {
                    model
                        .forward_state(&mut state, black_box(&x), 512, &mut y)
                        .unwrap()
                })
            });
            if h <= 32 {
                // Stereo: two streams in one state, a sample each per call.
                let mut stereo = State::new(&model, 2).unwrap();
                let mut y2 = [0.0f32; 2];
                g.throughput(Throughput::Elements(2));
                g.bench_function(format!("{tier}/{name}_H{h}_stereo_step"), |b| {
                    b.iter(|| {
                        i = (i + 2) % 510;
                        model
                            .step(&mut stereo, black_box(&x[i..i + 2]), &mut y2)
                            .unwrap();
                    })
                });
            }
        }
    }
    g.finish();
}

fn blocks(c: &mut Criterion) {
    for n in [64usize, 512] {
        let mut g = c.benchmark_group(format!("block{n}"));
        g.measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
        g.throughput(Throughput::Elements(n as u64));
        for (cell, name) in CELLS {
            let model = Model::new(ModelConfig::new(cell, 1, 32, 1), 1).unwrap();
            let mut state = State::with_block(&model, 1, n).unwrap();
            let x = vals(n);
            let mut y = vec![0.0; n * 32];
            g.bench_function(BenchmarkId::new(name, "H32"), |b| {
                b.iter(|| {
                    model
                        .forward_state(&mut state, black_box(&x), n, &mut y)
                        .unwrap()
                })
            });
        }
        g.finish();
    }
    // Silence: a zero-bias RNN fed zeros decays towards 0 through the subnormal range
    // unless the state is flushed; per-sample cost must match normal input.
    let mut g = c.benchmark_group("silence512");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(512));
    let cfg = ModelConfig::new(CellKind::RnnTanh, 1, 32, 1);
    let base = Model::new(cfg, 1).unwrap();
    let mut p = base.parameters().to_vec();
    for e in base
        .layout()
        .entries()
        .iter()
        .filter(|e| e.name.contains("bias"))
    {
        p[e.offset..e.offset + e.len].fill(0.0);
    }
    let model = Model::from_parameters(cfg, p).unwrap();
    for (label, x) in [
        ("normal", vals(512)),
        ("silent", vec![0.0; 512]),
        ("tiny", vec![1e-40; 512]),
    ] {
        let mut state = State::with_block(&model, 1, 512).unwrap();
        let mut y = vec![0.0; 512 * 32];
        g.bench_function(BenchmarkId::new(label, "rnn_H32"), |b| {
            b.iter(|| {
                model
                    .forward_state(&mut state, black_box(&x), 512, &mut y)
                    .unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("streams64");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(64));
    let model = Model::new(ModelConfig::new(CellKind::Lstm, 1, 32, 1), 1).unwrap();
    let mut state = State::new(&model, 64).unwrap();
    let x = vals(64);
    let mut y = vec![0.0; 64 * 32];
    g.bench_function(BenchmarkId::new("lstm", "H32"), |b| {
        b.iter(|| model.step(&mut state, black_box(&x), &mut y).unwrap())
    });
    g.finish();
}

/// (I, H, B, T) of the batched benchmarks.
const SHAPES: [(usize, usize, usize, usize); 3] =
    [(64, 128, 64, 64), (256, 512, 32, 64), (512, 1024, 64, 32)];

fn forward_flops(g: usize, (i, h, b, t): (usize, usize, usize, usize)) -> u64 {
    (2 * b * t * g * h * (i + h)) as u64
}

fn batched(c: &mut Criterion) {
    for (kind, factor) in [("infer", 1u64), ("train", 3u64)] {
        let mut g = c.benchmark_group(kind);
        g.sample_size(10)
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_millis(500));
        for (cell, name) in CELLS {
            for shape in SHAPES {
                let (i, h, b, t) = shape;
                let cfg = ModelConfig::new(cell, i, h, 1);
                let mut model = Model::new(cfg, 1).unwrap();
                let x = vals(b * t * i);
                g.throughput(Throughput::Elements(
                    factor * forward_flops(cell.gates(), shape),
                ));
                let id = BenchmarkId::new(name, format!("I{i}_H{h}_B{b}_T{t}"));
                if kind == "infer" {
                    let mut y = vec![0.0; b * t * h];
                    g.bench_function(id, |bn| {
                        bn.iter(|| {
                            model
                                .forward_with_state(black_box(&x), b, t, None, &mut y, None)
                                .unwrap()
                        })
                    });
                } else {
                    let target = vec![0.0; b * t * h];
                    let mut trainer = Trainer::new(&model, TrainConfig::sgd(0.0, 0.0)).unwrap();
                    g.bench_function(id, |bn| {
                        bn.iter(|| {
                            trainer
                                .step_mse(
                                    &mut model,
                                    None,
                                    black_box(&x),
                                    b,
                                    t,
                                    &target,
                                    Targets::EveryStep,
                                )
                                .unwrap()
                        })
                    });
                }
            }
        }
        g.finish();
    }
    // Audio-style training: I = 1, H = 32, B = 16, T = 1024.
    let mut g = c.benchmark_group("train_audio");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for (cell, name) in CELLS {
        let (b, t) = (16, 1024);
        let mut model = Model::new(
            ModelConfig::new(cell, 1, 32, 1).with_head(1, Default::default()),
            1,
        )
        .unwrap();
        let x = vals(b * t);
        let target = vals(b * t);
        let mut trainer = Trainer::new(&model, TrainConfig::sgd(0.0, 0.0)).unwrap();
        g.throughput(Throughput::Elements((b * t) as u64));
        g.bench_function(BenchmarkId::new(name, "I1_H32_B16_T1024"), |bn| {
            bn.iter(|| {
                trainer
                    .step_mse(
                        &mut model,
                        None,
                        black_box(&x),
                        b,
                        t,
                        &target,
                        Targets::EveryStep,
                    )
                    .unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sgemm");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for shape in SHAPES {
        let (i, h, b, t) = shape;
        let (m, k, n) = (b * t, i + h, 4 * h);
        let a = vals(m * k);
        let w = vals(k * n);
        let mut out = vec![0.0f32; m * n];
        g.throughput(Throughput::Elements(forward_flops(4, shape)));
        g.bench_function(
            BenchmarkId::new("lstm_shape", format!("I{i}_H{h}_B{b}_T{t}")),
            |bn| {
                bn.iter(|| {
                    // SAFETY: the three buffers hold m*k, k*n and m*n floats, row-major.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            a.as_ptr(),
                            k as isize,
                            1,
                            w.as_ptr(),
                            n as isize,
                            1,
                            0.0,
                            out.as_mut_ptr(),
                            n as isize,
                            1,
                        )
                    }
                })
            },
        );
    }
    g.finish();
}

/// The packed GEMM alone (see the header): its rate in FLOPs, beside `sgemm/`.
fn packed(c: &mut Criterion) {
    use rnncore::__testing::packed::{gemm, Packed};
    let tier = rnncore::kernel_name();
    let mut g = c.benchmark_group("packed");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for shape in SHAPES {
        let (i, h, b, _) = shape;
        for (what, m, k) in [("step", b, h), ("input", 8 * b, i)] {
            let n = 4 * h;
            let (a, w) = (vals(m * k), vals(k * n));
            let packed = Packed::from_rows(&w, k, n);
            let mut out = vec![0.0f32; m * n];
            let mut reverse = false;
            g.throughput(Throughput::Elements((2 * m * k * n) as u64));
            g.bench_function(
                BenchmarkId::new(format!("{tier}/{what}"), format!("M{m}_K{k}_N{n}")),
                |bn| {
                    bn.iter(|| {
                        reverse = !reverse;
                        gemm(m, black_box(&a), k, &packed, &mut out, n, false, reverse)
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, step, audio, blocks, batched, packed);
criterion_main!(benches);
