//! `rnncore bench`: how fast the library runs a model on this machine, through the same
//! public calls an application makes.
//!
//! - streaming step: `Model::step` with batch 1 (the audio-thread path): mean, median and
//!   99th percentile per step, each step timed on its own;
//! - block forward: `Model::forward_state` on blocks of `--block` steps, per sample;
//! - sequences: `Model::forward` and `forward_train` + `backward` on `--batch` sequences of
//!   `--seq-len` steps, in GFLOP/s. FLOPs count the matrix products only (2 per
//!   multiply-add): per step and sequence `Σ_layers 2·G·H·(I_l + H)` plus `2·H·O` for a
//!   head; training counts 3× that (forward, and backward's two products per weight).

use crate::common::Cell;
use crate::error::{fail, Result};
use clap::Args;
use rnncore::Rng;
use rnncore::{Model, ModelConfig, OutputActivation, State};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of `rnncore bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A model file; without it, a model of `--cell --input --hidden --layers --output`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Cell::Lstm)]
    pub cell: Cell,
    #[arg(long, default_value_t = 1)]
    pub input: usize,
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Outputs of a dense head (0 = none).
    #[arg(long, default_value_t = 1)]
    pub output: usize,
    /// Sequences per batch for the throughput runs.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Steps per sequence for the throughput runs.
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// Steps per block for the block forward.
    #[arg(long, default_value_t = 64)]
    pub block: usize,
    /// Threads for batched work (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Seconds spent on each measurement (after a warm-up of a tenth of it).
    #[arg(long, default_value_t = 1.0)]
    pub min_time: f64,
}

/// Runs `f` repeatedly for about `secs` (after a short warm-up); returns (calls, time).
fn repeat(secs: f64, mut f: impl FnMut() -> Result<()>) -> Result<(u64, Duration)> {
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < secs / 10.0 {
        f()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        f()?;
        n += 1;
        if start.elapsed().as_secs_f64() >= secs {
            return Ok((n, start.elapsed()));
        }
    }
}

/// Matrix-product FLOPs of one timestep of one sequence.
pub fn flops_per_step(c: &ModelConfig) -> f64 {
    let (g, h) = (c.cell.gates() as f64, c.hidden_size as f64);
    let dirs = c.num_directions() as f64;
    let mut f = 0.0;
    for k in 0..c.num_layers {
        let i = c.layer_input_dim(k) as f64;
        f += dirs * 2.0 * g * h * (i + h);
    }
    f + 2.0 * c.layer_output_dim() as f64 * c.output_size as f64
}

/// `rnncore bench`.
pub fn run(a: &BenchArgs) -> Result<()> {
    if !(a.min_time.is_finite() && a.min_time > 0.0) {
        fail!(
            "--min-time is {}, expected a positive number of seconds",
            a.min_time
        );
    }
    if a.batch == 0 || a.seq_len == 0 || a.block == 0 {
        fail!("--batch, --seq-len and --block must be >= 1");
    }
    rnncore::set_num_threads(a.threads)?;
    let model = match &a.model {
        Some(p) => Model::load(p)?,
        None => {
            let mut cfg = ModelConfig::new(a.cell.kind(), a.input, a.hidden, a.layers);
            if a.output > 0 {
                cfg = cfg.with_head(a.output, OutputActivation::Identity);
            }
            Model::new(cfg, 1)?
        }
    };
    let c = *model.config();
    let (i, o) = (model.input_size(), model.output_size());
    println!(
        "bench: {} I={i} H={} layers={} outputs={o}, {} parameters; {} thread(s) for batched work",
        c.cell.name(),
        c.hidden_size,
        c.num_layers,
        model.parameters().len(),
        rnncore::num_threads()
    );
    let mut rng = Rng::new(5);
    let mut data =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect() };

    // Streaming step, batch 1, each step timed.
    let xs = data(1024 * i);
    let mut state = State::new(&model, 1)?;
    let mut y = vec![0.0f32; o];
    let mut times: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut k = 0usize;
    let (steps, total) = repeat(a.min_time, || {
        let x = &xs[(k % 1024) * i..(k % 1024 + 1) * i];
        let t0 = Instant::now();
        model.step(&mut state, x, &mut y)?;
        let dt = t0.elapsed().as_nanos().min(u32::MAX as u128) as u32;
        if times.len() < times.capacity() {
            times.push(dt);
        }
        k += 1;
        Ok(())
    })?;
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let mean = total.as_nanos() as f64 / steps as f64;
    println!(
        "  streaming step (batch 1):    {mean:9.0} ns/step mean, {} median, {} p99, {} max (timer included); {:.2} GFLOP/s",
        pct(0.5),
        pct(0.99),
        times.last().copied().unwrap_or(0),
        flops_per_step(&c) / mean
    );

    // Block forward.
    let xb = data(a.block * i);
    let mut state = State::with_block(&model, 1, a.block)?;
    let mut yb = vec![0.0f32; a.block * o];
    let (n, dt) = repeat(a.min_time, || {
        Ok(model.forward_state(&mut state, &xb, a.block, &mut yb)?)
    })?;
    let per = dt.as_nanos() as f64 / (n as f64 * a.block as f64);
    println!(
        "  block forward ({:4} steps):  {per:9.0} ns/sample, {:.1}x real time at 48 kHz",
        a.block,
        1e9 / (per * 48000.0)
    );

    // Whole sequences.
    let (b, t) = (a.batch, a.seq_len);
    let x = data(b * t * i);
    let f = flops_per_step(&c) * (b * t) as f64;
    let (n, dt) = repeat(a.min_time, || {
        model.forward(&x, b, t).map(|_| ()).map_err(Into::into)
    })?;
    let s = dt.as_secs_f64() / n as f64;
    println!(
        "  forward  (batch {b}, T {t}):  {:9.2} ms/batch, {:8.0} seq/s, {:6.2} GFLOP/s",
        s * 1e3,
        b as f64 / s,
        f / s / 1e9
    );
    let dy = data(b * t * o);
    let (n, dt) = repeat(a.min_time, || {
        let tape = model.forward_train(&x, b, t, None)?;
        model.backward(&tape, &dy, None, false)?;
        Ok(())
    })?;
    let s = dt.as_secs_f64() / n as f64;
    println!(
        "  training (batch {b}, T {t}):  {:9.2} ms/batch, {:8.0} seq/s, {:6.2} GFLOP/s (forward_train + backward)",
        s * 1e3,
        b as f64 / s,
        3.0 * f / s / 1e9
    );
    Ok(())
}
