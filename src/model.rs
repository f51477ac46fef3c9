#![forbid(unsafe_code)]
//! `Model`: the weights of a stack of recurrent layers plus an optional dense head.
//!
//! All parameters live in one flat `Vec<f32>` in PyTorch's `state_dict()` order
//! (`weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ..., head.weight, head.bias`),
//! each tensor row-major in PyTorch's layout and gate order. Optimizers, gradient
//! clipping and weight files all work on that one buffer through [`ParamLayout`].

use crate::config::{CellKind, ModelConfig, ParamLayout};
use crate::error::{check_finite, Error, Result};
use crate::kernels::packed::{dense_narrow_kernel, DenseNarrowFn, PackedB, StreamLayer};
use crate::rng::Rng;
use std::any::Any;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A model's identity for the per-sample step's shortcut: drawn afresh for every model,
/// every clone and every refresh of what is derived from the weights, never reused, even
/// and never 0 (a state keeps it with its lowest bit telling whether the model has dense
/// layers). A [`crate::State`] that passed the step's checks against a model keeps its
/// identity ([`crate::State`]'s `audio_for`), and while the two agree the next step skips
/// what those checks established (the model's config, the fused path).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ModelId(u64);

impl ModelId {
    fn fresh() -> ModelId {
        static NEXT: AtomicU64 = AtomicU64::new(2);
        ModelId(NEXT.fetch_add(2, Ordering::Relaxed))
    }

    /// The identity as a number (even, never 0).
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0
    }
}

impl Clone for ModelId {
    /// A clone is another model: its own identity.
    fn clone(&self) -> ModelId {
        ModelId::fresh()
    }
}

/// One layer's weights packed once (at build and after every training step) for
/// the packed GEMM (`crate::kernels::packed`): the forward products `x · W_ihᵀ` and
/// `h · W_hhᵀ`. For the notes' GRU the recurrent weights are split, since `W_hn`
/// multiplies `r ⊙ h` rather than `h`.
#[derive(Clone, Debug, Default)]
pub(crate) struct PackedLayer {
    /// `W_ihᵀ`: `[in][G*H]`.
    pub w_ih_t: PackedB,
    /// `W_hhᵀ`: `[H][G*H]`; for the notes' GRU only the `r, z` rows, `[H][2H]`.
    pub w_hh_t: PackedB,
    /// Notes' GRU: `W_hnᵀ`, `[H][H]`; empty otherwise.
    pub w_hn_t: PackedB,
    /// LSTM projection: `W_hrᵀ`, `[H][P]`; empty otherwise (`W_hhᵀ` is then `[P][4H]`).
    pub w_hr_t: PackedB,
    /// The fused single-stream kernel for this layer's cell and size on the process
    /// tier and the weights in its order, made here once; `None` where there is none.
    pub stream: Option<StreamLayer>,
}

impl PackedLayer {
    fn new(cfg: &ModelConfig, lw: &LayerWeights<'_>, folded_bias: &[f32]) -> PackedLayer {
        let h = cfg.hidden_size;
        let gh = cfg.cell.gates() * h;
        let w_ih_t = PackedB::from_transposed(lw.w_ih, gh, lw.input_size);
        if cfg.proj_size > 0 {
            // The fused single-stream kernels have no projection: `crate::proj` runs it.
            let p = cfg.proj_size;
            return PackedLayer {
                w_ih_t,
                w_hh_t: PackedB::from_transposed(lw.w_hh, gh, p),
                w_hn_t: PackedB::default(),
                w_hr_t: PackedB::from_transposed(lw.w_hr, p, h),
                stream: None,
            };
        }
        let b_hn: &[f32] = match cfg.cell {
            CellKind::GruLbr => &lw.b_hh[2 * h..3 * h],
            _ => &[],
        };
        let stream = StreamLayer::new(
            cfg.cell,
            h,
            lw.input_size,
            lw.w_ih,
            lw.w_hh,
            folded_bias,
            b_hn,
        );
        if cfg.cell == CellKind::Gru {
            PackedLayer {
                w_ih_t,
                w_hh_t: PackedB::from_transposed(&lw.w_hh[..2 * h * h], 2 * h, h),
                w_hn_t: PackedB::from_transposed(&lw.w_hh[2 * h * h..], h, h),
                w_hr_t: PackedB::default(),
                stream,
            }
        } else {
            PackedLayer {
                w_ih_t,
                w_hh_t: PackedB::from_transposed(lw.w_hh, gh, h),
                w_hn_t: PackedB::default(),
                w_hr_t: PackedB::default(),
                stream,
            }
        }
    }
}

