//! `rnn_model_desc`: the versioned model description, and the two entry points that take
//! and give it (`rnn_model_new_desc`, `rnn_model_describe`).
//!
//! Everything that turns a description into the Rust model and back is here:
//! `read_desc` / `write_desc` apply the size rules, `ModelSpec::from_desc` maps a
//! description to the core's config and layers (the one place to wire a new core field:
//! every field of the description maps to the core there), and `describe` maps a model
//! back.

use crate::config::{CellKind, ModelConfig, OutputActivation, MAX_DIM};
use crate::ffi::boundary::{check_null, ffi_boundary, try_ref, write_out, Failure, FfiResult};
use crate::ffi::model::rnn_model;
use crate::ffi::types::{
    rnn_dense, rnn_model_desc, rnn_status, RNN_MAX_DENSE, RNN_MODEL_DESC_SIZE_V1,
};
use crate::layers::{Activation, Dense, Layers};
use crate::model::Model;

/// The largest struct_size accepted: far above any version, it catches an uninitialised
/// struct_size before the library reads that far into the caller's memory.
const MAX_STRUCT_SIZE: u32 = 4096;

/// The library's own `sizeof(rnn_model_desc)`.
const OWN_SIZE: usize = std::mem::size_of::<rnn_model_desc>();

/// The numbers of `rnn_activation`, in order.
const ACTIVATIONS: [Activation; 6] = [
    Activation::Identity,
    Activation::Tanh,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Elu,
    Activation::Softmax,
];

// rnn_model_describe works for every model because the struct holds as many dense layers
// as rnncore allows. Raising the core's limit above RNN_MAX_DENSE stops the build here:
// first decide what describe does with the extra layers (today: RNN_ERR_INVALID, see
// `describe_parts`) and say so in its docs and the README.
const _: () = assert!(crate::layers::MAX_DENSE <= RNN_MAX_DENSE);

/// The `rnn_activation` number of an activation.
fn activation_number(a: Activation) -> u32 {
    let i = ACTIVATIONS
        .iter()
        .position(|&b| b == a)
        .expect("every activation has a number");
    i as u32
}

/// `RNN_ERR_INVALID` unless `size` is a struct_size this library accepts.
fn check_struct_size(size: u32) -> FfiResult<()> {
    if (RNN_MODEL_DESC_SIZE_V1..=MAX_STRUCT_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(Failure::invalid(format!(
            "desc->struct_size is {size}, expected sizeof(rnn_model_desc): at least \
             {RNN_MODEL_DESC_SIZE_V1} (the first version) and at most {MAX_STRUCT_SIZE} \
             (set it before the call)"
        )))
    }
}

/// Reads a caller's description under the size rules (see `rnn_model_desc`): the bytes
/// its struct_size covers, the rest zero; bytes past the library's own size must be zero.
///
/// # Safety
/// `p` is non-NULL and points to `p->struct_size` readable bytes (any alignment).
pub(crate) unsafe fn read_desc(p: *const rnn_model_desc) -> FfiResult<rnn_model_desc> {
    // SAFETY: non-NULL and at least the first field readable (caller).
    let size = unsafe { p.cast::<u32>().read_unaligned() };
    check_struct_size(size)?;
    let size = size as usize;
    let bytes = p.cast::<u8>();
    if size > OWN_SIZE {
        // SAFETY: `size` bytes from `p` are readable (caller); u8 needs no alignment.
        let tail = unsafe { std::slice::from_raw_parts(bytes.add(OWN_SIZE), size - OWN_SIZE) };
        if let Some(i) = tail.iter().position(|&b| b != 0) {
            return Err(Failure::invalid(format!(
                "desc->struct_size is {size}, larger than this library's rnn_model_desc \
                 ({OWN_SIZE} bytes, ABI version {}), and byte {} is not zero: a field this \
                 library does not know is set (the program was built against a newer header)",
                crate::ffi::types::RNN_ABI_VERSION,
                OWN_SIZE + i
            )));
        }
    }
    let mut d = rnn_model_desc::default();
    // SAFETY: min(size, OWN_SIZE) bytes are readable at `bytes` (caller) and writable in
    // `d`; rnn_model_desc is plain u32/f32 data without padding (size asserted in
    // types.rs), so any bytes make a valid value; the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes,
            (&mut d as *mut rnn_model_desc).cast::<u8>(),
            size.min(OWN_SIZE),
        )
    };
    d.struct_size = size as u32;
    Ok(d)
}

