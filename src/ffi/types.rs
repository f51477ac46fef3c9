//! The C ABI's value types: status, enums, the two config structs and the versioned model
//! description. Their names, numbers and field types are fixed by `shared/API.md`;
//! numbers are never reused. `rnn_model_desc` grows only at its end (see its docs).

use crate::config::{CellKind, ModelConfig, OutputActivation};
use crate::ffi::boundary::{Failure, FfiResult};
use crate::train::{Optimizer, TrainConfig};

/// What every fallible function returns. Results come back through out-pointers; on
/// failure nothing the caller owns has changed and `rnn_last_error()` says why.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_status {
    /// Success.
    RNN_OK = 0,
    /// A required pointer was NULL.
    RNN_ERR_NULL = 1,
    /// A size, enum value or option is out of range or does not match the model.
    RNN_ERR_INVALID = 2,
    /// A file could not be opened, read or written.
    RNN_ERR_IO = 3,
    /// Not a valid model file: corrupt, truncated, wrong dtype/shape, missing tensor.
    RNN_ERR_FORMAT = 4,
    /// NaN/Inf in inputs or targets, or produced by a training step (weights left unchanged).
    RNN_ERR_NONFINITE = 5,
    /// Memory could not be allocated.
    RNN_ERR_ALLOC = 6,
    /// Internal error caught at the boundary: a bug, please report it.
    RNN_ERR_PANIC = 7,
}

/// An `rnn_status` passed in from C, read as a plain integer so that any value the caller
/// passes (even one outside the enum) is defined behaviour. The header calls it
/// `rnn_status` (see `cbindgen.toml`: renamed, and its own typedef excluded).
pub type rnn_status_value = u32;

/// The recurrent cell of every layer (`rnn_config.cell`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_cell {
    /// `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RNN_CELL_RNN_TANH = 0,
    /// As RNN_CELL_RNN_TANH with relu.
    RNN_CELL_RNN_RELU = 1,
    /// LSTM, gate order i, f, g, o (PyTorch).
    RNN_CELL_LSTM = 2,
    /// GRU with the reset applied before the product, as in the notes (Cho et al. 2014).
    RNN_CELL_GRU = 3,
    /// GRU, linear before reset: PyTorch / cuDNN / ONNX linear_before_reset=1.
    RNN_CELL_GRU_LBR = 4,
}

/// What forward and step apply to the head's outputs (`rnn_config.output_activation`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_output {
    /// Outputs are the head's pre-activation.
    RNN_OUTPUT_IDENTITY = 0,
    /// Softmax over each timestep's outputs (needs a head: output_size > 0).
    RNN_OUTPUT_SOFTMAX = 1,
}

/// The shape of a model.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct rnn_config {
    /// An rnn_cell.
    pub cell: u32,
    /// I >= 1: features per timestep.
    pub input_size: u32,
    /// H >= 1.
    pub hidden_size: u32,
    /// >= 1.
    pub num_layers: u32,
    /// 0: no head, outputs are the top layer's h_t; else a dense head H -> output_size.
    pub output_size: u32,
    /// An rnn_output, applied by forward/step; training losses use the pre-activation.
    pub output_activation: u32,
}

/// The update rule (`rnn_train_config.optimizer`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_optimizer {
    /// SGD with optional momentum.
    RNN_OPT_SGD = 0,
    /// Adam; weight decay is L2 added to the gradient.
    RNN_OPT_ADAM = 1,
    /// AdamW; weight decay is decoupled.
    RNN_OPT_ADAMW = 2,
}

/// Training hyperparameters.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct rnn_train_config {
    /// An rnn_optimizer.
    pub optimizer: u32,
    /// >= 0, finite.
    pub learning_rate: f32,
    /// SGD only, in [0, 1); 0 = plain SGD (PyTorch semantics, no dampening, no nesterov).
    pub momentum: f32,
    /// Adam/AdamW, in [0, 1); PyTorch's default 0.9.
    pub beta1: f32,
    /// Adam/AdamW, in [0, 1); PyTorch's default 0.999.
    pub beta2: f32,
    /// Adam/AdamW, > 0; PyTorch's default 1e-8.
    pub eps: f32,
    /// >= 0. SGD/Adam: L2 added to the gradient; AdamW: decoupled.
    pub weight_decay: f32,
    /// > 0: scale gradients so their global L2 norm <= clip_norm (clip_grad_norm_); 0: off.
    pub clip_norm: f32,
}

