#![forbid(unsafe_code)]
//! Model configuration: the cell kind, sizes and output head, and where each tensor of a
//! configuration lives in the model's flat parameter buffer ([`ParamLayout`]).

use crate::error::{checked_size, invalid, Result};

/// The recurrent cell of every layer of a model. Numbers match the C ABI's `rnn_cell`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CellKind {
    /// `h_t = tanh(W_ih x + b_ih + W_hh h + b_hh)`; one gate.
    RnnTanh = 0,
    /// As `RnnTanh` with relu.
    RnnRelu = 1,
    /// LSTM, gate order `i, f, g, o` (PyTorch).
    Lstm = 2,
    /// GRU as in the lecture notes (Cho et al. 2014): reset applied *before* the product,
    /// `n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)`. Gate order `r, z, n`.
    Gru = 3,
    /// GRU with linear-before-reset (PyTorch, cuDNN, ONNX `linear_before_reset=1`):
    /// `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`. Gate order `r, z, n`.
    GruLbr = 4,
}

impl CellKind {
    /// All cell kinds, in C ABI order.
    pub const ALL: [CellKind; 5] = [
        CellKind::RnnTanh,
        CellKind::RnnRelu,
        CellKind::Lstm,
        CellKind::Gru,
        CellKind::GruLbr,
    ];

    /// Number of gates `G`: the packed weight matrices are `[G*H, *]`.
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru | CellKind::GruLbr => 3,
        }
    }

    /// Whether the state carries a cell vector `c` besides `h`.
    pub fn has_cell_state(self) -> bool {
        self == CellKind::Lstm
    }

    /// The metadata name used in weight files (`rnn_tanh`, `rnn_relu`, `lstm`, `gru`, `gru_lbr`).
    pub fn name(self) -> &'static str {
        match self {
            CellKind::RnnTanh => "rnn_tanh",
            CellKind::RnnRelu => "rnn_relu",
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
            CellKind::GruLbr => "gru_lbr",
        }
    }

    /// Parses a metadata name (see [`CellKind::name`]).
    pub fn from_name(s: &str) -> Option<CellKind> {
        CellKind::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Converts the C ABI number.
    pub(crate) fn from_u32(v: u32) -> Option<CellKind> {
        CellKind::ALL.get(v as usize).copied()
    }
}

/// What `forward`/`step` apply to the head's output. Numbers match `rnn_output`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum OutputActivation {
    /// Outputs are the head's pre-activation (logits, or regression values).
    #[default]
    Identity = 0,
    /// Outputs are `softmax` over the head's outputs at each timestep.
    Softmax = 1,
}

impl OutputActivation {
    /// The metadata name (`identity`, `softmax`).
    pub fn name(self) -> &'static str {
        match self {
            OutputActivation::Identity => "identity",
            OutputActivation::Softmax => "softmax",
        }
    }

    /// Parses a metadata name.
    pub fn from_name(s: &str) -> Option<OutputActivation> {
        match s {
            "identity" => Some(OutputActivation::Identity),
            "softmax" => Some(OutputActivation::Softmax),
            _ => None,
        }
    }

    /// Converts the C ABI number.
    pub(crate) fn from_u32(v: u32) -> Option<OutputActivation> {
        match v {
            0 => Some(OutputActivation::Identity),
            1 => Some(OutputActivation::Softmax),
            _ => None,
        }
    }
}

