#![forbid(unsafe_code)]
//! Dense layers around the recurrent stack, and the skip connection.
//!
//! A model is, in order:
//!
//! 1. `pre`: dense layers applied to every timestep of the input (`x_t -> u_t`);
//! 2. the recurrent stack with its optional dense head (the [`ModelConfig`] part, which
//!    runs on the fast paths of [`crate::forward`] and [`crate::state`]);
//! 3. `post`: dense layers applied to every timestep of the stack's output;
//! 4. `skip`: the model's input added to its output (GuitarML's amp models:
//!    `y = lin(rec(x)) + x`), which needs `input width == output width`.
//!
//! Each dense layer is `act(W a + b)` with `W` `[out, in]` (PyTorch's `nn.Linear` layout)
//! and one of [`Activation`]; softmax only as the very last layer. A model whose only
//! extra is one identity or softmax dense layer after the stack is the plain
//! "stack + head" model and is built as one ([`Layers::is_plain_head`]).
//!
//! Weights live in the model's one flat parameter buffer, after the recurrent stack's,
//! in the order `pre.0.weight, pre.0.bias, ..., post.0.weight, post.0.bias, ...`, so
//! optimizers, clipping and weight files see them as any other tensor.
//!
//! The forward, streaming and backward code here is plain row-by-row arithmetic: these
//! layers are small next to the recurrence (a GuitarML head is `H -> 1`), and models
//! without them never enter this module.

pub mod reference;

use crate::buffers::try_zeroed;
use crate::config::ParamLayout;
use crate::config::{ModelConfig, MAX_DIM};
use crate::error::{check_finite, check_len, checked_size, invalid, Error, Result};
use crate::forward::Tape;
use crate::kernels::packed::dot;
use crate::kernels::packed::{dense_small_stride, DenseSmall, StreamLayer};
use crate::kernels::simd::DenseAct;
use crate::model::Model;
use crate::state::{State, STEP_INPUTS_ON_STACK};
use crate::step::softmax_in_place;
use crate::train::Gradients;

/// The activation of a dense layer.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `a`.
    #[default]
    Identity,
    /// `tanh(a)`.
    Tanh,
    /// `max(a, 0)`.
    Relu,
    /// `1 / (1 + e^-a)`.
    Sigmoid,
    /// `a` for `a > 0`, else `e^a - 1` (alpha 1, Keras' and PyTorch's default).
    Elu,
    /// Softmax over the layer's outputs; only as the model's last layer. Forward and step
    /// apply it; the training losses see the pre-activation (as with the head).
    Softmax,
}

impl Activation {
    /// All activations.
    pub const ALL: [Activation; 6] = [
        Activation::Identity,
        Activation::Tanh,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Elu,
        Activation::Softmax,
    ];

    /// The metadata name: `identity`, `tanh`, `relu`, `sigmoid`, `elu`, `softmax`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Elu => "elu",
            Activation::Softmax => "softmax",
        }
    }

    /// Parses a metadata name (see [`Activation::name`]).
    pub fn from_name(s: &str) -> Option<Activation> {
        Activation::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Applies the activation to one row in place (softmax over the row).
    #[inline]
    fn apply(self, row: &mut [f32]) {
        match self {
            Activation::Identity => {}
            // The kernel tier's activations, as the recurrent cells use (libm's took
            // about 15 ns an element: 8 of them were most of a step of RTNeural's lstm.json).
            Activation::Tanh => crate::kernels::activation::tanh(row),
            Activation::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Sigmoid => crate::kernels::activation::sigmoid(row),
            Activation::Elu => row.iter_mut().for_each(|v| {
                if *v <= 0.0 {
                    *v = v.exp_m1()
                }
            }),
            Activation::Softmax => softmax_in_place(row),
        }
    }

    /// `act'(a)` from the activation's output `o = act(a)` (softmax: 1, since the losses
    /// take the pre-activation).
    fn derivative(self, o: f32) -> f32 {
        match self {
            Activation::Identity | Activation::Softmax => 1.0,
            Activation::Tanh => 1.0 - o * o,
            Activation::Relu => {
                if o > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => o * (1.0 - o),
            Activation::Elu => {
                if o > 0.0 {
                    1.0
                } else {
                    o + 1.0
                }
            }
        }
    }
}

/// One dense layer's shape and activation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dense {
    /// Features in (`>= 1`).
    pub in_size: usize,
    /// Features out (`>= 1`).
    pub out_size: usize,
    /// Applied to `W a + b`.
    pub activation: Activation,
}

impl Dense {
    /// A dense layer `in_size -> out_size`.
    pub fn new(in_size: usize, out_size: usize, activation: Activation) -> Dense {
        Dense {
            in_size,
            out_size,
            activation,
        }
    }
}

/// The layers around a model's recurrent stack (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Layers {
    /// Dense layers before the stack, input first.
    pub pre: Vec<Dense>,
    /// Dense layers after the stack, output last.
    pub post: Vec<Dense>,
    /// Adds the model's input to its output.
    pub skip: bool,
}

