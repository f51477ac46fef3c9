//! Model files with the program's own metadata.
//!
//! The library writes and reads the weights ([`Model::save`], [`Model::load`]); its
//! loader ignores `__metadata__` keys it does not know. The program adds its own keys
//! under an `rnncore.` prefix (`rnncore.task`, `rnncore.vocab`, ...) so that a model
//! carries what is needed to use it (a char-LM's vocabulary) in the same file: a
//! sidecar could be lost or mismatched, while `safe_open(path).metadata()` in Python
//! reads these keys as it reads the config keys.
//!
//! Saving and reading the keys go through the library (`Model::save_with_metadata`,
//! `rnncore::io::read_metadata`); this module adds and strips the prefix, and reads a
//! header's tensor list for `inspect`.

use crate::error::{fail, Context, Result};
use rnncore::Model;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Prefix of every key this program adds.
pub const PREFIX: &str = "rnncore.";

/// A safetensors header: its metadata and tensors (name, dtype, shape, byte range).
#[derive(Debug, Default)]
pub struct Header {
    pub metadata: BTreeMap<String, String>,
    /// In data order.
    pub tensors: Vec<TensorInfo>,
}

/// One tensor as the header describes it.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub offsets: (usize, usize),
}

/// Saves `model` to `path` with `extra` metadata (keys without the prefix, which is added).
pub fn save(model: &Model, path: &Path, extra: &[(&str, String)]) -> Result<()> {
    let keys: Vec<String> = extra.iter().map(|(k, _)| format!("{PREFIX}{k}")).collect();
    let pairs: Vec<(&str, &str)> = keys
        .iter()
        .zip(extra)
        .map(|(k, (_, v))| (k.as_str(), v.as_str()))
        .collect();
    model.save_with_metadata(path, &pairs)?;
    Ok(())
}

/// Loads a model and this program's metadata (keys without the prefix).
pub fn load(path: &Path) -> Result<(Model, BTreeMap<String, String>)> {
    let model = Model::load(path)?;
    let ours = rnncore::io::read_metadata(path)?
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(PREFIX).map(|k| (k.to_string(), v)))
        .collect();
    Ok((model, ours))
}

/// The header of the safetensors file at `path` (only its first bytes are read).
pub fn read_header(path: &Path) -> Result<Header> {
    use std::io::Read;
    let shown = path.display();
    let mut f = fs::File::open(path).context(|| format!("cannot open {shown}"))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .context(|| format!("{shown}: shorter than a safetensors header"))?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        fail!("{shown}: header length {n} is not plausible");
    }
    let mut json = vec![0u8; n as usize];
    f.read_exact(&mut json)
        .context(|| format!("{shown}: truncated header"))?;
    parse_header(&json).context(|| shown.to_string())
}

fn parse_header(json: &[u8]) -> Result<Header> {
    let v: Value = serde_json::from_slice(json).context(|| "header is not JSON".into())?;
    let Value::Object(map) = v else {
        fail!("header is not a JSON object");
    };
    let mut h = Header::default();
    for (k, v) in map {
        if k == "__metadata__" {
            let Value::Object(m) = v else {
                fail!("__metadata__ is not an object");
            };
            for (mk, mv) in m {
                let s = match mv {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                h.metadata.insert(mk, s);
            }
            continue;
        }
        let dtype = v["dtype"].as_str().unwrap_or("?").to_string();
        let shape = v["shape"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_u64())
                    .map(|d| d as usize)
                    .collect()
            })
            .unwrap_or_default();
        let off = |i: usize| v["data_offsets"][i].as_u64().unwrap_or(0) as usize;
        h.tensors.push(TensorInfo {
            name: k,
            dtype,
            shape,
            offsets: (off(0), off(1)),
        });
    }
    h.tensors.sort_by_key(|t| t.offsets);
    Ok(h)
}

/// Writes crash-safely through the library's [`rnncore::io::write_atomic`] (a temporary
/// file, fsync, rename), so a failed or killed write never leaves a partial file or,
/// after the next write to the same path, a temporary one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(rnncore::io::write_atomic(path, bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnncore::{CellKind, ModelConfig};

    #[test]
    fn metadata_round_trips_and_the_library_still_loads_the_file() {
        let model = Model::new(ModelConfig::new(CellKind::Gru, 3, 5, 2), 1).unwrap();
        let dir = std::env::temp_dir().join(format!("rnncore-cli-mf-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        let vocab = "ab\n\"é\\".to_string();
        save(
            &model,
            &path,
            &[("task", "charlm".into()), ("vocab", vocab.clone())],
        )
        .unwrap();
        let (back, meta) = load(&path).unwrap();
        assert_eq!(back.parameters(), model.parameters());
        assert_eq!(back.config(), model.config());
        assert_eq!(meta["vocab"], vocab);
        assert_eq!(meta["task"], "charlm");
        let h = read_header(&path).unwrap();
        assert_eq!(h.tensors.len(), 8);
        assert_eq!(h.tensors[0].name, "weight_ih_l0");
        assert_eq!(h.metadata["cell"], "gru");
        fs::remove_dir_all(&dir).unwrap();
    }
}