/// The shape of a model: a stack of `num_layers` layers of one cell kind, plus an optional
/// dense head `D·H -> output_size` (`D` = [`ModelConfig::num_directions`]).
///
/// A bidirectional model (PyTorch's `bidirectional=True`) runs every layer twice, forward
/// in time and in reverse, each direction with its own weights; a layer's output at each
/// timestep is `[h_fwd | h_rev]` (`2H` wide), which is what the next layer and the head
/// read. It runs whole sequences only (forward and training); the streaming step refuses
/// it, since its reverse direction needs the sequence's end.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelConfig {
    /// The recurrent cell of every layer.
    pub cell: CellKind,
    /// `I >= 1`: features per timestep.
    pub input_size: usize,
    /// `H >= 1`.
    pub hidden_size: usize,
    /// `>= 1`.
    pub num_layers: usize,
    /// 0: no head, outputs are the top layer's `h_t`; otherwise a dense head `H -> output_size`.
    pub output_size: usize,
    /// Applied by forward and step; the training losses use the pre-activation.
    pub output_activation: OutputActivation,
    /// Each layer runs forward and in reverse over the sequence (PyTorch's
    /// `bidirectional=True`): outputs are `2H` wide, states hold `2·num_layers` layers.
    pub bidirectional: bool,
    /// LSTM projections (PyTorch's `proj_size`): 0 for none; otherwise `0 < P < H` and
    /// each layer's `h_t = W_hr (o ⊙ tanh(c_t))` is `P` wide (`weight_hr_l{k}`, `[P][H]`),
    /// so `W_hh` is `[4H][P]`, the layer above and the head read `P` (`2P`
    /// bidirectional) and the state's `h` is `P` wide while `c` stays `H` wide. LSTM only.
    pub proj_size: usize,
}

/// Upper bound on any single dimension, so that every derived size fits comfortably in
/// memory arithmetic (and a malicious file cannot ask for absurd buffers).
pub const MAX_DIM: usize = 1 << 20;
/// Upper bound on the number of layers.
pub const MAX_LAYERS: usize = 1024;

impl std::fmt::Display for ModelConfig {
    /// Compact, for messages: `lstm I=3 H=16 P=8 layers=2 bidir head=4 (softmax)` (`P`
    /// only with a projection, `bidir` only for a bidirectional model).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} I={} H={}",
            self.cell.name(),
            self.input_size,
            self.hidden_size,
        )?;
        if self.proj_size > 0 {
            write!(f, " P={}", self.proj_size)?;
        }
        write!(f, " layers={}", self.num_layers)?;
        if self.bidirectional {
            f.write_str(" bidir")?;
        }
        if self.has_head() {
            write!(
                f,
                " head={} ({})",
                self.output_size,
                self.output_activation.name()
            )?;
        }
        Ok(())
    }
}

impl ModelConfig {
    /// A config with no head.
    pub fn new(cell: CellKind, input_size: usize, hidden_size: usize, num_layers: usize) -> Self {
        ModelConfig {
            cell,
            input_size,
            hidden_size,
            num_layers,
            output_size: 0,
            output_activation: OutputActivation::Identity,
            bidirectional: false,
            proj_size: 0,
        }
    }

    /// The same config with LSTM projections of `proj_size` outputs (0: none; see
    /// [`ModelConfig::proj_size`]). [`ModelConfig::validate`] checks it.
    ///
    /// ```
    /// use rnncore::{CellKind, ModelConfig};
    /// let cfg = ModelConfig::new(CellKind::Lstm, 3, 8, 2).with_proj_size(4);
    /// assert_eq!(cfg.real_hidden_size(), 4);
    /// assert_eq!(cfg.output_dim(), 4); // h_t is P wide
    /// assert_eq!(cfg.state_len(5), 2 * 5 * (4 + 8)); // h [2][5][P], then c [2][5][H]
    /// assert_eq!(cfg.to_string(), "lstm I=3 H=8 P=4 layers=2");
    /// ```
    pub fn with_proj_size(mut self, proj_size: usize) -> Self {
        self.proj_size = proj_size;
        self
    }

    /// Width of each direction's `h_t` (what the layer above, the head and the state's
    /// `h` see): `proj_size` with a projection, else `hidden_size` (PyTorch's
    /// `real_hidden_size`).
    pub fn real_hidden_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Tensors per layer and direction in [`ParamLayout`]: `weight_ih`, `weight_hh`,
    /// `bias_ih`, `bias_hh`, and `weight_hr` with a projection.
    pub(crate) fn tensors_per_direction(&self) -> usize {
        if self.proj_size > 0 {
            5
        } else {
            4
        }
    }

