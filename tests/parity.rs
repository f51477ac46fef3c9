//! Parity with PyTorch on the fixtures in `tests/fixtures/` (written by
//! `tools/gen_fixtures.py`; see `tests/fixtures/README.md` for every tensor). No PyTorch
//! is needed here: the expected values are stored, computed in float64 from exactly the
//! saved float32 weights and inputs. rnncore computes in f32, so every comparison allows
//! f32 rounding; each tolerance is stated and justified where it is checked.
//!
//! Run with `--nocapture` to see the worst error measured per group.

use rnncore::train::loss::{cross_entropy, cross_entropy_lengths, mse, mse_lengths};
use rnncore::{
    CellKind, Error, Model, ModelConfig, Optimizer, OutputActivation, Targets, TrainConfig, Trainer,
};
use std::collections::HashMap;
use std::path::PathBuf;

const CELLS: [&str; 5] = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_lbr"];

/// The 21 cases: `{cell}_l{1,2}[_head]` and `lstm_l1_softmax`.
fn cases() -> Vec<String> {
    let mut v = Vec::new();
    for cell in CELLS {
        for l in [1, 2] {
            v.push(format!("{cell}_l{l}"));
            v.push(format!("{cell}_l{l}_head"));
        }
    }
    v.push("lstm_l1_softmax".into());
    v
}