/// What a description asks for, in the core's terms: the recurrent stack (and head), the
/// dense layers around it, the initial forget-gate bias and dropout.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ModelSpec {
    /// The recurrent stack and its head; input_size is the stack's (the last pre layer's).
    pub(crate) config: ModelConfig,
    /// The dense layers around the stack, and the skip.
    pub(crate) layers: Layers,
    /// `Some` when the description sets a nonzero forget-gate bias.
    pub(crate) forget_bias: Option<f32>,
    /// Dropout between layers in training (0: none).
    pub(crate) dropout: f32,
}

impl ModelSpec {
    /// Maps a description to the core's types, or `RNN_ERR_INVALID` naming the field.
    /// Ranges of the plain sizes (0, above MAX_DIM) and how the layers chain are left to
    /// the core's `validate`, whose messages name them too.
    pub(crate) fn from_desc(d: &rnn_model_desc) -> FfiResult<ModelSpec> {
        let bad = |m: String| Err(Failure::invalid(m));
        let cell = CellKind::from_u32(d.cell).ok_or_else(|| {
            Failure::invalid(format!(
                "desc->cell is {}, expected 0..=4 (an rnn_cell)",
                d.cell
            ))
        })?;
        let output_activation =
            OutputActivation::from_u32(d.output_activation).ok_or_else(|| {
                Failure::invalid(format!(
                    "desc->output_activation is {}, expected 0 or 1 (an rnn_output)",
                    d.output_activation
                ))
            })?;
        // Checked here, not only by the core: with dense layers they are the layers'
        // widths too, and the core's message would name those.
        for (name, v) in [("input_size", d.input_size), ("hidden_size", d.hidden_size)] {
            if v == 0 || v as usize > MAX_DIM {
                return bad(format!("desc->{name} is {v}, expected 1..={MAX_DIM}"));
            }
        }
        let bidirectional = match d.bidirectional {
            0 => false,
            1 => true,
            v => return bad(format!("desc->bidirectional is {v}, expected 0 or 1")),
        };
        // Reserved for the core's coming features: wire them to ModelConfig here.
        if d.proj_size != 0 && (cell != CellKind::Lstm || d.proj_size >= d.hidden_size) {
            return bad(format!(
                "desc->proj_size is {}: a projection needs an LSTM and 0 < proj_size < \
                 hidden_size ({}; 0 = none)",
                d.proj_size, d.hidden_size
            ));
        }
        if d.dropout.is_nan() || !(0.0..1.0).contains(&d.dropout) {
            return bad(format!(
                "desc->dropout is {}, expected 0 <= dropout < 1",
                d.dropout
            ));
        }
        if !d.forget_bias.is_finite() {
            return bad(format!(
                "desc->forget_bias is {}, expected a finite number",
                d.forget_bias
            ));
        }
        if d.forget_bias != 0.0 && cell != CellKind::Lstm {
            return bad(format!(
                "desc->forget_bias is {}, but the cell is {}: a forget-gate bias needs \
                 RNN_CELL_LSTM (0 = none)",
                d.forget_bias,
                cell.name()
            ));
        }
        let skip = match d.skip {
            0 => false,
            1 => true,
            v => return bad(format!("desc->skip is {v}, expected 0 or 1")),
        };
        let pre = dense_list("pre", "num_pre", &d.pre, d.num_pre)?;
        let post = dense_list("post", "num_post", &d.post, d.num_post)?;
        if let Some(k) = pre.iter().position(|a| a.1 == Activation::Softmax) {
            return bad(format!(
                "desc->pre[{k}].activation is softmax: only the model's last layer (the \
                 last post layer) may be a softmax"
            ));
        }
        if let Some(k) = post[..post.len().saturating_sub(1)]
            .iter()
            .position(|a| a.1 == Activation::Softmax)
        {
            return bad(format!(
                "desc->post[{k}].activation is softmax: only the model's last layer (the \
                 last post layer) may be a softmax"
            ));
        }
        if d.output_size != 0 && !post.is_empty() {
            return bad(format!(
                "desc->output_size is {} and num_post is {}: with post layers, give the \
                 head as post[0] and set output_size to 0",
                d.output_size,
                post.len()
            ));
        }
        // The widths chain: input_size -> pre... -> the stack -> post...
        let stack_in = pre.last().map_or(d.input_size, |p| p.0);
        let mut dense = Vec::with_capacity(pre.len());
        let mut width = d.input_size as usize;
        for &(size, activation) in &pre {
            dense.push(Dense::new(width, size as usize, activation));
            width = size as usize;
        }
        // The stack's output width: H, or P with a projection; twice that bidirectional.
        let per_direction = if d.proj_size > 0 {
            d.proj_size
        } else {
            d.hidden_size
        };
        let mut width_post = per_direction as usize * if bidirectional { 2 } else { 1 };
        let mut dense_post = Vec::with_capacity(post.len());
        for &(size, activation) in &post {
            dense_post.push(Dense::new(width_post, size as usize, activation));
            width_post = size as usize;
        }
        Ok(ModelSpec {
            config: ModelConfig {
                cell,
                input_size: stack_in as usize,
                hidden_size: d.hidden_size as usize,
                num_layers: d.num_layers as usize,
                output_size: d.output_size as usize,
                output_activation,
                bidirectional,
                proj_size: d.proj_size as usize,
            },
            layers: Layers {
                pre: dense,
                post: dense_post,
                skip,
            },
            forget_bias: (d.forget_bias != 0.0).then_some(d.forget_bias),
            dropout: d.dropout,
        })
    }

