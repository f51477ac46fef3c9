//! safetensors files: strict loading with errors that name the tensor, and atomic saving.
//!
//! Loading runs in three passes, none of which allocates by an unchecked size:
//!
//! 1. the file's size is read first (files over [`MAX_FILE_BYTES`] are refused), then
//!    the header is checked here with messages that name the tensor: header length
//!    within the file, JSON with no duplicate names, supported dtypes, offsets that
//!    tile the data exactly (no gap, overlap, truncation or trailing bytes);
//! 2. the `safetensors` crate (Hugging Face's reference reader) parses the same bytes
//!    and must agree, so rnncore accepts nothing the ecosystem would reject;
//! 3. names are resolved (one common prefix on the recurrent tensors, a head under
//!    `head.`/`fc.`/`linear.`/`out.`/`decoder.`), the config is taken from
//!    `__metadata__` and/or inferred from the shapes, every tensor is checked against
//!    the config's [`ParamLayout`], converted to f32 and checked finite.
//!
//! Saving writes the header itself rather than through `safetensors::serialize`, which
//! orders tensors by name and metadata in hash order: rnncore's files list tensors in
//! `state_dict()` order with the metadata keys in a fixed order, so saving the same
//! model twice gives the same bytes.

use crate::config::ParamLayout;
use crate::config::{CellKind, ModelConfig, OutputActivation, MAX_LAYERS};
use crate::error::{Error, Result};
use crate::model::Model;
use ::safetensors::SafeTensors;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

/// Largest file [`load`] reads: 8 GiB (two billion f32 parameters), far beyond any model
/// this crate runs, so a bogus or hostile path cannot make it allocate without bound.
pub const MAX_FILE_BYTES: u64 = 8 << 30;

/// Largest JSON header accepted: the reference implementation's limit (100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Module names a dense head may have in a file (`{prefix}.weight`, `{prefix}.bias`).
pub const HEAD_PREFIXES: [&str; 5] = ["head", "fc", "linear", "out", "decoder"];

macro_rules! format_err {
    ($($arg:tt)*) => { Error::Format(format!($($arg)*)) };
}

// ---------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------

