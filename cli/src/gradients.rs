//! `rnncore gradients`: the lecture notes' claim, measured.
//!
//! The notes derive `∂z_k/∂z_t = ∏ W·φ'(z_i)`: in a plain RNN the gradient that reaches
//! a state shrinks (or grows) geometrically with its distance from the loss, so early
//! inputs barely teach the network; LSTM and GRU were built to keep it alive.
//!
//! (a) Gradient against distance. A one-layer model with a one-output head reads
//!     adding-problem sequences of length T; the loss is the MSE on the last step only.
//!     `Model::backward` with `want_hidden` returns `∂L/∂h_t` for every t; the table
//!     shows `mean‖∂L/∂h_{T-d}‖ / mean‖∂L/∂h_T‖` for distance d (means over the batch and
//!     the seeds). Distance T is the initial state (`Gradients::initial_state`, its `h`).
//!     Measured at initialisation (PyTorch's `U(-1/√H, 1/√H)`), and again after the
//!     training of (b) at length T when (b) ran that length.
//! (b) The adding problem (Hochreiter & Schmidhuber 1997): two channels, values in
//!     U(0,1) and markers, one marked value in each half of the sequence; the target at
//!     the last step is the sum of the two marked values. Predicting the mean (1.0) gives
//!     MSE 1/6 ≈ 0.167. A run counts as solved when the MSE on a fixed set of fresh
//!     sequences (256, the same for every run of a length) falls below `--threshold` within `--steps` optimizer steps (checked
//!     every `--eval-every` steps; a solved run stops there).

use crate::common::Cell;
use crate::error::{fail, Context, Result};
use crate::svg::{self, Series};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rnncore::train::loss;
use rnncore::Rng;
use rnncore::{Model, ModelConfig, OutputActivation, Targets, TrainConfig, Trainer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Options of `rnncore gradients`.
#[derive(Args, Debug, Clone)]
pub struct GradientsArgs {
    /// Cells to compare.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Cell::RnnTanh, Cell::Lstm, Cell::Gru])]
    pub cells: Vec<Cell>,
    /// Hidden units.
    #[arg(long, default_value_t = 16)]
    pub hidden: usize,
    /// (a): sequence length T.
    #[arg(long, default_value_t = 100)]
    pub seq_len: usize,
    /// Sequences per batch, in (a) and (b).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// (a): seeds averaged over.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// (b): sequence lengths of the adding problem (empty: skip (b)).
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 20, 50, 100, 200])]
    pub lengths: Vec<usize>,
    /// (b): step budget per run.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// (b): solved when the MSE on fresh sequences is below this.
    #[arg(long, default_value_t = 0.01)]
    pub threshold: f64,
    /// (b): evaluate every N steps.
    #[arg(long, default_value_t = 25)]
    pub eval_every: usize,
    /// (b): Adam learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f32,
    /// (b): the gradient-norm clip of the runs "with clipping".
    #[arg(long, default_value_t = 1.0)]
    pub clip: f32,
    /// LSTM forget-gate biases run beside PyTorch's initialisation (the forget gate's
    /// `b_ih + b_hh` set to each value; Keras starts at 1). Empty (`--lstm-forget-bias=`):
    /// none.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0f32])]
    pub lstm_forget_bias: Vec<f32>,
    /// Skip (b).
    #[arg(long)]
    pub no_adding: bool,
    /// Where to write the chart of (a).
    #[arg(long, default_value = "gradients.svg")]
    pub svg: PathBuf,
    /// Threads for batched work (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Distances shown in the table (those `<= T`).
const DISTANCES: [usize; 8] = [0, 1, 2, 5, 10, 20, 50, 100];