/// The loss of a training step (rnn_trainer_step_mse or rnn_trainer_step_xent).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_loss {
    /// Mean squared error (torch.nn.MSELoss).
    RNN_LOSS_MSE = 0,
    /// Softmax cross-entropy on the logits (torch.nn.CrossEntropyLoss(ignore_index=-1)).
    RNN_LOSS_CROSS_ENTROPY = 1,
}

/// Which timesteps carry targets (the `targets` argument of the training steps).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_targets {
    /// A target at every timestep: [batch][seq_len][...].
    RNN_TARGETS_EVERY_STEP = 0,
    /// A target at the last timestep only: [batch][...].
    RNN_TARGETS_LAST_STEP = 1,
}

/// The ABI generation of this header: 1 for the first contract, one more with each
/// release that adds to it (functions, types, fields at the end of rnn_model_desc);
/// nothing of an earlier generation changes. Version 2 added rnn_model_desc,
/// rnn_model_new_desc and rnn_model_describe, and the variable-length entry points
/// rnn_model_forward_lengths, rnn_model_forward_state_lengths,
/// rnn_trainer_step_mse_lengths and rnn_trainer_step_xent_lengths, and
/// rnn_trainer_set_dropout_seed. A program built against this header runs
/// with any library whose rnn_abi_version() is at least this number: check
/// `rnn_abi_version() >= RNN_ABI_VERSION` at start-up.
pub const RNN_ABI_VERSION: u32 = 2;

/// The activation of a dense layer (`rnn_dense.activation`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_activation {
    /// `a`.
    RNN_ACT_IDENTITY = 0,
    /// `tanh(a)`.
    RNN_ACT_TANH = 1,
    /// `max(a, 0)`.
    RNN_ACT_RELU = 2,
    /// `1 / (1 + exp(-a))`.
    RNN_ACT_SIGMOID = 3,
    /// `a` for a > 0, else `exp(a) - 1` (alpha 1, as Keras and PyTorch).
    RNN_ACT_ELU = 4,
    /// Softmax over the layer's outputs: only as the model's last layer (the last post
    /// layer, and not with skip). forward and step apply it; training losses use the
    /// pre-activation.
    RNN_ACT_SOFTMAX = 5,
}

/// The most dense layers on each side of the recurrent stack that rnn_model_desc holds
/// (`pre`, `post`): as many as any rnncore model may have, so every model can be
/// described.
pub const RNN_MAX_DENSE: usize = 16;

/// One dense layer of rnn_model_desc: `act(W a + b)`, W of shape [size][features in],
/// where the features in are the previous layer's width (see rnn_model_desc).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct rnn_dense {
    /// Features out, >= 1.
    pub size: u32,
    /// An rnn_activation.
    pub activation: u32,
}

/// sizeof(rnn_model_desc) of its first version (ABI version 2): the smallest struct_size
/// the library accepts.
pub const RNN_MODEL_DESC_SIZE_V1: u32 = 312;