/// The buffers of a model's last batched sequence forward (its tape and scratch), kept
/// for the next call: a server running batches of one shape then allocates (and
/// page-faults, and zeroes) nothing large per call. Taken with `try_lock`, so calls on
/// one model from several threads never wait for each other: a call that finds the
/// cache busy or empty allocates its own buffers. Buffers above [`ForwardCache::LIMIT`]
/// bytes are not kept. A clone of a model starts with an empty cache.
/// The same holds for a batch of one, which runs through a streaming [`State`] made
/// for blocks of the whole sequence: the state is kept.
///
/// The slots hold their contents as `Any`, so that the model, below the passes, does
/// not name the passes' types; `forward.rs` fills and empties them.
///
/// [`State`]: crate::State
#[derive(Default)]
pub(crate) struct ForwardCache {
    /// A batched forward's `(Tape, ForwardScratch)`.
    pub(crate) batched: Kept,
    /// A single sequence's streaming `State`.
    pub(crate) single: Kept,
}

impl Clone for ForwardCache {
    fn clone(&self) -> ForwardCache {
        ForwardCache::default()
    }
}

impl std::fmt::Debug for ForwardCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForwardCache")
    }
}

/// One slot of a [`ForwardCache`], taken and filled with `try_lock`: never waits.
#[derive(Default)]
pub(crate) struct Kept(Mutex<Option<Box<dyn Any + Send>>>);

impl Kept {
    /// What the slot holds, if it holds a `T` and no other call has the slot.
    pub(crate) fn take<T: Any>(&self) -> Option<Box<T>> {
        let kept = self.0.try_lock().ok()?.take()?;
        kept.downcast().ok()
    }

    /// Keeps `value` in the slot, unless another call has the slot.
    pub(crate) fn put<T: Any + Send>(&self, value: Box<T>) {
        if let Ok(mut kept) = self.0.try_lock() {
            *kept = Some(value);
        }
    }
}

/// Borrowed weights of one layer (PyTorch layout and gate order).
#[derive(Copy, Clone, Debug)]
pub(crate) struct LayerWeights<'a> {
    /// `[G*H, in]`.
    pub w_ih: &'a [f32],
    /// `[G*H, H]` (`[4H, P]` with a projection).
    pub w_hh: &'a [f32],
    /// `[G*H]`.
    pub b_ih: &'a [f32],
    /// `[G*H]`.
    pub b_hh: &'a [f32],
    /// LSTM projection `[P, H]`; empty without one.
    pub w_hr: &'a [f32],
    /// Features into this layer: `input_size` for layer 0, the layer output width above.
    pub input_size: usize,
}

/// Borrowed weights of the dense head.
#[derive(Copy, Clone, Debug)]
pub(crate) struct HeadWeights<'a> {
    /// `[output_size, H]`.
    pub weight: &'a [f32],
    /// `[output_size]`.
    pub bias: &'a [f32],
}

