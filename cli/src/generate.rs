//! `rnncore generate`: sample text from a char-LM, streaming one character at a time
//! through `Model::step`.

use crate::error::{fail, Result};
use crate::tasks::charlm;
use clap::Args;
use rnncore::Rng;
use std::path::PathBuf;

/// Options of `rnncore generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A model saved by `rnncore train --task charlm`.
    #[arg(long, default_value = "charlm.safetensors")]
    pub model: PathBuf,
    /// Sharpness of sampling: below 1 more likely characters, above 1 more varied; 0 = argmax.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Characters to generate after the prime.
    #[arg(long, default_value_t = 400)]
    pub length: usize,
    /// Text fed to the model before sampling (printed too).
    #[arg(long, default_value = "")]
    pub prime: String,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `rnncore generate`.
pub fn run(a: &GenerateArgs) -> Result<()> {
    if !(a.temperature.is_finite() && a.temperature >= 0.0) {
        fail!(
            "--temperature is {}, expected a finite value >= 0",
            a.temperature
        );
    }
    let lm = charlm::load(&a.model)?;
    let mut rng = Rng::new(a.seed);
    println!(
        "{}",
        charlm::generate(&lm, &a.prime, a.length, a.temperature, &mut rng)?
    );
    Ok(())
}
