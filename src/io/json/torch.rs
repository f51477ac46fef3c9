//! PyTorch `state_dict`s written as JSON (every tensor a nested list, names as PyTorch
//! gives them):
//!
//! - RTNeural's PyTorch helper files (`models/*_torch.json` in RTNeural; read there by
//!   `torch_helpers::loadLSTM`/`loadGRU`/`loadDense`): the whole file is the state_dict;
//!   recurrent modules (`{module}.weight_ih_l{k}`, ...) in file order form the stack and
//!   one linear module (`{module}.weight`, `.bias`) may follow it.
//! - GuitarML / Automated-GuitarAmpModelling (CoreAudioML `networks.SimpleRNN.save_model`):
//!   `{"model_data": {"model": "SimpleRNN", "unit_type", "input_size", "hidden_size",
//!   "num_layers", "output_size", "skip", "bias_fl"}, "state_dict": {"rec.*", "lin.*"}}`;
//!   the model is `lin(rec(x)) + x[..skip]` (skip = 0: no residual).
//!
//! PyTorch's layout and gate order are rnncore's, so nothing is permuted. The cell comes
//! from the gate count (4: LSTM, 3: PyTorch's GRU, linear-before-reset; 1: `nn.RNN`,
//! tanh) or from `unit_type`. A state_dict does not record activations, so a linear layer
//! is read only as the model's last layer (identity), and nothing else is guessed.

use super::{bad, matrix, vector, Builder, DenseW, Recurrent};
use crate::config::CellKind;
use crate::error::Result;
use crate::layers::{Activation, Dense};
use crate::model::Model;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A JSON object's entries in file order (serde_json's map sorts them).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut out: Vec<(String, Value)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate entry `{key}`")));
                    }
                    out.push((key, map.next_value::<Value>()?));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses RTNeural's PyTorch helper JSON from the file's bytes (module order matters).
pub fn parse_torch_bytes(bytes: &[u8]) -> Result<Model> {
    let Ordered(entries) =
        serde_json::from_slice(bytes).map_err(|e| bad!("not valid JSON: {e}"))?;
    let refs: Vec<(&str, &Value)> = entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
    read(&refs, None)
}

/// A GuitarML state_dict: the `rec.*` module, then `lin.*` (serde_json's map sorts names).
fn parse_state_dict(obj: &Map<String, Value>, expect: &Expect) -> Result<Model> {
    let mut refs: Vec<(&str, &Value)> = obj.iter().map(|(k, v)| (k.as_str(), v)).collect();
    refs.sort_by_key(|(k, _)| k.starts_with("lin."));
    read(&refs, Some(expect))
}

/// What a GuitarML file's `model_data` promises about its state_dict.
pub struct Expect {
    cell: CellKind,
    input_size: usize,
    hidden_size: usize,
    num_layers: usize,
    output_size: usize,
    skip: bool,
    bias: bool,
}

/// One module's tensors: name, field, value.
struct Module<'a> {
    name: &'a str,
    fields: Vec<(&'a str, &'a Value)>,
}

fn read(entries: &[(&str, &Value)], expect: Option<&Expect>) -> Result<Model> {
    // Group by module (the name before the last dot), in order of first appearance.
    let mut modules: Vec<Module<'_>> = Vec::new();
    for &(key, v) in entries {
        let (module, field) = key.rsplit_once('.').unwrap_or(("", key));
        match modules.iter_mut().find(|m| m.name == module) {
            Some(m) => m.fields.push((field, v)),
            None => modules.push(Module {
                name: module,
                fields: vec![(field, v)],
            }),
        }
    }
    let mut b = Builder::default();
    let mut head_seen: Option<&str> = None;
    for m in &modules {
        let recurrent = m.fields.iter().any(|(f, _)| f.starts_with("weight_ih_l"));
        if let Some(h) = head_seen {
            return Err(bad!(
                "module `{}` follows the linear layer `{h}`: a state_dict does not say which \
                 activation sits between them, so only a final linear layer is read",
                m.name
            ));
        }
        if recurrent {
            read_recurrent(m, &mut b, expect)?;
        } else {
            if b.rec.is_empty() {
                return Err(bad!(
                    "module `{}` comes before the recurrent layers: a state_dict does not say \
                     which activation follows it, so only a final linear layer is read",
                    m.name
                ));
            }
            read_linear(m, &mut b, expect)?;
            head_seen = Some(m.name);
        }
    }
    if let Some(e) = expect {
        let layers = b.rec.len();
        if layers != e.num_layers {
            return Err(bad!(
                "model_data says num_layers {}, the state_dict holds {layers}",
                e.num_layers
            ));
        }
        if b.post.is_empty() {
            return Err(bad!("missing tensor `lin.weight`"));
        }
        if let Some(r) = b.rec.first() {
            if r.hidden_size != e.hidden_size {
                return Err(bad!(
                    "model_data says hidden_size {}, the weights hold {}",
                    e.hidden_size,
                    r.hidden_size
                ));
            }
        }
        if e.skip {
            b.skip = true;
        }
    }
    b.build()
}