    /// Whether the sequence passes compose per-direction one-layer models (`crate::bidir`):
    /// bidirectional stacks and LSTM projections.
    pub(crate) fn is_composed(&self) -> bool {
        self.bidirectional || self.proj_size > 0
    }

    /// The same config, bidirectional or not (see [`ModelConfig::bidirectional`]).
    ///
    /// ```
    /// use rnncore::{CellKind, ModelConfig};
    /// let cfg = ModelConfig::new(CellKind::Lstm, 3, 8, 2).with_bidirectional(true);
    /// assert_eq!(cfg.num_directions(), 2);
    /// assert_eq!(cfg.output_dim(), 16); // [h_fwd | h_rev]
    /// assert_eq!(cfg.state_len(5), 2 * (2 * 2) * 5 * 8); // h and c, [layers*2][batch][H]
    /// assert_eq!(cfg.to_string(), "lstm I=3 H=8 layers=2 bidir");
    /// ```
    pub fn with_bidirectional(mut self, bidirectional: bool) -> Self {
        self.bidirectional = bidirectional;
        self
    }

    /// Directions per layer: 2 for a bidirectional model, else 1.
    pub fn num_directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Width of each layer's output, what the layer above and the head read:
    /// `num_directions · real_hidden_size` (see [`ModelConfig::real_hidden_size`]).
    pub fn layer_output_dim(&self) -> usize {
        self.num_directions() * self.real_hidden_size()
    }

    /// Features into layer `k`: `input_size` for layer 0, [`ModelConfig::layer_output_dim`]
    /// above.
    pub fn layer_input_dim(&self, k: usize) -> usize {
        if k == 0 {
            self.input_size
        } else {
            self.layer_output_dim()
        }
    }

    /// Adds a dense head `H -> output_size` with the given activation.
    pub fn with_head(mut self, output_size: usize, activation: OutputActivation) -> Self {
        self.output_size = output_size;
        self.output_activation = activation;
        self
    }

    /// Checks every size; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("input_size", self.input_size),
            ("hidden_size", self.hidden_size),
        ] {
            if v == 0 || v > MAX_DIM {
                return Err(invalid!("{name} is {v}, expected 1..={MAX_DIM}"));
            }
        }
        if self.num_layers == 0 || self.num_layers > MAX_LAYERS {
            return Err(invalid!(
                "num_layers is {}, expected 1..={MAX_LAYERS}",
                self.num_layers
            ));
        }
        if self.output_size > MAX_DIM {
            return Err(invalid!(
                "output_size is {}, expected 0..={MAX_DIM}",
                self.output_size
            ));
        }
        if self.output_size == 0 && self.output_activation != OutputActivation::Identity {
            return Err(invalid!(
                "output_activation is softmax but output_size is 0 (no head)"
            ));
        }
        if self.proj_size > 0 {
            if self.cell != CellKind::Lstm {
                return Err(invalid!(
                    "proj_size is {} but the cell is {}: projections are for LSTM only",
                    self.proj_size,
                    self.cell.name()
                ));
            }
            if self.proj_size >= self.hidden_size {
                return Err(invalid!(
                    "proj_size is {}, expected 0 (none) or 1..{} (below hidden_size, as \
                     PyTorch requires)",
                    self.proj_size,
                    self.hidden_size
                ));
            }
        }
        // Total parameter count must fit; checked with overflow-safe arithmetic.
        ParamLayout::new(self).map(|_| ())
    }

    /// Width of the model's outputs: `output_size`, or
    /// [`ModelConfig::layer_output_dim`] without a head.
    pub fn output_dim(&self) -> usize {
        if self.output_size == 0 {
            self.layer_output_dim()
        } else {
            self.output_size
        }
    }

    /// Whether the model has a dense head.
    pub fn has_head(&self) -> bool {
        self.output_size > 0
    }

    /// Elements of a state snapshot for `batch` streams: `h` as `[L·D][B][P]`, then `c` for
    /// LSTM as `[L·D][B][H]` (`P` = [`ModelConfig::real_hidden_size`], `H` itself without
    /// a projection). `D` = [`ModelConfig::num_directions`]; a bidirectional model's
    /// layers are in PyTorch's `h_n` order: layer-major, direction-minor (layer 0 forward,
    /// layer 0 reverse, layer 1 forward, ...).
    pub fn state_len(&self, batch: usize) -> usize {
        let planes = self.num_layers * self.num_directions() * batch;
        let h = planes * self.real_hidden_size();
        if self.cell.has_cell_state() {
            h + planes * self.hidden_size
        } else {
            h
        }
    }

    /// Where the `c` part of a snapshot for `batch` streams starts: after the `h` part,
    /// `L·D·B·P` elements (see [`ModelConfig::state_len`]).
    pub(crate) fn state_c_offset(&self, batch: usize) -> usize {
        self.num_layers * self.num_directions() * batch * self.real_hidden_size()
    }
}