    /// A new model of this spec, its weights drawn from `seed` as `Model::new_with_layers`
    /// (`Model::new` without layers), then the forget-gate bias and dropout set.
    pub(crate) fn build(self, seed: u64) -> crate::Result<Model> {
        let model = Model::new_with_layers(self.config, self.layers, seed)?;
        let model = match self.forget_bias {
            Some(b) => model.with_forget_bias(b)?,
            None => model,
        };
        if self.dropout != 0.0 {
            return model.with_dropout(self.dropout);
        }
        Ok(model)
    }
}

/// The used entries of `pre` or `post` as (size, activation), checking the count, each
/// entry's fields, and that the unused entries are zero.
fn dense_list(
    part: &str,
    count_name: &str,
    list: &[rnn_dense; RNN_MAX_DENSE],
    count: u32,
) -> FfiResult<Vec<(u32, Activation)>> {
    if count as usize > RNN_MAX_DENSE {
        return Err(Failure::invalid(format!(
            "desc->{count_name} is {count}, expected at most {RNN_MAX_DENSE} (RNN_MAX_DENSE)"
        )));
    }
    let n = count as usize;
    let mut out = Vec::with_capacity(n);
    for (k, e) in list[..n].iter().enumerate() {
        if e.size == 0 || e.size as usize > MAX_DIM {
            return Err(Failure::invalid(format!(
                "desc->{part}[{k}].size is {}, expected 1..={MAX_DIM}",
                e.size
            )));
        }
        let act = ACTIVATIONS
            .get(e.activation as usize)
            .copied()
            .ok_or_else(|| {
                Failure::invalid(format!(
                    "desc->{part}[{k}].activation is {}, expected 0..=5 (an rnn_activation)",
                    e.activation
                ))
            })?;
        out.push((e.size, act));
    }
    if let Some(k) = list[n..].iter().position(|e| *e != rnn_dense::default()) {
        return Err(Failure::invalid(format!(
            "desc->{part}[{}] is set but {count_name} is {count}: unused entries must be zero",
            n + k
        )));
    }
    Ok(out)
}