fn read_recurrent<'a>(m: &Module<'a>, b: &mut Builder, expect: Option<&Expect>) -> Result<()> {
    let mut k = 0;
    let mut used = 0;
    loop {
        let get = |base: &str| {
            let name = format!("{base}_l{k}");
            m.fields.iter().find(|(f, _)| *f == name).map(|(_, v)| *v)
        };
        let Some(wih) = get("weight_ih") else { break };
        let full = |base: &str| {
            if m.name.is_empty() {
                format!("{base}_l{k}")
            } else {
                format!("{}.{base}_l{k}", m.name)
            }
        };
        let whh = get("weight_hh").ok_or_else(|| bad!("missing tensor `{}`", full("weight_hh")))?;
        let (w_ih, gh, inp) = matrix(wih, &full("weight_ih"))?;
        let (w_hh, gh2, h) = matrix(whh, &full("weight_hh"))?;
        if gh2 != gh || h == 0 || gh % h != 0 {
            return Err(bad!(
                "`{}` is [{gh2}][{h}] and `{}` is [{gh}][{inp}]: not the shapes of one \
                 recurrent layer",
                full("weight_hh"),
                full("weight_ih")
            ));
        }
        let cell = match (gh / h, expect.map(|e| e.cell)) {
            (g, Some(c)) if g == c.gates() => c,
            (g, Some(c)) => {
                return Err(bad!(
                    "`{}` has {g} gate blocks, but model_data says {}",
                    full("weight_hh"),
                    c.name()
                ))
            }
            (4, None) => CellKind::Lstm,
            (3, None) => CellKind::GruLbr,
            (1, None) => CellKind::RnnTanh,
            (g, None) => {
                return Err(bad!(
                    "`{}` has {gh} rows, {g} times hidden_size {h}: not an LSTM (4), GRU (3) \
                     or RNN (1)",
                    full("weight_hh")
                ))
            }
        };
        let bias = |base: &str| -> Result<Option<Vec<f32>>> {
            get(base).map(|v| vector(v, &full(base))).transpose()
        };
        let (b_ih, b_hh) = match (bias("bias_ih")?, bias("bias_hh")?) {
            (Some(a), Some(c)) => (a, c),
            // A module built with bias=False: zero biases compute the same thing.
            (None, None) => (vec![0.0; gh], vec![0.0; gh]),
            (None, Some(_)) => return Err(bad!("missing tensor `{}`", full("bias_ih"))),
            (Some(_), None) => return Err(bad!("missing tensor `{}`", full("bias_hh"))),
        };
        used += 2 + usize::from(get("bias_ih").is_some()) + usize::from(get("bias_hh").is_some());
        b.recurrent(Recurrent {
            cell,
            input_size: inp,
            hidden_size: h,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            what: format!("`{}`", full("weight_ih")),
        })?;
        k += 1;
    }
    if used != m.fields.len() {
        let known = |f: &str| {
            ["weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"]
                .iter()
                .any(|p| {
                    f.strip_prefix(p)
                        .is_some_and(|d| d.parse::<usize>().is_ok_and(|n| n < k))
                })
        };
        let odd = m
            .fields
            .iter()
            .find(|(f, _)| !known(f))
            .map_or("?", |(f, _)| *f);
        let why = if odd.ends_with("_reverse") {
            " (bidirectional layers are not supported)"
        } else if odd.starts_with("weight_hr") {
            " (LSTM projections are not supported)"
        } else {
            ""
        };
        return Err(bad!(
            "unexpected tensor `{}.{odd}` in recurrent module `{}`{why}",
            m.name,
            m.name
        ));
    }
    Ok(())
}

