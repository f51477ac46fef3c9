//! The batched forward against `matrixmultiply`'s sgemm, side by side in one process:
//! how close to the machine's GEMM rate the one-thread forward runs (issue 19 asks for
//! the fraction of sgemm's rate where a configuration is bound by the machine).
//!
//! Run: `cargo bench --bench fraction [-- ROUNDS]` (default 7). For each of the
//! comparison harness's shapes `(I, H, B, T)` and each cell, four timings alternate
//! round by round (the order rotates, so a slow spell of a shared machine falls on all):
//! - `forward`: `Model::forward_with_state` on `[B][T][I]`, one thread;
//! - `packed`: the forward's products alone with the packed GEMM: the input product
//!   (`B·T × I` by `I × G·H`, from the bias) and `T` recurrent products (`B × H` by
//!   `H × G·H`, the sweep's direction alternated as the forward alternates it), one
//!   after the other (`forward − packed` is about the cells' share);
//! - `sgemm`: the same products with `matrixmultiply::sgemm`;
//! - `sgemm one`: one product `B·T × (I + H)` by `(I + H) × G·H` (the same FLOPs, the
//!   shape a GEMM likes best: the criterion bench's `sgemm/` yardstick).
//!
//! Printed: medians in ms and the rates as fractions of sgemm's on the same products
//! (above 1: faster than sgemm), with the CPU and kernel tier.
//!
//! A second table does the same for a training step (`Trainer::step_mse`, SGD, targets at
//! every step, one thread) against sgemm running a training step's products: the
//! forward's (as above), then per step `dh = dG · W_hh` (`B × G·H` by `G·H × H`), then the
//! weight gradients `Xᵀ dG` (`I × B·T` by `B·T × G·H`, `Xᵀ` read through strides, as
//! sgemm takes a transposed operand) and `Hᵀ dG` (`H × B·T` by `B·T × G·H`). The loss, the
//! cells' backward and the update are the step's alone (`train / sgemm` above 1: the
//! whole step ran faster than sgemm ran its products).
//!
//! `RNNCORE_KERNEL` picks rnncore's tier only: `matrixmultiply` detects its own kernel,
//! so with `RNNCORE_KERNEL=avx2` on an AVX-512 CPU the yardstick is an AVX-512 sgemm
//! (the bench says so). To compare both at AVX2, build with matrixmultiply's
//! compile-time test switch (internal to that crate, not a stable interface), in a
//! target folder of its own:
//! `MMTEST_FEATURE=sse2,avx,avx2,fma CARGO_TARGET_DIR=target/mm-avx2 RNNCORE_KERNEL=avx2
//! cargo bench --bench fraction`.

use rnncore::__testing::packed::{gemm, gemm_bias, Packed};
use rnncore::{CellKind, Model, ModelConfig, Targets, TrainConfig, Trainer};
use std::hint::black_box;
use std::time::Instant;

const SHAPES: [(usize, usize, usize, usize); 3] =
    [(64, 128, 64, 64), (256, 512, 32, 64), (512, 1024, 64, 32)];

fn vals(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 7919) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// `C (m × n, stride ldc) = beta·C + A (m × k, stride lda) · B (k × n, row-major)`.
#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: &mut [f32],
    ldc: usize,
    beta: f32,
) {
    sgemm_at(m, k, n, a, (lda, 1), b, c, ldc, beta)
}

/// [`sgemm`] with A's element `(r, q)` at `a[r·rsa + q·csa]` (`(1, m)`: A stored
/// transposed, `k × m` row-major).
#[allow(clippy::too_many_arguments)]
fn sgemm_at(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    c: &mut [f32],
    ldc: usize,
    beta: f32,
) {
    assert!(
        a.len() > (m - 1) * rsa + (k - 1) * csa && b.len() >= k * n && c.len() >= (m - 1) * ldc + n
    );
    // SAFETY: the assert above: A's last element is inside, B holds k rows of n, C m rows
    // of n at stride ldc; B and C row-major with unit column stride.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            n as isize,
            1,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        )
    }
}

const CELLS: [(CellKind, &str); 3] = [
    (CellKind::Lstm, "lstm"),
    (CellKind::GruLbr, "gru"),
    (CellKind::RnnTanh, "rnn"),
];