/// Loads a model from a safetensors file; see [`Model::load`].
pub fn load(path: &Path) -> Result<Model> {
    let bytes = read_file(path)?;
    Model::from_bytes(&bytes).map_err(|e| match e {
        Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Reads a whole regular file of at most [`MAX_FILE_BYTES`], sizing the buffer from the
/// file system's length (never from the file's contents).
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display();
    super::atomic::remove_stale_temps(path);
    // Look before opening: opening a FIFO would block, a directory opens "fine" on Linux.
    let kind = fs::metadata(path).map_err(|e| Error::Io(format!("cannot open {shown}: {e}")))?;
    if kind.is_dir() {
        return Err(Error::Io(format!(
            "cannot load {shown}: it is a directory, not a model file"
        )));
    }
    if !kind.is_file() {
        return Err(Error::Io(format!(
            "cannot load {shown}: not a regular file"
        )));
    }
    let file = File::open(path).map_err(|e| Error::Io(format!("cannot open {shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Io(format!("cannot stat {shown}: {e}")))?;
    let len = meta.len();
    if len > MAX_FILE_BYTES {
        return Err(format_err!(
            "{shown} is {len} bytes, over the {MAX_FILE_BYTES}-byte limit for a model file"
        ));
    }
    let len = usize::try_from(len)
        .map_err(|_| Error::Alloc(format!("{shown}: {len} bytes do not fit in memory")))?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len)
        .map_err(|_| Error::Alloc(format!("{len} bytes to read {shown}")))?;
    // `take`: a file that grows while we read cannot make us read past the size we sized for.
    file.take(len as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Io(format!("cannot read {shown}: {e}")))?;
    Ok(bytes)
}

/// Parses a model from the bytes of a safetensors file; see [`Model::from_safetensors`].
pub fn from_safetensors(bytes: &[u8]) -> Result<Model> {
    let header = Header::parse(bytes)?;
    // Second opinion from the reference reader: it must accept what we accepted.
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format_err!("rejected by the safetensors reader: {e}"))?;
    let names = Names::resolve(&header.tensors)?;
    let meta = Meta::parse(header.metadata.as_deref().unwrap_or(&[]))?;
    let config = infer_config(&header.tensors, &names, &meta)?;
    let dense = super::dense::find(
        header
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice())),
        header.metadata.as_deref().unwrap_or(&[]),
    )?;
    let layout = ParamLayout::new(&config).map_err(|e| format_err!("{}", e.message()))?;
    let describe = || describe(&config, &meta);

    // Every expected tensor present with the expected shape; nothing else.
    let mut used = vec![false; header.tensors.len()];
    let mut sources = Vec::with_capacity(layout.entries().len());
    for e in layout.entries() {
        let Some(&i) = names.canonical.get(e.name.as_str()) else {
            return Err(missing(&names, &e.name, &describe()));
        };
        let t = &header.tensors[i];
        if t.shape != e.shape {
            return Err(format_err!(
                "tensor `{}` has shape {:?}, expected {:?} for {}",
                t.name,
                t.shape,
                e.shape,
                describe()
            ));
        }
        used[i] = true;
        sources.push(i);
    }
    for &i in &dense.sources {
        used[i] = true;
        sources.push(i);
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(format_err!(
            "unexpected tensor `{}`: not part of {}",
            header.tensors[i].name,
            describe()
        ));
    }

    let mut params = Vec::new();
    params
        .try_reserve_exact(layout.total())
        .map_err(|_| Error::Alloc(format!("{} parameters", layout.total())))?;
    for &i in &sources {
        let t = &header.tensors[i];
        let view = st
            .tensor(&t.name)
            .map_err(|e| format_err!("tensor `{}`: {e}", t.name))?;
        let start = params.len();
        convert(t, view.data(), &mut params)?;
        if let Some(j) = params[start..].iter().position(|v| !v.is_finite()) {
            return Err(format_err!(
                "tensor `{}` has a non-finite value ({}) at index {j}",
                t.name,
                params[start + j]
            ));
        }
    }
    let model = Model::with_layers(config, dense.layers, params);
    // Dropout between layers is a training setting PyTorch keeps outside the weights:
    // only the metadata (rnncore's own files) has it.
    let model = match meta.dropout {
        Some(p) if p > 0.0 => model.and_then(|m| m.with_dropout(p)),
        _ => model,
    };
    model.map_err(|e| match e {
        Error::Alloc(m) => Error::Alloc(m),
        other => Error::Format(other.message().to_string()),
    })
}

/// Element dtypes rnncore reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Dtype {
    F32,
    F16,
    Bf16,
    F64,
}