/// `b` adding-problem sequences of length `t`: `x` `[b][t][2]`, targets `[b][1]`.
pub fn adding_batch(b: usize, t: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    let mut x = vec![0.0f32; b * t * 2];
    let mut y = vec![0.0f32; b];
    let half = t / 2;
    for r in 0..b {
        let m1 = rng.below(half);
        let m2 = half + rng.below(t - half);
        for k in 0..t {
            let v = rng.next_f64() as f32;
            x[(r * t + k) * 2] = v;
            if k == m1 || k == m2 {
                x[(r * t + k) * 2 + 1] = 1.0;
                y[r] += v;
            }
        }
    }
    (x, y)
}

fn config(cell: Cell, hidden: usize) -> ModelConfig {
    ModelConfig::new(cell.kind(), 2, hidden, 1).with_head(1, OutputActivation::Identity)
}

/// A model recipe of the experiment: a cell at PyTorch's initialisation, or an LSTM with
/// its forget-gate bias set (`Model::with_forget_bias`).
#[derive(Clone, Copy, Debug)]
struct Variant {
    cell: Cell,
    forget_bias: Option<f32>,
}

impl Variant {
    /// Every cell of `--cells`, each LSTM followed by its `--lstm-forget-bias` variants.
    fn all(a: &GradientsArgs) -> Vec<Variant> {
        let mut v = Vec::new();
        for &cell in &a.cells {
            v.push(Variant {
                cell,
                forget_bias: None,
            });
            if cell == Cell::Lstm {
                v.extend(a.lstm_forget_bias.iter().map(|&fb| Variant {
                    cell,
                    forget_bias: Some(fb),
                }));
            }
        }
        v
    }

    /// "lstm", or "lstm+fb1" for a forget-gate bias of 1 (one word: the chart colours
    /// by the first word).
    fn label(&self) -> String {
        match self.forget_bias {
            None => self.cell.kind().name().to_string(),
            Some(fb) => format!("{}+fb{fb}", self.cell.kind().name()),
        }
    }

    fn model(&self, hidden: usize, seed: u64) -> Result<Model> {
        let m = Model::new(config(self.cell, hidden), seed)?;
        Ok(match self.forget_bias {
            None => m,
            Some(fb) => m.with_forget_bias(fb)?,
        })
    }
}

fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&a| (a as f64) * (a as f64))
        .sum::<f64>()
        .sqrt()
}

/// Mean over the batch of `‖∂L/∂h‖` at distance `0..=T` from the loss (index =
/// distance) and, for an LSTM, of `‖∂L/∂c‖` at the distances `ds` (NaN elsewhere).
///
/// `backward` reports `∂L/∂h_t` for every t but the LSTM's memory `c_t` only for the
/// initial state. So `∂L/∂c_(T-d)` comes from a second pass: the prefix is run with
/// `forward_with_state` to get the state at T-d, the last d steps are run from it with
/// `forward_train`, and `backward`'s gradient for that initial state holds `∂L/∂c`.
fn profile(
    model: &Model,
    b: usize,
    t: usize,
    ds: &[usize],
    rng: &mut Rng,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let cfg = *model.config();
    let h = cfg.hidden_size;
    let (x, y) = adding_batch(b, t, rng);
    let tape = model.forward_train(&x, b, t, None)?;
    let mut d = vec![0.0f32; tape.outputs().len()];
    loss::mse(tape.outputs(), b, t, 1, &y, Targets::LastStep, &mut d)?;
    let g = model.backward(&tape, &d, None, true)?;
    let mut hp = vec![0.0f64; t + 1];
    for r in 0..b {
        for (dist, o) in hp.iter_mut().enumerate().take(t) {
            let at = (r * t + t - 1 - dist) * h;
            *o += norm(&g.hidden[0][at..at + h]) / b as f64;
        }
        // The initial state's h (snapshot layout: h as [L][B][H], then c).
        hp[t] += norm(&g.initial_state[r * h..(r + 1) * h]) / b as f64;
    }
    let mut cp = vec![f64::NAN; t + 1];
    if cfg.cell.has_cell_state() {
        for &dist in ds.iter().filter(|&&d| d >= 1 && d <= t) {
            let grad0 = if dist == t {
                g.initial_state.clone()
            } else {
                let (pre, suf) = (t - dist, dist);
                let take = |from: usize, len: usize| -> Vec<f32> {
                    (0..b)
                        .flat_map(|r| {
                            x[(r * t + from) * 2..(r * t + from + len) * 2]
                                .iter()
                                .copied()
                        })
                        .collect()
                };
                let mut st = vec![0.0f32; cfg.state_len(b)];
                let mut out = vec![0.0f32; b * pre];
                model.forward_with_state(&take(0, pre), b, pre, None, &mut out, Some(&mut st))?;
                let tape = model.forward_train(&take(pre, suf), b, suf, Some(&st))?;
                let mut d = vec![0.0f32; tape.outputs().len()];
                loss::mse(tape.outputs(), b, suf, 1, &y, Targets::LastStep, &mut d)?;
                model.backward(&tape, &d, None, false)?.initial_state
            };
            let c = &grad0[b * h..];
            cp[dist] = (0..b).map(|r| norm(&c[r * h..(r + 1) * h])).sum::<f64>() / b as f64;
        }
    }
    Ok((hp, cp))
}