impl Layers {
    /// No layers around the stack.
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty() && !self.skip
    }

    /// Whether these layers are just a dense head (one identity or softmax layer after the
    /// stack), which [`Model::with_layers`] builds as the plain stack + head model.
    pub fn is_plain_head(&self) -> bool {
        self.pre.is_empty()
            && !self.skip
            && self.post.len() == 1
            && matches!(
                self.post[0].activation,
                Activation::Identity | Activation::Softmax
            )
    }

    /// Width of the model's input: the first pre layer's, or the stack's.
    pub fn input_size(&self, core: &ModelConfig) -> usize {
        self.pre.first().map_or(core.input_size, |d| d.in_size)
    }

    /// Width of the model's output: the last post layer's, or the stack's.
    pub fn output_size(&self, core: &ModelConfig) -> usize {
        self.post.last().map_or(core.output_dim(), |d| d.out_size)
    }

    /// Checks that the layers chain with `core` (the recurrent stack and its head).
    pub fn validate(&self, core: &ModelConfig) -> Result<()> {
        core.validate()?;
        for (part, list) in [("pre", &self.pre), ("post", &self.post)] {
            for (k, d) in list.iter().enumerate() {
                for (what, v) in [("in_size", d.in_size), ("out_size", d.out_size)] {
                    if v == 0 || v > MAX_DIM {
                        return Err(invalid!("{part}.{k} {what} is {v}, expected 1..={MAX_DIM}"));
                    }
                }
                if k > 0 && list[k - 1].out_size != d.in_size {
                    return Err(invalid!(
                        "{part}.{k} takes {} features but {part}.{} gives {}",
                        d.in_size,
                        k - 1,
                        list[k - 1].out_size
                    ));
                }
            }
        }
        for (part, list) in [("before", &self.pre), ("after", &self.post)] {
            if list.len() > MAX_DENSE {
                return Err(invalid!(
                    "{} dense layers {part} the recurrent stack, at most {MAX_DENSE}",
                    list.len()
                ));
            }
        }
        if let Some(d) = self.pre.last() {
            if d.out_size != core.input_size {
                return Err(invalid!(
                    "the last dense layer before the recurrent stack gives {} features, \
                     but the stack takes input_size {}",
                    d.out_size,
                    core.input_size
                ));
            }
        }
        if let Some(d) = self.post.first() {
            if core.has_head() {
                return Err(invalid!(
                    "dense layers after the stack and a head: put the head in the list"
                ));
            }
            if d.in_size != core.hidden_size {
                return Err(invalid!(
                    "post.0 takes {} features but the recurrent stack gives hidden_size {}",
                    d.in_size,
                    core.hidden_size
                ));
            }
        }
        let last = self.post.len().checked_sub(1);
        for (part, list) in [("pre", &self.pre), ("post", &self.post)] {
            for (k, d) in list.iter().enumerate() {
                let at_end = part == "post" && Some(k) == last;
                if d.activation == Activation::Softmax && !at_end {
                    return Err(invalid!(
                        "{part}.{k} has softmax: only the model's last layer may"
                    ));
                }
            }
        }
        if self.skip {
            let (i, o) = (self.input_size(core), self.output_size(core));
            if i != o {
                return Err(invalid!(
                    "skip connection needs input width == output width, got {i} and {o}"
                ));
            }
            let soft = match self.post.last() {
                Some(d) => d.activation == Activation::Softmax,
                None => core.output_activation == crate::OutputActivation::Softmax,
            };
            if soft {
                return Err(invalid!("skip connection after a softmax"));
            }
        }
        Ok(())
    }

    /// Appends the layers' tensors to `layout` (`pre.{k}.weight`, `pre.{k}.bias`, then
    /// `post.{k}.*`).
    pub(crate) fn extend_layout(&self, layout: &mut ParamLayout) -> Result<()> {
        for (part, list) in [("pre", &self.pre), ("post", &self.post)] {
            for (k, d) in list.iter().enumerate() {
                layout.push(format!("{part}.{k}.weight"), vec![d.out_size, d.in_size])?;
                layout.push(format!("{part}.{k}.bias"), vec![d.out_size])?;
            }
        }
        Ok(())
    }

    /// The widest activation row of any layer (for scratch sizes).
    fn widest(&self, core: &ModelConfig) -> usize {
        self.pre
            .iter()
            .chain(&self.post)
            .map(|d| d.out_size.max(d.in_size))
            .chain([core.input_size, core.output_dim()])
            .max()
            .unwrap_or(1)
    }
}

/// The parameters of one dense layer inside a flat buffer.
struct DenseView<'a> {
    d: Dense,
    w: &'a [f32],
    b: &'a [f32],
    /// `w` transposed for `small` (its [`DensePlan`]'s), empty without it.
    t: &'a [f32],
    /// The kernel and activation of its [`DensePlan`].
    small: Option<DenseSmall>,
    act: DenseAct,
}

/// `out[r] = act(W a[r] + b)` for every row; with `softmax = false` a softmax layer
/// leaves its pre-activation. A small layer on a SIMD tier runs as `dense_small` (its
/// outputs as vectors, sigmoid and tanh applied in registers: the same bits as the
/// tier's slice functions); otherwise each output is [`dot`] from its bias.
fn dense_rows(v: &DenseView<'_>, a: &[f32], rows: usize, out: &mut [f32], softmax: bool) {
    let (ni, no) = (v.d.in_size, v.d.out_size);
    if no == 0 {
        return;
    }
    let out = &mut out[..rows * no];
    if let Some(kernel) = v.small {
        kernel.rows(a, rows, ni, v.t, v.b, v.act, out);
        after_small(v.d.activation, out, no, softmax);
        return;
    }
    for (r, orow) in out[..rows * no].chunks_exact_mut(no).enumerate() {
        dot_row(v.w, v.b, &a[r * ni..(r + 1) * ni], orow);
        if v.d.activation != Activation::Softmax || softmax {
            v.d.activation.apply(orow);
        }
    }
}

