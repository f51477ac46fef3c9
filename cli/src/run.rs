//! `rnncore run`: a model over a file, streamed in blocks through `State` and
//! `Model::forward_state`, as an audio effect would run it.
//!
//! Inputs: CSV (one timestep per row, `input_size` columns; a first row that is not
//! numbers is taken as a header), raw little-endian float32 (`[T][input_size]`), or WAV
//! (16-bit PCM or 32-bit float, one channel per model input). Outputs by the output's
//! extension: `.csv`, `.wav` (one channel per model output, the input's sample rate),
//! anything else raw float32.

use crate::error::{fail, Context, Result};
use crate::wav::{self, Sample, Wav};
use clap::{Args, ValueEnum};
use rnncore::{Model, State};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File formats of `run`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Wav,
    /// Little-endian float32, row-major `[timestep][feature]`.
    Raw,
}

/// Options of `rnncore run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The model: safetensors, or an RTNeural / GuitarML / NAM (LSTM) JSON file.
    #[arg(long)]
    pub model: PathBuf,
    /// The input file.
    pub input: PathBuf,
    /// Where to write the outputs.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Input format [default: from the extension: .csv, .wav, else raw].
    #[arg(long, value_enum)]
    pub input_format: Option<Format>,
    /// Output format [default: from the extension: .csv, .wav, else raw].
    #[arg(long, value_enum)]
    pub output_format: Option<Format>,
    /// Timesteps per `forward_state` call.
    #[arg(long, default_value_t = 256)]
    pub block: usize,
    /// Write WAV output as 16-bit PCM (clipped to [-1, 1]) instead of 32-bit float.
    #[arg(long)]
    pub pcm16: bool,
    /// Sample rate of WAV output when the input is not a WAV file.
    #[arg(long, default_value_t = 48000)]
    pub sample_rate: u32,
}

fn format_of(path: &Path, given: Option<Format>) -> Format {
    given.unwrap_or_else(|| {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
        {
            Some(e) if e == "csv" => Format::Csv,
            Some(e) if e == "wav" => Format::Wav,
            _ => Format::Raw,
        }
    })
}

/// Reads CSV rows of numbers: (values row-major, columns).
pub fn read_csv(path: &Path) -> Result<(Vec<f32>, usize)> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).context(|| format!("cannot read {shown}"))?;
    let mut values = Vec::new();
    let mut cols = 0usize;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: std::result::Result<Vec<f32>, _> =
            fields.iter().map(|f| f.parse::<f32>()).collect();
        let row = match parsed {
            Ok(r) => r,
            // A header: the first row, with no number in it.
            Err(_) if values.is_empty() && fields.iter().all(|f| f.parse::<f32>().is_err()) => {
                continue
            }
            Err(e) => fail!("{shown}:{}: {e} in {line:?}", n + 1),
        };
        if cols == 0 {
            cols = row.len();
        } else if row.len() != cols {
            fail!(
                "{shown}:{}: {} columns, but the rows above have {cols}",
                n + 1,
                row.len()
            );
        }
        values.extend(row);
    }
    if values.is_empty() {
        fail!("{shown}: no rows of numbers");
    }
    Ok((values, cols))
}

/// Writes rows of `cols` values as CSV (shortest text that reads back to the same f32).
pub fn write_csv(path: &Path, values: &[f32], cols: usize) -> Result<()> {
    let mut s = String::with_capacity(values.len() * 12);
    for row in values.chunks(cols) {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s += &v.to_string();
        }
        s.push('\n');
    }
    std::fs::write(path, s).context(|| format!("cannot write {}", path.display()))
}

/// Reads raw little-endian float32.
pub fn read_raw(path: &Path) -> Result<Vec<f32>> {
    let b = std::fs::read(path).context(|| format!("cannot read {}", path.display()))?;
    if b.len() % 4 != 0 {
        fail!(
            "{}: {} bytes is not a whole number of float32 values",
            path.display(),
            b.len()
        );
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Runs `x` (`[T][input_size]`) through `model` in blocks of `block` steps from a zero
/// state, one stream.
pub fn stream(model: &Model, x: &[f32], block: usize) -> Result<Vec<f32>> {
    let (i, o) = (model.input_size(), model.output_size());
    let t = x.len() / i;
    let mut state = State::with_block(model, 1, block)?;
    let mut y = vec![0.0f32; t * o];
    let mut s = 0;
    while s < t {
        let n = block.min(t - s);
        model.forward_state(
            &mut state,
            &x[s * i..(s + n) * i],
            n,
            &mut y[s * o..(s + n) * o],
        )?;
        s += n;
    }
    Ok(y)
}

/// `rnncore run`.
pub fn run(a: &RunArgs) -> Result<()> {
    if a.block == 0 {
        fail!("--block is 0, expected >= 1");
    }
    let model = Model::load(&a.model)?;
    let (i, o) = (model.input_size(), model.output_size());
    let shown = a.input.display();
    let (x, rate) = match format_of(&a.input, a.input_format) {
        Format::Csv => {
            let (v, cols) = read_csv(&a.input)?;
            if cols != i {
                fail!("the model takes {i} inputs per timestep but {shown} has {cols} columns");
            }
            (v, None)
        }
        Format::Raw => {
            let v = read_raw(&a.input)?;
            if v.len() % i != 0 {
                fail!(
                    "{shown} holds {} float32 values, not a whole number of timesteps of the model's {i} inputs",
                    v.len()
                );
            }
            (v, None)
        }
        Format::Wav => {
            let w = wav::read(&a.input)?;
            if w.channels != i {
                fail!(
                    "{shown} has {} channel(s) but the model takes {i} input(s) per timestep \
                     (run feeds one channel per input)",
                    w.channels
                );
            }
            (w.samples, Some(w.sample_rate))
        }
    };
    if x.is_empty() {
        fail!("{shown} holds no timesteps");
    }
    let t = x.len() / i;
    let start = Instant::now();
    let y = stream(&model, &x, a.block)?;
    let secs = start.elapsed().as_secs_f64();
    match format_of(&a.out, a.output_format) {
        Format::Csv => write_csv(&a.out, &y, o)?,
        Format::Raw => {
            let mut f = std::fs::File::create(&a.out)
                .context(|| format!("cannot write {}", a.out.display()))?;
            let bytes: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
            f.write_all(&bytes)
                .context(|| format!("cannot write {}", a.out.display()))?;
        }
        Format::Wav => {
            let w = Wav {
                sample_rate: rate.unwrap_or(a.sample_rate),
                channels: o,
                format: if a.pcm16 {
                    Sample::Pcm16
                } else {
                    Sample::Float32
                },
                samples: y,
            };
            crate::modelfile::write_atomic(&a.out, &wav::encode(&w)?)?;
        }
    }
    let per = secs * 1e9 / t as f64;
    let rt = rate.map_or(String::new(), |r| {
        format!(", {:.0}x real time at {r} Hz", 1e9 / (per * r as f64))
    });
    println!(
        "ran {t} timesteps ({i} in -> {o} out) in blocks of {}: {:.1} ms, {per:.0} ns/step{rt}; wrote {}",
        a.block,
        secs * 1e3,
        a.out.display()
    );
    Ok(())
}
