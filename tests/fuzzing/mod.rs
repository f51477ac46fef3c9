//! A seeded mutation fuzzer for every model file format the loader accepts.
//!
//! Shared by `tests/fuzz.rs` (a bounded run in the suite, or a timed one from
//! `scripts/fuzz.sh`) and by the `cargo fuzz` target in `fuzz/` (which uses only
//! [`FORMATS`] and [`check`]; libFuzzer mutates there).
//!
//! A new format is one entry in [`FORMATS`]: its seed files, its loader and, where the
//! file holds a JSON document, how to take it out and put an edited one back.
#![allow(dead_code)]

use rnncore::Rng;
use rnncore::{CellKind, Error, Model, ModelConfig, OutputActivation};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// One model file format under test.
pub struct Format {
    pub name: &'static str,
    /// Valid files to mutate: every cell kind, layers, heads, several dtypes.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// The loader under test.
    pub load: fn(&[u8]) -> rnncore::Result<Model>,
    /// The JSON document inside a file, if any, for structured edits.
    pub json: Option<Json>,
}

/// Where a format keeps its JSON: read it out, edit it, and write a file with it.
pub struct Json {
    pub get: fn(&[u8]) -> Option<Value>,
    pub put: fn(&[u8], &Value) -> Vec<u8>,
    pub edit: fn(&mut Rng, &mut Value),
}

/// A file that is one JSON document.
const WHOLE_JSON: Json = Json {
    get: whole_json,
    put: json_bytes,
    edit: edit_json_tree,
};

pub const FORMATS: &[Format] = &[
    Format {
        name: "safetensors",
        seeds: safetensors_seeds,
        load: Model::from_safetensors,
        json: Some(Json {
            get: st_header,
            put: st_with_header,
            edit: edit_json,
        }),
    },
    Format {
        name: "RTNeural JSON (Keras exporter)",
        seeds: rtneural_keras_seeds,
        load: Model::from_bytes,
        json: Some(WHOLE_JSON),
    },
    Format {
        name: "RTNeural JSON (PyTorch helper)",
        seeds: rtneural_torch_seeds,
        load: Model::from_bytes,
        json: Some(WHOLE_JSON),
    },
    Format {
        name: "GuitarML / Automated-GuitarAmpModelling JSON",
        seeds: agm_seeds,
        load: Model::from_bytes,
        json: Some(WHOLE_JSON),
    },
    Format {
        name: "Neural Amp Modeler (.nam)",
        seeds: nam_seeds,
        load: Model::from_bytes,
        json: Some(WHOLE_JSON),
    },
];

// --- JSON model formats: the real files under tests/fixtures/third_party ---------------

fn rtneural_keras_seeds() -> Vec<Vec<u8>> {
    vec![
        include_bytes!("../fixtures/third_party/rtneural/lstm_1d.json").to_vec(),
        include_bytes!("../fixtures/third_party/rtneural/gru_1d.json").to_vec(),
        include_bytes!("../fixtures/third_party/rtneural/lstm.json").to_vec(),
        include_bytes!("../fixtures/third_party/rtneural/gru.json").to_vec(),
    ]
}

fn rtneural_torch_seeds() -> Vec<Vec<u8>> {
    vec![
        include_bytes!("../fixtures/third_party/rtneural/lstm_torch.json").to_vec(),
        include_bytes!("../fixtures/third_party/rtneural/gru_torch.json").to_vec(),
    ]
}

fn agm_seeds() -> Vec<Vec<u8>> {
    vec![
        include_bytes!("../fixtures/third_party/agm/ht1-ht11_lstm32.json").to_vec(),
        include_bytes!("../fixtures/third_party/agm/ht1-ht13_gru32.json").to_vec(),
    ]
}

fn nam_seeds() -> Vec<Vec<u8>> {
    vec![include_bytes!("../fixtures/third_party/nam/lstm.nam").to_vec()]
}

fn whole_json(b: &[u8]) -> Option<Value> {
    serde_json::from_slice(b).ok()
}

fn json_bytes(_: &[u8], v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// A random node up to `depth` levels below `v` (stopping at leaves).
fn descend<'a>(r: &mut Rng, v: &'a mut Value, depth: usize) -> &'a mut Value {
    if depth == 0 {
        return v;
    }
    let pick = match &*v {
        Value::Object(o) if !o.is_empty() => Some(r.below(o.len())),
        Value::Array(a) if !a.is_empty() => Some(r.below(a.len())),
        _ => None,
    };
    let Some(i) = pick else { return v };
    let leaf = |n: &Value| matches!(n, Value::Null | Value::Bool(_));
    let go_on = match &*v {
        Value::Object(o) => !leaf(o.values().nth(i).unwrap()),
        Value::Array(a) => !leaf(&a[i]),
        _ => false,
    };
    if !go_on {
        return v;
    }
    match v {
        Value::Object(o) => descend(r, o.values_mut().nth(i).unwrap(), depth - 1),
        Value::Array(a) => descend(r, &mut a[i], depth - 1),
        _ => unreachable!(),
    }
}