/// The activation a small layer's kernel left to apply (it applies sigmoid and tanh);
/// with `softmax = false` a softmax layer leaves its pre-activation.
#[inline]
fn after_small(act: Activation, out: &mut [f32], no: usize, softmax: bool) {
    match act {
        Activation::Sigmoid | Activation::Tanh | Activation::Identity => {}
        Activation::Softmax if !softmax => {}
        other => out.chunks_exact_mut(no).for_each(|row| other.apply(row)),
    }
}

/// One row through the dense layers `list` (one side; `plans` theirs, `params` the
/// model's parameters), softmax applied: [`chain`] of one row with the same kernels
/// and so the same bits, for the per-sample step, without a view per layer (building
/// them and the general chain cost more than two small layers' arithmetic).
#[allow(clippy::too_many_arguments)]
#[inline]
fn chain_one(
    list: &[Dense],
    plans: &[DensePlan],
    params: &[f32],
    x: &[f32],
    out: &mut [f32],
    a: &mut [f32],
    b: &mut [f32],
) {
    let n = list.len();
    for (k, (d, p)) in list.iter().zip(plans).enumerate() {
        let (src, dst) = layer_io(k, n, x, out, a, b);
        dense_one(d, p, params, src, dst);
    }
}

/// One row through one dense layer `d` (`p` its plan): `dst[..out] = act(b + W src[..in])`,
/// softmax applied ([`chain_one`]'s step).
#[inline(always)]
fn dense_one(d: &Dense, p: &DensePlan, params: &[f32], src: &[f32], dst: &mut [f32]) {
    let (ni, no) = (d.in_size, d.out_size);
    let (src, dst) = (&src[..ni], &mut dst[..no]);
    let bias = &params[p.b.clone()];
    match p.small {
        Some(kernel) => {
            kernel.rows(src, 1, ni, &p.t, bias, p.act, dst);
            after_small(d.activation, dst, no, true);
        }
        None => {
            dot_row(&params[p.w.clone()], bias, src, dst);
            d.activation.apply(dst);
        }
    }
}

/// `y[o] = b[o] + w[o] . x` for one row (`w` is `[y.len()][x.len()]`): the layers' path
/// where no small kernel runs.
#[inline]
fn dot_row(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    let ni = x.len();
    for (o, (yo, &bo)) in y.iter_mut().zip(b).enumerate() {
        *yo = dot(bo, &w[o * ni..(o + 1) * ni], x);
    }
}

/// What one dense layer's pass needs beyond its shape, found once with the weights and
/// the kernel tier: where its weight and bias lie in a buffer laid out as its model's
/// parameters (`model.layout()`), its kernel and the weights transposed for it where it
/// is small, and its activation in the kernels' terms.
#[derive(Clone, Debug)]
pub(crate) struct DensePlan {
    w: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
    /// The tier's `dense_small`, where it runs for this layer.
    small: Option<DenseSmall>,
    /// With `small`, the weights transposed for it (`[in][dense_small_stride(out)]`, zero
    /// padded); empty otherwise.
    t: Vec<f32>,
    /// The activation `small` applies itself (the others are applied after it).
    act: DenseAct,
}

/// Each dense layer's [`DensePlan`] (pre layers, then post; the layers' entries sit in
/// order after the stack's), made again whenever the weights change; none without
/// layers.
pub(crate) fn dense_plans(model: &Model) -> Vec<DensePlan> {
    let Some(ls) = model.layers() else {
        return Vec::new();
    };
    let entries = model.layout().entries();
    let params = model.parameters();
    let all = ls.pre.iter().chain(&ls.post);
    let n = ls.pre.len() + ls.post.len();
    entries[entries.len() - 2 * n..]
        .chunks_exact(2)
        .zip(all)
        .map(|(e, d)| {
            let w = e[0].offset..e[0].offset + e[0].len;
            let small = DenseSmall::for_layer(d.in_size, d.out_size);
            let t = match small {
                Some(_) => {
                    let ldw = dense_small_stride(d.out_size);
                    let mut t = vec![0.0; d.in_size * ldw];
                    for (j, row) in params[w.clone()].chunks_exact(d.in_size).enumerate() {
                        for (p, &v) in row.iter().enumerate() {
                            t[p * ldw + j] = v;
                        }
                    }
                    t
                }
                None => Vec::new(),
            };
            DensePlan {
                w,
                b: e[1].offset..e[1].offset + e[1].len,
                small,
                t,
                act: match d.activation {
                    Activation::Sigmoid => DenseAct::Sigmoid,
                    Activation::Tanh => DenseAct::Tanh,
                    _ => DenseAct::Identity,
                },
            }
        })
        .collect()
}

/// What a layered forward keeps for backward, beside the recurrent stack's tape.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayersTape {
    /// The model's input, `[B][T][I]`.
    pub x: Vec<f32>,
    /// Each pre layer's output (after its activation).
    pub pre: Vec<Vec<f32>>,
    /// Each post layer's output (after its activation; the last without softmax).
    pub post: Vec<Vec<f32>>,
    /// The model's outputs as the losses see them (skip added).
    pub out: Vec<f32>,
}

