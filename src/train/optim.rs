//! Optimizers and gradient clipping with PyTorch's semantics and defaults
//! (`torch.optim.SGD`, `Adam`, `AdamW`, `torch.nn.utils.clip_grad_norm_`).

use crate::error::{invalid, Result};

/// Which update rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Optimizer {
    /// SGD with optional momentum (no dampening, no Nesterov) and L2 weight decay.
    Sgd = 0,
    /// Adam; weight decay is L2 added to the gradient.
    Adam = 1,
    /// AdamW; weight decay is decoupled: `θ ← θ − lr·λ·θ` before the Adam step.
    AdamW = 2,
}

impl Optimizer {
    /// Converts the C ABI number (`rnn_optimizer`).
    pub(crate) fn from_u32(v: u32) -> Option<Optimizer> {
        match v {
            0 => Some(Optimizer::Sgd),
            1 => Some(Optimizer::Adam),
            2 => Some(Optimizer::AdamW),
            _ => None,
        }
    }
}

/// Hyperparameters, as `rnn_train_config`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Which update rule a step applies.
    pub optimizer: Optimizer,
    /// Step size (finite, `>= 0`).
    pub learning_rate: f32,
    /// SGD only; 0 = plain SGD.
    pub momentum: f32,
    /// Adam/AdamW: decay rate of the first-moment (mean) estimate.
    pub beta1: f32,
    /// Adam/AdamW: decay rate of the second-moment (uncentered variance) estimate.
    pub beta2: f32,
    /// Adam/AdamW: added to the denominator for numerical stability.
    pub eps: f32,
    /// SGD/Adam: L2 added to the gradient; AdamW: decoupled.
    pub weight_decay: f32,
    /// `> 0`: rescale gradients so their global L2 norm is at most this.
    pub clip_norm: f32,
}

impl Default for TrainConfig {
    /// Adam with PyTorch's defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8), no clipping.
    fn default() -> Self {
        TrainConfig {
            optimizer: Optimizer::Adam,
            learning_rate: 1e-3,
            momentum: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            clip_norm: 0.0,
        }
    }
}

impl TrainConfig {
    /// SGD with the given learning rate and momentum.
    pub fn sgd(learning_rate: f32, momentum: f32) -> Self {
        TrainConfig {
            optimizer: Optimizer::Sgd,
            learning_rate,
            momentum,
            ..TrainConfig::default()
        }
    }

    /// Adam with the given learning rate, other settings PyTorch's defaults.
    pub fn adam(learning_rate: f32) -> Self {
        TrainConfig {
            learning_rate,
            ..TrainConfig::default()
        }
    }

    /// AdamW with the given learning rate and decoupled weight decay (PyTorch default 0.01).
    pub fn adamw(learning_rate: f32, weight_decay: f32) -> Self {
        TrainConfig {
            optimizer: Optimizer::AdamW,
            learning_rate,
            weight_decay,
            ..TrainConfig::default()
        }
    }

    /// Adds clipping by global L2 norm.
    pub fn with_clip(mut self, clip_norm: f32) -> Self {
        self.clip_norm = clip_norm;
        self
    }

    /// Checks every field; the error names the field and its range.
    pub fn validate(&self) -> Result<()> {
        let fin = |name: &str, v: f32, lo: f32, hi: f32, hi_open: bool| -> Result<()> {
            let ok = v.is_finite() && v >= lo && if hi_open { v < hi } else { v <= hi };
            if ok {
                Ok(())
            } else {
                let close = if hi_open { ")" } else { "]" };
                Err(invalid!(
                    "{name} is {v}, expected a finite value in [{lo}, {hi}{close}"
                ))
            }
        };
        fin("learning_rate", self.learning_rate, 0.0, f32::MAX, false)?;
        fin("momentum", self.momentum, 0.0, 1.0, true)?;
        fin("weight_decay", self.weight_decay, 0.0, f32::MAX, false)?;
        fin("clip_norm", self.clip_norm, 0.0, f32::MAX, false)?;
        if self.optimizer != Optimizer::Sgd {
            fin("beta1", self.beta1, 0.0, 1.0, true)?;
            fin("beta2", self.beta2, 0.0, 1.0, true)?;
            if !(self.eps.is_finite() && self.eps > 0.0) {
                return Err(invalid!("eps is {}, expected a finite value > 0", self.eps));
            }
        }
        Ok(())
    }
}