impl Dtype {
    fn from_name(s: &str) -> Option<Dtype> {
        match s {
            "F32" => Some(Dtype::F32),
            "F16" => Some(Dtype::F16),
            "BF16" => Some(Dtype::Bf16),
            "F64" => Some(Dtype::F64),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

/// One tensor entry of the header, checked against the file.
#[derive(Clone, Debug)]
struct RawTensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range within the data section.
    start: usize,
    end: usize,
}

/// The checked header.
#[derive(Debug)]
struct Header {
    /// `__metadata__` entries, in file order.
    metadata: Option<Vec<(String, String)>>,
    /// Tensors in file order.
    tensors: Vec<RawTensor>,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Header> {
        let file_len = bytes.len();
        let Some(len_bytes) = bytes.get(..8) else {
            return Err(format_err!(
                "file is {file_len} bytes, too short for a safetensors file (empty or truncated)"
            ));
        };
        let mut le = [0u8; 8];
        le.copy_from_slice(len_bytes);
        let n = u64::from_le_bytes(le);
        let after = (file_len - 8) as u64;
        if n > after {
            return Err(format_err!(
                "header length {n} exceeds the {after} bytes that follow it \
                 (truncated, or not a safetensors file)"
            ));
        }
        if n > MAX_HEADER_BYTES {
            return Err(format_err!(
                "header length {n} is over the {MAX_HEADER_BYTES}-byte limit"
            ));
        }
        let n = n as usize; // <= file_len
        let text = std::str::from_utf8(&bytes[8..8 + n])
            .map_err(|e| format_err!("header is not UTF-8: {e}"))?;
        let entries: Entries = serde_json::from_str(text)
            .map_err(|e| format_err!("header is not a valid JSON object: {e}"))?;
        let data_len = file_len - 8 - n;

        let mut metadata = None;
        let mut tensors = Vec::with_capacity(entries.0.len());
        for (key, value) in entries.0 {
            if key == "__metadata__" {
                metadata = Some(parse_metadata(value)?);
            } else {
                tensors.push(parse_tensor(key, &value, data_len)?);
            }
        }

        // The tensors must tile the data section exactly.
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| (tensors[i].start, tensors[i].end));
        let mut pos = 0usize;
        let mut prev: Option<&RawTensor> = None;
        for &i in &order {
            let t = &tensors[i];
            if t.start < pos {
                let p = prev.map_or("", |p| p.name.as_str());
                return Err(format_err!(
                    "tensors `{p}` and `{}` overlap (data bytes {}..{} and {}..{})",
                    t.name,
                    prev.map_or(0, |p| p.start),
                    pos,
                    t.start,
                    t.end
                ));
            }
            if t.start > pos {
                return Err(format_err!(
                    "data bytes {pos}..{} before tensor `{}` belong to no tensor",
                    t.start,
                    t.name
                ));
            }
            pos = t.end;
            prev = Some(t);
        }
        if pos != data_len {
            return Err(format_err!(
                "the file has {data_len} data bytes but its tensors cover {pos} \
                 ({} trailing bytes)",
                data_len - pos
            ));
        }
        Ok(Header { metadata, tensors })
    }
}

/// The top-level JSON object as ordered entries, refusing duplicate names (serde's maps
/// would silently keep the last one, and so would the `safetensors` crate).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate entry `{key}`")));
                    }
                    out.push((key, map.next_value::<Value>()?));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_metadata(value: Value) -> Result<Vec<(String, String)>> {
    let Value::Object(map) = value else {
        return Err(format_err!("`__metadata__` is not a JSON object"));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => Err(format_err!(
                "`__metadata__` entry `{k}` is {other}, expected a string"
            )),
        })
        .collect()
}

fn parse_tensor(name: String, value: &Value, data_len: usize) -> Result<RawTensor> {
    let field = |f: &str| {
        value
            .get(f)
            .ok_or_else(|| format_err!("tensor `{name}`: header entry has no `{f}`"))
    };
    let dtype_name = field("dtype")?
        .as_str()
        .ok_or_else(|| format_err!("tensor `{name}`: `dtype` is not a string"))?;
    let dtype = Dtype::from_name(dtype_name).ok_or_else(|| {
        format_err!("tensor `{name}` has dtype {dtype_name}; rnncore reads F32, F16, BF16 and F64")
    })?;
    let as_index = |v: &Value, what: &str| -> Result<usize> {
        v.as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .ok_or_else(|| format_err!("tensor `{name}`: {what} {v} is not a valid size"))
    };
    let shape = field("shape")?
        .as_array()
        .ok_or_else(|| format_err!("tensor `{name}`: `shape` is not an array"))?
        .iter()
        .map(|d| as_index(d, "dimension"))
        .collect::<Result<Vec<usize>>>()?;
    let offsets = field("data_offsets")?
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format_err!("tensor `{name}`: `data_offsets` is not [begin, end]"))?;
    let start = as_index(&offsets[0], "offset")?;
    let end = as_index(&offsets[1], "offset")?;
    if start > end {
        return Err(format_err!(
            "tensor `{name}`: data_offsets [{start}, {end}] run backwards"
        ));
    }
    if end > data_len {
        return Err(format_err!(
            "tensor `{name}` needs data bytes {start}..{end} but the file has only \
             {data_len} (truncated?)"
        ));
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format_err!("tensor `{name}`: shape {shape:?} overflows"))?;
    if bytes != end - start {
        return Err(format_err!(
            "tensor `{name}`: shape {shape:?} of {dtype_name} is {bytes} bytes, \
             but data_offsets [{start}, {end}] hold {}",
            end - start
        ));
    }
    Ok(RawTensor {
        name,
        dtype,
        shape,
        start,
        end,
    })
}