impl Model {
    /// A model from a config for the recurrent stack (and head), the dense layers
    /// around it, and a flat parameter buffer: the stack's tensors in [`ParamLayout`]
    /// order, then the layers' (`pre.{k}.weight`, `pre.{k}.bias`, ..., `post.{k}.*`).
    /// Layers that are just a head (see [`Layers::is_plain_head`]) make the plain model
    /// with that head.
    pub fn with_layers(config: ModelConfig, layers: Layers, params: Vec<f32>) -> Result<Model> {
        if layers.is_empty() {
            return Model::from_parameters(config, params);
        }
        let lone_head = layers.is_plain_head() && !config.has_head();
        if config.is_composed() && !lone_head {
            return Err(invalid!(
                "dense layers around a bidirectional recurrent stack or one with LSTM \
                 projections are not supported (only its head)"
            ));
        }
        if lone_head {
            // The head's tensors follow the stack's, in the same order as post.0's.
            let d = layers.post[0];
            let act = match d.activation {
                Activation::Softmax => crate::OutputActivation::Softmax,
                _ => crate::OutputActivation::Identity,
            };
            if d.in_size != config.layer_output_dim() {
                return Err(invalid!(
                    "post.0 takes {} features but the recurrent stack gives {}",
                    d.in_size,
                    config.layer_output_dim()
                ));
            }
            return Model::from_parameters(config.with_head(d.out_size, act), params);
        }
        layers.validate(&config)?;
        let mut layout = ParamLayout::new(&config)?;
        let core_len = layout.total();
        layers.extend_layout(&mut layout)?;
        check_len("parameters", params.len(), layout.total())?;
        let mut model = Model::from_parameters(config, params[..core_len].to_vec())?;
        for e in
            &layout.entries()[layout.entries().len() - 2 * (layers.pre.len() + layers.post.len())..]
        {
            check_finite(&e.name, &params[e.offset..e.offset + e.len])?;
        }
        model.set_layers(layers, layout, params);
        Ok(model)
    }

    /// A model with dense layers around the stack and PyTorch's initialisation for every
    /// tensor (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for the dense layers, as
    /// `nn.Linear`), from a generator seeded with `seed`.
    pub fn new_with_layers(config: ModelConfig, layers: Layers, seed: u64) -> Result<Model> {
        let core = Model::new(config, seed)?;
        if layers.is_empty() {
            return Ok(core);
        }
        let lone_head = layers.is_plain_head() && !config.has_head();
        if config.is_composed() && !lone_head {
            return Err(invalid!(
                "dense layers around a bidirectional recurrent stack or one with LSTM \
                 projections are not supported (only its head)"
            ));
        }
        let mut params = core.parameters().to_vec();
        let mut rng = crate::rng::Rng::new(seed ^ 0x5eed_1a7e);
        for d in layers.pre.iter().chain(&layers.post) {
            let bound = 1.0 / (d.in_size as f64).sqrt();
            let n = checked_size("dense layer", &[d.out_size, d.in_size + 1])?;
            params.extend((0..n).map(|_| rng.uniform(-bound, bound) as f32));
        }
        Model::with_layers(config, layers, params)
    }

    /// The dense layers around the recurrent stack; `None` for a plain model.
    pub fn layers(&self) -> Option<&Layers> {
        self.layers.as_deref()
    }

    /// Width of the model's input per timestep.
    pub fn input_size(&self) -> usize {
        match self.layers() {
            Some(l) => l.input_size(self.config()),
            None => self.config().input_size,
        }
    }

    /// The model's shape as the C ABI's `rnn_config` shows it: the recurrent stack's cell,
    /// hidden size and layers, with the model's input width, its output width
    /// (`output_size`, 0 when the outputs are the top layer's `h`) and whether the last
    /// layer is a softmax.
    pub fn outer_config(&self) -> ModelConfig {
        let mut c = *self.config();
        if let Some(l) = self.layers() {
            c.input_size = l.input_size(&c);
            if let Some(d) = l.post.last() {
                c.output_size = d.out_size;
                c.output_activation = match d.activation {
                    Activation::Softmax => crate::OutputActivation::Softmax,
                    _ => crate::OutputActivation::Identity,
                };
            }
        }
        c
    }
}

/// [`Model::forward_with_state`] of a model with layers.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_with_state(
    model: &Model,
    ls: &Layers,
    x: &[f32],
    batch: usize,
    seq_len: usize,
    initial: Option<&[f32]>,
    y: &mut [f32],
    final_state: Option<&mut [f32]>,
) -> Result<()> {
    let cfg = *model.config();
    let rows = checked_size("rows", &[batch, seq_len])?;
    let (ni, no) = (ls.input_size(&cfg), ls.output_size(&cfg));
    check_len("x", x.len(), checked_size("x", &[rows, ni])?)?;
    check_len("y", y.len(), checked_size("y", &[rows, no])?)?;
    if batch == 0 || seq_len == 0 {
        // The stack's own checks say what is wrong.
        return model.core_forward_with_state(x, batch, seq_len, initial, y, final_state);
    }
    crate::parallel::check_finite_par("x", x)?;
    let wide = checked_size("activations", &[rows, ls.widest(&cfg)])?;
    let (mut a, mut b) = (try_zeroed(wide)?, try_zeroed(wide)?);
    let params = model.parameters();
    let u_owned;
    let u: &[f32] = if ls.pre.is_empty() {
        x
    } else {
        let mut u = try_zeroed(rows * cfg.input_size)?;
        let pre = views(model, ls, "pre", params);
        chain(&pre, ls.pre.len(), x, rows, &mut u, &mut a, &mut b, true);
        u_owned = u;
        &u_owned
    };
    let mut core_out = try_zeroed(rows * cfg.output_dim())?;
    model.core_forward_with_state(u, batch, seq_len, initial, &mut core_out, final_state)?;
    if ls.post.is_empty() {
        y.copy_from_slice(&core_out);
    } else {
        let post = views(model, ls, "post", params);
        chain(
            &post,
            ls.post.len(),
            &core_out,
            rows,
            y,
            &mut a,
            &mut b,
            true,
        );
    }
    if ls.skip {
        y.iter_mut().zip(x).for_each(|(v, xi)| *v += xi);
    }
    Ok(())
}

