//! `--task charlm`: a character-level language model (many-to-many, same length).
//!
//! The input at step t is the one-hot of character t, the target is character t+1;
//! cross-entropy at every step. The vocabulary is the set of characters of the text,
//! sorted, and travels in the model file as the metadata key `rnncore.vocab` (the
//! characters in index order, one string).

use super::{Defaults, Settings, TrainArgs};
use crate::common::{argmax, one_hot, sample};
use crate::error::{fail, Context, Result};
use crate::modelfile;
use crate::progress::Log;
use rnncore::Rng;
use rnncore::{Model, ModelConfig, OutputActivation, State, Targets, Trainer};
use std::path::Path;

/// The text learned when `--text` is absent: fourteen of Shakespeare's sonnets.
pub const DEFAULT_TEXT: &str = include_str!("../../data/sonnets.txt");

/// The defaults of `train --task charlm`.
pub fn defaults() -> Defaults {
    Defaults {
        cell: crate::common::Cell::Lstm,
        hidden: 128,
        seq_len: 64,
        steps: 1500,
        lr: 0.005,
    }
}

/// Characters and their indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    chars: Vec<char>,
}

impl Vocab {
    /// The sorted distinct characters of `text`.
    pub fn from_text(text: &str) -> Vocab {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Vocab { chars }
    }

    /// Parses the metadata string (the characters in index order).
    pub fn from_meta(s: &str) -> Result<Vocab> {
        let chars: Vec<char> = s.chars().collect();
        let mut sorted = chars.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != chars.len() || chars.is_empty() {
            fail!(
                "the model's vocabulary (metadata rnncore.vocab) is empty or repeats a character"
            );
        }
        Ok(Vocab { chars })
    }