/// Appends the tensor's values, converted to f32, to `out`.
fn convert(t: &RawTensor, data: &[u8], out: &mut Vec<f32>) -> Result<()> {
    match t.dtype {
        Dtype::F32 => out.extend(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        Dtype::F16 => out.extend(
            data.chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        ),
        Dtype::Bf16 => out.extend(
            data.chunks_exact(2)
                .map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        ),
        Dtype::F64 => {
            for (j, b) in data.chunks_exact(8).enumerate() {
                let v = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                let x = v as f32;
                if v.is_finite() && !x.is_finite() {
                    return Err(format_err!(
                        "tensor `{}` has {v:e} at index {j}, out of f32 range",
                        t.name
                    ));
                }
                out.push(x);
            }
        }
    }
    Ok(())
}

/// IEEE binary16 to f32, exactly (every f16 value is an f32 value). Done by hand rather
/// than through the `half` crate: it is a few lines, tested on all 65536 bit patterns.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match exp {
        // Zero and subnormals: man · 2^-24, exact in f32.
        0 => sign * (man as f32) * f32::from_bits(0x3380_0000),
        // Inf and NaN (payload kept).
        0x1f => f32::from_bits((u32::from(h & 0x8000) << 16) | 0x7f80_0000 | (man << 13)),
        // Normal: rebias the exponent from 15 to 127.
        _ => f32::from_bits((u32::from(h & 0x8000) << 16) | ((exp + 112) << 23) | (man << 13)),
    }
}

/// bfloat16 to f32: bfloat16 is the top half of an f32.
pub(crate) fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// How each tensor of the file maps onto rnncore's names.
struct Names {
    /// Canonical name (`weight_ih_l0`, `head.weight`) -> index into the header's tensors.
    canonical: HashMap<String, usize>,
    /// The recurrent tensors' common prefix (`""`, `"lstm."`, ...).
    prefix: String,
    /// Highest layer index seen plus one; 0 when there is no recurrent tensor.
    layers: usize,
    /// Whether a reverse-direction tensor (`..._reverse`) was seen.
    reverse: bool,
}

impl Names {
    fn resolve(tensors: &[RawTensor]) -> Result<Names> {
        let mut canonical = HashMap::with_capacity(tensors.len());
        let mut prefix: Option<(&str, &str)> = None; // (prefix, first tensor with it)
        let mut head: Option<(&str, &str)> = None;
        let mut layers = 0usize;
        let mut reverse = false;
        for (i, t) in tensors.iter().enumerate() {
            let name = t.name.as_str();
            if super::dense::dense_name(name).is_some() {
                continue; // the dense layers around the stack: `super::dense`
            }
            let (pre, base) = name.split_at(name.rfind('.').map_or(0, |p| p + 1));
            if let Some((k, rev)) = recurrent_layer(base) {
                reverse |= rev;
                match prefix {
                    None => prefix = Some((pre, name)),
                    Some((p, first)) if p != pre => {
                        return Err(format_err!(
                            "tensors `{first}` and `{name}` have different prefixes: the \
                             recurrent tensors must share one (such as `lstm.`) or none"
                        ))
                    }
                    _ => {}
                }
                if k >= MAX_LAYERS {
                    return Err(format_err!(
                        "tensor `{name}`: layer {k} is over the limit of {MAX_LAYERS} layers"
                    ));
                }
                layers = layers.max(k + 1);
                canonical.insert(base.to_string(), i);
            } else if let Some((hp, field)) = head_field(name) {
                match head {
                    None => head = Some((hp, name)),
                    Some((p, first)) if p != hp => {
                        return Err(format_err!(
                            "tensors `{first}` and `{name}`: two heads? the head's weight and \
                             bias must share one name"
                        ))
                    }
                    _ => {}
                }
                canonical.insert(format!("head.{field}"), i);
            } else {
                return Err(unexpected_name(name));
            }
        }
        Ok(Names {
            canonical,
            prefix: prefix.map_or(String::new(), |(p, _)| p.to_string()),
            layers,
            reverse,
        })
    }

