//! Shared test helpers.
#![allow(dead_code)]

pub mod counting;

use rnncore::{CellKind, ModelConfig, OutputActivation};

/// Deterministic pseudo-random values in [-a, a).
pub fn vals(n: usize, seed: u64, a: f32) -> Vec<f32> {
    let mut r = rnncore::Rng::new(seed);
    (0..n)
        .map(|_| r.uniform(-a as f64, a as f64) as f32)
        .collect()
}

/// The bit patterns of `v`, for bit-for-bit comparisons with readable failures.
#[allow(dead_code)] // not every test binary compares bits
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every cell kind x {1, 2} layers x {no head, head of 3}.
pub fn configs(i: usize, h: usize) -> Vec<ModelConfig> {
    let mut v = Vec::new();
    for cell in CellKind::ALL {
        for layers in [1, 2] {
            for head in [0, 3] {
                let mut c = ModelConfig::new(cell, i, h, layers);
                if head > 0 {
                    c = c.with_head(head, OutputActivation::Identity);
                }
                v.push(c);
            }
        }
    }
    v
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `v` widened to f64.
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
}

/// Largest `|a - b|` over f32 against f64.
pub fn max_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

/// The central finite difference of `f` in coordinate `i` of `v` (step 1e-5).
pub fn fd(v: &[f64], i: usize, f: impl Fn(&[f64]) -> f64) -> f64 {
    let eps = 1e-5;
    let mut w = v.to_vec();
    w[i] = v[i] + eps;
    let up = f(&w);
    w[i] = v[i] - eps;
    let down = f(&w);
    (up - down) / (2.0 * eps)
}

/// A backward gradient `ana` against finite differences `num`: within 1e-4 of the
/// largest magnitude (plus 1e-6). With `nonzero`, the gradient must also not vanish
/// (a check of nothing would pass).
pub fn compare_fd(name: &str, num: &[f64], ana: &[f32], nonzero: bool) {
    assert_eq!(num.len(), ana.len(), "{name}");
    let scale = num.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(
        !nonzero || scale > 1e-3,
        "{name}: the gradient is (nearly) zero: {scale}"
    );
    for (i, (&n, &a)) in num.iter().zip(ana).enumerate() {
        assert!(
            (n - a as f64).abs() <= 1e-4 * scale + 1e-6,
            "{name}[{i}]: finite difference {n}, backward {a}"
        );
    }
}

/// A file as `safetensors.torch.save_file(module.state_dict())` writes it: the model's
/// tensors by name, the recurrent ones behind `prefix` (`""`, `"lstm."`), the head's
/// under `head` instead of `head.` (`"fc"`), with `meta` as its metadata or none.
pub fn plain_file(
    model: &rnncore::Model,
    prefix: &str,
    head: &str,
    meta: Option<Vec<(String, String)>>,
) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = model
        .layout()
        .entries()
        .iter()
        .map(|e| {
            let name = match e.name.strip_prefix("head.") {
                Some(f) => format!("{head}.{f}"),
                None => format!("{prefix}{}", e.name),
            };
            let v = &model.parameters()[e.offset..e.offset + e.len];
            (
                name,
                e.shape.clone(),
                v.iter().flat_map(|f| f.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = meta.map(|m| m.into_iter().collect());
    safetensors::serialize(views, meta).unwrap()
}

/// A model of `cfg` (seed `seed`) against the f64 reference over `batch` sequences of `t`
/// steps from a random initial state, with optional lengths: outputs and final state
/// within 2e-5, outputs past each length exactly zero, and the recorded (training) pass
/// giving the same outputs and final state: bit for bit where `tape_exact`, else within
/// 1e-6 (a bidirectional model's inference and training passes differ in rounding).
pub fn check_forward_against_reference(
    cfg: ModelConfig,
    batch: usize,
    t: usize,
    lengths: Option<&[usize]>,
    seed: u64,
    tape_exact: bool,
) {
    use rnncore::__testing::reference as r;
    let model = rnncore::Model::new(cfg, seed).unwrap();
    let x = vals(batch * t * cfg.input_size, seed + 1, 1.0);
    let init = vals(cfg.state_len(batch), seed + 2, 0.5);
    let mut y = vec![f32::NAN; batch * t * cfg.output_dim()];
    let mut fin = vec![f32::NAN; cfg.state_len(batch)];
    model
        .forward_with_state_lengths(&x, batch, t, lengths, Some(&init), &mut y, Some(&mut fin))
        .unwrap();
    let (ry, rf) = r::forward_seq(
        &cfg,
        &f64s(model.parameters()),
        &f64s(&x),
        batch,
        t,
        &f64s(&init),
        lengths,
    );
    let (ey, ef) = (max_err(&y, &ry), max_err(&fin, &rf));
    assert!(
        ey < 2e-5 && ef < 2e-5,
        "{cfg} batch {batch} lengths {lengths:?}: outputs off by {ey}, final state by {ef}"
    );
    if let Some(ls) = lengths {
        let o = cfg.output_dim();
        for (b, &n) in ls.iter().enumerate() {
            assert!(
                y[(b * t + n) * o..(b + 1) * t * o]
                    .iter()
                    .all(|&v| v == 0.0),
                "{cfg}: outputs past length {n} of sequence {b} are not zero"
            );
        }
    }
    let tape = model
        .forward_train_lengths(&x, batch, t, lengths, Some(&init))
        .unwrap();
    if tape_exact {
        assert_eq!(bits(tape.outputs()), bits(&y), "{cfg}: tape outputs");
        assert_eq!(
            bits(tape.final_state()),
            bits(&fin),
            "{cfg}: tape final state"
        );
    } else {
        assert!(
            max_abs_diff(tape.outputs(), &y) < 1e-6,
            "{cfg}: tape outputs"
        );
        assert!(
            max_abs_diff(tape.final_state(), &fin) < 1e-6,
            "{cfg}: tape final state"
        );
    }
}