/// A recurrent model. Immutable once built (`Send + Sync`): any number of threads may run
/// it at once, each with its own [`crate::State`]. Only a [`crate::Trainer`] step changes it.
#[derive(Clone, Debug)]
pub struct Model {
    config: ModelConfig,
    layout: ParamLayout,
    params: Vec<f32>,
    /// Per layer `[G*H]`: the bias added to the hoisted input projection. `b_ih + b_hh`
    /// for every gate, except the `n` gate of linear-before-reset GRU, where `b_hn`
    /// sits inside `r ⊙ (W_hn h + b_hn)` and only `b_in` folds.
    folded_bias: Vec<Vec<f32>>,
    /// Per layer, the weights packed for the packed-panel GEMM (see [`PackedLayer`]).
    pub(crate) packed: Vec<PackedLayer>,
    /// `head.weightᵀ`, packed; empty without a head.
    pub(crate) head_t: PackedB,
    /// The head's dot-product kernel where it has few outputs (chosen with the weights).
    pub(crate) head_narrow: Option<DenseNarrowFn>,
    /// Where the head's weight and bias sit in `params` (found once: a per-sample step
    /// asks for them every call).
    head_at: Option<(Range<usize>, Range<usize>)>,
    /// Whether every layer has a fused single-stream kernel ([`PackedLayer::stream`]).
    pub(crate) all_streams_fused: bool,
    /// The buffers of the last batched sequence forward, for the next one.
    pub(crate) cache: ForwardCache,
    /// Dense layers around the stack (see [`crate::layers`]); `None` for the plain
    /// "stack + head" model, which never enters that module.
    pub(crate) layers: Option<Box<crate::layers::Layers>>,
    /// Each dense layer's place in the parameters, kernel and transposed weights (pre
    /// layers, then post), made again with the parameters; none without layers.
    pub(crate) dense_plan: Vec<crate::layers::DensePlan>,
    /// A composed model's directions ([`ModelConfig::is_composed`]: bidirectional, or
    /// with LSTM projections): per layer `k` and direction `d` (0 forward, 1 reverse), at
    /// `D·k + d`, a one-layer unidirectional model holding a copy of that direction's
    /// tensors (remade with the weights); the sequence passes run them (`crate::bidir`).
    /// Empty otherwise, where `packed` and `folded_bias` are used instead (empty here).
    pub(crate) dirs: Vec<Model>,
    /// This model's identity ([`ModelId`]), redrawn by `refresh_derived` and `set_layers`.
    pub(crate) id: ModelId,
    /// Whether this is one of a composed model's `dirs` (run directly, never composed).
    pub(crate) is_direction: bool,
    /// Dropout probability between layers in training (see [`Model::with_dropout`]).
    dropout: f32,
}

impl Model {
    /// A model with PyTorch's initialisation, `U(-1/sqrt(H), 1/sqrt(H))` for every
    /// weight and bias (the head included: `nn.Linear(H, O)` draws from the same range),
    /// from a generator seeded with `seed`: the same seed gives the same weights.
    pub fn new(config: ModelConfig, seed: u64) -> Result<Model> {
        config.validate()?;
        let layout = ParamLayout::new(&config)?;
        let bound = 1.0 / (config.hidden_size as f64).sqrt();
        let mut rng = Rng::new(seed);
        let mut params = Vec::new();
        params
            .try_reserve_exact(layout.total())
            .map_err(|_| Error::Alloc(format!("{} parameters", layout.total())))?;
        params.extend((0..layout.total()).map(|_| rng.uniform(-bound, bound) as f32));
        Model::from_parameters(config, params)
    }