    /// How the file would spell canonical `name`.
    fn spelled(&self, name: &str) -> String {
        if name.starts_with("head.") {
            name.to_string()
        } else {
            format!("{}{name}", self.prefix)
        }
    }
}

/// `Some((k, reverse))` for `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
/// `bias_hh_l{k}` (k in canonical decimal: no sign, no leading zero), each optionally
/// with PyTorch's `_reverse` suffix of a bidirectional layer's reverse direction
/// (`reverse` true).
fn recurrent_layer(base: &str) -> Option<(usize, bool)> {
    let (base, reverse) = match base.strip_suffix("_reverse") {
        Some(b) => (b, true),
        None => (base, false),
    };
    let rest = base
        .strip_prefix("weight_")
        .or_else(|| base.strip_prefix("bias_"))?;
    let digits = rest
        .strip_prefix("ih_l")
        .or_else(|| rest.strip_prefix("hh_l"))
        .or_else(|| base.strip_prefix("weight_hr_l"))?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if canonical {
        digits.parse().ok().map(|k| (k, reverse))
    } else {
        None
    }
}

/// `Some((module, "weight" | "bias"))` for a head tensor name.
fn head_field(name: &str) -> Option<(&str, &str)> {
    let (module, field) = name.split_once('.')?;
    (HEAD_PREFIXES.contains(&module) && (field == "weight" || field == "bias"))
        .then_some((module, field))
}

fn unexpected_name(name: &str) -> Error {
    format_err!(
        "unexpected tensor `{name}`: expected weight_ih_l{{k}}, weight_hh_l{{k}}, \
         bias_ih_l{{k}}, bias_hh_l{{k}}, weight_hr_l{{k}} (LSTM projections) (each \
         optionally with _reverse, with one common prefix or none) and optionally \
         head.weight, head.bias (or fc., linear., out., decoder.)"
    )
}

fn missing(names: &Names, canonical: &str, describe: &str) -> Error {
    let spelled = names.spelled(canonical);
    // A bias missing next to its weight: the module was built with bias=False.
    let weight = canonical.replacen("bias", "weight", 1);
    let hint = if canonical.contains("bias") && names.canonical.contains_key(weight.as_str()) {
        " (modules built with bias=False are not supported: save zero biases instead)"
    } else {
        ""
    };
    format_err!("missing tensor `{spelled}`{hint} for {describe}")
}

/// The config keys found in `__metadata__`.
#[derive(Default, Debug)]
struct Meta {
    cell: Option<CellKind>,
    input_size: Option<usize>,
    hidden_size: Option<usize>,
    num_layers: Option<usize>,
    output_size: Option<usize>,
    output_activation: Option<OutputActivation>,
    bidirectional: Option<bool>,
    proj_size: Option<usize>,
    dropout: Option<f32>,
}