/// [`Model::forward_train`] of a model with layers.
pub(crate) fn forward_train(
    model: &Model,
    ls: &Layers,
    x: &[f32],
    batch: usize,
    seq_len: usize,
    initial: Option<&[f32]>,
) -> Result<Tape> {
    let cfg = *model.config();
    let rows = checked_size("rows", &[batch, seq_len])?;
    let ni = ls.input_size(&cfg);
    check_len("x", x.len(), checked_size("x", &[rows, ni])?)?;
    if batch == 0 || seq_len == 0 {
        return model.core_forward_train(x, batch, seq_len, initial);
    }
    crate::parallel::check_finite_par("x", x)?;
    let params = model.parameters();
    let mut pre_out: Vec<Vec<f32>> = Vec::with_capacity(ls.pre.len());
    for (k, v) in views(model, ls, "pre", params).iter().enumerate() {
        let mut o = try_zeroed(checked_size("activations", &[rows, v.d.out_size])?)?;
        let src: &[f32] = if k == 0 { x } else { &pre_out[k - 1] };
        dense_rows(&v, src, rows, &mut o, false);
        pre_out.push(o);
    }
    let u: &[f32] = pre_out.last().map_or(x, |v| v.as_slice());
    let mut tape = model.core_forward_train(u, batch, seq_len, initial)?;
    let mut post_out: Vec<Vec<f32>> = Vec::with_capacity(ls.post.len());
    for (k, v) in views(model, ls, "post", params).iter().enumerate() {
        let mut o = try_zeroed(checked_size("activations", &[rows, v.d.out_size])?)?;
        let src: &[f32] = if k == 0 {
            tape.outputs()
        } else {
            &post_out[k - 1]
        };
        dense_rows(&v, src, rows, &mut o, false);
        post_out.push(o);
    }
    let mut out = match post_out.last() {
        Some(v) => v.clone(),
        None => tape.outputs().to_vec(),
    };
    if ls.skip {
        out.iter_mut().zip(x).for_each(|(v, xi)| *v += xi);
    }
    tape.extra = Some(Box::new(LayersTape {
        x: x.to_vec(),
        pre: pre_out,
        post: post_out,
        out,
    }));
    Ok(tape)
}

/// Backward through one dense layer: `dz = d_out ⊙ act'(out)`; writes `dW`, `db` and,
/// when asked, `d_in = dz · W`. Sums over rows in f64.
#[allow(clippy::too_many_arguments)]
fn dense_backward(
    v: &DenseView<'_>,
    input: &[f32],
    out: &[f32],
    d_out: &[f32],
    rows: usize,
    dw: &mut [f32],
    db: &mut [f32],
    d_in: Option<&mut [f32]>,
) {
    let (ni, no) = (v.d.in_size, v.d.out_size);
    let dz: Vec<f32> = d_out
        .iter()
        .zip(out)
        .map(|(&d, &o)| d * v.d.activation.derivative(o))
        .collect();
    let mut sw = vec![0.0f64; no * ni];
    let mut sb = vec![0.0f64; no];
    for r in 0..rows {
        let ar = &input[r * ni..(r + 1) * ni];
        for o in 0..no {
            let g = f64::from(dz[r * no + o]);
            sb[o] += g;
            for (s, &a) in sw[o * ni..(o + 1) * ni].iter_mut().zip(ar) {
                *s += g * f64::from(a);
            }
        }
    }
    dw.iter_mut().zip(&sw).for_each(|(d, s)| *d = *s as f32);
    db.iter_mut().zip(&sb).for_each(|(d, s)| *d = *s as f32);
    if let Some(d_in) = d_in {
        for r in 0..rows {
            let dr = &mut d_in[r * ni..(r + 1) * ni];
            dr.fill(0.0);
            for o in 0..no {
                let g = dz[r * no + o];
                for (d, &w) in dr.iter_mut().zip(&v.w[o * ni..(o + 1) * ni]) {
                    *d += g * w;
                }
            }
        }
    }
}

