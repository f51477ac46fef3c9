//! Real model files from the audio world (tests/fixtures/third_party/, see its README):
//! each loads as it is, by content, and reproduces its project's reference outputs within
//! that project's own test tolerance, or (where a project ships none) an f64 reference
//! computed here from the file's weights by code independent of the importers.

use rnncore::{Error, Model, State};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/third_party")
        .join(name)
}

fn csv(name: &str) -> Vec<f32> {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().parse::<f64>().unwrap() as f32)
        .collect()
}

/// Runs `x` (one feature per sample) through the model four ways: sample by sample, in
/// blocks of 7, as one batch-1 sequence, and as a batch of two copies; returns the
/// sample-by-sample outputs after checking that the others agree with them.
fn run_all_ways(model: &Model, x: &[f32], tol: f32) -> Vec<f32> {
    assert_eq!(model.input_size(), 1);
    assert_eq!(model.output_size(), 1);
    let n = x.len();
    let mut st = State::new(model, 1).unwrap();
    let mut y = vec![f32::NAN; n];
    for t in 0..n {
        model.step(&mut st, &x[t..t + 1], &mut y[t..t + 1]).unwrap();
    }
    let mut st = State::with_block(model, 1, 7).unwrap();
    let mut yb = vec![f32::NAN; n];
    for (xc, yc) in x.chunks(7).zip(yb.chunks_mut(7)) {
        model.forward_state(&mut st, xc, xc.len(), yc).unwrap();
    }
    let yf = model.forward(x, 1, n).unwrap();
    let x2: Vec<f32> = x.iter().chain(x).copied().collect();
    let y2 = model.forward(&x2, 2, n).unwrap();
    for (what, other) in [
        ("block", &yb[..]),
        ("forward", &yf[..]),
        ("batch 2 #0", &y2[..n]),
        ("batch 2 #1", &y2[n..]),
    ] {
        let d = max_diff(&y, other);
        assert!(d <= tol, "{what} differs from steps by {d}");
    }
    y
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max)
}

/// RTNeural's test models against RTNeural's reference outputs (from the Python model),
/// with the tolerances of RTNeural's tests (`tests/functional/test_configs.hpp`,
/// `torch_*_test.cpp`).
#[test]
fn rtneural_models_match_their_reference_outputs() {
    for (model, data, tol) in [
        ("lstm", "lstm", 1e-6),
        ("lstm_1d", "lstm_1d", 1e-6),
        ("gru", "gru", 5e-6),
        ("gru_1d", "gru_1d", 1e-6),
        ("lstm_torch", "lstm_torch", 1e-6),
        ("gru_torch", "gru_torch", 1e-6),
    ] {
        let m = Model::load(fixture(&format!("rtneural/{model}.json")))
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        let x = csv(&format!("rtneural/{data}_x_python.csv"));
        let want = csv(&format!("rtneural/{data}_y_python.csv"));
        let y = run_all_ways(&m, &x, 1e-6);
        let d = max_diff(&y, &want);
        println!(
            "{model}: max |y - reference| = {d:.3e} over {} samples",
            x.len()
        );
        assert!(d <= tol, "{model}: max error {d} over tolerance {tol}");
        // The canonical safetensors form round-trips bit for bit.
        let back = Model::from_bytes(&m.to_safetensors().unwrap()).unwrap();
        assert_eq!(back.parameters(), m.parameters(), "{model}");
        assert_eq!(back.layers(), m.layers(), "{model}");
        assert_eq!(
            run_all_ways(&back, &x, 1e-6),
            y,
            "{model}: after a round trip"
        );
    }
}

/// The shapes each file must import as.
#[test]
fn rtneural_models_have_the_expected_structure() {
    use rnncore::{Activation::*, CellKind};
    let m = Model::load(fixture("rtneural/gru.json")).unwrap();
    assert_eq!(m.config().cell, CellKind::GruLbr);
    let l = m.layers().unwrap();
    assert_eq!(
        l.pre.iter().map(|d| d.activation).collect::<Vec<_>>(),
        [Tanh]
    );
    assert_eq!(
        l.post.iter().map(|d| d.activation).collect::<Vec<_>>(),
        [Sigmoid, Identity]
    );
    let m = Model::load(fixture("rtneural/lstm_1d.json")).unwrap();
    assert!(
        m.layers().is_none(),
        "LSTM + linear dense is the plain stack + head"
    );
    assert_eq!(m.config().output_size, 1);
    let m = Model::load(fixture("rtneural/lstm_torch.json")).unwrap();
    assert_eq!(
        (m.config().cell, m.config().num_layers),
        (CellKind::Lstm, 4)
    );
}