impl Meta {
    /// Reads the known keys; other keys (such as `format`) are ignored.
    fn parse(entries: &[(String, String)]) -> Result<Meta> {
        let mut m = Meta::default();
        for (k, v) in entries {
            match k.as_str() {
                "cell" => {
                    m.cell = Some(CellKind::from_name(v).ok_or_else(|| {
                        format_err!(
                            "metadata cell is {v:?}, expected rnn_tanh, rnn_relu, lstm, gru \
                             or gru_lbr"
                        )
                    })?)
                }
                "input_size" => m.input_size = Some(parse_size(k, v)?),
                "hidden_size" => m.hidden_size = Some(parse_size(k, v)?),
                "num_layers" => m.num_layers = Some(parse_size(k, v)?),
                "output_size" => m.output_size = Some(parse_size(k, v)?),
                "proj_size" => m.proj_size = Some(parse_size(k, v)?),
                "dropout" => {
                    let p = v.parse::<f32>().ok().filter(|p| (0.0..1.0).contains(p));
                    m.dropout = Some(p.ok_or_else(|| {
                        format_err!("metadata dropout is {v:?}, expected a number in 0 <= p < 1")
                    })?)
                }
                "bidirectional" => {
                    m.bidirectional = Some(match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(format_err!(
                                "metadata bidirectional is {v:?}, expected true or false"
                            ))
                        }
                    })
                }
                "output_activation" => {
                    m.output_activation = Some(OutputActivation::from_name(v).ok_or_else(|| {
                        format_err!(
                            "metadata output_activation is {v:?}, expected identity or softmax"
                        )
                    })?)
                }
                _ => {}
            }
        }
        Ok(m)
    }

    /// The keys that came from the metadata, for messages.
    fn given(&self) -> Vec<&'static str> {
        [
            ("cell", self.cell.is_some()),
            ("input_size", self.input_size.is_some()),
            ("hidden_size", self.hidden_size.is_some()),
            ("num_layers", self.num_layers.is_some()),
            ("output_size", self.output_size.is_some()),
            ("output_activation", self.output_activation.is_some()),
            ("bidirectional", self.bidirectional.is_some()),
            ("proj_size", self.proj_size.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, g)| g.then_some(k))
        .collect()
    }
}

fn parse_size(key: &str, v: &str) -> Result<usize> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format_err!(
            "metadata {key} is {v:?}, expected a non-negative integer"
        ));
    }
    v.parse()
        .map_err(|_| format_err!("metadata {key} is {v}, too large"))
}

/// "cell lstm, input_size 7, ... (cell, hidden_size from the file's metadata)".
fn describe(c: &ModelConfig, meta: &Meta) -> String {
    let given = meta.given();
    let source = if given.is_empty() {
        "inferred from the shapes".to_string()
    } else if given.len() == 8 {
        "from the file's metadata".to_string()
    } else {
        format!("{} from the file's metadata", given.join(", "))
    };
    format!(
        "cell {}, input_size {}, hidden_size {}, num_layers {}, output_size {}{}{} ({source})",
        c.cell.name(),
        c.input_size,
        c.hidden_size,
        c.num_layers,
        c.output_size,
        if c.proj_size > 0 {
            format!(", proj_size {}", c.proj_size)
        } else {
            String::new()
        },
        if c.bidirectional {
            ", bidirectional"
        } else {
            ""
        }
    )
}