/// The medians of `N` timings (`run(w)` in ms, `w < N`), each run once to warm up, then
/// `rounds` rounds in which the order rotates, so a slow spell falls on all of them.
fn alternated<const N: usize>(rounds: usize, mut run: impl FnMut(usize) -> f64) -> [f64; N] {
    for w in 0..N {
        run(w);
    }
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    for r in 0..rounds {
        for q in 0..N {
            let w = (r + q) % N;
            times[w].push(run(w));
        }
    }
    times.map(|mut v| median(&mut v))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn main() {
    let rounds = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| {
            a.parse::<usize>()
                .expect("ROUNDS must be a positive integer")
        })
        .unwrap_or(7)
        .max(1);
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without
    // it: there, one round of the smallest shape shows that it runs, not how fast.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (rounds, shapes) = if smoke {
        println!("(smoke run: `cargo bench --bench fraction` for the figures)");
        (1, &SHAPES[..1])
    } else {
        (rounds, &SHAPES[..])
    };
    rnncore::set_num_threads(1).expect("one thread");
    println!(
        "CPU: {}; kernel `{}`; one thread; median of {rounds} alternated rounds, ms; \
         rates as fractions of sgemm's on the same products (above 1: faster).\n",
        cpu_name(),
        rnncore::kernel_name()
    );
    #[cfg(target_arch = "x86_64")]
    if rnncore::kernel_name() != "avx512"
        && std::arch::is_x86_feature_detected!("avx512f")
        && option_env!("MMTEST_FEATURE").is_none()
    {
        println!(
            "Note: this CPU has AVX-512 and matrixmultiply uses it: sgemm here is not an \
             AVX2 yardstick for kernel `{}` (see the header of benches/fraction.rs).\n",
            rnncore::kernel_name()
        );
    }
    println!("| cell | I, H, B, T | forward | packed | sgemm | sgemm one | packed / sgemm | forward / sgemm | forward / sgemm one |");
    println!("| --- | --- | --: | --: | --: | --: | --: | --: | --: |");
    for (cell, name) in CELLS {
        for &(i, h, b, t) in shapes {
            let gh = cell.gates() * h;
            let model = Model::new(ModelConfig::new(cell, i, h, 1), 1).expect("model");
            let x = vals(b * t * i, 1);
            let mut y = vec![0.0f32; b * t * h];
            // The products' operands: W_ih^T (I × GH), W_hh^T (H × GH), the bias, the
            // recurrent rows (B × H), the gates (T steps of B × GH).
            let (wi, wh, bias) = (vals(i * gh, 2), vals(h * gh, 3), vals(gh, 4));
            let hs = vals(b * h, 5);
            let (pi, ph) = (Packed::from_rows(&wi, i, gh), Packed::from_rows(&wh, h, gh));
            let mut gates = vec![0.0f32; t * b * gh];
            // The one big product.
            let (a1, w1) = (vals(b * t * (i + h), 6), vals((i + h) * gh, 7));
            let mut c1 = vec![0.0f32; b * t * gh];
            let acc = cell != CellKind::GruLbr;

            let run = |which: usize| -> f64 {
                let t0 = Instant::now();
                match which {
                    0 => model
                        .forward_with_state(black_box(&x), b, t, None, &mut y, None)
                        .expect("forward"),
                    1 => {
                        gemm_bias(b * t, &x, i, &pi, &mut gates, gh, &bias);
                        for (st, s) in gates.chunks_exact_mut(b * gh).enumerate() {
                            gemm(b, &hs, h, &ph, s, gh, acc, st % 2 == 1);
                        }
                    }
                    2 => {
                        for s in gates.chunks_exact_mut(gh) {
                            s.copy_from_slice(&bias);
                        }
                        sgemm(b * t, i, gh, &x, i, &wi, &mut gates, gh, 1.0);
                        let beta = if acc { 1.0 } else { 0.0 };
                        for s in gates.chunks_exact_mut(b * gh) {
                            sgemm(b, h, gh, &hs, h, &wh, s, gh, beta);
                        }
                    }
                    _ => sgemm(b * t, i + h, gh, &a1, i + h, &w1, &mut c1, gh, 0.0),
                }
                black_box(&gates);
                t0.elapsed().as_secs_f64() * 1e3
            };
            let [f, p, s, s1] = alternated(rounds, run);
            println!(
                "| {name} | {i}, {h}, {b}, {t} | {f:.2} | {p:.2} | {s:.2} | {s1:.2} | {:.2} | {:.2} | {:.2} |",
                s / p,
                s / f,
                s1 / f
            );
        }
    }
    train_table(rounds, shapes);
}

/// The training table (see the header).
fn train_table(rounds: usize, shapes: &[(usize, usize, usize, usize)]) {
    println!("\n| cell | I, H, B, T | train | sgemm train | train / sgemm |");
    println!("| --- | --- | --: | --: | --: |");
    for (cell, name) in CELLS {
        for &(i, h, b, t) in shapes {
            let gh = cell.gates() * h;
            let mut model = Model::new(ModelConfig::new(cell, i, h, 1), 1).expect("model");
            let mut trainer = Trainer::new(&model, TrainConfig::sgd(0.0, 0.0)).expect("trainer");
            let (x, target) = (vals(b * t * i, 1), vals(b * t * h, 8));
            // sgemm's operands: the weights (W_ih^T, W_hh^T, W_hh), the recurrent rows,
            // the gate gradients dG (T steps of B × GH) and the layer's outputs (B·T × H).
            let (wi, wh, whb) = (vals(i * gh, 2), vals(h * gh, 3), vals(gh * h, 4));
            let (hs, hall) = (vals(b * h, 5), vals(b * t * h, 6));
            let dg = vals(t * b * gh, 7);
            let mut gates = vec![0.0f32; t * b * gh];
            let mut dh = vec![0.0f32; b * h];
            let (mut dwi, mut dwh) = (vec![0.0f32; i * gh], vec![0.0f32; h * gh]);
            let acc = cell != CellKind::GruLbr;

            let run = |which: usize| -> f64 {
                let t0 = Instant::now();
                if which == 0 {
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
                        .expect("train step");
                } else {
                    sgemm(b * t, i, gh, &x, i, &wi, &mut gates, gh, 0.0);
                    let beta = if acc { 1.0 } else { 0.0 };
                    for s in gates.chunks_exact_mut(b * gh) {
                        sgemm(b, h, gh, &hs, h, &wh, s, gh, beta);
                    }
                    for d in dg.chunks_exact(b * gh) {
                        sgemm(b, gh, h, d, gh, &whb, &mut dh, h, 1.0);
                    }
                    sgemm_at(i, b * t, gh, &x, (1, i), &dg, &mut dwi, gh, 0.0);
                    sgemm_at(h, b * t, gh, &hall, (1, h), &dg, &mut dwh, gh, 0.0);
                    black_box((&gates, &dh, &dwi, &dwh));
                }
                t0.elapsed().as_secs_f64() * 1e3
            };
            let [tr, sg] = alternated(rounds, run);
            println!(
                "| {name} | {i}, {h}, {b}, {t} | {tr:.2} | {sg:.2} | {:.2} |",
                sg / tr
            );
        }
    }
}