/// The description of a model (struct_size set to the library's size), or
/// `RNN_ERR_INVALID` when it has more dense layers than the struct holds.
pub(crate) fn describe(model: &Model) -> FfiResult<rnn_model_desc> {
    let mut d = describe_parts(model.config(), model.layers())?;
    d.dropout = model.dropout();
    Ok(d)
}

/// [`describe`] from a model's parts: the stack's config and its layers.
fn describe_parts(core: &ModelConfig, layers: Option<&Layers>) -> FfiResult<rnn_model_desc> {
    let narrow = |v: usize| u32::try_from(v).expect("validated sizes fit in u32");
    let mut d = rnn_model_desc {
        struct_size: OWN_SIZE as u32,
        cell: core.cell as u32,
        input_size: narrow(core.input_size),
        hidden_size: narrow(core.hidden_size),
        num_layers: narrow(core.num_layers),
        output_size: narrow(core.output_size),
        output_activation: core.output_activation as u32,
        bidirectional: core.bidirectional as u32,
        proj_size: narrow(core.proj_size),
        // dropout: the model's (`describe`); forget_bias: always 0, an initialisation
        // choice.
        ..rnn_model_desc::default()
    };
    if let Some(l) = layers {
        for (part, list, slots, count) in [
            ("before", &l.pre, &mut d.pre, &mut d.num_pre),
            ("after", &l.post, &mut d.post, &mut d.num_post),
        ] {
            if list.len() > RNN_MAX_DENSE {
                return Err(Failure::invalid(format!(
                    "the model has {} dense layers {part} its recurrent stack; \
                     rnn_model_desc holds at most {RNN_MAX_DENSE} (RNN_MAX_DENSE)",
                    list.len()
                )));
            }
            for (slot, dense) in slots.iter_mut().zip(list) {
                *slot = rnn_dense {
                    size: narrow(dense.out_size),
                    activation: activation_number(dense.activation),
                };
            }
            *count = narrow(list.len());
        }
        d.input_size = narrow(l.input_size(core));
        d.skip = u32::from(l.skip);
    }
    Ok(d)
}

/// Writes `d` over the caller's description: min(caller's struct_size, library's size)
/// bytes, struct_size set to that count; nothing past the caller's size.
///
/// # Safety
/// `p` is non-NULL and points to `p->struct_size` writable bytes (any alignment), and
/// `caller_size` was read from it and checked by [`check_struct_size`].
unsafe fn write_desc(p: *mut rnn_model_desc, mut d: rnn_model_desc, caller_size: u32) {
    let n = (caller_size as usize).min(OWN_SIZE);
    d.struct_size = n as u32;
    // SAFETY: `n` bytes are readable in `d` and writable at `p` (caller: it has
    // caller_size >= n bytes); they do not overlap (`d` is local).
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&d as *const rnn_model_desc).cast::<u8>(),
            p.cast::<u8>(),
            n,
        )
    };
}