/// The config: metadata where given, otherwise inferred from the shapes.
fn infer_config(tensors: &[RawTensor], names: &Names, meta: &Meta) -> Result<ModelConfig> {
    if names.layers == 0 {
        return Err(format_err!(
            "no recurrent tensors (weight_ih_l0, weight_hh_l0, ...) in the file"
        ));
    }
    let get = |canonical: &str| -> Result<&RawTensor> {
        names
            .canonical
            .get(canonical)
            .map(|&i| &tensors[i])
            .ok_or_else(|| format_err!("missing tensor `{}`", names.spelled(canonical)))
    };
    let matrix = |t: &RawTensor| -> Result<(usize, usize)> {
        match t.shape[..] {
            [r, c] => Ok((r, c)),
            _ => Err(format_err!(
                "tensor `{}` has shape {:?}, expected a matrix",
                t.name,
                t.shape
            )),
        }
    };
    // LSTM projections: `weight_hr_l0` is `[P][H]` (and `weight_hh_l0` `[4H][P]`).
    let hr = match names.canonical.get("weight_hr_l0") {
        Some(&i) => Some(matrix(&tensors[i])?),
        None => None,
    };
    let proj_size = match meta.proj_size {
        Some(p) => p,
        None => hr.map_or(0, |(p, _)| p),
    };
    if proj_size == 0 && hr.is_some() {
        return Err(format_err!(
            "metadata proj_size is 0, but the file has LSTM projections (`weight_hr_l0`)"
        ));
    }
    let hidden_size = match (meta.hidden_size, hr) {
        (Some(h), _) => h,
        (None, Some((_, h))) => h,
        (None, None) => matrix(get("weight_hh_l0")?)?.1,
    };
    let cell = match meta.cell {
        Some(c) => c,
        None => {
            let t = get("weight_hh_l0")?;
            let rows = matrix(t)?.0;
            let g = if hidden_size > 0 && rows % hidden_size == 0 {
                rows / hidden_size
            } else {
                0
            };
            match g {
                4 => CellKind::Lstm,
                3 => CellKind::GruLbr,
                1 => CellKind::RnnTanh,
                _ => {
                    return Err(format_err!(
                        "tensor `{}` has {rows} rows: not 1 (RNN), 3 (GRU) or 4 (LSTM) times \
                         hidden_size {hidden_size}",
                        t.name
                    ))
                }
            }
        }
    };
    let input_size = match meta.input_size {
        Some(i) => i,
        None => matrix(get("weight_ih_l0")?)?.1,
    };
    let num_layers = meta.num_layers.unwrap_or(names.layers);
    let output_size = match meta.output_size {
        Some(o) => o,
        None => match (
            names.canonical.get("head.weight"),
            names.canonical.get("head.bias"),
        ) {
            (Some(&i), _) => matrix(&tensors[i])?.0,
            (None, Some(&i)) => tensors[i].shape.first().copied().unwrap_or(0),
            (None, None) => 0,
        },
    };
    let output_activation = meta.output_activation.unwrap_or(OutputActivation::Identity);
    // Without the metadata key (files from PyTorch, and from rnncore before it wrote
    // one), the names decide: PyTorch names a reverse direction's tensors `_reverse`.
    let bidirectional = meta.bidirectional.unwrap_or(names.reverse);
    if !bidirectional && names.reverse {
        return Err(format_err!(
            "metadata bidirectional is false, but the file has a reverse direction's tensors \
             (names ending in `_reverse`)"
        ));
    }
    let config = ModelConfig {
        cell,
        input_size,
        hidden_size,
        num_layers,
        output_size,
        output_activation,
        bidirectional,
        proj_size,
    };
    config.validate().map_err(|e| {
        format_err!(
            "the file describes an invalid model ({}): {}",
            describe(&config, meta),
            e.message()
        )
    })?;
    Ok(config)
}

// ---------------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------------

/// The model as safetensors bytes; see [`Model::to_safetensors`].
pub fn to_safetensors(model: &Model) -> Result<Vec<u8>> {
    to_safetensors_with_metadata(model, &[])
}