/// Optimizer memory: momentum buffer or Adam moments, and the step count.
#[derive(Clone, Debug, Default)]
pub(crate) struct OptimState {
    pub step: u64,
    /// SGD momentum buffer, or Adam's first moment.
    pub m: Vec<f32>,
    /// Adam's second moment.
    pub v: Vec<f32>,
}

/// The global L2 norm of `g`, accumulated in f64.
pub fn global_norm(g: &[f32]) -> f64 {
    g.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt()
}

/// `clip_grad_norm_`: scales `g` by `max_norm / (norm + 1e-6)` when that is below 1.
/// Returns the norm before clipping.
pub fn clip_grad_norm(g: &mut [f32], max_norm: f32) -> f64 {
    let norm = global_norm(g);
    let coef = max_norm as f64 / (norm + 1e-6);
    if coef < 1.0 {
        let c = coef as f32;
        for v in g.iter_mut() {
            *v *= c;
        }
    }
    norm
}

/// The error for a refused update: `news` gives each parameter's new value and whether
/// everything it would write (value and optimizer state) is finite; names the first
/// that is not.
fn refused(news: impl Iterator<Item = (f32, bool)>) -> crate::error::Error {
    let (i, (a, _)) = news
        .enumerate()
        .find(|(_, (_, ok))| !ok)
        .unwrap_or((0, (f32::NAN, false)));
    crate::error::Error::NonFinite(format!(
        "the update would make parameter {i} non-finite ({a}); weights left unchanged"
    ))
}