    /// The same model with every LSTM layer's forget-gate bias set so that
    /// `bias_ih + bias_hh` of the forget gate is `bias` for every unit (`bias_ih` rows
    /// `H..2H` become `bias`, `bias_hh`'s become 0; gates in PyTorch's order `i, f, g, o`).
    /// A positive bias (1 is the usual choice, Keras' `unit_forget_bias`) starts the cell
    /// remembering: the forget gate opens near `σ(1) ≈ 0.73` instead of 0.5, so gradients
    /// reach further back from the start of training (`rnncore gradients` shows the
    /// adding problem with and without it). Other weights are unchanged.
    ///
    /// Errors: a cell other than LSTM, or a non-finite `bias` ([`Error::Invalid`]).
    ///
    /// ```
    /// use rnncore::{CellKind, Model, ModelConfig};
    /// let model = Model::new(ModelConfig::new(CellKind::Lstm, 2, 8, 1), 1)?.with_forget_bias(1.0)?;
    /// assert!(model.tensor("bias_ih_l0").unwrap()[8..16].iter().all(|&b| b == 1.0));
    /// # Ok::<(), rnncore::Error>(())
    /// ```
    pub fn with_forget_bias(mut self, bias: f32) -> Result<Model> {
        if self.config.cell != CellKind::Lstm {
            return Err(crate::error::invalid!(
                "a forget-gate bias needs an LSTM; this model's cell is {}",
                self.config.cell.name()
            ));
        }
        if !bias.is_finite() {
            return Err(crate::error::invalid!(
                "forget-gate bias is {bias}, expected a finite number"
            ));
        }
        let h = self.config.hidden_size;
        let sfx = ["", "_reverse"];
        for (k, sfx) in (0..self.config.num_layers).flat_map(|k| {
            sfx[..self.config.num_directions()]
                .iter()
                .map(move |s| (k, s))
        }) {
            for (name, value) in [
                (format!("bias_ih_l{k}{sfx}"), bias),
                (format!("bias_hh_l{k}{sfx}"), 0.0),
            ] {
                let e = self
                    .layout
                    .find(&name)
                    .expect("every LSTM layer has both biases")
                    .clone();
                self.params[e.offset + h..e.offset + 2 * h].fill(value);
            }
        }
        self.refresh_derived();
        self.cache = ForwardCache::default();
        Ok(self)
    }

    /// A model from a flat parameter buffer in [`ParamLayout`] order.
    pub fn from_parameters(config: ModelConfig, params: Vec<f32>) -> Result<Model> {
        config.validate()?;
        let layout = ParamLayout::new(&config)?;
        crate::error::check_len("parameters", params.len(), layout.total())?;
        for e in layout.entries() {
            check_finite(&e.name, &params[e.offset..e.offset + e.len])?;
        }
        let mut m = Model {
            config,
            layout,
            params,
            folded_bias: Vec::new(),
            packed: Vec::new(),
            head_t: PackedB::default(),
            head_narrow: None,
            head_at: None,
            all_streams_fused: false,
            cache: ForwardCache::default(),
            layers: None,
            dense_plan: Vec::new(),
            dirs: Vec::new(),
            id: ModelId::fresh(),
            is_direction: false,
            dropout: 0.0,
        };
        m.refresh_derived();
        Ok(m)
    }

    /// Recomputes everything derived from the parameters (folded biases, packed weights).
    pub(crate) fn refresh_derived(&mut self) {
        // Settle the kernel tier now (it reads the environment once), so that no
        // streaming call is the first to ask and pays for the detection.
        crate::kernels::activation::tier();
        self.id = ModelId::fresh();
        let cfg = self.config;
        let h = cfg.hidden_size;
        self.head_at = head_ranges(&cfg, &self.layout);
        if cfg.is_composed() && !self.is_direction {
            self.all_streams_fused = false;
            self.refresh_directions();
            return;
        }
        self.folded_bias = (0..cfg.num_layers)
            .map(|k| {
                let lw = self.layer(k);
                let mut b: Vec<f32> = lw.b_ih.iter().zip(lw.b_hh).map(|(a, b)| a + b).collect();
                if cfg.cell == CellKind::GruLbr {
                    b[2 * h..3 * h].copy_from_slice(&lw.b_ih[2 * h..3 * h]);
                }
                b
            })
            .collect();
        self.packed = (0..cfg.num_layers)
            .map(|k| PackedLayer::new(&cfg, &self.layer(k), &self.folded_bias[k]))
            .collect();
        self.all_streams_fused = self.packed.iter().all(|pk| pk.stream.is_some());
        self.head_t = match self.head() {
            Some(hw) => PackedB::from_transposed(hw.weight, cfg.output_size, cfg.hidden_size),
            None => PackedB::default(),
        };
        self.head_narrow = match cfg.has_head() {
            true => dense_narrow_kernel(cfg.output_size),
            false => None,
        };
        // A head of few outputs runs inside the top layer's fused kernel, which keeps a
        // copy of its weights (as of the other weights it reads).
        let head = self.head().map(|hw| (hw.weight.to_vec(), hw.bias.to_vec()));
        if let (Some((w, b)), Some(_)) = (head, self.head_narrow) {
            if let Some(top) = self.packed.last_mut().and_then(|p| p.stream.as_mut()) {
                top.set_head(&w, &b);
            }
        }
        self.refresh_dense_plans();
        // Training with dropout between layers runs the layers one at a time
        // (`crate::bidir`), through one-layer direction models; inference keeps the
        // packed stack above.
        if self.dropout_active() {
            self.refresh_direction_models();
        } else {
            self.dirs = Vec::new();
        }
    }

