//! `--task dates`: translation with an encoder and a decoder joined through the state
//! (many-to-many with different lengths).
//!
//! The encoder reads a date written in words, one word per step ("the twelfth of march
//! nineteen ninety"; hyphens split words, so "twenty-first" is two steps), left-padded
//! with zero vectors to [`MAX_WORDS`]. Its final state is the decoder's initial state.
//! The decoder writes "1990-03-12" one character per step; during training its input at
//! step t is the previous target character (teacher forcing, a GO symbol first), at
//! evaluation its own previous output (greedy decoding through `State` and `Model::step`).
//!
//! One training step: `forward_train` of both, cross-entropy on the decoder's outputs,
//! `backward` of the decoder, then `backward` of the encoder with `d_final_state` = the
//! decoder's gradient for its initial state, and each model's own
//! `Trainer::apply_gradients` (so `--clip` clips each model's gradient separately).
//!
//! Saved as a pair: `<stem>.encoder.safetensors` and `<stem>.decoder.safetensors`; the
//! encoder's metadata `rnncore.vocab` lists its input words in index order.

use super::{Defaults, Settings, TrainArgs};
use crate::common::{argmax, one_hot, Cell};
use crate::error::Result;
use crate::modelfile;
use crate::progress::Log;
use rnncore::train::loss;
use rnncore::Rng;
use rnncore::{Model, ModelConfig, OutputActivation, State, Targets, Trainer};
use std::path::{Path, PathBuf};

/// Longest date in words, in words; shorter ones are left-padded.
pub const MAX_WORDS: usize = 10;
/// Characters the decoder writes.
pub const OUT_CHARS: &str = "0123456789-";
/// Length of "YYYY-MM-DD".
pub const OUT_LEN: usize = 10;