/// One edit somewhere in a JSON model: a random path down the tree, then at its end a
/// key removed, renamed or duplicated, a value replaced (numbers that break shapes,
/// non-finite and overflowing weights, layer types and names the formats know or do
/// not), or an array shortened, lengthened or emptied.
fn edit_json_tree(r: &mut Rng, v: &mut Value) {
    let depth = r.below(7);
    let node = descend(r, v, depth);
    const WORDS: &[&str] = &[
        "lstm",
        "gru",
        "dense",
        "time-distributed-dense",
        "conv1d",
        "batchnorm",
        "prelu",
        "activation",
        "tanh",
        "sigmoid",
        "relu",
        "elu",
        "softmax",
        "",
        "LSTM",
        "GRU",
        "WaveNet",
        "SimpleRNN",
        "nan",
        "1e39",
        "0.5.4",
        "9.9.9",
    ];
    match node {
        Value::Object(o) if !o.is_empty() => {
            let k = o.keys().nth(r.below(o.len())).unwrap().clone();
            match r.below(4) {
                0 => {
                    o.remove(&k);
                }
                1 => {
                    let val = o.remove(&k).unwrap();
                    o.insert(format!("{k}x"), val);
                }
                2 => {
                    let val = o[&k].clone();
                    o.insert(format!("{k}_l9"), val);
                }
                _ => {
                    o.insert(k, Value::from(WORDS[r.below(WORDS.len())]));
                }
            }
        }
        Value::Array(a) => match r.below(5) {
            0 => a.truncate(r.below(a.len() + 1)),
            1 if !a.is_empty() => {
                let e = a[r.below(a.len())].clone();
                a.push(e);
            }
            2 => a.clear(),
            3 => a.push(nasty_number(r)),
            _ => {
                if !a.is_empty() {
                    let i = r.below(a.len());
                    a[i] = Value::from(vec![Value::from(1.0)]);
                }
            }
        },
        Value::Number(_) => {
            *node = match r.below(6) {
                // f32 overflows, huge but finite, negative, fractional sizes, strings.
                0 => Value::from(1e39),
                1 => Value::from(3e38),
                2 => Value::from(-1e30),
                _ => nasty_number(r),
            }
        }
        Value::String(_) => *node = Value::from(WORDS[r.below(WORDS.len())]),
        _ => *node = nasty_number(r),
    }
}

// --- safetensors -------------------------------------------------------------

fn small_configs() -> Vec<ModelConfig> {
    let mut v = Vec::new();
    for (k, cell) in CellKind::ALL.into_iter().enumerate() {
        let mut c = ModelConfig::new(cell, 1 + k % 3, 2 + k % 2, 1 + k % 2);
        if k % 2 == 0 {
            let act = [OutputActivation::Identity, OutputActivation::Softmax][k / 2 % 2];
            c = c.with_head(2, act);
        }
        v.push(c);
    }
    v
}

fn safetensors_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (i, c) in small_configs().into_iter().enumerate() {
        let m = Model::new(c, i as u64 + 1).unwrap();
        let f32_file = m.to_safetensors().unwrap();
        // The same tensors as f16, bf16 and f64, without metadata (shapes infer the config).
        if let Some(h) = st_header(&f32_file) {
            for dtype in ["F16", "BF16", "F64"] {
                seeds.push(st_recode(&f32_file, &h, dtype));
            }
        }
        seeds.push(f32_file);
    }
    seeds
}

/// The JSON header of a safetensors file.
fn st_header(b: &[u8]) -> Option<Value> {
    let n = usize::try_from(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)).ok()?;
    serde_json::from_slice(b.get(8..8usize.checked_add(n)?)?).ok()
}

/// The file with its header replaced (and the length prefix made to match).
fn st_with_header(b: &[u8], h: &Value) -> Vec<u8> {
    let old = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let json = serde_json::to_vec(h).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(b.get(8 + old..).unwrap_or(&[]));
    out
}