/// [`Model::backward`] of a model with layers.
pub(crate) fn backward(
    model: &Model,
    ls: &Layers,
    tape: &Tape,
    d_outputs: &[f32],
    d_final_state: Option<&[f32]>,
    want_hidden: bool,
) -> Result<Gradients> {
    let cfg = *model.config();
    let Some(lt) = tape.extra.as_deref() else {
        return Err(invalid!(
            "the tape was recorded by a model without the dense layers of this one"
        ));
    };
    let rows = tape.batch * tape.seq_len;
    let (ni, no) = (ls.input_size(&cfg), ls.output_size(&cfg));
    if lt.x.len() != rows * ni || lt.out.len() != rows * no || lt.post.len() != ls.post.len() {
        return Err(invalid!(
            "the tape was recorded by a model with other dense layers than this one"
        ));
    }
    check_len("d_outputs", d_outputs.len(), rows * no)?;
    crate::parallel::check_finite_par("d_outputs", d_outputs)?;
    let params = model.parameters();
    let layout = model.layout();
    let mut grads_post: Vec<(usize, Vec<f32>)> = Vec::new();
    // Post layers, last first; `d` is the gradient at the current layer's output.
    let mut d = d_outputs.to_vec();
    let post = views(model, ls, "post", params);
    for k in (0..ls.post.len()).rev() {
        let v = &post.get(k);
        let input: &[f32] = if k == 0 {
            tape.stack_outputs()
        } else {
            &lt.post[k - 1]
        };
        let we = layout.find(&format!("post.{k}.weight")).expect("layout");
        let mut g = vec![0.0f32; we.len + v.d.out_size];
        let (dw, db) = g.split_at_mut(we.len);
        let mut d_in = try_zeroed(rows * v.d.in_size)?;
        dense_backward(v, input, &lt.post[k], &d, rows, dw, db, Some(&mut d_in));
        grads_post.push((we.offset, g));
        d = d_in;
    }
    let mut work = crate::train::bptt::BackwardWork::default();
    let hidden = model.backward_into(
        tape,
        crate::train::bptt::OutputGrad::Given(&d),
        d_final_state,
        want_hidden,
        true,
        &mut work,
    )?;
    let mut grads = work.grads;
    for (off, g) in grads_post {
        grads[off..off + g.len()].copy_from_slice(&g);
    }
    // Pre layers, last first, from ∂L/∂u.
    let mut d = work.dh;
    let pre = views(model, ls, "pre", params);
    for k in (0..ls.pre.len()).rev() {
        let v = &pre.get(k);
        let input: &[f32] = if k == 0 { &lt.x } else { &lt.pre[k - 1] };
        let we = layout.find(&format!("pre.{k}.weight")).expect("layout");
        let (lo, mid) = (we.offset, we.offset + we.len);
        let mut d_in = try_zeroed(rows * v.d.in_size)?;
        let (dw, rest) = grads[lo..].split_at_mut(mid - lo);
        dense_backward(
            v,
            input,
            &lt.pre[k],
            &d,
            rows,
            dw,
            &mut rest[..v.d.out_size],
            Some(&mut d_in),
        );
        d = d_in;
    }
    if ls.skip {
        d.iter_mut().zip(d_outputs).for_each(|(a, b)| *a += b);
    }
    Ok(Gradients {
        params: grads,
        inputs: d,
        initial_state: work.dinit,
        hidden,
    })
}

/// The scratch a [`State`] of a model with layers carries: every row a block needs,
/// allocated once.
#[derive(Clone, Debug)]
pub(crate) struct LayerScratch {
    /// The stack's input rows, `[B][max_block][I_stack]`.
    u: Vec<f32>,
    /// The stack's output rows, `[B][max_block][O_stack]`.
    core: Vec<f32>,
    /// Ping-pong rows for the chains, `[B][max_block][widest]` each.
    a: Vec<f32>,
    b: Vec<f32>,
    /// The model's layers, to tell a state made for another model.
    layers: Layers,
}

impl LayerScratch {
    /// The scratch for `batch` streams and blocks of up to `max_block` steps.
    pub(crate) fn new(model: &Model, batch: usize, max_block: usize) -> Result<Option<Box<Self>>> {
        let Some(ls) = model.layers() else {
            return Ok(None);
        };
        let cfg = model.config();
        let rows = checked_size("block", &[batch, max_block])?;
        let wide = checked_size("block", &[rows, ls.widest(cfg)])?;
        Ok(Some(Box::new(LayerScratch {
            u: try_zeroed(rows * cfg.input_size)?,
            core: try_zeroed(rows * cfg.output_dim())?,
            a: try_zeroed(wide)?,
            b: try_zeroed(wide)?,
            layers: ls.clone(),
        })))
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        4 * (self.u.capacity() + self.core.capacity() + self.a.capacity() + self.b.capacity())
    }
}

/// [`Model::forward_state`] of a model with layers, after the shape checks: the pre
/// layers into the scratch, the stack's streaming block (its fast kernels), the post
/// layers into `y`. No allocation. On error nothing changes. A single step of one
/// stream that ran the stack's fused path leaves the state marked for
/// [`audio_step_again`].
pub(crate) fn forward_state(
    model: &Model,
    ls: &Layers,
    state: &mut State,
    x: &[f32],
    seq_len: usize,
    y: &mut [f32],
) -> Result<()> {
    run(model, ls, state, x, seq_len, y, false)
}

/// The per-sample step of a state that has run one on this model before
/// ([`Model::audio_ready`]): [`forward_state`] for one step without the checks that
/// step made (the state's dense layers are the model's), the stack's fused kernels
/// called directly. The same bits. Chooses between three paths, each out of line:
/// [`again_post_fused`] where the stack's one fused layer takes the dense layer after it
/// along ([`Model::post_fused`]), [`again_fused_chain`] for any other dense layers
/// around a stack of one fused layer without a head, else [`run`]. Out of line itself:
/// inlined, its frame and registers burdened the plain model's step in the same caller.
#[inline(never)]
pub(crate) fn audio_step_again(
    model: &Model,
    ls: &Layers,
    state: &mut State,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    if let Some(top) = model.post_fused() {
        return again_post_fused(model, ls, top, state, x, y);
    }
    match model.stack_fused_bare() {
        Some(top) => again_fused_chain(model, ls, top, state, x, y),
        None => again_run(model, ls, state, x, y),
    }
}

/// [`audio_step_again`] for a stack of one fused layer without a head and any dense
/// layers around it ([`Model::stack_fused_bare`]; [`again_post_fused`] takes the single
/// dense layer after it): the layers before the stack as [`run`] takes them, the
/// stack's kernel writing no rows, the layers after it from the new `h` in the state
/// (where [`run`] reads the same values from the rows the kernel copied out), the skip
/// connection. The same bits as [`run`].
#[inline(never)]
fn again_fused_chain(
    model: &Model,
    ls: &Layers,
    top: &StreamLayer,
    state: &mut State,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    check_finite("x", x)?;
    let Some(mut sc) = state.layer_scratch.take() else {
        return Err(wrong_state());
    };
    let ran = fused_chain_with(model, ls, top, state, &mut sc, x, y);
    state.layer_scratch = Some(sc);
    ran
}