    /// Whether training applies dropout: a probability above 0 and a layer above another.
    pub(crate) fn dropout_active(&self) -> bool {
        self.dropout > 0.0 && self.config.num_layers > 1
    }

    /// A composed model's [`Model::refresh_derived`]: each direction's one-layer
    /// model gets the current weights (copied into its buffer, kept between calls) and
    /// packs them; the head is packed for its `D·P` inputs.
    fn refresh_directions(&mut self) {
        let cfg = self.config;
        self.refresh_direction_models();
        self.folded_bias = Vec::new();
        self.packed = Vec::new();
        self.head_t = match self.head() {
            Some(hw) => {
                PackedB::from_transposed(hw.weight, cfg.output_size, cfg.layer_output_dim())
            }
            None => PackedB::default(),
        };
        self.head_narrow = None;
    }

    /// Makes (or refreshes) `dirs`, one one-layer model per layer and direction holding a
    /// copy of its tensors, packed.
    fn refresh_direction_models(&mut self) {
        let cfg = self.config;
        let (dn, tpd) = (cfg.num_directions(), cfg.tensors_per_direction());
        let n = dn * cfg.num_layers;
        if self.dirs.len() != n {
            self.dirs = (0..n)
                .map(|i| {
                    let sub = direction_config(&cfg, i / dn);
                    let e = &self.layout.entries()[tpd * i..tpd * (i + 1)];
                    let params =
                        self.params[e[0].offset..e[tpd - 1].offset + e[tpd - 1].len].to_vec();
                    Model {
                        config: sub,
                        layout: ParamLayout::new(&sub).expect("a direction of a valid model"),
                        params,
                        folded_bias: Vec::new(),
                        packed: Vec::new(),
                        head_t: PackedB::default(),
                        head_narrow: None,
                        head_at: None,
                        all_streams_fused: false,
                        cache: ForwardCache::default(),
                        layers: None,
                        dense_plan: Vec::new(),
                        dirs: Vec::new(),
                        id: ModelId::fresh(),
                        is_direction: true,
                        dropout: 0.0,
                    }
                })
                .collect();
        }
        for (i, sub) in self.dirs.iter_mut().enumerate() {
            let e = &self.layout.entries()[tpd * i..tpd * (i + 1)];
            sub.params
                .copy_from_slice(&self.params[e[0].offset..e[tpd - 1].offset + e[tpd - 1].len]);
            sub.refresh_derived();
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The same model with dropout probability `p` between layers in training
    /// (PyTorch's `dropout` argument of `nn.LSTM` / `nn.GRU` / `nn.RNN`): during a
    /// [`crate::Trainer`] step, each element of every layer's output that feeds the
    /// layer above (never the top layer's) is kept with probability `1 − p` and scaled
    /// by `1 / (1 − p)`, zeroed otherwise. Inference ([`Model::forward`],
    /// [`Model::step`], [`Model::forward_train`] and [`Model::backward`] called
    /// directly) never applies it. Saved in weight files (metadata `dropout`). The
    /// weights are unchanged.
    ///
    /// Errors: `p` not in `0 <= p < 1` (NaN included) ([`Error::Invalid`]).
    ///
    /// ```
    /// use rnncore::{CellKind, Model, ModelConfig};
    /// let model = Model::new(ModelConfig::new(CellKind::Gru, 2, 8, 2), 1)?.with_dropout(0.25)?;
    /// assert_eq!(model.dropout(), 0.25);
    /// assert!(Model::new(ModelConfig::new(CellKind::Gru, 2, 8, 2), 1)?.with_dropout(1.0).is_err());
    /// # Ok::<(), rnncore::Error>(())
    /// ```
    pub fn with_dropout(mut self, p: f32) -> Result<Model> {
        check_dropout(p)?;
        if p > 0.0 && self.layers.is_some() {
            return Err(crate::error::invalid!(
                "dropout between recurrent layers is not supported in a model with dense \
                 layers around its stack"
            ));
        }
        self.dropout = p;
        self.refresh_derived();
        Ok(self)
    }

    /// The dropout probability between layers in training (0: none; see
    /// [`Model::with_dropout`]).
    pub fn dropout(&self) -> f32 {
        self.dropout
    }

    /// Width of the outputs: the last dense layer's, or `hidden_size` without one.
    pub fn output_size(&self) -> usize {
        match self.layers() {
            Some(l) => l.output_size(&self.config),
            None => self.config.output_dim(),
        }
    }

    /// Gives a model built from the stack's tensors its dense layers: `layout` is the
    /// stack's with the layers' appended, `params` the whole buffer in that order.
    pub(crate) fn set_layers(
        &mut self,
        layers: crate::layers::Layers,
        layout: ParamLayout,
        params: Vec<f32>,
    ) {
        debug_assert_eq!(layout.total(), params.len());
        self.layout = layout;
        self.params = params;
        self.head_at = head_ranges(&self.config, &self.layout);
        self.layers = Some(Box::new(layers));
        self.refresh_dense_plans();
        self.id = ModelId::fresh();
    }

    /// The dense layers' plans, and the stack's fused layer's copy of the dense layer
    /// after it where a per-sample step computes that layer along (`Model::post_fused`):
    /// made again whenever the weights or the layers change.
    fn refresh_dense_plans(&mut self) {
        self.dense_plan = crate::layers::dense_plans(self);
        let post = crate::layers::post_for_fused(self);
        if let [PackedLayer {
            stream: Some(top), ..
        }] = self.packed.as_mut_slice()
        {
            match post {
                Some((w, b)) => top.set_post(&w, &b),
                None => top.clear_post(),
            }
        }
    }

    /// Where each tensor lives in [`Model::parameters`].
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// All parameters, flat, in [`ParamLayout`] order.
    pub fn parameters(&self) -> &[f32] {
        &self.params
    }

    /// Mutable parameters, for the trainer; the caller must call `refresh_derived` after.
    pub(crate) fn parameters_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// The tensor called `name`, if the model has it.
    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        self.layout
            .find(name)
            .map(|e| &self.params[e.offset..e.offset + e.len])
    }

    /// Weights of layer `k` (`k < num_layers`).
    pub(crate) fn layer(&self, k: usize) -> LayerWeights<'_> {
        layer_view(&self.config, &self.layout, &self.params, k)
    }