/// Rewrites every f32 tensor as `dtype` (F16/BF16 by truncating the f32 bits or
/// converting, F64 by widening), dropping `__metadata__`.
fn st_recode(b: &[u8], h: &Value, dtype: &str) -> Vec<u8> {
    let start = 8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    let mut entries: Vec<(&String, &Value)> = h
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .collect();
    entries.sort_by_key(|(_, v)| v["data_offsets"][0].as_u64());
    for (name, v) in entries {
        let (s, e) = (
            v["data_offsets"][0].as_u64().unwrap() as usize,
            v["data_offsets"][1].as_u64().unwrap() as usize,
        );
        let from = data.len();
        for c in b[start + s..start + e].chunks_exact(4) {
            let x = f32::from_le_bytes(c.try_into().unwrap());
            match dtype {
                "F64" => data.extend_from_slice(&f64::from(x).to_le_bytes()),
                "BF16" => data.extend_from_slice(&((x.to_bits() >> 16) as u16).to_le_bytes()),
                _ => data.extend_from_slice(&f32_to_f16(x).to_le_bytes()),
            }
        }
        let mut t = v.clone();
        t["dtype"] = Value::from(dtype);
        t["data_offsets"] = Value::from(vec![from as u64, data.len() as u64]);
        header.insert(name.clone(), t);
    }
    let mut out = st_with_header(&[0u8; 8], &Value::Object(header));
    out.extend_from_slice(&data);
    out
}

/// f32 to IEEE half, for the small weights of the seeds (no subnormals, no overflow).
fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let e = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if x == 0.0 || e <= 0 {
        return sign;
    }
    sign | ((e.min(30) as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

// --- checking one case ---------------------------------------------------------

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Loaded; outputs finite, of the declared shape.
    Accepted,
    /// Loaded, with a weight beyond [`EXTREME`]: shapes checked, outputs may be +-inf.
    AcceptedExtreme,
    Refused,
}

/// Loads `bytes` and checks the contract: no panic; a refusal is a format/size error with
/// a message that says something; an accepted model has its declared sizes, finite
/// weights, runs a forward pass with finite outputs of the declared shape and saves to
/// the same parameters. `Err` describes a violation.
pub fn check(format: &Format, bytes: &[u8]) -> Result<Verdict, String> {
    let loaded = catch_unwind(AssertUnwindSafe(|| (format.load)(bytes)))
        .map_err(|_| format!("{}: the loader panicked", format.name))?;
    let model = match loaded {
        Err(e) => {
            let msg = e.message();
            if !matches!(e, Error::Format(_) | Error::Alloc(_) | Error::NonFinite(_)) {
                return Err(format!(
                    "{}: refused as {e:?}, not a format error",
                    format.name
                ));
            }
            // A message names the problem: words, not just a code.
            if msg.trim().len() < 12 || !msg.contains(' ') {
                return Err(format!(
                    "{}: refusal without a message: {msg:?}",
                    format.name
                ));
            }
            return Ok(Verdict::Refused);
        }
        Ok(m) => m,
    };
    let c = *model.config();
    let n = model.layout().total();
    if model.parameters().len() != n {
        return Err(format!(
            "{c:?}: {} parameters, layout says {n}",
            model.parameters().len()
        ));
    }
    if let Some(i) = model.parameters().iter().position(|v| !v.is_finite()) {
        return Err(format!("{c:?}: parameter {i} is not finite"));
    }
    let (batch, steps) = (2, 3);
    let x: Vec<f32> = (0..batch * steps * model.input_size())
        .map(|k| ((k % 7) as f32 - 3.0) * 0.25)
        .collect();
    let run = catch_unwind(AssertUnwindSafe(|| model.forward(&x, batch, steps)))
        .map_err(|_| format!("{c:?}: forward panicked"))?;
    let y = run.map_err(|e| format!("{c:?}: forward of an accepted model failed: {e:?}"))?;
    let want = batch * steps * model.output_size();
    if y.len() != want {
        return Err(format!("{c:?}: {} outputs, expected {want}", y.len()));
    }
    // Finite weights can still overflow f32 in a pass (a relu RNN or an identity head
    // with weights near 1e38 from a flipped exponent bit): outputs must be finite when
    // every weight is within EXTREME, where the sizes here (H, I <= 5, 2 layers, T = 3,
    // |x| <= 1.25) cannot reach f32::MAX; beyond it they may overflow to +-inf.
    let largest = model.parameters().iter().fold(0f32, |m, v| m.max(v.abs()));
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        if largest <= EXTREME {
            return Err(format!(
                "{c:?}: output {i} is {} (largest weight {largest})",
                y[i]
            ));
        }
    }
    let again = model
        .to_safetensors()
        .and_then(|b| Model::from_safetensors(&b))
        .map_err(|e| format!("{c:?}: an accepted model does not save and reload: {e:?}"))?;
    if again.parameters() != model.parameters()
        || again.config() != model.config()
        || again.layers() != model.layers()
    {
        return Err(format!("{c:?}: save and reload changed the model"));
    }
    Ok(if largest > EXTREME {
        Verdict::AcceptedExtreme
    } else {
        Verdict::Accepted
    })
}