/// [`again_fused_chain`]'s work with the layers' scratch rows `sc` (out of the state).
/// Kept apart from [`run`]'s own one-row path, which does the same with the stack's rows
/// copied out: folded into it, `gru.json` and `gru_1d.json` stepped 6-9 % slower (AMD
/// EPYC Zen 4, ab.c, 11 rounds, both orders).
#[inline(always)]
fn fused_chain_with(
    model: &Model,
    ls: &Layers,
    top: &StreamLayer,
    state: &mut State,
    sc: &mut LayerScratch,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    let cfg = model.config();
    let LayerScratch { u, a, b, .. } = sc;
    let (npre, plans, params) = (ls.pre.len(), &model.dense_plan, model.parameters());
    let u: &[f32] = if npre == 0 {
        x
    } else {
        let u = &mut u[..cfg.input_size];
        chain_one(&ls.pre, &plans[..npre], params, x, u, a, b);
        u
    };
    model.audio_step_state(state, top, u)?;
    let h = &state.as_slice()[..cfg.hidden_size];
    if ls.post.is_empty() {
        y.copy_from_slice(h);
    } else {
        chain_one(&ls.post, &plans[npre..], params, h, y, a, b);
    }
    if ls.skip {
        y.iter_mut().zip(x).for_each(|(v, xi)| *v += xi);
    }
    Ok(())
}

/// [`run`] for one step of a state that ran one before ([`audio_step_again`]).
#[inline(never)]
fn again_run(
    model: &Model,
    ls: &Layers,
    state: &mut State,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    run(model, ls, state, x, 1, y, true)
}

/// Most outputs of a dense layer after the stack that a per-sample step computes right
/// after the stack's kernel ([`post_for_fused`]): a dot product each.
const POST_FUSED_OUTPUTS: usize = 8;

/// The weights (`[o][H]`) and bias of a model's dense layer after the stack where a
/// per-sample step computes it right after the stack's fused kernel, from the new `h`
/// ([`Model::post_fused`]): the only layer after a one-layer stack without a head, of
/// at most [`POST_FUSED_OUTPUTS`] outputs, summed by the dense layers' [`dot`] (a small
/// layer's kernel sums otherwise and keeps the general path). GuitarML's captures
/// (`lin` and the skip connection) and RTNeural's `lstm.json` end this way.
pub(crate) fn post_for_fused(model: &Model) -> Option<(Vec<f32>, Vec<f32>)> {
    let ls = model.layers.as_deref()?;
    let cfg = model.config();
    let [d] = ls.post.as_slice() else {
        return None;
    };
    let p = model.dense_plan.get(ls.pre.len())?;
    let fits = cfg.num_layers == 1
        && !cfg.has_head()
        && p.small.is_none()
        && d.in_size == cfg.hidden_size
        && d.out_size <= POST_FUSED_OUTPUTS;
    let params = model.parameters();
    fits.then(|| (params[p.w.clone()].to_vec(), params[p.b.clone()].to_vec()))
}

/// [`audio_step_again`] where the stack's one fused layer takes the dense layer after it
/// along ([`Model::post_fused`]): the layer before the stack where there is one (on the
/// stack; more go to [`again_fused_chain`]), the stack's kernel, that layer's dot
/// products on the new `h` (the state itself), then its activation and the skip
/// connection, as [`run`] applies them after [`chain_one`]. The same bits as [`run`],
/// without its scratch rows, the stack's rows copied out and the layer loop (1269
/// instructions a step of RTNeural's `lstm.json`, 355 of them the kernel). Computing the
/// layer inside the kernel from `h` in registers instead cost every plain model's step
/// 2-10 % (a branch and its code in each kernel; AMD EPYC Zen 4).
#[inline(never)]
fn again_post_fused(
    model: &Model,
    ls: &Layers,
    top: &StreamLayer,
    state: &mut State,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    if ls.pre.is_empty() {
        model.audio_step_post(state, top, x, y)?;
    } else if let ([d], Some(p)) = (ls.pre.as_slice(), model.dense_plan.first()) {
        // One layer before the stack (RTNeural's `lstm.json`): its outputs, the stack's
        // few inputs (as few as its step's buffer holds, `Model::audio_ready_layered`),
        // on the stack.
        check_finite("x", x)?;
        let mut ub = [0.0f32; STEP_INPUTS_ON_STACK];
        let u = &mut ub[..d.out_size];
        dense_one(d, p, model.parameters(), x, u);
        model.audio_step_post(state, top, u, y)?;
    } else {
        // Several layers before the stack: their chain on the scratch rows, and the one
        // after it through the chain too (the same `dot`, so the same bits).
        return again_fused_chain(model, ls, top, state, x, y);
    }
    ls.post[0].activation.apply(y);
    if ls.skip {
        y.iter_mut().zip(x).for_each(|(v, xi)| *v += xi);
    }
    Ok(())
}