/// Creates a model from a full description (see rnn_model_desc): the recurrent stack, its
/// head, dense layers before and after it, the skip, and an initial forget-gate bias.
/// Weights are drawn from a generator seeded with `seed` as rnn_model_new does (a
/// description without dense layers or forget bias gives exactly rnn_model_new's model
/// for the same config and seed); dense layers like PyTorch's nn.Linear,
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); then the forget-gate bias, when nonzero.
///
/// On RNN_OK `*out` is a new model that the caller owns and frees with rnn_model_free.
/// Errors: RNN_ERR_NULL (desc, out); RNN_ERR_INVALID for a struct_size outside the size
/// rules of rnn_model_desc, any field out of range (an enum value outside its enum, a
/// size of 0 or above 2^20, num_layers above 1024, num_pre or num_post above
/// RNN_MAX_DENSE, a nonzero unused pre/post entry, bidirectional not 0 or 1, dropout
/// NaN or outside [0, 1), a non-finite forget_bias, skip not 0 or 1), a softmax anywhere
/// but the last layer, output_size with post layers, a forget_bias on a cell other than
/// LSTM, a skip whose input and output widths differ, a proj_size on a cell other than
/// LSTM or not below hidden_size, dense layers (other than a lone head) around a
/// bidirectional stack or one with projections, dropout with dense layers;
/// RNN_ERR_ALLOC. The message names the field. On failure `*out` is not written.
/// Thread safety: any thread. Allocation: the weights.
///
/// # Safety
/// `desc` points to an rnn_model_desc of desc->struct_size readable bytes; `out` to
/// writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_new_desc(
    desc: *const rnn_model_desc,
    seed: u64,
    out: *mut *mut rnn_model,
) -> rnn_status {
    ffi_boundary!("rnn_model_new_desc", {
        check_null!(desc, out);
        // SAFETY: non-NULL (checked), struct_size bytes readable (contract).
        let d = unsafe { read_desc(desc) }?;
        let model = ModelSpec::from_desc(&d)?.build(seed)?;
        let handle = Box::into_raw(Box::new(rnn_model { model }));
        // SAFETY: `out` is non-NULL (checked) and writable (contract).
        unsafe { write_out(out, handle) };
        Ok(())
    })
}