/// Models with layers rnncore does not run are refused, naming the layer.
#[test]
fn unsupported_and_bad_files_are_refused_by_name() {
    for (file, says) in [
        ("rtneural/full_model.json", "conv1d"),
        ("rtneural/dense.json", "no recurrent layer"),
        ("rtneural/bad_lstm.json", "activation \"\""),
        ("nam/wavenet.nam", "WaveNet"),
    ] {
        match Model::load(fixture(file)) {
            Err(Error::Format(m)) => assert!(m.contains(says), "{file}: {m}"),
            other => panic!("{file}: {other:?}"),
        }
    }
}

// ---- f64 references, written from the formats' definitions (PyTorch's equations) ----

fn sig(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

fn mat(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn vecf(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn matvec(w: &[Vec<f64>], x: &[f64]) -> Vec<f64> {
    w.iter()
        .map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

/// One PyTorch LSTM (`gru = false`) or GRU step, in f64.
#[allow(clippy::too_many_arguments)]
fn torch_step(
    gru: bool,
    wih: &[Vec<f64>],
    whh: &[Vec<f64>],
    bih: &[f64],
    bhh: &[f64],
    x: &[f64],
    h: &mut Vec<f64>,
    c: &mut [f64],
) {
    let hs = h.len();
    let gx: Vec<f64> = matvec(wih, x).iter().zip(bih).map(|(a, b)| a + b).collect();
    let gh: Vec<f64> = matvec(whh, h).iter().zip(bhh).map(|(a, b)| a + b).collect();
    let mut new = vec![0.0; hs];
    for j in 0..hs {
        if gru {
            let r = sig(gx[j] + gh[j]);
            let z = sig(gx[hs + j] + gh[hs + j]);
            let n = (gx[2 * hs + j] + r * gh[2 * hs + j]).tanh();
            new[j] = (1.0 - z) * n + z * h[j];
        } else {
            let g = |k: usize| gx[k * hs + j] + gh[k * hs + j];
            let (i, f, gg, o) = (sig(g(0)), sig(g(1)), g(2).tanh(), sig(g(3)));
            c[j] = f * c[j] + i * gg;
            new[j] = o * c[j].tanh();
        }
    }
    *h = new;
}

/// A test signal at guitar level: a decaying chirp with a harmonic, peak about 0.3.
fn signal(n: usize) -> Vec<f32> {
    (0..n)
        .map(|t| {
            let t = t as f64;
            (0.3 * (0.9 * (0.05 * t + 0.0004 * t * t).sin() * (-t / 900.0).exp()
                + 0.1 * (0.31 * t).sin())) as f32
        })
        .collect()
}

/// Automated-GuitarAmpModelling ships trained amp models but no reference outputs: an
/// f64 reference from the file's state_dict (PyTorch's equations, `lin(rec(x)) + x`).
#[test]
fn guitarml_models_match_an_f64_reference() {
    for (file, gru) in [
        ("agm/ht1-ht11_lstm32.json", false),
        ("agm/ht1-ht13_gru32.json", true),
    ] {
        let m = Model::load(fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(file)).unwrap()).unwrap();
        let sd = &v["state_dict"];
        let (wih, whh) = (mat(&sd["rec.weight_ih_l0"]), mat(&sd["rec.weight_hh_l0"]));
        let (bih, bhh) = (vecf(&sd["rec.bias_ih_l0"]), vecf(&sd["rec.bias_hh_l0"]));
        let (lw, lb) = (mat(&sd["lin.weight"]), vecf(&sd["lin.bias"]));
        let hs = whh[0].len();
        let x = signal(600);
        let (mut h, mut c) = (vec![0.0; hs], vec![0.0; hs]);
        let want: Vec<f32> = x
            .iter()
            .map(|&xt| {
                torch_step(
                    gru,
                    &wih,
                    &whh,
                    &bih,
                    &bhh,
                    &[f64::from(xt)],
                    &mut h,
                    &mut c,
                );
                (matvec(&lw, &h)[0] + lb[0] + f64::from(xt)) as f32
            })
            .collect();
        // These trained amp models have high gain: over hundreds of samples they
        // amplify rounding, so the f32 paths (whose sums run in different orders) agree
        // to 1e-5 rather than 1e-6 (measured 1.2e-5 on the GRU's hidden state).
        let y = run_all_ways(&m, &x, 2e-5);
        let d = max_diff(&y, &want);
        println!("{file}: max |y - f64 reference| = {d:.3e}");
        assert!(d < 5e-5, "{file}: {d}");
        assert!(
            m.layers().is_some_and(|l| l.skip),
            "{file}: skip connection"
        );
    }
}

/// NeuralAmpModelerCore's example LSTM: an f64 reference from the flat weight list as
/// `NAM/lstm.cpp` reads it, started from the file's learned initial state.
#[test]
fn nam_lstm_matches_an_f64_reference() {
    let text = std::fs::read_to_string(fixture("nam/lstm.nam")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let nam = rnncore::io::json::nam::parse(&v).unwrap();
    let (inp, hs) = (
        1usize,
        v["config"]["hidden_size"].as_u64().unwrap() as usize,
    );
    assert_eq!(v["config"]["num_layers"], 1);
    let w = vecf(&v["weights"]);
    let mut it = w.into_iter();
    let mut take = |n: usize| -> Vec<f64> { it.by_ref().take(n).collect() };
    let wcat = take(4 * hs * (inp + hs));
    let b = take(4 * hs);
    let mut h = take(hs);
    let mut c = take(hs);
    let head_w = take(hs);
    let head_b = take(1)[0];
    assert!(it.next().is_none());
    let row = |r: usize| &wcat[r * (inp + hs)..(r + 1) * (inp + hs)];
    let x = signal(500);
    let mut want = Vec::new();
    for &xt in &x {
        let mut xh = vec![f64::from(xt)];
        xh.extend(&h);
        let g: Vec<f64> = (0..4 * hs)
            .map(|r| b[r] + row(r).iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>())
            .collect();
        for j in 0..hs {
            c[j] = sig(g[hs + j]) * c[j] + sig(g[j]) * g[2 * hs + j].tanh();
            h[j] = sig(g[3 * hs + j]) * c[j].tanh();
        }
        want.push((head_b + head_w.iter().zip(&h).map(|(a, b)| a * b).sum::<f64>()) as f32);
    }
    let mut y = vec![0.0; x.len()];
    nam.model
        .forward_with_state(&x, 1, x.len(), Some(&nam.initial_state), &mut y, None)
        .unwrap();
    let d = max_diff(&y, &want);
    println!("nam lstm: max |y - f64 reference| = {d:.3e}");
    assert!(d < 1e-5, "{d}");
    // Model::load reads the same weights; its streams start from zeros.
    let m = Model::load(fixture("nam/lstm.nam")).unwrap();
    assert_eq!(m.parameters(), nam.model.parameters());
    // What leaving out the learned initial state costs: NAM runs half a second of
    // silence through a model before use (`GetPrewarmSamples`, 24000 samples at 48 kHz);
    // after that, a stream started from zeros and one started from the learned state
    // give the same outputs.
    let mut pre = vec![0.0f32; 24000];
    pre.extend(&x);
    let mut from_learned = vec![0.0; pre.len()];
    nam.model
        .forward_with_state(
            &pre,
            1,
            pre.len(),
            Some(&nam.initial_state),
            &mut from_learned,
            None,
        )
        .unwrap();
    let from_zero = m.forward(&pre, 1, pre.len()).unwrap();
    let d = max_diff(&from_learned[24000..], &from_zero[24000..]);
    println!("nam lstm: zero vs learned initial state after the prewarm: {d:.3e}");
    assert!(d < 1e-6, "{d}");
}