const UNITS: [&str; 20] = [
    "",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const ORDINALS: [&str; 20] = [
    "",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const OTHER: [&str; 8] = [
    "twentieth",
    "thirtieth",
    "the",
    "of",
    "oh",
    "hundred",
    "thousand",
    "and",
];

/// The defaults of `train --task dates`.
pub fn defaults() -> Defaults {
    Defaults {
        cell: Cell::Lstm,
        hidden: 64,
        seq_len: MAX_WORDS,
        steps: 1500,
        lr: 0.005,
    }
}

/// The encoder's input words, in index order.
pub fn vocab() -> Vec<&'static str> {
    let mut v: Vec<&str> = UNITS[1..].to_vec();
    v.extend(&TENS[2..]);
    v.extend(&ORDINALS[1..]);
    v.extend(MONTHS);
    v.extend(OTHER);
    v.sort_unstable();
    v.dedup();
    v
}

fn cardinal(n: usize) -> String {
    match n {
        1..=19 => UNITS[n].into(),
        _ if n.is_multiple_of(10) => TENS[n / 10].into(),
        _ => format!("{}-{}", TENS[n / 10], UNITS[n % 10]),
    }
}

fn ordinal(d: usize) -> String {
    match d {
        1..=19 => ORDINALS[d].into(),
        20 => "twentieth".into(),
        30 => "thirtieth".into(),
        _ => format!("{}-{}", TENS[d / 10], ORDINALS[d % 10]),
    }
}

fn year_words(y: usize, rng: &mut Rng) -> String {
    let (hi, lo) = (y / 100, y % 100);
    if hi == 19 {
        return match lo {
            0 => "nineteen hundred".into(),
            1..=9 => format!("nineteen oh {}", UNITS[lo]),
            _ => format!("nineteen {}", cardinal(lo)),
        };
    }
    match lo {
        0 => "two thousand".into(),
        1..=9 if rng.below(2) == 0 => format!("two thousand and {}", UNITS[lo]),
        1..=9 => format!("two thousand {}", UNITS[lo]),
        _ if rng.below(2) == 0 => format!("twenty {}", cardinal(lo)),
        _ => format!("two thousand and {}", cardinal(lo)),
    }
}

/// A random date 1900-01-01..2099-12-31: (words, "YYYY-MM-DD").
pub fn random_date(rng: &mut Rng) -> (String, String) {
    let y = 1900 + rng.below(200);
    let m = 1 + rng.below(12);
    let leap = y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let d = 1 + rng.below(days);
    let the = if rng.below(2) == 0 { "the " } else { "" };
    let (day, month, year) = (ordinal(d), MONTHS[m - 1], year_words(y, rng));
    let words = match rng.below(3) {
        0 => format!("{the}{day} of {month} {year}"),
        1 => format!("{month} {the}{day} {year}"),
        _ => format!("{day} {month} {year}"),
    };
    (words, format!("{y:04}-{m:02}-{d:02}"))
}

/// Word indices of `words` (hyphens split words).
fn tokens(words: &str, vocab: &[&str]) -> Vec<usize> {
    words
        .split([' ', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            vocab
                .binary_search(&w)
                .expect("generated words are in the vocabulary")
        })
        .collect()
}

/// A batch: encoder inputs `[b][MAX_WORDS][V]`, decoder inputs `[b][OUT_LEN][12]`
/// (teacher forcing), labels `[b][OUT_LEN]`, and the texts.
pub struct Batch {
    pub enc_x: Vec<f32>,
    pub dec_x: Vec<f32>,
    pub labels: Vec<i32>,
    pub texts: Vec<(String, String)>,
}

/// Decoder input width: the output characters and GO.
const DEC_IN: usize = OUT_CHARS.len() + 1;

fn out_index(c: char) -> usize {
    OUT_CHARS.find(c).expect("digits and '-'")
}

/// Draws `b` dates.
pub fn batch(b: usize, vocab: &[&str], rng: &mut Rng) -> Batch {
    let v = vocab.len();
    let mut enc_x = vec![0.0f32; b * MAX_WORDS * v];
    let mut dec_x = vec![0.0f32; b * OUT_LEN * DEC_IN];
    let mut labels = vec![0i32; b * OUT_LEN];
    let mut texts = Vec::with_capacity(b);
    for r in 0..b {
        let (words, digits) = random_date(rng);
        let ids = tokens(&words, vocab);
        let pad = MAX_WORDS - ids.len();
        for (k, &id) in ids.iter().enumerate() {
            let o = (r * MAX_WORDS + pad + k) * v;
            one_hot(id, &mut enc_x[o..o + v]);
        }
        let mut prev = DEC_IN - 1; // GO
        for (k, c) in digits.chars().enumerate() {
            let o = (r * OUT_LEN + k) * DEC_IN;
            one_hot(prev, &mut dec_x[o..o + DEC_IN]);
            prev = out_index(c);
            labels[r * OUT_LEN + k] = prev as i32;
        }
        texts.push((words, digits));
    }
    Batch {
        enc_x,
        dec_x,
        labels,
        texts,
    }
}

/// The trained pair.
pub struct Translator {
    pub encoder: Model,
    pub decoder: Model,
}

impl Translator {
    /// Greedy translation of the encoder inputs `enc_x` (`b` dates): the decoder runs one
    /// step at a time from the encoder's final state, fed its own previous output.
    pub fn translate(&self, enc_x: &[f32], b: usize) -> Result<Vec<String>> {
        let cfg = self.encoder.config();
        let mut init = vec![0.0f32; cfg.state_len(b)];
        let mut enc_y = vec![0.0f32; b * MAX_WORDS * cfg.output_dim()];
        self.encoder
            .forward_with_state(enc_x, b, MAX_WORDS, None, &mut enc_y, Some(&mut init))?;
        let mut state = State::new(&self.decoder, b)?;
        state.set(&init)?;
        let o = OUT_CHARS.len();
        let mut x = vec![0.0f32; b * DEC_IN];
        let mut y = vec![0.0f32; b * o];
        let mut out = vec![String::new(); b];
        for r in 0..b {
            one_hot(DEC_IN - 1, &mut x[r * DEC_IN..(r + 1) * DEC_IN]);
        }
        for _ in 0..OUT_LEN {
            self.decoder.step(&mut state, &x, &mut y)?;
            for r in 0..b {
                let c = argmax(&y[r * o..(r + 1) * o]);
                out[r].push(OUT_CHARS.as_bytes()[c] as char);
                one_hot(c, &mut x[r * DEC_IN..(r + 1) * DEC_IN]);
            }
        }
        Ok(out)
    }

    /// Exact-match and per-character accuracy of greedy translation on `b` fresh dates.
    pub fn accuracy(&self, b: usize, rng: &mut Rng) -> Result<(f64, f64)> {
        let vocab = vocab();
        let data = batch(b, &vocab, rng);
        let got = self.translate(&data.enc_x, b)?;
        let (mut exact, mut chars) = (0usize, 0usize);
        for (g, (_, want)) in got.iter().zip(&data.texts) {
            exact += (g == want) as usize;
            chars += g.chars().zip(want.chars()).filter(|(a, b)| a == b).count();
        }
        Ok((exact as f64 / b as f64, chars as f64 / (b * OUT_LEN) as f64))
    }
}

/// The two file names for `--out` (a trailing `.safetensors` is dropped from the stem).
pub fn pair_paths(out: &Path) -> (PathBuf, PathBuf) {
    let s = out.to_string_lossy();
    let stem = s.strip_suffix(".safetensors").unwrap_or(&s);
    (
        PathBuf::from(format!("{stem}.encoder.safetensors")),
        PathBuf::from(format!("{stem}.decoder.safetensors")),
    )
}

/// `rnncore train --task dates`.
pub fn command(args: &TrainArgs) -> Result<()> {
    let mut s = args.settings(defaults());
    if args.seq_len.is_some_and(|t| t != MAX_WORDS) {
        println!("note: --seq-len is ignored by dates (10 words in, 10 characters out)");
    }
    s.seq_len = MAX_WORDS;
    let tr = train(&s)?;
    let mut rng = Rng::new(s.seed.wrapping_add(3));
    let (exact, chars) = tr.accuracy(1000, &mut rng)?;
    println!(
        "final: {:.1}% of 1000 fresh dates exactly right, {:.1}% of characters",
        100.0 * exact,
        100.0 * chars
    );
    let (enc_path, dec_path) = pair_paths(&args.out_or("dates"));
    let name = |p: &Path| {
        p.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    };
    modelfile::save(
        &tr.encoder,
        &enc_path,
        &[
            ("task", "dates".into()),
            ("role", "encoder".into()),
            ("pair", name(&dec_path)),
            ("vocab", vocab().join(" ")),
        ],
    )?;
    modelfile::save(
        &tr.decoder,
        &dec_path,
        &[
            ("task", "dates".into()),
            ("role", "decoder".into()),
            ("pair", name(&enc_path)),
            ("vocab", OUT_CHARS.into()),
        ],
    )?;
    println!("saved {} and {}", enc_path.display(), dec_path.display());
    Ok(())
}

/// Trains an encoder-decoder pair.
pub fn train(s: &Settings) -> Result<Translator> {
    let vocab = vocab();
    let v = vocab.len();
    let o = OUT_CHARS.len();
    let enc_cfg = ModelConfig::new(s.cell, v, s.hidden, s.layers);
    let dec_cfg = ModelConfig::new(s.cell, DEC_IN, s.hidden, s.layers)
        .with_head(o, OutputActivation::Softmax);
    let mut tr = Translator {
        encoder: Model::new(enc_cfg, s.seed)?,
        decoder: Model::new(dec_cfg, s.seed.wrapping_add(100))?,
    };
    let mut t_enc = Trainer::new(&tr.encoder, s.train)?;
    let mut t_dec = Trainer::new(&tr.decoder, s.train)?;
    let mut rng = Rng::new(s.seed.wrapping_add(1));
    let mut eval_rng = Rng::new(s.seed.wrapping_add(2));
    let ex = random_date(&mut Rng::new(s.seed));
    println!(
        "dates: {:?} -> {:?}; encoder {v} words x {MAX_WORDS} steps, decoder {OUT_LEN} steps; {}",
        ex.0,
        ex.1,
        s.describe()
    );
    println!("  chance: a digit 10%, a whole date ~0%");
    let b = s.batch;
    let mut log = Log::new(s.steps, s.log_every, "seq");
    for step in 0..s.steps {
        let d = batch(b, &vocab, &mut rng);
        log.step(b, || -> Result<f32> {
            let Translator { encoder, decoder } = &mut tr;
            let et = encoder.forward_train(&d.enc_x, b, MAX_WORDS, None)?;
            let dt = decoder.forward_train(&d.dec_x, b, OUT_LEN, Some(et.final_state()))?;
            let mut dy = vec![0.0f32; dt.outputs().len()];
            let l = loss::cross_entropy(
                dt.outputs(),
                b,
                OUT_LEN,
                o,
                &d.labels,
                Targets::EveryStep,
                &mut dy,
            )?;
            let gd = decoder.backward(&dt, &dy, None, false)?;
            let no_output_loss = vec![0.0f32; et.outputs().len()];
            let ge = encoder.backward(&et, &no_output_loss, Some(&gd.initial_state), false)?;
            t_dec.apply_gradients(decoder, gd.params)?;
            t_enc.apply_gradients(encoder, ge.params)?;
            Ok(l)
        })?;
        if log.due(step) {
            let (exact, chars) = tr.accuracy(256, &mut eval_rng)?;
            log.report(
                step,
                &format!(
                    "greedy: exact {:5.1}% chars {:5.1}%",
                    100.0 * exact,
                    100.0 * chars
                ),
            );
        }
    }
    log.finish();
    let d = batch(6, &vocab, &mut eval_rng);
    let got = tr.translate(&d.enc_x, 6)?;
    for ((words, want), g) in d.texts.iter().zip(&got) {
        let mark = if g == want { "ok" } else { "WRONG" };
        println!("  {words:<55} -> {g}  ({mark}, want {want})");
    }
    Ok(tr)
}