/// One line of the table and the chart: values by distance (NaN = not measured).
struct Row {
    label: String,
    values: Vec<f64>,
    trained: bool,
}

/// The rows of one model kind (h, and c for an LSTM), averaged over seeds of `models`,
/// normalised by the mean `‖∂L/∂h_T‖`.
fn rows_for(
    label: &str,
    trained: bool,
    models: impl Fn(u64) -> Result<Model>,
    a: &GradientsArgs,
    ds: &[usize],
) -> Result<Vec<Row>> {
    let t = a.seq_len;
    let (mut hs, mut cs) = (vec![0.0f64; t + 1], vec![0.0f64; t + 1]);
    let mut lstm = false;
    for seed in 0..a.seeds {
        let m = models(seed)?;
        lstm = m.config().cell.has_cell_state();
        let (hp, cp) = profile(&m, a.batch, t, ds, &mut Rng::new(2000 + seed))?;
        hs.iter_mut()
            .zip(&hp)
            .for_each(|(s, v)| *s += v / a.seeds as f64);
        cs.iter_mut()
            .zip(&cp)
            .for_each(|(s, v)| *s += v / a.seeds as f64);
    }
    let top = hs[0];
    let mut rows = vec![Row {
        label: label.to_string(),
        values: hs.iter().map(|v| v / top).collect(),
        trained,
    }];
    if lstm {
        rows.push(Row {
            label: format!("{label} (c)"),
            values: cs.iter().map(|v| v / top).collect(),
            trained,
        });
    }
    Ok(rows)
}

/// Fresh sequences each adding-problem run is judged on.
const EVAL: usize = 256;

/// Result of one adding-problem run.
struct Run {
    solved_at: Option<usize>,
    last_mse: f64,
    /// Largest global gradient norm (before clipping) over the run's steps.
    max_norm: f64,
    model: Model,
}

fn train_adding(v: Variant, t: usize, clip: bool, a: &GradientsArgs) -> Result<Run> {
    let mut model = v.model(a.hidden, 7)?;
    let mut tc = TrainConfig::adam(a.lr);
    if clip {
        tc = tc.with_clip(a.clip);
    }
    let mut trainer = Trainer::new(&model, tc)?;
    let mut rng = Rng::new(11 + t as u64);
    let (ex, ey) = adding_batch(EVAL, t, &mut Rng::new(99 + t as u64));
    let eval = |m: &Model| -> Result<f64> {
        let p = m.forward(&ex, EVAL, t)?;
        Ok((0..EVAL)
            .map(|r| ((p[(r + 1) * t - 1] - ey[r]) as f64).powi(2))
            .sum::<f64>()
            / EVAL as f64)
    };
    let mut last_mse = eval(&model)?;
    let mut max_norm = 0.0f64;
    for step in 1..=a.steps {
        let (x, y) = adding_batch(a.batch, t, &mut rng);
        match trainer.step_mse(&mut model, None, &x, a.batch, t, &y, Targets::LastStep) {
            Ok(_) => max_norm = max_norm.max(trainer.last_grad_norm()),
            // A diverged step is refused by the library with the weights unchanged: the
            // run has exploded; count it as not solved.
            Err(rnncore::Error::NonFinite(_)) => {
                last_mse = f64::INFINITY;
                break;
            }
            Err(e) => return Err(e.into()),
        }
        if step % a.eval_every == 0 || step == a.steps {
            last_mse = eval(&model)?;
            if last_mse < a.threshold {
                return Ok(Run {
                    solved_at: Some(step),
                    last_mse,
                    max_norm,
                    model,
                });
            }
        }
    }
    Ok(Run {
        solved_at: None,
        last_mse,
        max_norm,
        model,
    })
}

