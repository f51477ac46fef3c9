//! Training progress: a bar on stderr (only on a terminal), and a log line every
//! `log_every` steps on stdout with the mean training loss since the last line, an
//! evaluation on fresh data, and the throughput of the training steps alone (the
//! evaluation is not timed).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

/// One training run's log.
pub struct Log {
    bar: ProgressBar,
    steps: usize,
    log_every: usize,
    unit: &'static str,
    train_time: Duration,
    total_time: Duration,
    items: usize,
    total_items: usize,
    loss_sum: f64,
    loss_n: usize,
}

impl Log {
    /// A log for `steps` steps; `unit` names what the throughput counts ("seq", "sample").
    pub fn new(steps: usize, log_every: usize, unit: &'static str) -> Log {
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("  [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        Log {
            bar,
            steps,
            log_every: log_every.max(1),
            unit,
            train_time: Duration::ZERO,
            total_time: Duration::ZERO,
            items: 0,
            total_items: 0,
            loss_sum: 0.0,
            loss_n: 0,
        }
    }

    /// Runs one training step `f` over `items` sequences (or samples), timing it and
    /// recording the loss it returns.
    pub fn step<E>(&mut self, items: usize, f: impl FnOnce() -> Result<f32, E>) -> Result<f32, E> {
        let t0 = Instant::now();
        let loss = f()?;
        let dt = t0.elapsed();
        self.train_time += dt;
        self.total_time += dt;
        self.items += items;
        self.total_items += items;
        self.loss_sum += loss as f64;
        self.loss_n += 1;
        self.bar.inc(1);
        self.bar.set_message(format!("loss {loss:.4}"));
        Ok(loss)
    }

    /// Whether step `step` (0-based) ends a log interval (the last step always does).
    pub fn due(&self, step: usize) -> bool {
        (step + 1).is_multiple_of(self.log_every) || step + 1 == self.steps
    }

    /// Prints the line for the interval ending at step `step` with `eval` appended, and
    /// starts a new interval.
    pub fn report(&mut self, step: usize, eval: &str) {
        let loss = self.loss_sum / self.loss_n.max(1) as f64;
        let rate = self.items as f64 / self.train_time.as_secs_f64().max(1e-9);
        let width = self.steps.to_string().len();
        let line = format!(
            "  step {:>width$}/{}  loss {loss:.4}  {eval}  {rate:.0} {}/s",
            step + 1,
            self.steps,
            self.unit
        );
        self.println(&line);
        self.train_time = Duration::ZERO;
        self.items = 0;
        self.loss_sum = 0.0;
        self.loss_n = 0;
    }

    /// Prints a line on stdout without tearing the bar.
    pub fn println(&self, line: &str) {
        self.bar.suspend(|| println!("{line}"));
    }

    /// Removes the bar and prints the total training time and throughput.
    pub fn finish(self) {
        self.bar.finish_and_clear();
        let secs = self.total_time.as_secs_f64();
        println!(
            "  trained {} steps in {secs:.1} s ({:.0} {}/s)",
            self.steps,
            self.total_items as f64 / secs.max(1e-9),
            self.unit
        );
    }
}