/// One update of `p` with gradient `g` (already clipped), advancing `st`. Every new
/// value is computed and checked before anything is written: if any parameter or
/// moment would become NaN or Inf, nothing changes and the step is refused.
pub(crate) fn update(
    cfg: &TrainConfig,
    st: &mut OptimState,
    p: &mut [f32],
    g: &[f32],
) -> Result<()> {
    let t = st.step + 1;
    let uses_m = cfg.optimizer != Optimizer::Sgd || cfg.momentum != 0.0;
    let uses_v = cfg.optimizer != Optimizer::Sgd;
    if uses_m && st.m.len() != p.len() {
        st.m = vec![0.0; p.len()];
    }
    if uses_v && st.v.len() != p.len() {
        st.v = vec![0.0; p.len()];
    }
    let lr = cfg.learning_rate;
    let wd = cfg.weight_decay;
    let (b1, b2) = (cfg.beta1, cfg.beta2);
    let bc1 = 1.0 - (b1 as f64).powi(t.min(i32::MAX as u64) as i32);
    let bc2 = 1.0 - (b2 as f64).powi(t.min(i32::MAX as u64) as i32);
    let step_size = (lr as f64 / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    // One loop per rule, branch-free inside, so that both passes vectorize; each new
    // value is the same expression (the same operations in the same order) as ever.
    match cfg.optimizer {
        Optimizer::Sgd if cfg.momentum == 0.0 => {
            let rule = |p: f32, g: f32| p - lr * (g + wd * p);
            // Pass 1: check.
            let ok = p
                .iter()
                .zip(g)
                .fold(true, |ok, (&p, &g)| ok & rule(p, g).is_finite());
            if !ok {
                return Err(refused(p.iter().zip(g).map(|(&p, &g)| {
                    let a = rule(p, g);
                    (a, a.is_finite())
                })));
            }
            // Pass 2: commit.
            for (p, &g) in p.iter_mut().zip(g) {
                *p = rule(*p, g);
            }
        }
        Optimizer::Sgd => {
            let mom = cfg.momentum;
            let first = t == 1;
            // (new p, new momentum buffer)
            let rule = |p: f32, g: f32, m: f32| {
                let d = g + wd * p;
                let buf = if first { d } else { mom * m + d };
                (p - lr * buf, buf)
            };
            let m = &mut st.m[..];
            let ok = p
                .iter()
                .zip(g)
                .zip(m.iter())
                .fold(true, |ok, ((&p, &g), &m)| {
                    let (a, b) = rule(p, g, m);
                    ok & a.is_finite() & b.is_finite()
                });
            if !ok {
                let news = p.iter().zip(g).zip(m.iter()).map(|((&p, &g), &m)| {
                    let (a, b) = rule(p, g, m);
                    (a, a.is_finite() && b.is_finite())
                });
                return Err(refused(news));
            }
            for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                (*p, *m) = rule(*p, g, *m);
            }
        }
        Optimizer::Adam | Optimizer::AdamW => {
            let adamw = cfg.optimizer == Optimizer::AdamW;
            let eps = cfg.eps;
            // (new p, new m, new v)
            let rule = |p: f32, g: f32, m: f32, v: f32| {
                let (mut pi, mut gi) = (p, g);
                if adamw {
                    pi *= 1.0 - lr * wd;
                } else {
                    gi += wd * pi;
                }
                let mi = b1 * m + (1.0 - b1) * gi;
                let vi = b2 * v + (1.0 - b2) * gi * gi;
                let denom = vi.sqrt() / bc2_sqrt + eps;
                (pi - step_size * mi / denom, mi, vi)
            };
            let (m, v) = (&mut st.m[..], &mut st.v[..]);
            let ok = p.iter().zip(g).zip(m.iter().zip(v.iter())).fold(
                true,
                |ok, ((&p, &g), (&m, &v))| {
                    let (a, b, c) = rule(p, g, m, v);
                    ok & a.is_finite() & b.is_finite() & c.is_finite()
                },
            );
            if !ok {
                let news =
                    p.iter()
                        .zip(g)
                        .zip(m.iter().zip(v.iter()))
                        .map(|((&p, &g), (&m, &v))| {
                            let (a, b, c) = rule(p, g, m, v);
                            (a, a.is_finite() && b.is_finite() && c.is_finite())
                        });
                return Err(refused(news));
            }
            for ((p, &g), (m, v)) in p.iter_mut().zip(g).zip(m.iter_mut().zip(v.iter_mut())) {
                (*p, *m, *v) = rule(*p, g, *m, *v);
            }
        }
    }
    st.step = t;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        let cfg = TrainConfig {
            weight_decay: 0.1,
            ..TrainConfig::sgd(0.5, 0.9)
        };
        let mut st = OptimState::default();
        let mut p = vec![1.0f32, -2.0];
        update(&cfg, &mut st, &mut p, &[0.2, 0.4]).unwrap();
        // d = g + 0.1 p = [0.3, 0.2]; buf = d; p -= 0.5 d
        assert!((p[0] - 0.85).abs() < 1e-6 && (p[1] + 2.1).abs() < 1e-6);
        update(&cfg, &mut st, &mut p, &[0.2, 0.4]).unwrap();
        // d = [0.2 + 0.085, 0.4 - 0.21] = [0.285, 0.19]; buf = 0.9*[0.3,0.2] + d
        let b = [0.9 * 0.3 + 0.285, 0.9 * 0.2 + 0.19];
        assert!((p[0] - (0.85 - 0.5 * b[0])).abs() < 1e-6);
        assert!((p[1] - (-2.1 - 0.5 * b[1])).abs() < 1e-6);
    }

    #[test]
    fn adam_and_adamw_match_hand_computation() {
        // Step 1 of Adam: m = 0.1 g, v = 0.001 g²; m̂ = g, v̂ = g²: p -= lr * g/(|g| + eps).
        let mut st = OptimState::default();
        let mut p = vec![1.0f32, 1.0];
        update(&TrainConfig::adam(0.1), &mut st, &mut p, &[0.5, -2.0]).unwrap();
        assert!((p[0] - 0.9).abs() < 1e-6 && (p[1] - 1.1).abs() < 1e-6);
        // Step 2 with g = 0: m = 0.09 g1, v = 0.999*0.001 g1²; bc1 = 0.19, bc2 = 1 - 0.999².
        update(&TrainConfig::adam(0.1), &mut st, &mut p, &[0.0, 0.0]).unwrap();
        let m = 0.09 * 0.5f64;
        let v = 0.999 * 0.001 * 0.25f64;
        let want = 0.9 - 0.1 * (m / 0.19) / ((v / (1.0 - 0.999f64 * 0.999)).sqrt() + 1e-8);
        assert!((p[0] as f64 - want).abs() < 1e-6, "{} vs {want}", p[0]);
        // AdamW decays first: p = 2 * (1 - 0.1*0.5) then the Adam step of size lr.
        let mut st = OptimState::default();
        let mut p = vec![2.0f32];
        update(&TrainConfig::adamw(0.1, 0.5), &mut st, &mut p, &[3.0]).unwrap();
        assert!((p[0] - (1.9 - 0.1)).abs() < 1e-6);
        // Adam's weight decay is L2 in the gradient: g = 3 + 0.5*2 = 4 > 0, step -lr.
        let mut st = OptimState::default();
        let mut p = vec![2.0f32];
        let cfg = TrainConfig {
            weight_decay: 0.5,
            ..TrainConfig::adam(0.1)
        };
        update(&cfg, &mut st, &mut p, &[-1.5]).unwrap();
        // g = -1.5 + 1.0 = -0.5: step +lr.
        assert!((p[0] - 2.1).abs() < 1e-6);
    }

    /// The update, element by element, as the spec: one `match` per element.
    fn update_spec(cfg: &TrainConfig, st: &mut OptimState, p: &mut [f32], g: &[f32]) {
        let t = st.step + 1;
        if st.m.len() != p.len() {
            st.m = vec![0.0; p.len()];
            st.v = vec![0.0; p.len()];
        }
        let (lr, wd, b1, b2) = (cfg.learning_rate, cfg.weight_decay, cfg.beta1, cfg.beta2);
        let bc1 = 1.0 - (b1 as f64).powi(t as i32);
        let bc2 = 1.0 - (b2 as f64).powi(t as i32);
        let step_size = (lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for i in 0..p.len() {
            match cfg.optimizer {
                Optimizer::Sgd => {
                    let d = g[i] + wd * p[i];
                    let buf = if t == 1 {
                        d
                    } else {
                        cfg.momentum * st.m[i] + d
                    };
                    st.m[i] = buf;
                    p[i] -= lr * if cfg.momentum == 0.0 { d } else { buf };
                }
                Optimizer::Adam | Optimizer::AdamW => {
                    let (mut pi, mut gi) = (p[i], g[i]);
                    if cfg.optimizer == Optimizer::AdamW {
                        pi *= 1.0 - lr * wd;
                    } else {
                        gi += wd * pi;
                    }
                    st.m[i] = b1 * st.m[i] + (1.0 - b1) * gi;
                    st.v[i] = b2 * st.v[i] + (1.0 - b2) * gi * gi;
                    let denom = st.v[i].sqrt() / bc2_sqrt + cfg.eps;
                    p[i] = pi - step_size * st.m[i] / denom;
                }
            }
        }
        st.step = t;
    }

    #[test]
    fn every_rule_gives_the_bits_of_the_elementwise_spec() {
        let n = 1000;
        let g = |s: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i + 97 * s) * 7919) % 2001) as f32 / 500.0 - 2.0)
                .collect()
        };
        let configs = [
            TrainConfig::sgd(0.1, 0.0),
            TrainConfig {
                weight_decay: 0.01,
                ..TrainConfig::sgd(0.1, 0.9)
            },
            TrainConfig {
                weight_decay: 0.01,
                ..TrainConfig::adam(0.01)
            },
            TrainConfig::adamw(0.01, 0.1),
        ];
        for cfg in configs {
            let (mut st, mut spec) = (OptimState::default(), OptimState::default());
            let mut p = g(100);
            let mut q = p.clone();
            for step in 0..4 {
                update(&cfg, &mut st, &mut p, &g(step)).unwrap();
                update_spec(&cfg, &mut spec, &mut q, &g(step));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&p), bits(&q), "{cfg:?} step {step}");
            }
        }
    }

    #[test]
    fn a_non_finite_update_is_refused_and_changes_nothing() {
        let mut st = OptimState::default();
        let mut p = vec![1.0f32, 2.0, 3.0e38];
        let err = update(
            &TrainConfig::sgd(1.0, 0.0),
            &mut st,
            &mut p,
            &[0.0, 0.0, -3.0e38],
        )
        .unwrap_err();
        assert!(err.message().contains("parameter 2"), "{}", err.message());
        assert_eq!(p, vec![1.0, 2.0, 3.0e38]);
        assert_eq!(st.step, 0);
    }

    #[test]
    fn clipping_matches_clip_grad_norm() {
        let mut g = vec![3.0f32, 4.0];
        let n = clip_grad_norm(&mut g, 1.0);
        assert!((n - 5.0).abs() < 1e-12);
        let c = 1.0 / (5.0 + 1e-6);
        assert!((g[0] as f64 - 3.0 * c).abs() < 1e-6 && (g[1] as f64 - 4.0 * c).abs() < 1e-6);
        let mut small = vec![0.3f32, 0.4];
        clip_grad_norm(&mut small, 1.0);
        assert_eq!(small, vec![0.3, 0.4]);
    }
}