    /// Multiply-adds of the products of one forward row (one stream, one step): every
    /// layer's `G·H·(I_k + H)` and the head's `H·O`. Sizes the parallel split.
    pub(crate) fn macs_per_row(&self) -> usize {
        let cfg = self.config();
        if cfg.is_composed() && !self.is_direction {
            let dirs: usize = self.dirs.iter().map(Model::macs_per_row).sum();
            return dirs + cfg.layer_output_dim() * cfg.output_size;
        }
        let (h, gh) = (cfg.hidden_size, cfg.cell.gates() * cfg.hidden_size);
        let p = cfg.real_hidden_size();
        let proj = if cfg.proj_size > 0 { p * h } else { 0 };
        let layers: usize = (0..cfg.num_layers)
            .map(|k| gh * (self.layer(k).input_size + p) + proj)
            .sum();
        layers + p * cfg.output_size
    }

    /// Layer `k`'s `bias_hh` alone ([`Model::layer`] without the other three views, for
    /// the per-sample step).
    pub(crate) fn bias_hh(&self, k: usize) -> &[f32] {
        let e = &self.layout.entries()[self.config.tensors_per_direction() * k + 3];
        &self.params[e.offset..e.offset + e.len]
    }

    /// The head's weights, when the model has a head.
    pub(crate) fn head(&self) -> Option<HeadWeights<'_>> {
        let (w, b) = self.head_at.clone()?;
        Some(HeadWeights {
            weight: &self.params[w],
            bias: &self.params[b],
        })
    }

    /// Bias added to the hoisted input projection of layer `k` (see the field doc).
    pub(crate) fn folded_bias(&self, k: usize) -> &[f32] {
        &self.folded_bias[k]
    }
}