fn read_linear(m: &Module<'_>, b: &mut Builder, expect: Option<&Expect>) -> Result<()> {
    let name = |f: &str| format!("{}.{f}", m.name);
    let mut weight = None;
    let mut bias = None;
    for &(f, v) in &m.fields {
        match f {
            "weight" => weight = Some(v),
            "bias" => bias = Some(v),
            other => {
                return Err(bad!(
                    "unexpected tensor `{}`: rnncore reads recurrent layers and a final \
                     linear layer (weight, bias)",
                    name(other)
                ))
            }
        }
    }
    let w = weight.ok_or_else(|| bad!("missing tensor `{}`", name("weight")))?;
    let (weight, out, inp) = matrix(w, &name("weight"))?;
    let bias = match bias {
        Some(v) => vector(v, &name("bias"))?,
        None if expect.is_some_and(|e| e.bias) => {
            return Err(bad!(
                "missing tensor `{}` (model_data says bias_fl)",
                name("bias")
            ))
        }
        None => vec![0.0; out],
    };
    if bias.len() != out {
        return Err(bad!(
            "`{}` has {} values, expected {out}",
            name("bias"),
            bias.len()
        ));
    }
    if let Some(e) = expect {
        if out != e.output_size || inp != e.hidden_size {
            return Err(bad!(
                "`{}` is [{out}][{inp}], but model_data says output_size {} and hidden_size {}",
                name("weight"),
                e.output_size,
                e.hidden_size
            ));
        }
    }
    b.dense(DenseW {
        dense: Dense::new(inp, out, Activation::Identity),
        weight,
        bias,
    });
    Ok(())
}

/// Parses a GuitarML / Automated-GuitarAmpModelling file.
pub fn parse_guitarml(v: &Value) -> Result<Model> {
    let md = v
        .get("model_data")
        .and_then(Value::as_object)
        .ok_or_else(|| bad!("`model_data` is not an object"))?;
    let sd = v
        .get("state_dict")
        .and_then(Value::as_object)
        .ok_or_else(|| bad!("missing `state_dict` object (the file holds no weights)"))?;
    match md.get("model").and_then(Value::as_str) {
        Some("SimpleRNN") => {}
        Some(other) => {
            return Err(bad!(
                "model_data.model is {other:?}; rnncore reads SimpleRNN (a recurrent unit and \
                 a linear layer)"
            ))
        }
        None => return Err(bad!("missing model_data.model")),
    }
    let unit = md
        .get("unit_type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad!("missing model_data.unit_type"))?;
    let cell = match unit {
        "LSTM" => CellKind::Lstm,
        "GRU" => CellKind::GruLbr,
        "RNN" => CellKind::RnnTanh,
        other => {
            return Err(bad!(
                "model_data.unit_type is {other:?}; expected LSTM, GRU or RNN"
            ))
        }
    };
    let input_size = super::size(md.get("input_size"), "model_data.input_size")?;
    let output_size = super::size(md.get("output_size"), "model_data.output_size")?;
    let skip = match md.get("skip") {
        None | Some(Value::Bool(false)) => 0,
        Some(Value::Bool(true)) => 1,
        Some(s) => super::size(Some(s), "model_data.skip")?,
    };
    if skip != 0 && (skip != input_size || skip != output_size) {
        return Err(bad!(
            "model_data.skip is {skip} with input_size {input_size} and output_size \
             {output_size}: rnncore adds the whole input to the output, so all three must agree"
        ));
    }
    let e = Expect {
        cell,
        input_size,
        hidden_size: super::size(md.get("hidden_size"), "model_data.hidden_size")?,
        num_layers: md
            .get("num_layers")
            .map_or(Ok(1), |v| super::size(Some(v), "model_data.num_layers"))?,
        output_size,
        skip: skip != 0,
        bias: md.get("bias_fl").and_then(Value::as_bool).unwrap_or(true),
    };
    for k in sd.keys() {
        if !(k.starts_with("rec.") || k.starts_with("lin.")) {
            return Err(bad!(
                "unexpected tensor `{k}`: a SimpleRNN state_dict holds rec.* and lin.*"
            ));
        }
    }
    let m = parse_state_dict(sd, &e)?;
    if m.input_size() != e.input_size {
        return Err(bad!(
            "model_data says input_size {}, the weights take {}",
            e.input_size,
            m.input_size()
        ));
    }
    Ok(m)
}