/// A model's full description: everything rnn_config says and what it cannot. Made for
/// rnn_model_new_desc, filled by rnn_model_describe.
///
/// A model is, in order: the `pre` dense layers (applied to every timestep), the
/// recurrent stack, an optional dense head (output_size), the `post` dense layers, and
/// the skip (the model's input added to its output).
///
/// Versioning: the struct only grows, at its end, and a field's zero always means "as
/// before the field existed". Set struct_size to sizeof(rnn_model_desc) as your program
/// compiles it and zero everything you do not set, e.g.
/// `rnn_model_desc d; memset(&d, 0, sizeof d); d.struct_size = sizeof d;`.
/// The library reads (and rnn_model_describe writes) only the bytes struct_size covers:
///  - struct_size below RNN_MODEL_DESC_SIZE_V1 (312), or above 4096: RNN_ERR_INVALID;
///  - larger than the library's own sizeof (a program built against a newer header): the
///    bytes past the library's size must all be zero (fields it does not know, left
///    unset), else RNN_ERR_INVALID naming struct_size and the first nonzero byte (the
///    rule of Linux's copy_struct_from_user);
///  - smaller than the library's (a program built against an older header): the fields
///    past struct_size read as zero.
///
/// Unused entries (pre[k] for k >= num_pre, post[k] for k >= num_post) must be zero.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct rnn_model_desc {
    /// sizeof(rnn_model_desc) as the caller compiled it (see above). rnn_model_describe
    /// sets it to the number of bytes it wrote: min(caller's struct_size, library's size).
    pub struct_size: u32,
    /// An rnn_cell: the cell of every recurrent layer.
    pub cell: u32,
    /// At least 1: the model's input features per timestep, what forward and step take:
    /// the first pre layer's input when num_pre > 0, else the recurrent stack's.
    pub input_size: u32,
    /// H >= 1: units per recurrent layer.
    pub hidden_size: u32,
    /// >= 1: recurrent layers.
    pub num_layers: u32,
    /// 0: no head; else a dense head H -> output_size right after the stack (as
    /// rnn_config's; PyTorch's initialisation). Must be 0 when num_post > 0: a head is
    /// then post[0] (an identity or softmax post layer alone is built as, and described
    /// as, this head).
    pub output_size: u32,
    /// An rnn_output for the head: RNN_OUTPUT_SOFTMAX needs output_size > 0.
    pub output_activation: u32,
    /// 0 or 1: bidirectional recurrent layers (PyTorch's bidirectional=True): each layer
    /// runs forward and reversed in time, its outputs [h_fwd, h_rev] (2H wide, which the
    /// next layer and the head read), final states in PyTorch's h_n order
    /// [layers][2][batch][H]. Whole sequences only: rnn_model_step, rnn_state_new and
    /// rnn_model_forward_state refuse such a model (RNN_ERR_INVALID). No dense layers
    /// around a bidirectional stack except its head (output_size, or one identity or
    /// softmax post layer).
    pub bidirectional: u32,
    /// 0: none; else the LSTM projection size P (PyTorch's proj_size; LSTM only,
    /// 0 < P < hidden_size): h_t = W_hr (o ⊙ tanh(c_t)) is P wide (weight_hr_l{k}
    /// [P][H]), so the next layer, the head and the outputs read P (2P bidirectional)
    /// and a state snapshot holds h as [layers·dirs][batch][P] and c as [..][batch][H].
    /// No dense layers around it except its head.
    pub proj_size: u32,
    /// In [0, 1): dropout between recurrent layers during training (PyTorch's dropout,
    /// inverted: kept values scaled by 1/(1 - dropout)), 0 = none; never at inference.
    /// The masks come from the trainer's seed (rnn_trainer_set_dropout_seed, 0 by
    /// default) and step count, the same for any number of threads. Saved in the weight file. Not with dense layers. NaN or outside
    /// [0, 1) is RNN_ERR_INVALID.
    pub dropout: f32,
    /// Initial LSTM forget-gate bias of a new model: 0 = PyTorch's initialisation;
    /// otherwise every layer's bias_ih forget rows are set to it and bias_hh's to 0 (1 is
    /// the usual choice, Keras' unit_forget_bias). Finite; nonzero only for
    /// RNN_CELL_LSTM. An initialisation choice, not a property of the weights:
    /// rnn_model_describe writes 0 (the biases are in the weights, see rnn_model_save).
    pub forget_bias: f32,
    /// 0 or 1: add the model's input to its output (GuitarML's amp models); needs the
    /// input width equal to the output width, and no softmax at the end.
    pub skip: u32,
    /// 0..=RNN_MAX_DENSE: dense layers before the stack, in pre[0..num_pre].
    pub num_pre: u32,
    /// 0..=RNN_MAX_DENSE: dense layers after the stack, in post[0..num_post].
    pub num_post: u32,
    /// Dense layers before the stack, input first: pre[0] reads input_size features,
    /// pre[k] reads pre[k-1].size, and the stack reads pre[num_pre-1].size. No softmax.
    pub pre: [rnn_dense; RNN_MAX_DENSE],
    /// Dense layers after the stack, output last: post[0] reads H, post[k] reads
    /// post[k-1].size; the model's output width is post[num_post-1].size. Softmax only
    /// in the last.
    pub post: [rnn_dense; RNN_MAX_DENSE],
}