/// `rnncore gradients`.
pub fn run(a: &GradientsArgs) -> Result<()> {
    if a.cells.is_empty() || a.batch < 1 || a.seeds < 1 || a.hidden < 1 {
        fail!("--cells must be non-empty and --batch, --seeds, --hidden >= 1");
    }
    if a.seq_len < 2 {
        fail!(
            "--seq-len is {}, expected >= 2 (one marker in each half)",
            a.seq_len
        );
    }
    if a.lengths.iter().any(|&t| t < 2) {
        fail!("--lengths must all be >= 2 (one marker in each half)");
    }
    if a.eval_every == 0 {
        fail!("--eval-every is 0, expected >= 1");
    }
    if let Some(fb) = a.lstm_forget_bias.iter().find(|fb| !fb.is_finite()) {
        fail!("--lstm-forget-bias {fb} is not a finite number");
    }
    let variants = Variant::all(a);
    // The library runs inside this pool (its own setting 0 = "the current pool").
    rnncore::set_num_threads(0)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .context(|| format!("cannot start {} threads", a.threads))?;
    let start = Instant::now();
    let t = a.seq_len;
    let dists: Vec<usize> = DISTANCES.iter().copied().filter(|&d| d <= t).collect();

    // (a) at initialisation.
    let mut rows: Vec<Row> = Vec::new();
    for v in &variants {
        let make = |seed: u64| v.model(a.hidden, 1000 + seed);
        rows.extend(rows_for(&v.label(), false, make, a, &dists)?);
    }

    // (b) the adding problem.
    let mut adding = String::new();
    let lengths: &[usize] = if a.no_adding { &[] } else { &a.lengths };
    if !lengths.is_empty() {
        let total = (variants.len() * 2 * lengths.len()) as u64;
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "  adding problem [{bar:30}] {pos}/{len} runs ({elapsed})",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        // Every run is independent (own seeds, and the library gives the same bits on
        // any number of threads), so the runs share the threads: each worker takes the
        // next run from a queue ordered longest first. The library's own batch
        // parallelism nests inside the same pool.
        let mut jobs: Vec<(usize, Variant, bool, usize)> = Vec::new();
        for &v in &variants {
            for clip in [false, true] {
                for &l in lengths {
                    jobs.push((jobs.len(), v, clip, l));
                }
            }
        }
        let mut order = jobs.clone();
        order.sort_by_key(|j| std::cmp::Reverse(j.3));
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Run>>>> =
            Mutex::new((0..jobs.len()).map(|_| None).collect());
        pool.scope(|s| {
            for _ in 0..pool.current_num_threads() {
                s.spawn(|_| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(i, v, clip, len)) = order.get(k) else {
                        break;
                    };
                    let r = train_adding(v, len, clip, a);
                    bar.inc(1);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                });
            }
        });
        let runs = results.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut lines = vec![format!(
            "{:<12}{:<6}{}",
            "cell",
            "clip",
            lengths
                .iter()
                .map(|l| format!("{:>14}", format!("T={l}")))
                .collect::<String>()
        )];
        let mut runs = runs.into_iter();
        let mut norms = Vec::new();
        for v in &variants {
            let mut cell_max = 0.0f64;
            for clip in [false, true] {
                let mut line = format!(
                    "{:<12}{:<6}",
                    v.label(),
                    if clip {
                        format!("{}", a.clip)
                    } else {
                        "off".into()
                    }
                );
                for &len in lengths {
                    let r = runs.next().flatten().expect("one result per run")?;
                    cell_max = cell_max.max(r.max_norm);
                    let cellv = match r.solved_at {
                        Some(s) => format!("yes @{s}"),
                        None => format!("no {:.3}", r.last_mse),
                    };
                    line += &format!("{cellv:>14}");
                    // The trained model's gradient profile, at the length of (a).
                    if len == t && clip {
                        let steps = r.solved_at.unwrap_or(a.steps);
                        let label = format!("{} trained {steps}", v.label());
                        rows.extend(rows_for(&label, true, |_| Ok(r.model.clone()), a, &dists)?);
                    }
                }
                lines.push(line);
            }
            norms.push(format!("{} {cell_max:.2}", v.label()));
        }
        lines.push(format!(
            "largest gradient norm before clipping, over all steps of all runs: {}",
            norms.join(", ")
        ));
        bar.finish_and_clear();
        adding = format!(
            "(b) adding problem: \"yes @N\" = MSE below {} on {EVAL} fresh sequences after N steps (checked every {}), \
             \"no X\" = MSE X after {} steps\n    Adam lr {}, batch {}, H={}, one layer; predicting 1.0 gives MSE 0.167\n{}\n",
            a.threshold,
            a.eval_every,
            a.steps,
            a.lr,
            a.batch,
            a.hidden,
            lines.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
        );
    }

    // The table of (a).
    let mut table = format!(
        "(a) mean ‖∂L/∂h_(T-d)‖ / mean ‖∂L/∂h_T‖, loss on the last step of T={t} (adding-problem inputs), \
         H={}, {} sequences x {} seeds; d = T is the initial state;\n    (c): mean ‖∂L/∂c_(T-d)‖ of the LSTM's cell state, same denominator\n  {:<24}",
        a.hidden, a.batch, a.seeds, "distance d"
    );
    for d in &dists {
        table += &format!("{d:>9}");
    }
    table.push('\n');
    for row in &rows {
        table += &format!("  {:<24}", row.label);
        for &d in &dists {
            let v = row.values[d];
            table += &if v.is_nan() {
                format!("{:>9}", "-")
            } else {
                format!("{v:>9.1e}")
            };
        }
        table.push('\n');
    }
    print!("{table}");
    if !adding.is_empty() {
        println!();
        print!("{adding}");
    }

    let series: Vec<Series> = rows
        .iter()
        .map(|row| Series {
            label: row.label.clone(),
            color: if row.label.ends_with("(c)") {
                "#6baed6"
            } else {
                svg::color(row.label.split(' ').next().unwrap_or(""))
            },
            dashed: row.trained,
            dotted: row.label.ends_with("(c)"),
            points: row
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .map(|(d, &v)| (d as f64, v))
                .collect(),
        })
        .collect();
    let chart = svg::line_chart(
        &format!("Gradient reaching h_(T-d), relative to d = 0 (loss on step T = {t} only)"),
        "distance d from the loss (timesteps)",
        "‖∂L/∂h_(T-d)‖ / ‖∂L/∂h_T‖ (log scale)",
        &series,
        &format!(
            "H={}, {} sequences x {} seeds, PyTorch init. Solid: at init; dashed: trained on the adding problem; dots: LSTM cell state c",
            a.hidden, a.batch, a.seeds
        ),
    );
    std::fs::write(&a.svg, chart).context(|| format!("cannot write {}", a.svg.display()))?;
    println!(
        "\nwrote {} ({:.1} s in all)",
        a.svg.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