/// Weights beyond this magnitude may make a forward pass overflow (see [`check`]).
pub const EXTREME: f32 = 1e4;

// --- mutations -------------------------------------------------------------------

/// Values that break numbers in JSON: zero, negatives, huge, overflowing products.
fn nasty_number(r: &mut Rng) -> Value {
    match r.below(9) {
        0 => Value::from(0),
        1 => Value::from(-1),
        2 => Value::from(u64::MAX),
        3 => Value::from(1u64 << 32),
        4 => Value::from(1u64 << 62),
        5 => Value::from(1.5),
        6 => Value::from("7"),
        7 => Value::Null,
        _ => Value::from(r.below(40)),
    }
}

/// One structured edit of a JSON document (a safetensors header or a JSON model).
fn edit_json(r: &mut Rng, v: &mut Value) {
    let Some(obj) = v.as_object_mut() else {
        *v = nasty_number(r);
        return;
    };
    let keys: Vec<String> = obj.keys().cloned().collect();
    if keys.is_empty() {
        obj.insert("x".into(), nasty_number(r));
        return;
    }
    let key = keys[r.below(keys.len())].clone();
    match r.below(12) {
        0 => {
            obj.remove(&key);
        }
        1 => {
            // Duplicate an entry under another name.
            let val = obj[&key].clone();
            obj.insert(format!("{key}_copy"), val);
        }
        2 => {
            let val = obj.remove(&key).unwrap();
            let names = [
                "weight_ih_l0",
                "weight_hh_l1",
                "head.weight",
                "bias_hh_l0",
                "lstm.weight_ih_l0",
                "__metadata__",
                "",
            ];
            obj.insert(names[r.below(names.len())].into(), val);
        }
        _ => {
            let t = obj.get_mut(&key).unwrap();
            if key == "__metadata__" {
                edit_metadata(r, t);
            } else {
                edit_tensor(r, t);
            }
        }
    }
}

fn edit_metadata(r: &mut Rng, m: &mut Value) {
    let keys = [
        "cell",
        "input_size",
        "hidden_size",
        "num_layers",
        "output_size",
        "output_activation",
        "format",
    ];
    let vals = [
        "lstm",
        "gru",
        "gru_lbr",
        "rnn_relu",
        "softmax",
        "identity",
        "0",
        "1",
        "3",
        "-2",
        "18446744073709551616",
        "",
        "1e3",
        " 2",
        "pt",
    ];
    match m.as_object_mut() {
        Some(o) if r.below(6) != 0 => {
            let k = keys[r.below(keys.len())];
            if r.below(5) == 0 {
                o.remove(k);
            } else {
                let v = if r.below(8) == 0 {
                    nasty_number(r)
                } else {
                    Value::from(vals[r.below(vals.len())])
                };
                o.insert(k.into(), v);
            }
        }
        _ => *m = nasty_number(r),
    }
}

fn edit_tensor(r: &mut Rng, t: &mut Value) {
    let Some(o) = t.as_object_mut() else {
        *t = nasty_number(r);
        return;
    };
    match r.below(7) {
        0 => {
            let d = [
                "F32", "F16", "BF16", "F64", "I32", "U8", "BOOL", "F8_E4M3", "f32", "",
            ];
            o.insert("dtype".into(), Value::from(d[r.below(d.len())]));
        }
        1 | 2 => {
            // Shapes: a dimension changed, added, removed, or overflowing products.
            let mut dims: Vec<Value> = o
                .get("shape")
                .and_then(|s| s.as_array().cloned())
                .unwrap_or_default();
            match r.below(4) {
                0 if !dims.is_empty() => {
                    let i = r.below(dims.len());
                    dims[i] = nasty_number(r);
                }
                1 => dims.push(Value::from(r.below(5))),
                2 => {
                    dims.pop();
                }
                _ => dims = vec![Value::from(1u64 << 33), Value::from(1u64 << 33)],
            }
            o.insert("shape".into(), Value::from(dims));
        }
        3 => {
            // Offsets reversed.
            if let Some(a) = o.get_mut("data_offsets").and_then(|v| v.as_array_mut()) {
                a.reverse();
            }
        }
        4 => {
            // Offsets moved or out of range.
            if let Some(a) = o.get_mut("data_offsets").and_then(|v| v.as_array_mut()) {
                if !a.is_empty() {
                    let i = r.below(a.len());
                    a[i] = match a[i].as_u64() {
                        Some(x) if r.below(2) == 0 => {
                            Value::from(x.wrapping_add(r.below(9) as u64).wrapping_sub(4))
                        }
                        _ => nasty_number(r),
                    };
                }
            }
        }
        5 => {
            o.insert(
                "data_offsets".into(),
                Value::from(vec![nasty_number(r), nasty_number(r), nasty_number(r)]),
            );
        }
        _ => {
            o.insert("extra".into(), nasty_number(r));
        }
    }
}

