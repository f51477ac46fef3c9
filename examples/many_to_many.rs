//! Many-to-many, encoder-decoder: read a sequence, then write another.
//!
//! The encoder (an LSTM with no head) reads 6 digits; its final state is the decoder's
//! initial state, and the decoder writes the digits in reverse order, fed the previous
//! digit (teacher forcing while training, its own output when generating). The two
//! models are joined through the state: `forward_train` of both, `backward` of the
//! decoder, then `backward` of the encoder with `d_final_state` = the decoder's gradient
//! for its initial state, and one `Trainer::apply_gradients` per model.
//!
//! Run: `cargo run --release --example many_to_many`

use rnncore::train::loss;
use rnncore::Rng;
use rnncore::{
    CellKind, Model, ModelConfig, OutputActivation, State, Targets, TrainConfig, Trainer,
};

const T: usize = 6;
const DIGITS: usize = 10;
const GO: usize = DIGITS; // decoder input index meaning "start"

fn one_hot(v: &mut [f32], width: usize, row: usize, k: usize) {
    v[row * width + k] = 1.0;
}

/// Encoder inputs `[b][T][10]`, decoder inputs `[b][T][11]` (teacher forcing), labels.
fn batch(b: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>, Vec<i32>, Vec<Vec<usize>>) {
    let mut ex = vec![0.0f32; b * T * DIGITS];
    let mut dx = vec![0.0f32; b * T * (DIGITS + 1)];
    let mut labels = vec![0i32; b * T];
    let mut seqs = Vec::with_capacity(b);
    for r in 0..b {
        let s: Vec<usize> = (0..T).map(|_| rng.below(DIGITS)).collect();
        for t in 0..T {
            one_hot(&mut ex, DIGITS, r * T + t, s[t]);
            let want = s[T - 1 - t];
            labels[r * T + t] = want as i32;
            let prev = if t == 0 { GO } else { s[T - t] };
            one_hot(&mut dx, DIGITS + 1, r * T + t, prev);
        }
        seqs.push(s);
    }
    (ex, dx, labels, seqs)
}

/// Greedy decoding: the decoder streams from the encoder's final state, fed its own output.
fn reverse(
    enc: &Model,
    dec: &Model,
    ex: &[f32],
    b: usize,
) -> Result<Vec<Vec<usize>>, rnncore::Error> {
    let mut init = vec![0.0f32; enc.config().state_len(b)];
    let mut h = vec![0.0f32; b * T * enc.output_size()];
    enc.forward_with_state(ex, b, T, None, &mut h, Some(&mut init))?;
    let mut state = State::new(dec, b)?;
    state.set(&init)?;
    let mut x = vec![0.0f32; b * (DIGITS + 1)];
    for r in 0..b {
        one_hot(&mut x, DIGITS + 1, r, GO);
    }
    let mut y = vec![0.0f32; b * DIGITS];
    let mut out = vec![Vec::new(); b];
    for _ in 0..T {
        dec.step(&mut state, &x, &mut y)?;
        x.fill(0.0);
        for r in 0..b {
            let row = &y[r * DIGITS..(r + 1) * DIGITS];
            let k = (0..DIGITS).fold(0, |m, k| if row[k] > row[m] { k } else { m });
            out[r].push(k);
            one_hot(&mut x, DIGITS + 1, r, k);
        }
    }
    Ok(out)
}

fn main() -> Result<(), rnncore::Error> {
    let h = 64;
    let mut enc = Model::new(ModelConfig::new(CellKind::Lstm, DIGITS, h, 1), 1)?;
    let dec_cfg = ModelConfig::new(CellKind::Lstm, DIGITS + 1, h, 1)
        .with_head(DIGITS, OutputActivation::Softmax);
    let mut dec = Model::new(dec_cfg, 2)?;
    let mut t_enc = Trainer::new(&enc, TrainConfig::adam(0.01).with_clip(1.0))?;
    let mut t_dec = Trainer::new(&dec, TrainConfig::adam(0.01).with_clip(1.0))?;
    let mut rng = Rng::new(5);
    let b = 32;
    println!("encoder LSTM reads {T} digits -> state -> decoder LSTM writes them reversed");
    for step in 0..=600 {
        let (ex, dx, labels, _) = batch(b, &mut rng);
        let et = enc.forward_train(&ex, b, T, None)?;
        let dt = dec.forward_train(&dx, b, T, Some(et.final_state()))?;
        let mut d = vec![0.0f32; dt.outputs().len()];
        let l = loss::cross_entropy(
            dt.outputs(),
            b,
            T,
            DIGITS,
            &labels,
            Targets::EveryStep,
            &mut d,
        )?;
        let gd = dec.backward(&dt, &d, None, false)?;
        let ge = enc.backward(
            &et,
            &vec![0.0; et.outputs().len()],
            Some(&gd.initial_state),
            false,
        )?;
        t_dec.apply_gradients(&mut dec, gd.params)?;
        t_enc.apply_gradients(&mut enc, ge.params)?;
        if step % 100 == 0 {
            let (ex, _, _, seqs) = batch(200, &mut Rng::new(99));
            let got = reverse(&enc, &dec, &ex, 200)?;
            let right = got
                .iter()
                .zip(&seqs)
                .filter(|(g, s)| g.iter().eq(s.iter().rev()))
                .count();
            println!(
                "  step {step:3}  loss {l:.4}  fully reversed {:5.1}% of 200 fresh sequences",
                right as f64 / 2.0
            );
        }
    }
    let (ex, _, _, seqs) = batch(3, &mut rng);
    for (s, g) in seqs.iter().zip(reverse(&enc, &dec, &ex, 3)?) {
        println!("  {s:?} -> {g:?}");
    }
    Ok(())
}