/// One named tensor inside the flat parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamEntry {
    /// PyTorch name: `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`,
    /// `weight_hr_l{k}` with a projection (a bidirectional model's reverse direction adds the suffix `_reverse`),
    /// `head.weight`, `head.bias`.
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Offset (in elements) into the flat buffer.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

/// Where each tensor of a config lives in the flat parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    entries: Vec<ParamEntry>,
    total: usize,
}

impl ParamLayout {
    /// The layout for `config`, with overflow-checked sizes.
    pub fn new(config: &ModelConfig) -> Result<ParamLayout> {
        let g = config.cell.gates();
        let h = config.hidden_size;
        let gh = g
            .checked_mul(h)
            .ok_or_else(|| invalid!("hidden_size {h} too large"))?;
        let dirs = config.num_directions();
        let (p, tpd) = (config.real_hidden_size(), config.tensors_per_direction());
        let mut entries = Vec::with_capacity(tpd * dirs * config.num_layers + 2);
        let mut total = 0usize;
        let mut push = |name: String, shape: Vec<usize>| -> Result<()> {
            let len = checked_size(&name, &shape)?;
            let offset = total;
            total = total
                .checked_add(len)
                .ok_or_else(|| invalid!("parameter count overflows"))?;
            entries.push(ParamEntry {
                name,
                shape,
                offset,
                len,
            });
            Ok(())
        };
        // PyTorch's state_dict order: per layer the forward tensors, then the reverse ones.
        for k in 0..config.num_layers {
            let inp = if k == 0 {
                config.input_size
            } else {
                dirs.checked_mul(p)
                    .ok_or_else(|| invalid!("hidden_size {h} too large"))?
            };
            for d in 0..dirs {
                let sfx = if d == 1 { "_reverse" } else { "" };
                push(format!("weight_ih_l{k}{sfx}"), vec![gh, inp])?;
                push(format!("weight_hh_l{k}{sfx}"), vec![gh, p])?;
                push(format!("bias_ih_l{k}{sfx}"), vec![gh])?;
                push(format!("bias_hh_l{k}{sfx}"), vec![gh])?;
                if config.proj_size > 0 {
                    push(format!("weight_hr_l{k}{sfx}"), vec![p, h])?;
                }
            }
        }
        if config.has_head() {
            push("head.weight".into(), vec![config.output_size, dirs * p])?;
            push("head.bias".into(), vec![config.output_size])?;
        }
        // Keep the whole model addressable with headroom for gradients and optimizer state.
        if total > (isize::MAX as usize) / 64 {
            return Err(invalid!("model has {total} parameters, too many"));
        }
        Ok(ParamLayout { entries, total })
    }

    /// Appends a tensor after the others (the dense layers around the stack).
    pub(crate) fn push(&mut self, name: String, shape: Vec<usize>) -> Result<()> {
        let len = checked_size(&name, &shape)?;
        let offset = self.total;
        self.total = self
            .total
            .checked_add(len)
            .filter(|&t| t <= (isize::MAX as usize) / 64)
            .ok_or_else(|| invalid!("parameter count overflows"))?;
        self.entries.push(ParamEntry {
            name,
            shape,
            offset,
            len,
        });
        Ok(())
    }

    /// All tensors in `state_dict()` order.
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }

    /// Total number of parameters.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The entry with this name.
    pub fn find(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}