/// One mutated file from `seeds` (1 to 3 mutations stacked).
pub fn mutate(r: &mut Rng, f: &Format, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[r.below(seeds.len())].clone();
    for _ in 0..1 + r.below(3) {
        match r.below(10) {
            0 | 1 => {
                // Bit flips, mostly in the first bytes (the header), some anywhere.
                for _ in 0..1 + r.below(4) {
                    if b.is_empty() {
                        break;
                    }
                    let span = if r.below(3) == 0 {
                        b.len()
                    } else {
                        b.len().min(256)
                    };
                    let i = r.below(span);
                    b[i] ^= 1 << r.below(8);
                }
            }
            2 => b.truncate(r.below(b.len() + 1)),
            3 => {
                // The header length: off by a little, huge, or zero.
                if b.len() >= 8 {
                    let n = u64::from_le_bytes(b[..8].try_into().unwrap());
                    let m = match r.below(4) {
                        0 => n.wrapping_add(r.below(17) as u64).wrapping_sub(8),
                        1 => u64::MAX - r.below(3) as u64,
                        2 => b.len() as u64,
                        _ => 0,
                    };
                    b[..8].copy_from_slice(&m.to_le_bytes());
                }
            }
            4 => {
                let i = r.below(b.len() + 1);
                let k = 1 + r.below(8);
                let fill = r.next_u64().to_le_bytes();
                b.splice(i..i, fill[..k].iter().copied());
            }
            5 => {
                if !b.is_empty() {
                    let i = r.below(b.len());
                    let k = (1 + r.below(8)).min(b.len() - i);
                    b.drain(i..i + k);
                }
            }
            6 => {
                // Splice: this file's head, another seed's tail.
                let other = &seeds[r.below(seeds.len())];
                let i = r.below(b.len() + 1);
                let j = r.below(other.len() + 1);
                b.truncate(i);
                b.extend_from_slice(&other[j..]);
            }
            _ => {
                if let Some(j) = &f.json {
                    if let Some(mut v) = (j.get)(&b) {
                        (j.edit)(r, &mut v);
                        b = (j.put)(&b, &v);
                    }
                }
            }
        }
    }
    b
}

// --- runs ------------------------------------------------------------------------

#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub cases: u64,
    pub accepted: u64,
    /// Of `accepted`, those with a weight beyond [`EXTREME`].
    pub extreme: u64,
    pub refused: u64,
}

/// Fuzzes every format from `seed` until `more(cases so far)` says stop; the first
/// violation is returned with the case's seed so it can be replayed.
pub fn run(seed: u64, more: &mut dyn FnMut(u64) -> bool) -> Result<Stats, String> {
    let mut stats = Stats::default();
    let corpora: Vec<Vec<Vec<u8>>> = FORMATS.iter().map(|f| (f.seeds)()).collect();
    for (f, seeds) in FORMATS.iter().zip(&corpora) {
        for s in seeds {
            if check(f, s)? != Verdict::Accepted {
                return Err(format!("{}: a seed file is refused", f.name));
            }
        }
    }
    while more(stats.cases) {
        let case_seed = seed ^ stats.cases.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut r = Rng::new(case_seed);
        let k = (stats.cases % FORMATS.len() as u64) as usize;
        let bytes = mutate(&mut r, &FORMATS[k], &corpora[k]);
        match check(&FORMATS[k], &bytes) {
            Ok(Verdict::Accepted) => stats.accepted += 1,
            Ok(Verdict::AcceptedExtreme) => {
                stats.accepted += 1;
                stats.extreme += 1;
            }
            Ok(Verdict::Refused) => stats.refused += 1,
            Err(e) => return Err(format!("case {} (seed {case_seed:#x}): {e}", stats.cases)),
        }
        stats.cases += 1;
    }
    Ok(stats)
}