/// The model as safetensors bytes with `extra` entries added to `__metadata__` (after the
/// config keys, which they may not replace); see [`Model::to_safetensors_with_metadata`].
pub fn to_safetensors_with_metadata(model: &Model, extra: &[(&str, &str)]) -> Result<Vec<u8>> {
    let c = model.config();
    let json = |s: &str| Value::String(s.to_string()).to_string();
    let config_keys = [
        "cell",
        "input_size",
        "hidden_size",
        "num_layers",
        "output_size",
        "output_activation",
        "bidirectional",
        "proj_size",
        "dropout",
    ];
    for (i, (k, _)) in extra.iter().enumerate() {
        if config_keys.contains(k) || super::dense::KEYS.contains(k) {
            return Err(crate::error::invalid!(
                "metadata key `{k}` is a config key, written by rnncore itself"
            ));
        }
        if extra[..i].iter().any(|(other, _)| other == k) {
            return Err(crate::error::invalid!("metadata key `{k}` is given twice"));
        }
    }
    let mut meta = vec![
        ("cell", c.cell.name().to_string()),
        ("input_size", c.input_size.to_string()),
        ("hidden_size", c.hidden_size.to_string()),
        ("num_layers", c.num_layers.to_string()),
        ("output_size", c.output_size.to_string()),
        ("output_activation", c.output_activation.name().to_string()),
        ("bidirectional", c.bidirectional.to_string()),
        ("proj_size", c.proj_size.to_string()),
        ("dropout", model.dropout().to_string()),
    ];
    meta.extend(super::dense::metadata(model));
    let mut header = String::from("{\"__metadata__\":{");
    let entries = meta
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra.iter().copied());
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            header.push(',');
        }
        header += &format!("{}:{}", json(k), json(v));
    }
    header.push('}');
    for e in model.layout().entries() {
        let shape: Vec<String> = e.shape.iter().map(|d| d.to_string()).collect();
        header += &format!(
            ",{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            json(&e.name),
            shape.join(","),
            4 * e.offset,
            4 * (e.offset + e.len)
        );
    }
    header.push('}');
    // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let params = model.parameters();
    let total = 8 + header.len() + 4 * params.len();
    let mut out = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| Error::Alloc(format!("{total} bytes for a model file")))?;
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in params {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Saves the model atomically; see [`Model::save`].
pub fn save(model: &Model, path: &Path) -> Result<()> {
    save_with_metadata(model, path, &[])
}

/// Saves the model atomically with `extra` metadata; see [`Model::save_with_metadata`].
pub fn save_with_metadata(model: &Model, path: &Path, extra: &[(&str, &str)]) -> Result<()> {
    let bytes = to_safetensors_with_metadata(model, extra)?;
    super::atomic::write_atomic(path, &bytes)
}

/// The `__metadata__` entries of the safetensors file at `path`, in file order (the
/// header is checked as [`load`] checks it; an absent `__metadata__` gives none).
pub fn read_metadata(path: &Path) -> Result<Vec<(String, String)>> {
    let bytes = read_file(path)?;
    Header::parse(&bytes)
        .map(|h| h.metadata.unwrap_or_default())
        .map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
            other => other,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_matches_its_definition_on_every_bit_pattern() {
        for h in 0..=u16::MAX {
            let got = f16_to_f32(h);
            let sign = if h & 0x8000 != 0 { -1.0f64 } else { 1.0 };
            let (e, m) = (i32::from((h >> 10) & 0x1f), f64::from(h & 0x3ff));
            if e == 31 {
                assert_eq!(got.is_nan(), m != 0.0, "{h:#06x}");
                assert_eq!(got.is_infinite(), m == 0.0, "{h:#06x}");
                assert_eq!(got.is_sign_negative(), sign < 0.0, "{h:#06x}");
                continue;
            }
            let want = if e == 0 {
                sign * m * 2f64.powi(-24)
            } else {
                sign * (1024.0 + m) * 2f64.powi(e - 25)
            };
            assert_eq!(got as f64, want, "{h:#06x}");
            assert_eq!(got.is_sign_negative(), sign < 0.0, "{h:#06x}");
        }
    }

    #[test]
    fn bf16_is_the_top_half_of_f32() {
        for v in [0.0f32, -0.0, 1.0, -2.5, 3.0e38, 1.0e-40, f32::INFINITY] {
            assert_eq!(
                bf16_to_f32((v.to_bits() >> 16) as u16).to_bits(),
                v.to_bits() & 0xffff_0000
            );
        }
    }
}