/// The body of [`forward_state`] and [`audio_step_again`] (`again`).
fn run(
    model: &Model,
    ls: &Layers,
    state: &mut State,
    x: &[f32],
    seq_len: usize,
    y: &mut [f32],
    again: bool,
) -> Result<()> {
    check_finite("x", x)?;
    let Some(mut sc) = state.layer_scratch.take() else {
        return Err(wrong_state());
    };
    if !again && sc.layers != *ls {
        state.layer_scratch = Some(sc);
        return Err(wrong_state());
    }
    let cfg = model.config();
    let rows = state.batch() * seq_len;
    let params = model.parameters();
    let LayerScratch { u, core, a, b, .. } = &mut *sc;
    let (npre, plans) = (ls.pre.len(), &model.dense_plan);
    let u: &[f32] = if ls.pre.is_empty() {
        x
    } else if again {
        let u = &mut u[..cfg.input_size];
        chain_one(&ls.pre, &plans[..npre], params, x, u, a, b);
        u
    } else {
        let pre = views(model, ls, "pre", params);
        let u = &mut u[..rows * cfg.input_size];
        chain(&pre, ls.pre.len(), x, rows, u, a, b, true);
        u
    };
    let core = &mut core[..rows * cfg.output_dim()];
    let ran = if again {
        model.audio_step(state, u, core)
    } else {
        let audio = model.is_audio_step(state, u, seq_len);
        let ran = model.core_forward_state_shaped(state, u, seq_len, core);
        if audio && ran.is_ok() {
            // The checks above and the caller's passed, and the stack took its fused
            // path: the next step of this state on this model may go straight there.
            state.note_audio(model);
        }
        ran
    };
    if ran.is_ok() {
        if ls.post.is_empty() {
            y.copy_from_slice(core);
        } else if again {
            chain_one(&ls.post, &plans[npre..], params, core, y, a, b);
        } else {
            let post = views(model, ls, "post", params);
            chain(&post, ls.post.len(), core, rows, y, a, b, true);
        }
        if ls.skip {
            y.iter_mut().zip(x).for_each(|(v, xi)| *v += xi);
        }
    }
    state.layer_scratch = Some(sc);
    ran
}

#[cold]
fn wrong_state() -> Error {
    invalid!("state was made for a model with other dense layers than this one")
}

/// Most dense layers on either side of the stack.
pub const MAX_DENSE: usize = 16;

/// The dense layers of one side (`"pre"` or `"post"`) inside a buffer laid out as
/// `model.layout()`, where the model's [`DensePlan`]s put them: each layer's view is made
/// when asked for.
struct Views<'a> {
    list: &'a [Dense],
    /// This side's layers' plans (from `Model::dense_plan`, which lists the pre layers,
    /// then the post ones).
    plan: &'a [DensePlan],
    buf: &'a [f32],
}

impl<'a> Views<'a> {
    /// Layer `k` of this side.
    fn get(&self, k: usize) -> DenseView<'a> {
        let p = &self.plan[k];
        DenseView {
            d: self.list[k],
            w: &self.buf[p.w.clone()],
            b: &self.buf[p.b.clone()],
            t: &p.t,
            small: p.small,
            act: p.act,
        }
    }

    /// Every layer of this side, in order.
    fn iter(&self) -> impl Iterator<Item = DenseView<'a>> + '_ {
        (0..self.list.len()).map(|k| self.get(k))
    }
}

/// The views of the layers of `part` (`"pre"` or `"post"`) inside `buf`, laid out as
/// `model.layout()`.
fn views<'a>(model: &'a Model, ls: &'a Layers, part: &str, buf: &'a [f32]) -> Views<'a> {
    let (list, skip) = if part == "pre" {
        (&ls.pre[..], 0)
    } else {
        (&ls.post[..], ls.pre.len())
    };
    let n = list.len();
    Views {
        list,
        plan: &model.dense_plan[skip..skip + n],
        buf,
    }
}

/// Runs the chain of dense layers `views` (the first `n`) over `rows` rows of `x`, writing
/// the last layer's output into `out`; `a`, `b` are scratch of at least `rows * widest`
/// each. With `softmax = false` a softmax layer leaves its pre-activation.
#[allow(clippy::too_many_arguments)]
fn chain(
    views: &Views<'_>,
    n: usize,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    a: &mut [f32],
    b: &mut [f32],
    softmax: bool,
) {
    for k in 0..n {
        let v = &views.get(k);
        let (src, dst) = layer_io(k, n, x, out, a, b);
        dense_rows(v, src, rows, &mut dst[..rows * v.d.out_size], softmax);
    }
}

/// Layer `k` of a chain of `n`: what it reads and where it writes. The first reads `x`,
/// the last writes `out`, and between them the layers take turns on the scratch rows:
/// layer `k` writes `a` when `k` is even, `b` when odd, and reads what layer `k - 1`
/// wrote.
fn layer_io<'s>(
    k: usize,
    n: usize,
    x: &'s [f32],
    out: &'s mut [f32],
    a: &'s mut [f32],
    b: &'s mut [f32],
) -> (&'s [f32], &'s mut [f32]) {
    let last = k + 1 == n;
    match (k, k % 2 == 1) {
        (0, _) => (x, if last { out } else { a }),
        (_, true) => (a, if last { out } else { b }),
        (_, false) => (b, if last { out } else { a }),
    }
}

#[cfg(test)]
mod tests {
    use super::dot;

    /// The dense layers' dot product against an f64 sum, every length around its groups
    /// of eight (with and without a tail).
    #[test]
    fn dot_matches_an_f64_sum() {
        let mut s = 0x2545_f491_u32;
        let mut r = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        };
        for n in 0..=40 {
            let (w, x): (Vec<f32>, Vec<f32>) = (0..n).map(|_| (r(), r())).unzip();
            let b = r();
            let want = b as f64
                + w.iter()
                    .zip(&x)
                    .map(|(a, c)| *a as f64 * *c as f64)
                    .sum::<f64>();
            let mass = b.abs() as f64
                + w.iter()
                    .zip(&x)
                    .map(|(a, c)| (a * c).abs() as f64)
                    .sum::<f64>();
            let got = dot(b, &w, &x) as f64;
            assert!(
                (got - want).abs() <= 1e-6 * mass.max(1.0),
                "n={n}: {got} vs {want}"
            );
        }
    }
}