/// The issue 18 cases this crate runs (`issue18/`, see the fixtures' README):
/// bidirectional layers of every cell, 1 and 2 layers, with and without head, and
/// padded batches with lengths, one and two directions, and LSTM projections
/// (`proj_size`: one and two layers, bidirectional, with a head). (The dropout case,
/// which has no gradients or optimizer steps, is `dropout_case_runs_as_pytorch_in_eval_mode`.)
fn issue18_cases() -> Vec<String> {
    let mut v = Vec::new();
    for cell in CELLS {
        for l in [1, 2] {
            v.push(format!("issue18/{cell}_l{l}_bidir"));
        }
    }
    for l in [1, 2] {
        v.push(format!("issue18/lstm_l{l}_bidir_head"));
        for cell in ["lstm", "gru_lbr"] {
            v.push(format!("issue18/{cell}_l{l}_len"));
            v.push(format!("issue18/{cell}_l{l}_bidir_len"));
        }
    }
    v.push("issue18/lstm_l2_bidir_len_head".into());
    for case in [
        "lstm_l1_proj",
        "lstm_l2_proj",
        "lstm_l2_bidir_proj",
        "lstm_l1_proj_head",
    ] {
        v.push(format!("issue18/{case}"));
    }
    v
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

// ----------------------------------------------------------------------------
// Reading the data files (with the safetensors crate directly, not rnncore's loader)
// ----------------------------------------------------------------------------

enum Values {
    F32(Vec<f32>),
    I32(Vec<i32>),
    U8(Vec<u8>),
}

struct Data {
    case: String,
    tensors: HashMap<String, (Vec<usize>, Values)>,
    meta: HashMap<String, String>,
}

impl Data {
    fn read(case: &str) -> Data {
        let path = fixture(&format!("{case}.data.safetensors"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap_or_default();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        for (name, view) in st.iter() {
            let d = view.data();
            let values = match view.dtype() {
                safetensors::Dtype::F32 => Values::F32(
                    d.chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                ),
                safetensors::Dtype::I32 => Values::I32(
                    d.chunks_exact(4)
                        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                ),
                safetensors::Dtype::U8 => Values::U8(d.to_vec()),
                other => panic!("{case}: {name} has dtype {other}"),
            };
            tensors.insert(name.to_string(), (view.shape().to_vec(), values));
        }
        Data {
            case: case.to_string(),
            tensors,
            meta: meta.into_iter().collect(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn f32(&self, name: &str) -> &[f32] {
        match self.tensors.get(name) {
            Some((_, Values::F32(v))) => v,
            _ => panic!("{}: no f32 tensor {name}", self.case),
        }
    }

    fn i32(&self, name: &str) -> &[i32] {
        match self.tensors.get(name) {
            Some((_, Values::I32(v))) => v,
            _ => panic!("{}: no i32 tensor {name}", self.case),
        }
    }

    fn u8(&self, name: &str) -> &[u8] {
        match self.tensors.get(name) {
            Some((_, Values::U8(v))) => v,
            _ => panic!("{}: no u8 tensor {name}", self.case),
        }
    }

    /// The case's `lengths` (`_len` cases), else `None`.
    fn lengths(&self) -> Option<Vec<usize>> {
        self.has("lengths")
            .then(|| self.i32("lengths").iter().map(|&n| n as usize).collect())
    }

    fn scalar(&self, name: &str) -> f32 {
        self.f32(name)[0]
    }

    fn usize(&self, key: &str) -> usize {
        self.meta[key].parse().unwrap()
    }

    /// The case's config, from the data file's metadata.
    fn config(&self) -> ModelConfig {
        ModelConfig {
            cell: CellKind::from_name(&self.meta["cell"]).unwrap(),
            input_size: self.usize("input_size"),
            hidden_size: self.usize("hidden_size"),
            num_layers: self.usize("num_layers"),
            output_size: self.usize("output_size"),
            output_activation: OutputActivation::from_name(&self.meta["output_activation"])
                .unwrap(),
            bidirectional: self.meta.get("bidirectional").is_some_and(|v| v == "true"),
            proj_size: self.meta.get("proj_size").map_or(0, |v| v.parse().unwrap()),
        }
    }

    /// `h` then (LSTM) `c`, as rnncore's state snapshots: `{h}` + `{c}` tensor names.
    fn state(&self, h: &str, c: &str) -> Vec<f32> {
        let mut v = self.f32(h).to_vec();
        if self.has(c) {
            v.extend_from_slice(self.f32(c));
        }
        v
    }

    /// Hyperparameters of an optimizer sequence from the `sgd` / `adam` / `adamw` key:
    /// `lr=0.01,beta1=0.9,...`.
    fn hyper(&self, key: &str) -> HashMap<String, f32> {
        self.meta[key]
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
            .collect()
    }
}

fn load_case(case: &str) -> (Model, Data) {
    let data = Data::read(case);
    let model = Model::load(fixture(&format!("{case}.model.safetensors"))).unwrap();
    (model, data)
}

// ----------------------------------------------------------------------------
// Comparing
// ----------------------------------------------------------------------------

/// Worst errors per group, and every failure, so one run reports them all.
#[derive(Default)]
struct Report {
    /// group -> (worst measure, where, its abs error, scale of the reference)
    worst: Vec<(String, f64, String)>,
    failures: Vec<String>,
}

impl Report {
    fn note(&mut self, group: &str, measure: f64, at: String, ok: bool) {
        match self.worst.iter_mut().find(|w| w.0 == group) {
            Some(w) if measure > w.1 => (w.1, w.2) = (measure, at.clone()),
            Some(_) => {}
            None => self.worst.push((group.to_string(), measure, at.clone())),
        }
        if !ok {
            self.failures.push(format!("{group}: {at}"));
        }
    }

    /// `max |got - want| <= atol`.
    fn abs(&mut self, group: &str, at: &str, got: &[f32], want: &[f32], atol: f64) {
        assert_eq!(got.len(), want.len(), "{at}: lengths");
        let (err, i) = max_err(got, want);
        let msg = format!("{at}: max abs err {err:.3e} at [{i}] (tol {atol:.0e})");
        self.note(group, err, msg, err <= atol);
    }

    /// `max |got - want| / max(max |want|, floor) <= rtol`: error relative to the
    /// tensor's scale (not per element: an element near zero has no meaningful
    /// relative error, but its error is bounded by the rounding of the large terms
    /// that summed to it).
    fn rel(&mut self, group: &str, at: &str, got: &[f32], want: &[f32], rtol: f64, floor: f64) {
        assert_eq!(got.len(), want.len(), "{at}: lengths");
        let (err, i) = max_err(got, want);
        let scale = want.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
        let r = err / scale.max(floor);
        let msg = format!(
            "{at}: max abs err {err:.3e} at [{i}], scale {scale:.3e}, relative {r:.3e} (tol {rtol:.0e})"
        );
        self.note(group, r, msg, r <= rtol);
    }

    fn finish(self, title: &str) {
        eprintln!("{title}: worst per group");
        for (g, m, at) in &self.worst {
            eprintln!("  {g:28} {m:.3e}  {at}");
        }
        assert!(
            self.failures.is_empty(),
            "{} failures:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn max_err(got: &[f32], want: &[f32]) -> (f64, usize) {
    got.iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &w))| {
            let e = (g as f64 - w as f64).abs();
            (if e.is_nan() { f64::INFINITY } else { e }, i)
        })
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}

// ----------------------------------------------------------------------------
// Loading
// ----------------------------------------------------------------------------

/// The model file with its `__metadata__` dropped, rewritten by the reference writer.
fn without_metadata(case: &str) -> Vec<u8> {
    let bytes = std::fs::read(fixture(&format!("{case}.model.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    safetensors::serialize(st.iter().collect::<Vec<_>>(), None).unwrap()
}

#[test]
fn every_fixture_model_loads_with_its_config() {
    for case in cases() {
        let (model, data) = load_case(&case);
        let want = data.config();
        assert_eq!(model.config(), &want, "{case}");
        // As the README says: the plain nn.RNN(tanh)/nn.LSTM/nn.GRU state_dicts have no
        // metadata, every other case does.
        let plain = !want.has_head()
            && matches!(
                want.cell,
                CellKind::RnnTanh | CellKind::Lstm | CellKind::GruLbr
            );
        let has_meta = if plain { "false" } else { "true" };
        assert_eq!(data.meta["model_file_has_metadata"], has_meta, "{case}");
        // Without metadata: inferred from the shapes. The notes' GRU and ReLU RNN have
        // the shapes of PyTorch's GRU and tanh RNN, and softmax is not in the weights.
        let m = Model::from_safetensors(&without_metadata(&case)).unwrap();
        let mut inferred = want;
        inferred.cell = match want.cell {
            CellKind::Gru => CellKind::GruLbr,
            CellKind::RnnRelu => CellKind::RnnTanh,
            c => c,
        };
        inferred.output_activation = OutputActivation::Identity;
        assert_eq!(m.config(), &inferred, "{case} without metadata");
        assert_eq!(
            m.parameters(),
            model.parameters(),
            "{case} without metadata"
        );
    }
}

/// f16/bf16/f64 copies of `lstm_l1` load, and each weight is within the dtype's
/// rounding of the f32 file (round to nearest: half an ulp, relative 2^-11 for f16
/// and 2^-8 for bf16; f16 subnormals below 2^-14 have an absolute ulp of 2^-24).
#[test]
fn dtype_variants_match_the_f32_file_within_their_precision() {
    let f32m = Model::load(fixture("lstm_l1.model.safetensors")).unwrap();
    let mut report = Report::default();
    for (tag, rel, abs) in [
        ("f64", 0.0, 0.0),
        ("f16", 2f64.powi(-11), 2f64.powi(-25)),
        ("bf16", 2f64.powi(-8), 0.0),
    ] {
        let m = Model::load(fixture(&format!("lstm_l1.{tag}.model.safetensors"))).unwrap();
        assert_eq!(m.config(), f32m.config(), "{tag}");
        let mut worst = 0.0f64;
        for (&a, &b) in m.parameters().iter().zip(f32m.parameters()) {
            let bound = rel * (b as f64).abs() + abs;
            let e = (a as f64 - b as f64).abs();
            assert!(e <= bound, "{tag}: {a} vs {b}");
            worst = worst.max(e / bound.max(f64::MIN_POSITIVE));
        }
        report.note(
            "weights vs f32 (err/bound)",
            worst,
            format!("{tag}: {worst:.3}"),
            true,
        );
        // And the outputs follow: the f64 file is the same model bit for bit.
        let data = Data::read("lstm_l1");
        let (b, t) = (data.usize("batch"), data.usize("seq_len"));
        let y = m.forward(data.f32("x"), b, t).unwrap();
        let tol = match tag {
            "f64" => 1e-5,
            "f16" => 1e-2,
            _ => 5e-2,
        };
        report.abs(&format!("y ({tag} weights)"), tag, &y, data.f32("y"), tol);
    }
    report.finish("dtype variants");
}

// ----------------------------------------------------------------------------
// Forward
// ----------------------------------------------------------------------------

/// Outputs and final states from the zero state and from `h0`/`c0`, within 1e-5
/// absolute: values are O(1) (tanh/sigmoid outputs, a head of 13 inputs), and f32
/// rounding through T = 5 steps and 2 layers stays around 1e-7.
#[test]
fn forward_matches_pytorch() {
    forward_cases(&cases(), "forward");
}

/// As [`forward_matches_pytorch`], for bidirectional models and lengths (outputs zero
/// past each length, each sequence's final state at its own last step).
#[test]
fn issue18_forward_matches_pytorch() {
    forward_cases(&issue18_cases(), "issue 18 forward");
}

/// `nn.LSTM(2 layers, dropout=0.3)` in eval mode: the model loads with its dropout
/// (metadata `dropout`), and inference, which never applies it, gives PyTorch's eval
/// outputs and final states (also from the file without metadata, where dropout is 0).
#[test]
fn dropout_case_runs_as_pytorch_in_eval_mode() {
    let case = "issue18/lstm_l2_dropout";
    let (model, data) = load_case(case);
    assert_eq!(model.dropout(), 0.3);
    assert_eq!(data.meta["dropout"], "0.3");
    assert_eq!(model.config(), &data.config());
    let plain = Model::from_safetensors(&without_metadata(case)).unwrap();
    assert_eq!(plain.dropout(), 0.0);
    forward_cases(&[case.to_string()], "issue 18 dropout (eval) forward");
}

fn forward_cases(cases: &[String], title: &str) {
    let mut report = Report::default();
    for case in cases {
        let (model, data) = load_case(case);
        let (b, t) = (data.usize("batch"), data.usize("seq_len"));
        let cfg = *model.config();
        let x = data.f32("x");
        let n_y = b * t * model.output_size();
        let n_s = cfg.state_len(b);
        let lengths = data.lengths();
        let ls = lengths.as_deref();

        let mut y = vec![f32::NAN; n_y];
        let mut fin = vec![f32::NAN; n_s];
        model
            .forward_with_state_lengths(x, b, t, ls, None, &mut y, Some(&mut fin))
            .unwrap();
        report.abs("y", case, &y, data.f32("y"), 1e-5);
        report.abs("hn (and cn)", case, &fin, &data.state("hn", "cn"), 1e-5);
        let plain = match ls {
            Some(ls) => model.forward_lengths(x, b, t, ls).unwrap(),
            None => model.forward(x, b, t).unwrap(),
        };
        assert_eq!(plain, y, "{case}: forward = forward_with_state");

        let init = data.state("h0", "c0");
        model
            .forward_with_state_lengths(x, b, t, ls, Some(&init), &mut y, Some(&mut fin))
            .unwrap();
        report.abs("y_state", case, &y, data.f32("y_state"), 1e-5);
        report.abs(
            "hn_state (and cn)",
            case,
            &fin,
            &data.state("hn_state", "cn_state"),
            1e-5,
        );

        // The training forward's outputs are the logits (no softmax).
        let tape = model.forward_train_lengths(x, b, t, ls, None).unwrap();
        report.abs("logits", case, tape.outputs(), data.f32("logits"), 1e-5);
    }
    report.finish(title);
}

// ----------------------------------------------------------------------------
// Gradients
// ----------------------------------------------------------------------------

/// Gradient tolerance: `max |got - want| <= 1e-4 · max |want|` per tensor. The truth is
/// f64; rnncore's gradients are f32 sums over B·T = 15 terms of products of O(1)
/// factors through up to 2 layers x 5 steps, so each element carries a few f32
/// roundings (~1e-7) of the tensor's largest terms. 1e-4 leaves two orders of magnitude
/// for summation order, yet a wrong gate, a missing term or a transposed matrix gives
/// errors of order 1 on this scale. `GRAD_FLOOR` keeps the bound from vanishing for a
/// tensor whose gradient is all but zero.
const GRAD_RTOL: f64 = 1e-4;
const GRAD_FLOOR: f64 = 1e-6;
/// Loss values: one f32 rounding of a mean of O(1) terms.
const LOSS_RTOL: f64 = 1e-5;

fn check_grads(
    report: &mut Report,
    group: &str,
    model: &Model,
    data: &Data,
    grads: &rnncore::Gradients,
    with_state: bool,
) {
    let case = &data.case;
    for e in model.layout().entries() {
        let got = &grads.params[e.offset..e.offset + e.len];
        let want = data.f32(&format!("{group}.{}", e.name));
        report.rel(
            group,
            &format!("{case} {}", e.name),
            got,
            want,
            GRAD_RTOL,
            GRAD_FLOOR,
        );
    }
    let want = data.f32(&format!("{group}.x"));
    report.rel(
        group,
        &format!("{case} x"),
        &grads.inputs,
        want,
        GRAD_RTOL,
        GRAD_FLOOR,
    );
    if with_state {
        let want = data.state(&format!("{group}.h0"), &format!("{group}.c0"));
        report.rel(
            group,
            &format!("{case} h0/c0"),
            &grads.initial_state,
            &want,
            GRAD_RTOL,
            GRAD_FLOOR,
        );
    }
}

fn check_loss(report: &mut Report, group: &str, case: &str, got: f32, want: f32) {
    report.rel(
        &format!("{group} loss"),
        case,
        &[got],
        &[want],
        LOSS_RTOL,
        1e-30,
    );
}

/// [`mse`], or [`mse_lengths`] with lengths.
#[allow(clippy::too_many_arguments)]
fn mse_of(
    out: &[f32],
    b: usize,
    t: usize,
    o: usize,
    lengths: Option<&[usize]>,
    target: &[f32],
    targets: Targets,
    d: &mut [f32],
) -> f32 {
    match lengths {
        Some(ls) => mse_lengths(out, b, t, o, ls, target, targets, d),
        None => mse(out, b, t, o, target, targets, d),
    }
    .unwrap()
}

/// [`cross_entropy`], or [`cross_entropy_lengths`] with lengths.
#[allow(clippy::too_many_arguments)]
fn xent_of(
    out: &[f32],
    b: usize,
    t: usize,
    o: usize,
    lengths: Option<&[usize]>,
    labels: &[i32],
    targets: Targets,
    d: &mut [f32],
) -> f32 {
    match lengths {
        Some(ls) => cross_entropy_lengths(out, b, t, o, ls, labels, targets, d),
        None => cross_entropy(out, b, t, o, labels, targets, d),
    }
    .unwrap()
}

#[test]
fn gradients_match_pytorch() {
    gradient_cases(&cases(), "gradients");
}

/// As [`gradients_match_pytorch`], for bidirectional models and lengths (the losses
/// over valid steps only, as the fixtures' README defines them).
#[test]
fn issue18_gradients_match_pytorch() {
    gradient_cases(&issue18_cases(), "issue 18 gradients");
}

fn gradient_cases(cases: &[String], title: &str) {
    let mut report = Report::default();
    for case in cases {
        let (model, data) = load_case(case);
        let case = case.as_str();
        let (b, t) = (data.usize("batch"), data.usize("seq_len"));
        let o = model.output_size();
        let x = data.f32("x");
        let lengths = data.lengths();
        let ls = lengths.as_deref();

        // MSE at every step, from h0 (c0): gradients reach the initial state too.
        let init = data.state("h0", "c0");
        let tape = model
            .forward_train_lengths(x, b, t, ls, Some(&init))
            .unwrap();
        let mut d = vec![f32::NAN; b * t * o];
        let target = data.f32("mse_target");
        let loss = mse_of(
            tape.outputs(),
            b,
            t,
            o,
            ls,
            target,
            Targets::EveryStep,
            &mut d,
        );
        check_loss(&mut report, "mse", case, loss, data.scalar("mse_loss"));
        let g = model.backward(&tape, &d, None, false).unwrap();
        check_grads(&mut report, "grad_mse", &model, &data, &g, true);

        // The rest from the zero state.
        let tape = model.forward_train_lengths(x, b, t, ls, None).unwrap();
        let target = data.f32("mse_last_target");
        let loss = mse_of(
            tape.outputs(),
            b,
            t,
            o,
            ls,
            target,
            Targets::LastStep,
            &mut d,
        );
        check_loss(
            &mut report,
            "mse_last",
            case,
            loss,
            data.scalar("mse_last_loss"),
        );
        let g = model.backward(&tape, &d, None, false).unwrap();
        check_grads(&mut report, "grad_mse_last", &model, &data, &g, false);

        let labels = data.i32("xent_labels");
        assert!(labels.contains(&-1), "{case}: fixture has ignored labels");
        let loss = xent_of(
            tape.outputs(),
            b,
            t,
            o,
            ls,
            labels,
            Targets::EveryStep,
            &mut d,
        );
        check_loss(&mut report, "xent", case, loss, data.scalar("xent_loss"));
        let g = model.backward(&tape, &d, None, false).unwrap();
        check_grads(&mut report, "grad_xent", &model, &data, &g, false);

        let labels = data.i32("xent_last_labels");
        let loss = xent_of(
            tape.outputs(),
            b,
            t,
            o,
            ls,
            labels,
            Targets::LastStep,
            &mut d,
        );
        check_loss(
            &mut report,
            "xent_last",
            case,
            loss,
            data.scalar("xent_last_loss"),
        );
        let g = model.backward(&tape, &d, None, false).unwrap();
        check_grads(&mut report, "grad_xent_last", &model, &data, &g, false);
    }
    report.finish(title);
}

// ----------------------------------------------------------------------------
// Optimizer steps
// ----------------------------------------------------------------------------

fn train_config(data: &Data, key: &str) -> TrainConfig {
    let h = data.hyper(key);
    let optimizer = match key {
        "sgd" => Optimizer::Sgd,
        "adam" => Optimizer::Adam,
        _ => Optimizer::AdamW,
    };
    assert!(key != "sgd" || (h["dampening"] == 0.0 && !data.meta["sgd"].contains("nesterov=true")));
    TrainConfig {
        optimizer,
        learning_rate: h["lr"],
        momentum: h.get("momentum").copied().unwrap_or(0.0),
        beta1: h.get("beta1").copied().unwrap_or(0.9),
        beta2: h.get("beta2").copied().unwrap_or(0.999),
        eps: h.get("eps").copied().unwrap_or(1e-8),
        weight_decay: h["weight_decay"],
        clip_norm: if key == "sgd" {
            0.0
        } else {
            data.meta["clip"].parse().unwrap()
        },
    }
}

/// Runs `steps` optimizer steps on the every-step MSE loss from the zero state, as the
/// fixture did; calls `after(step, model, trainer, loss)` after each.
fn train(case: &str, key: &str, steps: usize, mut after: impl FnMut(usize, &Model, &Trainer, f32)) {
    let (mut model, data) = load_case(case);
    let (b, t) = (data.usize("batch"), data.usize("seq_len"));
    let mut trainer = Trainer::new(&model, train_config(&data, key)).unwrap();
    let lengths = data.lengths();
    for s in 1..=steps {
        let loss = trainer
            .step_mse_lengths(
                &mut model,
                None,
                data.f32("x"),
                b,
                t,
                lengths.as_deref(),
                data.f32("mse_target"),
                Targets::EveryStep,
            )
            .unwrap();
        after(s, &model, &trainer, loss);
    }
}

/// SGD with momentum and L2: `p -= lr·buf` with `buf` a running sum of gradients, so
/// the weights after two steps differ from PyTorch's by `lr·(1+0.9)` times the
/// gradient error: gradient tolerance times the gradient scale (~1) times 0.2 — far
/// below 1e-5 absolute, which is what we ask (weights are O(0.3)).
#[test]
fn sgd_steps_match_pytorch() {
    sgd_cases(&cases(), "sgd");
}

/// As [`sgd_steps_match_pytorch`], for bidirectional models and lengths.
#[test]
fn issue18_sgd_steps_match_pytorch() {
    sgd_cases(&issue18_cases(), "issue 18 sgd");
}

fn sgd_cases(cases: &[String], title: &str) {
    let mut report = Report::default();
    for case in cases {
        let data = Data::read(case);
        let steps = data.usize("sgd_steps");
        let losses = data.f32("mse_losses_sgd").to_vec();
        train(case, "sgd", steps, |s, model, _, loss| {
            check_loss(&mut report, "sgd", case, loss, losses[s - 1]);
            for e in model.layout().entries() {
                let want = data.f32(&format!("sgd{s}.{}", e.name));
                report.abs(
                    &format!("sgd{s} weights"),
                    &format!("{case} {}", e.name),
                    model.tensor(&e.name).unwrap(),
                    want,
                    1e-5,
                );
            }
        });
    }
    report.finish(title);
}

/// Adam and AdamW after 3 clipped steps. The update `lr·m̂/(sqrt(v̂)+eps)` has magnitude
/// ~lr whatever the gradient's scale, so it amplifies the gradient's relative error in
/// elements whose gradient is tiny: for |g| near eps = 1e-8 the sign and size of the
/// step depend on the last bits of g. The fixture marks (`adam3_ok` / `adamw3_ok` = 0)
/// every element whose effective gradient was, at some step, nonzero but below 1e-6.
/// Tolerances:
/// - marked ok: 1e-5 absolute. There |g| >= 1e-6 while its f32 error is ~1e-10 (1e-4
///   of a gradient scale of ~1e-1 at worst, see GRAD_RTOL), so each step's update
///   moves by at most ~lr·1e-4 = 1e-6 from PyTorch's; three steps stay below 1e-5.
///   PyTorch's own f32 run is within 1.3e-6 of the f64 truth on these elements.
/// - marked ill-conditioned: each step moves a weight by at most ~lr in either
///   direction (|m̂|/sqrt(v̂) <= 1 for a constant-sign sequence, a little more at
///   worst), so any two implementations differ by at most ~2·lr per step: we require
///   <= 3·steps·lr = 0.09, i.e. only that the element took Adam-sized steps (no
///   blow-up, no NaN), and report how many there were.
///
/// The global gradient norm before clipping (`Trainer::last_grad_norm`) must match
/// `clip_grad_norm_`'s return within 1e-5 relative, and the losses as elsewhere.
#[test]
fn adam_and_adamw_steps_match_pytorch() {
    adam_cases(&cases(), "adam/adamw");
}

/// As [`adam_and_adamw_steps_match_pytorch`], for bidirectional models and lengths.
#[test]
fn issue18_adam_and_adamw_steps_match_pytorch() {
    adam_cases(&issue18_cases(), "issue 18 adam/adamw");
}

fn adam_cases(cases: &[String], title: &str) {
    let mut report = Report::default();
    let mut ill = 0usize;
    for key in ["adam", "adamw"] {
        for case in cases {
            let case = case.as_str();
            let data = Data::read(case);
            let steps = data.usize(&format!("{key}_steps"));
            let lr = train_config(&data, key).learning_rate as f64;
            let losses = data.f32(&format!("mse_losses_{key}")).to_vec();
            let norms = data.f32(&format!("{key}_clip_norm")).to_vec();
            train(case, key, steps, |s, model, trainer, loss| {
                check_loss(&mut report, key, case, loss, losses[s - 1]);
                let n = trainer.last_grad_norm() as f32;
                report.rel(
                    &format!("{key} grad norm"),
                    &format!("{case} step {s}"),
                    &[n],
                    &[norms[s - 1]],
                    1e-5,
                    1e-30,
                );
                if s < steps {
                    return;
                }
                for e in model.layout().entries() {
                    let got = model.tensor(&e.name).unwrap();
                    let want = data.f32(&format!("{key}3.{}", e.name));
                    let ok = data.u8(&format!("{key}3_ok.{}", e.name));
                    let at = format!("{case} {}", e.name);
                    let (good, bad): (Vec<usize>, Vec<usize>) =
                        (0..e.len).partition(|&i| ok[i] == 1);
                    let pick =
                        |idx: &[usize], v: &[f32]| idx.iter().map(|&i| v[i]).collect::<Vec<f32>>();
                    report.abs(
                        &format!("{key}3 weights (ok)"),
                        &at,
                        &pick(&good, got),
                        &pick(&good, want),
                        1e-5,
                    );
                    if !bad.is_empty() {
                        ill += bad.len();
                        report.abs(
                            &format!("{key}3 weights (ill-cond.)"),
                            &at,
                            &pick(&bad, got),
                            &pick(&bad, want),
                            3.0 * steps as f64 * lr,
                        );
                    }
                }
            });
        }
    }
    eprintln!("{ill} ill-conditioned elements compared loosely");
    report.finish(title);
}

#[test]
fn non_finite_inputs_stay_errors_on_fixture_models() {
    // A loaded model is as strict as a built one (the loader goes through from_parameters).
    let (model, data) = load_case("lstm_l1");
    let (b, t) = (data.usize("batch"), data.usize("seq_len"));
    let mut x = data.f32("x").to_vec();
    x[3] = f32::NAN;
    assert!(matches!(model.forward(&x, b, t), Err(Error::NonFinite(_))));
}

/// The issue 18 models load with the data file's config; the plain ones (no metadata:
/// `save_file(module.state_dict())`) are decided by their names and shapes, `_reverse`
/// making them bidirectional, and so are the others with their metadata dropped (up to
/// what the shapes cannot tell, as for the original cases).
#[test]
fn issue18_models_load_with_their_config() {
    for case in issue18_cases() {
        let (model, data) = load_case(&case);
        let want = data.config();
        assert_eq!(data.meta["bidirectional"] == "true", want.bidirectional);
        assert_eq!(data.meta["proj_size"], want.proj_size.to_string(), "{case}");
        assert_eq!(model.config(), &want, "{case}");
        let m = Model::from_safetensors(&without_metadata(&case)).unwrap();
        let mut inferred = want;
        inferred.cell = match want.cell {
            CellKind::Gru => CellKind::GruLbr,
            CellKind::RnnRelu => CellKind::RnnTanh,
            c => c,
        };
        inferred.output_activation = OutputActivation::Identity;
        assert_eq!(m.config(), &inferred, "{case} without metadata");
        assert_eq!(m.parameters(), model.parameters(), "{case}");
    }
}