    /// The metadata string.
    pub fn to_meta(&self) -> String {
        self.chars.iter().collect()
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn char(&self, i: usize) -> char {
        self.chars[i]
    }

    /// Index of `c`.
    pub fn index(&self, c: char) -> Option<usize> {
        self.chars.binary_search(&c).ok()
    }

    /// Indices of every character of `s`; an error names the first unknown one.
    pub fn encode(&self, s: &str) -> Result<Vec<usize>> {
        s.chars()
            .map(|c| {
                self.index(c).ok_or_else(|| {
                    crate::error::CliError(format!(
                        "character {c:?} is not in the model's vocabulary of {} characters",
                        self.len()
                    ))
                })
            })
            .collect()
    }
}

/// A trained char-LM.
pub struct CharLm {
    pub model: Model,
    pub vocab: Vocab,
}

/// `rnncore train --task charlm`.
pub fn command(args: &TrainArgs) -> Result<()> {
    let s = args.settings(defaults());
    let text = match &args.text {
        Some(p) => std::fs::read_to_string(p).context(|| format!("cannot read {}", p.display()))?,
        None => DEFAULT_TEXT.to_string(),
    };
    let source = args
        .text
        .as_ref()
        .map_or("the embedded sonnets".to_string(), |p| {
            p.display().to_string()
        });
    let lm = train(&s, &text, &source)?;
    let out = args.out_or("charlm.safetensors");
    save(&lm, &out)?;
    println!("saved {}", out.display());
    let mut rng = Rng::new(s.seed ^ 0x5eed);
    let prime: String = text.chars().take_while(|c| *c != ' ').collect();
    println!("sample (temperature 0.7, primed with {prime:?}):");
    println!("{}", generate(&lm, &prime, 300, 0.7, &mut rng)?);
    Ok(())
}

/// Saves the model with its vocabulary.
pub fn save(lm: &CharLm, path: &Path) -> Result<()> {
    modelfile::save(
        &lm.model,
        path,
        &[("task", "charlm".into()), ("vocab", lm.vocab.to_meta())],
    )
}

/// Loads a char-LM saved by [`save`]; refuses a model that is not one.
pub fn load(path: &Path) -> Result<CharLm> {
    let (model, meta) = modelfile::load(path)?;
    let Some(v) = meta.get("vocab") else {
        fail!(
            "{} has no vocabulary (metadata rnncore.vocab): it was not saved by `rnncore train --task charlm`",
            path.display()
        );
    };
    let vocab = Vocab::from_meta(v)?;
    let c = model.config();
    if c.input_size != vocab.len() || c.output_dim() != vocab.len() {
        fail!(
            "{}: the model has {} inputs and {} outputs but its vocabulary has {} characters",
            path.display(),
            c.input_size,
            c.output_dim(),
            vocab.len()
        );
    }
    Ok(CharLm { model, vocab })
}

/// Trains a char-LM on `text` (`source` names it in the log).
pub fn train(s: &Settings, text: &str, source: &str) -> Result<CharLm> {
    let vocab = Vocab::from_text(text);
    let ids = vocab.encode(text)?;
    let t = s.seq_len;
    if vocab.len() < 2 {
        fail!(
            "the text has {} distinct characters; a language model needs at least 2",
            vocab.len()
        );
    }
    if ids.len() < t + 2 {
        fail!(
            "the text has {} characters; --seq-len {t} needs at least {}",
            ids.len(),
            t + 2
        );
    }
    // Hold out the last tenth for evaluation when there is room for it.
    let split = ids.len() - ids.len() / 10;
    let (train_ids, val_ids, val_name) = if ids.len() / 10 >= t + 2 && split >= t + 2 {
        (&ids[..split], &ids[split..], "held-out")
    } else {
        (&ids[..], &ids[..], "training-text")
    };
    let v = vocab.len();
    let cfg =
        ModelConfig::new(s.cell, v, s.hidden, s.layers).with_head(v, OutputActivation::Softmax);
    let mut model = Model::new(cfg, s.seed)?;
    let mut trainer = Trainer::new(&model, s.train)?;
    println!(
        "charlm: {} characters of {source}, vocabulary {v}; {}",
        ids.len(),
        s.describe()
    );
    println!(
        "  chance: loss ln({v}) = {:.3}, accuracy of the most frequent character {:.1}%",
        (v as f64).ln(),
        100.0 * majority(&ids, v)
    );
    let mut rng = Rng::new(s.seed.wrapping_add(1));
    let mut val_rng = Rng::new(s.seed.wrapping_add(2));
    let b = s.batch;
    let mut x = vec![0.0f32; b * t * v];
    let mut labels = vec![0i32; b * t];
    let mut log = Log::new(s.steps, s.log_every, "seq");
    for step in 0..s.steps {
        windows(train_ids, v, t, &mut rng, &mut x, &mut labels);
        log.step(b, || {
            trainer.step_cross_entropy(&mut model, None, &x, b, t, &labels, Targets::EveryStep)
        })?;
        if log.due(step) {
            let (loss, acc) = evaluate(&model, val_ids, t, 64, &mut val_rng)?;
            log.report(
                step,
                &format!("{val_name} loss {loss:.4} acc {:5.1}%", 100.0 * acc),
            );
        }
    }
    log.finish();
    Ok(CharLm { model, vocab })
}

/// Fraction of the most frequent character.
fn majority(ids: &[usize], v: usize) -> f64 {
    let mut count = vec![0usize; v];
    for &i in ids {
        count[i] += 1;
    }
    *count.iter().max().unwrap_or(&0) as f64 / ids.len().max(1) as f64
}

/// `b = labels.len() / t` random windows of `ids`: one-hot inputs and next-char labels.
fn windows(ids: &[usize], v: usize, t: usize, rng: &mut Rng, x: &mut [f32], labels: &mut [i32]) {
    let b = labels.len() / t;
    for r in 0..b {
        let start = rng.below(ids.len() - t);
        for k in 0..t {
            let row = (r * t + k) * v;
            one_hot(ids[start + k], &mut x[row..row + v]);
            labels[r * t + k] = ids[start + k + 1] as i32;
        }
    }
}

/// Mean cross-entropy and next-character accuracy on `b` random windows of `ids`.
fn evaluate(model: &Model, ids: &[usize], t: usize, b: usize, rng: &mut Rng) -> Result<(f64, f64)> {
    let v = model.config().input_size;
    let mut x = vec![0.0f32; b * t * v];
    let mut labels = vec![0i32; b * t];
    windows(ids, v, t, rng, &mut x, &mut labels);
    let p = model.forward(&x, b, t)?;
    let (mut loss, mut hits) = (0.0f64, 0usize);
    for (row, &l) in p.chunks(v).zip(&labels) {
        loss -= (row[l as usize].max(1e-12) as f64).ln();
        hits += (argmax(row) == l as usize) as usize;
    }
    let n = labels.len() as f64;
    Ok((loss / n, hits as f64 / n))
}

/// Streams `prime` through the model one character at a time, then samples `length`
/// characters, each fed back as the next input. Returns prime + sample.
pub fn generate(
    lm: &CharLm,
    prime: &str,
    length: usize,
    temperature: f32,
    rng: &mut Rng,
) -> Result<String> {
    let v = lm.vocab.len();
    let ids = lm.vocab.encode(prime)?;
    let mut state = State::new(&lm.model, 1)?;
    let mut x = vec![0.0f32; v];
    let mut p = vec![0.0f32; v];
    // An empty prime starts from a zero input.
    if ids.is_empty() {
        lm.model.step(&mut state, &x, &mut p)?;
    }
    for &i in &ids {
        one_hot(i, &mut x);
        lm.model.step(&mut state, &x, &mut p)?;
    }
    let mut out = prime.to_string();
    for _ in 0..length {
        let i = sample(&p, temperature, rng);
        out.push(lm.vocab.char(i));
        one_hot(i, &mut x);
        lm.model.step(&mut state, &x, &mut p)?;
    }
    Ok(out)
}
