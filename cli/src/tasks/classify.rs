//! `--task classify`: which of K motifs does a sequence contain (many-to-one).
//!
//! A sequence is `seq_len` symbols from an alphabet of 8, one-hot. Exactly one of K
//! motifs (3 symbols each, fixed by `MOTIF_SEED` so that every run and every saved
//! model share them) is planted at a random place; backgrounds that contain any motif
//! elsewhere are drawn again, so the label is unambiguous. The model reads the whole
//! sequence and classifies at the last step (cross-entropy on the last step only), so
//! it must remember having seen the motif for up to `seq_len` steps. Chance is 1/K.

use super::{Defaults, Settings, TrainArgs};
use crate::common::{argmax, one_hot, Cell};
use crate::error::{fail, Result};
use crate::modelfile;
use crate::progress::Log;
use rnncore::Rng;
use rnncore::{Model, ModelConfig, OutputActivation, Targets, Trainer};

/// Symbols in the alphabet.
pub const ALPHABET: usize = 8;
/// Length of each motif.
pub const MOTIF_LEN: usize = 3;
/// Seed of the motifs (not of the training run).
const MOTIF_SEED: u64 = 0xC1A55;

/// The defaults of `train --task classify`.
pub fn defaults() -> Defaults {
    Defaults {
        cell: Cell::Gru,
        hidden: 32,
        seq_len: 24,
        steps: 400,
        lr: 0.005,
    }
}

/// The K motifs: distinct, and none a shift of another's overlap (drawn until so).
pub fn motifs(k: usize) -> Vec<[usize; MOTIF_LEN]> {
    let mut rng = Rng::new(MOTIF_SEED);
    let mut out: Vec<[usize; MOTIF_LEN]> = Vec::new();
    while out.len() < k {
        let m = [
            rng.below(ALPHABET),
            rng.below(ALPHABET),
            rng.below(ALPHABET),
        ];
        // No repeated symbol inside a motif (so it cannot overlap itself), and distinct.
        if m[0] == m[1] || m[1] == m[2] || m[0] == m[2] || out.contains(&m) {
            continue;
        }
        out.push(m);
    }
    out
}

/// The data: `b` sequences of length `t`, one-hot `[b][t][ALPHABET]`, and labels `[b]`.
pub struct Batch {
    pub x: Vec<f32>,
    pub labels: Vec<i32>,
}

/// Draws `b` labelled sequences.
pub fn batch(motifs: &[[usize; MOTIF_LEN]], b: usize, t: usize, rng: &mut Rng) -> Batch {
    let mut x = vec![0.0f32; b * t * ALPHABET];
    let mut labels = vec![0i32; b];
    let mut seq = vec![0usize; t];
    for (r, out) in labels.iter_mut().enumerate() {
        let label = rng.below(motifs.len());
        loop {
            seq.iter_mut().for_each(|s| *s = rng.below(ALPHABET));
            let at = rng.below(t - MOTIF_LEN + 1);
            seq[at..at + MOTIF_LEN].copy_from_slice(&motifs[label]);
            let found = (0..=t - MOTIF_LEN)
                .filter(|&p| motifs.iter().any(|m| seq[p..p + MOTIF_LEN] == m[..]))
                .count();
            if found == 1 {
                break;
            }
        }
        *out = label as i32;
        for (k, &s) in seq.iter().enumerate() {
            let o = (r * t + k) * ALPHABET;
            one_hot(s, &mut x[o..o + ALPHABET]);
        }
    }
    Batch { x, labels }
}

/// Accuracy of `model` on `b` fresh sequences.
pub fn accuracy(
    model: &Model,
    motifs: &[[usize; MOTIF_LEN]],
    b: usize,
    t: usize,
    rng: &mut Rng,
) -> Result<f64> {
    let data = batch(motifs, b, t, rng);
    let y = model.forward(&data.x, b, t)?;
    let k = model.output_size();
    let hits = (0..b)
        .filter(|&r| {
            let last = &y[((r + 1) * t - 1) * k..(r + 1) * t * k];
            argmax(last) == data.labels[r] as usize
        })
        .count();
    Ok(hits as f64 / b as f64)
}

/// `rnncore train --task classify`.
pub fn command(args: &TrainArgs) -> Result<()> {
    let s = args.settings(defaults());
    let k = args.classes;
    let model = train(&s, k)?;
    let motifs = motifs(k);
    let mut rng = Rng::new(s.seed.wrapping_add(3));
    let acc = accuracy(&model, &motifs, 1000, s.seq_len, &mut rng)?;
    println!(
        "final: accuracy {:.1}% on 1000 fresh sequences (chance {:.1}%)",
        100.0 * acc,
        100.0 / k as f64
    );
    let out = args.out_or("classify.safetensors");
    let list: Vec<String> = motifs
        .iter()
        .map(|m| {
            m.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    modelfile::save(
        &model,
        &out,
        &[
            ("task", "classify".into()),
            ("motifs", list.join(",")),
            ("seq_len", s.seq_len.to_string()),
        ],
    )?;
    println!("saved {}", out.display());
    Ok(())
}

/// Trains a classifier of `k` motifs.
pub fn train(s: &Settings, k: usize) -> Result<Model> {
    if !(2..=8).contains(&k) {
        fail!("--classes is {k}, expected 2..=8");
    }
    let t = s.seq_len;
    if t < MOTIF_LEN + 1 {
        fail!("--seq-len is {t}, expected at least {}", MOTIF_LEN + 1);
    }
    let motifs = motifs(k);
    let cfg = ModelConfig::new(s.cell, ALPHABET, s.hidden, s.layers)
        .with_head(k, OutputActivation::Softmax);
    let mut model = Model::new(cfg, s.seed)?;
    let mut trainer = Trainer::new(&model, s.train)?;
    let shown: Vec<String> = motifs.iter().map(|m| format!("{m:?}")).collect();
    println!(
        "classify: which of {k} motifs {} is in a sequence of {t} symbols (alphabet {ALPHABET}); {}",
        shown.join(" "),
        s.describe()
    );
    println!(
        "  chance: accuracy {:.1}%, loss ln({k}) = {:.3}",
        100.0 / k as f64,
        (k as f64).ln()
    );
    let mut rng = Rng::new(s.seed.wrapping_add(1));
    let mut eval_rng = Rng::new(s.seed.wrapping_add(2));
    let mut log = Log::new(s.steps, s.log_every, "seq");
    for step in 0..s.steps {
        let d = batch(&motifs, s.batch, t, &mut rng);
        log.step(s.batch, || {
            trainer.step_cross_entropy(
                &mut model,
                None,
                &d.x,
                s.batch,
                t,
                &d.labels,
                Targets::LastStep,
            )
        })?;
        if log.due(step) {
            let acc = accuracy(&model, &motifs, 256, t, &mut eval_rng)?;
            log.report(step, &format!("fresh acc {:5.1}%", 100.0 * acc));
        }
    }
    log.finish();
    Ok(model)
}
