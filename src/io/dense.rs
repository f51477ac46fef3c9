//! The dense layers and skip connection in safetensors files (see [`crate::layers`]).
//!
//! | tensor | shape |
//! | --- | --- |
//! | `pre.{k}.weight`, `pre.{k}.bias` | `[out, in]`, `[out]`: dense layer `k` before the stack |
//! | `post.{k}.weight`, `post.{k}.bias` | `[out, in]`, `[out]`: dense layer `k` after the stack |
//!
//! | `__metadata__` key | value |
//! | --- | --- |
//! | `pre_activations` | one activation name per pre layer, comma-separated (`tanh,relu`) |
//! | `post_activations` | the same for the post layers |
//! | `skip` | `true` when the model's input is added to its output |
//!
//! The config keys (`input_size`, `output_size`, ...) keep describing the recurrent stack
//! and its head. The activation keys are required when the tensors are present (the
//! loader does not guess an activation), and `k` counts from 0 without gaps.
#![forbid(unsafe_code)]

use crate::error::{Error, Result};
use crate::layers::{Activation, Dense, Layers};
use crate::model::Model;

/// Metadata keys written for the layers.
pub(crate) const KEYS: [&str; 3] = ["pre_activations", "post_activations", "skip"];

/// `Some((is_post, k, is_bias))` for `pre.{k}.weight`, `post.{k}.bias`, ...
pub(crate) fn dense_name(name: &str) -> Option<(bool, usize, bool)> {
    let (side, rest) = name.split_once('.')?;
    let post = match side {
        "pre" => false,
        "post" => true,
        _ => return None,
    };
    let (k, field) = rest.split_once('.')?;
    let canonical =
        !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) && (k == "0" || !k.starts_with('0'));
    if !canonical {
        return None;
    }
    let bias = match field {
        "weight" => false,
        "bias" => true,
        _ => return None,
    };
    Some((post, k.parse().ok()?, bias))
}

/// The layers a file's dense tensors describe, and the indices of those tensors in
/// parameter order.
pub(crate) struct Found {
    pub layers: Layers,
    pub sources: Vec<usize>,
}

fn activations(meta: &[(String, String)], key: &str, n: usize) -> Result<Vec<Activation>> {
    let Some((_, v)) = meta.iter().find(|(k, _)| k == key) else {
        if n == 0 {
            return Ok(Vec::new());
        }
        return Err(Error::Format(format!(
            "the file has {n} dense layer(s) `{}.*` but no `{key}` in its metadata",
            &key[..key.find('_').unwrap_or(0)]
        )));
    };
    let list: Vec<&str> = if v.is_empty() {
        Vec::new()
    } else {
        v.split(',').collect()
    };
    if list.len() != n {
        return Err(Error::Format(format!(
            "metadata {key} names {} activation(s) but the file has {n} such layer(s)",
            list.len()
        )));
    }
    list.iter()
        .map(|a| {
            Activation::from_name(a.trim()).ok_or_else(|| {
                Error::Format(format!(
                    "metadata {key}: unknown activation {a:?} (expected identity, tanh, relu, \
                     sigmoid, elu or softmax)"
                ))
            })
        })
        .collect()
}

/// Finds the dense tensors among `tensors` (name, shape) and reads the layers' metadata.
pub(crate) fn find<'a>(
    tensors: impl Iterator<Item = (&'a str, &'a [usize])>,
    meta: &[(String, String)],
) -> Result<Found> {
    // per side, per layer k: (weight index, bias index, weight shape, bias shape)
    type Slot<'s> = (Option<usize>, Option<usize>, &'s [usize], &'s [usize]);
    let mut sides: [Vec<Slot<'a>>; 2] = [Vec::new(), Vec::new()];
    for (i, (name, shape)) in tensors.enumerate() {
        let Some((post, k, bias)) = dense_name(name) else {
            continue;
        };
        if k >= crate::layers::MAX_DENSE {
            return Err(Error::Format(format!(
                "tensor `{name}`: at most {} dense layers on each side",
                crate::layers::MAX_DENSE
            )));
        }
        let side = &mut sides[usize::from(post)];
        if side.len() <= k {
            side.resize(k + 1, (None, None, &[], &[]));
        }
        let slot = &mut side[k];
        if bias {
            slot.1 = Some(i);
            slot.3 = shape;
        } else {
            slot.0 = Some(i);
            slot.2 = shape;
        }
    }
    let skip = match meta
        .iter()
        .find(|(k, _)| k == "skip")
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(Error::Format(format!(
                "metadata skip is {v:?}, expected true or false"
            )))
        }
    };
    let mut lists = [Vec::new(), Vec::new()];
    let mut sources = Vec::new();
    for (s, side) in sides.iter().enumerate() {
        let part = if s == 0 { "pre" } else { "post" };
        let key = if s == 0 {
            "pre_activations"
        } else {
            "post_activations"
        };
        let acts = activations(meta, key, side.len())?;
        for (k, &(w, b, ws, bs)) in side.iter().enumerate() {
            let (Some(w), Some(b)) = (w, b) else {
                let which = if w.is_none() { "weight" } else { "bias" };
                return Err(Error::Format(format!(
                    "missing tensor `{part}.{k}.{which}`"
                )));
            };
            let [out, inp] = ws[..] else {
                return Err(Error::Format(format!(
                    "tensor `{part}.{k}.weight` has shape {ws:?}, expected [out, in]"
                )));
            };
            if bs != [out] {
                return Err(Error::Format(format!(
                    "tensor `{part}.{k}.bias` has shape {bs:?}, expected [{out}]"
                )));
            }
            lists[s].push(Dense::new(inp, out, acts[k]));
            sources.extend([w, b]);
        }
    }
    let [pre, post] = lists;
    Ok(Found {
        layers: Layers { pre, post, skip },
        sources,
    })
}

/// The metadata entries describing `model`'s layers (none for a plain model).
pub(crate) fn metadata(model: &Model) -> Vec<(&'static str, String)> {
    let Some(l) = model.layers() else {
        return Vec::new();
    };
    let names = |v: &[Dense]| {
        v.iter()
            .map(|d| d.activation.name())
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        ("pre_activations", names(&l.pre)),
        ("post_activations", names(&l.post)),
        ("skip", l.skip.to_string()),
    ]
}