/// Checks a dropout probability: `0 <= p < 1`.
pub(crate) fn check_dropout(p: f32) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(crate::error::invalid!(
            "dropout is {p}, expected a probability in 0 <= p < 1"
        ));
    }
    Ok(())
}

/// Layer `k`'s tensors inside any buffer laid out as `layout` (parameters or gradients).
pub(crate) fn layer_view<'a>(
    config: &ModelConfig,
    layout: &ParamLayout,
    buf: &'a [f32],
    k: usize,
) -> LayerWeights<'a> {
    let tpd = config.tensors_per_direction();
    let e = &layout.entries()[tpd * k..tpd * (k + 1)];
    let s = |i: usize| &buf[e[i].offset..e[i].offset + e[i].len];
    LayerWeights {
        w_ih: s(0),
        w_hh: s(1),
        b_ih: s(2),
        b_hh: s(3),
        w_hr: if tpd == 5 { s(4) } else { &[] },
        input_size: config.layer_input_dim(k),
    }
}

/// The config of a direction model of layer `k` of a composed `config` (see
/// `Model::dirs`): one unidirectional layer reading layer `k`'s input, with the model's
/// projection, no head.
pub(crate) fn direction_config(config: &ModelConfig, k: usize) -> ModelConfig {
    ModelConfig::new(
        config.cell,
        config.layer_input_dim(k),
        config.hidden_size,
        1,
    )
    .with_proj_size(config.proj_size)
}

/// The head's tensors inside any buffer laid out as `layout`.
pub(crate) fn head_view<'a>(
    config: &ModelConfig,
    layout: &ParamLayout,
    buf: &'a [f32],
) -> Option<HeadWeights<'a>> {
    let (w, b) = head_ranges(config, layout)?;
    Some(HeadWeights {
        weight: &buf[w],
        bias: &buf[b],
    })
}

/// Where the head's weight and bias sit in a buffer laid out as `layout`, when the
/// model has a head.
fn head_ranges(config: &ModelConfig, layout: &ParamLayout) -> Option<(Range<usize>, Range<usize>)> {
    if !config.has_head() {
        return None;
    }
    // The head follows the stack's tensors (dense layers, if any, come after it).
    let n = config.tensors_per_direction() * config.num_directions() * config.num_layers + 2;
    let (w, b) = (&layout.entries()[n - 2], &layout.entries()[n - 1]);
    Some((w.offset..w.offset + w.len, b.offset..b.offset + b.len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_gives_back_what_was_put() {
        let slot = Kept::default();
        slot.put(Box::new(vec![1.0f32, 2.0]));
        assert!(
            slot.take::<String>().is_none(),
            "a take of another type empties the slot"
        );
        slot.put(Box::new(vec![1.0f32, 2.0]));
        assert_eq!(*slot.take::<Vec<f32>>().unwrap(), [1.0, 2.0]);
        assert!(slot.take::<Vec<f32>>().is_none());
    }

    #[test]
    fn forward_reuses_its_kept_buffers() {
        let model = Model::new(ModelConfig::new(CellKind::Lstm, 2, 4, 1), 1).unwrap();
        let x = vec![0.5f32; 3 * 5 * 2];
        model.forward(&x, 3, 5).unwrap();
        let kept = model
            .cache
            .take()
            .expect("the batched forward keeps its buffers");
        model.cache.put(kept);
        model.forward(&x[..10], 1, 5).unwrap();
        assert!(
            model.cache.take_state(5).is_some(),
            "a batch of one keeps its state"
        );
    }
}