/// Fills `*desc` with the model's full description: for any model, made by
/// rnn_model_new, rnn_model_new_desc or rnn_model_load (a layered RTNeural, GuitarML or
/// safetensors model lists its dense layers). input_size is the model's input width;
/// output_size and output_activation describe a head right after the stack (0 when the
/// model has post layers: its last post layer gives the outputs). forget_bias is written
/// as 0 (an initialisation choice whose values are in the weights). Unused pre/post
/// entries are
/// zeroed. rnn_model_new_desc of the result makes a model of the same shape.
///
/// The caller sets desc->struct_size to sizeof(rnn_model_desc) first. The library
/// writes min(struct_size, its own size) bytes, never past the caller's struct_size,
/// and sets struct_size to that count; bytes past it are left as they were (zero them,
/// so that fields this library does not know read as "absent").
/// Errors: RNN_ERR_NULL (model, desc); RNN_ERR_INVALID for a struct_size below
/// RNN_MODEL_DESC_SIZE_V1 or above 4096, or a model with more than RNN_MAX_DENSE dense
/// layers on one side (none today: RNN_MAX_DENSE is rnncore's own limit). On failure
/// `*desc` is untouched.
/// Thread safety: any number of threads at once. No allocation.
///
/// # Safety
/// `model` is a live model handle; `desc` points to desc->struct_size writable bytes
/// whose first 4 are its struct_size.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_describe(
    model: *const rnn_model,
    desc: *mut rnn_model_desc,
) -> rnn_status {
    ffi_boundary!("rnn_model_describe", {
        let m = try_ref!(model);
        check_null!(desc);
        // SAFETY: non-NULL (checked), its first field readable (contract).
        let size = unsafe { desc.cast::<u32>().read_unaligned() };
        check_struct_size(size)?;
        let d = describe(&m.model)?;
        // SAFETY: non-NULL (checked), `size` bytes writable (contract), size checked.
        unsafe { write_desc(desc, d, size) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::types::rnn_activation;

    fn desc(cell: CellKind, i: u32, h: u32) -> rnn_model_desc {
        rnn_model_desc {
            struct_size: OWN_SIZE as u32,
            cell: cell as u32,
            input_size: i,
            hidden_size: h,
            num_layers: 1,
            ..Default::default()
        }
    }

    fn dense(size: u32, a: Activation) -> rnn_dense {
        rnn_dense {
            size,
            activation: activation_number(a),
        }
    }

    fn err(d: &rnn_model_desc) -> String {
        let e = ModelSpec::from_desc(d).expect_err("must be refused");
        assert_eq!(e.status, rnn_status::RNN_ERR_INVALID);
        e.message
    }

    #[test]
    fn activation_numbers_match_the_c_enum() {
        assert_eq!(ACTIVATIONS.len(), Activation::ALL.len());
        for a in Activation::ALL {
            assert!(ACTIVATIONS.contains(&a));
        }
        let c = [
            (rnn_activation::RNN_ACT_IDENTITY, Activation::Identity),
            (rnn_activation::RNN_ACT_TANH, Activation::Tanh),
            (rnn_activation::RNN_ACT_RELU, Activation::Relu),
            (rnn_activation::RNN_ACT_SIGMOID, Activation::Sigmoid),
            (rnn_activation::RNN_ACT_ELU, Activation::Elu),
            (rnn_activation::RNN_ACT_SOFTMAX, Activation::Softmax),
        ];
        for (n, a) in c {
            assert_eq!(activation_number(a), n as u32);
        }
    }

    #[test]
    fn a_plain_description_is_the_plain_config() {
        let mut d = desc(CellKind::Gru, 3, 8);
        d.num_layers = 2;
        d.output_size = 4;
        d.output_activation = OutputActivation::Softmax as u32;
        let s = ModelSpec::from_desc(&d).unwrap();
        assert_eq!(
            s.config,
            ModelConfig::new(CellKind::Gru, 3, 8, 2).with_head(4, OutputActivation::Softmax)
        );
        assert!(s.layers.is_empty());
        assert_eq!(s.forget_bias, None);
    }

    #[test]
    fn dense_layers_chain_from_the_input_to_the_output() {
        let mut d = desc(CellKind::Lstm, 2, 6);
        d.num_pre = 2;
        d.pre[0] = dense(5, Activation::Tanh);
        d.pre[1] = dense(4, Activation::Relu);
        d.num_post = 2;
        d.post[0] = dense(3, Activation::Elu);
        d.post[1] = dense(2, Activation::Identity);
        d.skip = 1;
        d.forget_bias = 1.0;
        let s = ModelSpec::from_desc(&d).unwrap();
        assert_eq!(s.config.input_size, 4, "the stack reads the last pre layer");
        assert_eq!(
            s.layers.pre,
            [
                Dense::new(2, 5, Activation::Tanh),
                Dense::new(5, 4, Activation::Relu)
            ]
        );
        assert_eq!(
            s.layers.post,
            [
                Dense::new(6, 3, Activation::Elu),
                Dense::new(3, 2, Activation::Identity)
            ]
        );
        assert!(s.layers.skip);
        assert_eq!(s.forget_bias, Some(1.0));
        let m = s.build(7).unwrap();
        assert_eq!(m.input_size(), 2);
        assert_eq!(m.output_size(), 2);
        assert!(m.tensor("bias_ih_l0").unwrap()[6..12]
            .iter()
            .all(|&b| b == 1.0));
        assert!(m.tensor("bias_hh_l0").unwrap()[6..12]
            .iter()
            .all(|&b| b == 0.0));
        // And back.
        let mut back = describe(&m).unwrap();
        back.forget_bias = 1.0;
        assert_eq!(back, d);
    }

    #[test]
    fn without_extras_the_weights_are_rnn_model_new_s() {
        let mut d = desc(CellKind::Lstm, 3, 5);
        d.output_size = 2;
        let a = ModelSpec::from_desc(&d).unwrap().build(11).unwrap();
        let c = ModelConfig::new(CellKind::Lstm, 3, 5, 1).with_head(2, OutputActivation::Identity);
        let b = Model::new(c, 11).unwrap();
        assert_eq!(a.parameters(), b.parameters());
    }

    #[test]
    fn projections_bidirectional_and_dropout_reach_the_model_and_come_back() {
        let mut d = desc(CellKind::Lstm, 2, 4);
        (d.bidirectional, d.proj_size, d.dropout, d.output_size) = (1, 3, 0.25, 2);
        let m = ModelSpec::from_desc(&d).unwrap().build(3).unwrap();
        let c = m.config();
        assert!(c.bidirectional && c.proj_size == 3 && c.output_size == 2);
        assert_eq!(m.dropout(), 0.25);
        assert_eq!(describe(&m).unwrap(), d);
        // A lone identity post layer is the head, reading 2P.
        let mut e = desc(CellKind::Lstm, 2, 4);
        (e.proj_size, e.num_post) = (3, 1);
        e.post[0] = dense(2, Activation::Identity);
        let m = ModelSpec::from_desc(&e).unwrap().build(3).unwrap();
        assert_eq!((m.config().output_size, m.output_size()), (2, 2));
    }

    #[test]
    fn projections_need_an_lstm_below_hidden_size_and_no_dense_layers() {
        for (cell, p) in [(CellKind::Lstm, 4), (CellKind::Lstm, 9), (CellKind::Gru, 2)] {
            let mut d = desc(cell, 2, 4);
            d.proj_size = p;
            assert!(err(&d).contains("desc->proj_size"), "{cell:?} {p}");
        }
        let mut d = desc(CellKind::Lstm, 2, 4);
        (d.proj_size, d.num_post) = (2, 1);
        d.post[0] = dense(2, Activation::Tanh);
        let m = ModelSpec::from_desc(&d).unwrap().build(1).unwrap_err();
        assert!(m.to_string().contains("projections"), "{m}");
    }

    #[test]
    fn every_bad_field_is_named() {
        let base = desc(CellKind::Lstm, 2, 4);
        type Edit = fn(&mut rnn_model_desc);
        let cases: [(&str, Edit); 25] = [
            ("desc->input_size", |d| d.input_size = 0),
            ("desc->hidden_size", |d| d.hidden_size = 0),
            ("desc->input_size", |d| {
                d.input_size = 0;
                d.num_pre = 1;
                d.pre[0] = dense(2, Activation::Tanh);
            }),
            ("desc->cell", |d| d.cell = 5),
            ("desc->output_activation", |d| d.output_activation = 2),
            ("desc->bidirectional is 2", |d| d.bidirectional = 2),
            ("desc->dropout", |d| d.dropout = f32::NAN),
            ("desc->dropout", |d| d.dropout = 1.0),
            ("desc->dropout", |d| d.dropout = -0.1),
            ("desc->forget_bias", |d| d.forget_bias = f32::INFINITY),
            ("desc->forget_bias", |d| {
                d.cell = CellKind::Gru as u32;
                d.forget_bias = 1.0
            }),
            ("desc->skip", |d| d.skip = 2),
            ("desc->num_pre", |d| d.num_pre = RNN_MAX_DENSE as u32 + 1),
            ("desc->num_post", |d| d.num_post = 100),
            ("desc->pre[0].size", |d| d.num_pre = 1),
            ("desc->post[1].size", |d| {
                d.num_post = 2;
                d.post[0].size = 3;
            }),
            ("desc->pre[0].activation", |d| {
                d.num_pre = 1;
                d.pre[0] = rnn_dense {
                    size: 2,
                    activation: 6,
                }
            }),
            ("desc->pre[0].activation is softmax", |d| {
                d.num_pre = 1;
                d.pre[0] = dense(2, Activation::Softmax)
            }),
            ("desc->post[0].activation is softmax", |d| {
                d.num_post = 2;
                d.post[0] = dense(2, Activation::Softmax);
                d.post[1] = dense(2, Activation::Identity);
            }),
            ("desc->output_size", |d| {
                d.output_size = 3;
                d.num_post = 1;
                d.post[0] = dense(2, Activation::Tanh);
            }),
            ("desc->pre[3] is set", |d| d.pre[3].size = 1),
            ("desc->post[1] is set", |d| {
                d.num_post = 1;
                d.post[0] = dense(2, Activation::Tanh);
                d.post[1].activation = 1;
            }),
            ("desc->proj_size", |d| d.proj_size = u32::MAX),
            ("desc->pre[0].size", |d| {
                d.num_pre = 1;
                d.pre[0].size = MAX_DIM as u32 + 1
            }),
            ("desc->forget_bias", |d| d.forget_bias = f32::NAN),
        ];
        for (want, edit) in cases {
            let mut d = base;
            edit(&mut d);
            let m = err(&d);
            assert!(m.contains(want), "expected {want:?} in {m:?}");
        }
    }

    #[test]
    fn the_core_checks_sizes_and_chains() {
        // Fields the mapping passes on; the core refuses them when the model is built.
        type Edit = fn(&mut rnn_model_desc);
        let cases: [(&str, Edit); 4] = [
            ("num_layers", |d| d.num_layers = 0),
            ("num_layers", |d| d.num_layers = 1025),
            ("softmax", |d| d.output_activation = 1),
            ("skip", |d| {
                d.skip = 1;
                d.num_post = 1;
                d.post[0] = dense(3, Activation::Identity)
            }),
        ];
        for (want, edit) in cases {
            let mut d = desc(CellKind::Lstm, 2, 4);
            edit(&mut d);
            let e = ModelSpec::from_desc(&d).unwrap().build(1).unwrap_err();
            assert!(matches!(e, crate::Error::Invalid(_)), "{e:?}");
            assert!(e.message().contains(want), "expected {want:?} in {e:?}");
        }
    }

    #[test]
    fn a_model_with_more_layers_than_the_struct_holds_is_refused() {
        let core = ModelConfig::new(CellKind::Gru, 1, 1, 1);
        let layers = Layers {
            pre: vec![Dense::new(1, 1, Activation::Tanh); RNN_MAX_DENSE + 1],
            post: vec![],
            skip: false,
        };
        let e = describe_parts(&core, Some(&layers)).unwrap_err();
        assert_eq!(e.status, rnn_status::RNN_ERR_INVALID);
        assert!(e.message.contains("RNN_MAX_DENSE"), "{}", e.message);
    }

    #[test]
    fn size_rules() {
        // A struct from a "newer header": ours, then 8 more bytes.
        #[repr(C)]
        struct Newer {
            d: rnn_model_desc,
            extra: [u32; 2],
        }
        let mut n = Newer {
            d: desc(CellKind::Gru, 2, 3),
            extra: [0, 0],
        };
        n.d.struct_size = std::mem::size_of::<Newer>() as u32;
        let p = (&n as *const Newer).cast::<rnn_model_desc>();
        // SAFETY: `p` points to struct_size readable bytes.
        let got = unsafe { read_desc(p) }.unwrap();
        assert_eq!(got.hidden_size, 3);
        n.extra[1] = 1;
        // SAFETY: as above.
        let e = unsafe { read_desc((&n as *const Newer).cast()) }.unwrap_err();
        assert!(e.message.contains("struct_size is 320"), "{}", e.message);
        assert!(e.message.contains("byte 316"), "{}", e.message);
        for bad in [
            0,
            4,
            RNN_MODEL_DESC_SIZE_V1 - 4,
            MAX_STRUCT_SIZE + 1,
            u32::MAX,
        ] {
            assert!(check_struct_size(bad).is_err());
        }
        // describe writes no more than the caller's size, and says how much.
        let m = Model::new(ModelConfig::new(CellKind::Lstm, 2, 3, 1), 1).unwrap();
        let mut out = Newer {
            d: rnn_model_desc::default(),
            extra: [7, 7],
        };
        out.d.struct_size = std::mem::size_of::<Newer>() as u32;
        // SAFETY: `out` has struct_size writable bytes.
        unsafe {
            write_desc(
                (&mut out as *mut Newer).cast(),
                describe(&m).unwrap(),
                out.d.struct_size,
            )
        };
        assert_eq!(out.d.struct_size, OWN_SIZE as u32);
        assert_eq!(out.d.hidden_size, 3);
        assert_eq!(out.extra, [7, 7]);
    }
}