// The first version's layout is fixed: later versions only append fields.
const _: () = assert!(std::mem::size_of::<rnn_model_desc>() == RNN_MODEL_DESC_SIZE_V1 as usize);

impl rnn_config {
    /// The Rust config, or `RNN_ERR_INVALID` naming the field. Sizes are checked by
    /// `Model::new`.
    pub(crate) fn to_model_config(self) -> FfiResult<ModelConfig> {
        let cell = CellKind::from_u32(self.cell).ok_or_else(|| {
            Failure::invalid(format!(
                "config->cell is {}, expected 0..=4 (an rnn_cell)",
                self.cell
            ))
        })?;
        let output_activation =
            OutputActivation::from_u32(self.output_activation).ok_or_else(|| {
                Failure::invalid(format!(
                    "config->output_activation is {}, expected 0 or 1 (an rnn_output)",
                    self.output_activation
                ))
            })?;
        Ok(ModelConfig {
            cell,
            input_size: self.input_size as usize,
            hidden_size: self.hidden_size as usize,
            num_layers: self.num_layers as usize,
            output_size: self.output_size as usize,
            output_activation,
            // `rnn_config` has no such field: C callers get unidirectional models.
            bidirectional: false,
            proj_size: 0,
        })
    }

    /// The C view of a (validated) Rust config. Every size fits in `u32` because
    /// `ModelConfig::validate` bounds them by `MAX_DIM` and `MAX_LAYERS`.
    pub(crate) fn from_model_config(c: &ModelConfig) -> rnn_config {
        let narrow = |v: usize| u32::try_from(v).expect("validated sizes fit in u32");
        rnn_config {
            cell: c.cell as u32,
            input_size: narrow(c.input_size),
            hidden_size: narrow(c.hidden_size),
            num_layers: narrow(c.num_layers),
            output_size: narrow(c.output_size),
            output_activation: c.output_activation as u32,
        }
    }
}

impl rnn_train_config {
    /// The Rust config, or `RNN_ERR_INVALID` naming the field. Ranges are checked by
    /// `Trainer::new`.
    pub(crate) fn to_train_config(self) -> FfiResult<TrainConfig> {
        let optimizer = Optimizer::from_u32(self.optimizer).ok_or_else(|| {
            Failure::invalid(format!(
                "config->optimizer is {}, expected 0..=2 (an rnn_optimizer)",
                self.optimizer
            ))
        })?;
        Ok(TrainConfig {
            optimizer,
            learning_rate: self.learning_rate,
            momentum: self.momentum,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            clip_norm: self.clip_norm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_numbers_match_the_rust_api() {
        for c in CellKind::ALL {
            assert_eq!(
                rnn_config::from_model_config(&ModelConfig::new(c, 1, 1, 1)).cell,
                c as u32
            );
        }
        assert_eq!(rnn_cell::RNN_CELL_GRU_LBR as u32, CellKind::GruLbr as u32);
        assert_eq!(rnn_cell::RNN_CELL_LSTM as u32, CellKind::Lstm as u32);
        assert_eq!(
            rnn_output::RNN_OUTPUT_SOFTMAX as u32,
            OutputActivation::Softmax as u32
        );
        assert_eq!(rnn_optimizer::RNN_OPT_ADAMW as u32, Optimizer::AdamW as u32);
        assert_eq!(
            rnn_targets::RNN_TARGETS_LAST_STEP as u32,
            crate::Targets::LastStep as u32
        );
        for e in [
            Error::Invalid(String::new()),
            Error::Io(String::new()),
            Error::Format(String::new()),
            Error::NonFinite(String::new()),
            Error::Alloc(String::new()),
        ] {
            let code = e.status_code();
            assert_eq!(Failure::from(e).status as u32, code);
        }
    }

    use crate::Error;
}
