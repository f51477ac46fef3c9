//! A fingerprint of a kernel tier's sigmoid and tanh over all 2³² `f32` bit patterns
//! (an FNV-1a hash of the outputs' bits, NaNs included): two tiers, or one tier on two
//! machines, with the same fingerprints give the same bits on every input. This is how
//! the NEON tier was shown to compute AVX2's activations exactly (README, "How it is
//! tested"), so that AVX2's measured maxima (`examples/activation_error.rs`) hold for it.
//!
//! `cargo run --release --example activation_bits -- avx2` (the tier's name as
//! `RNNCORE_KERNEL` spells it; a tier this CPU lacks falls back to the best one, and
//! the output names the tier that ran). About 20 s natively, 15-25 minutes under
//! `qemu-aarch64`.

use rnncore::__testing::activation::{sigmoid_with, tanh_with, Tier};

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "scalar".into());
    let Some(tier) = Tier::from_name(&name) else {
        eprintln!(
            "activation_bits: no tier named {name:?} (scalar, neon, sse41, avx, avx2, avx512)"
        );
        std::process::exit(2);
    };
    const CHUNK: u64 = 1 << 22;
    let acts: [fn(Tier, &mut [f32]); 2] = [sigmoid_with, tanh_with];
    let mut hashes = [0xcbf2_9ce4_8422_2325_u64; 2];
    let (mut xs, mut ys) = (vec![0f32; CHUNK as usize], vec![0f32; CHUNK as usize]);
    let mut start = 0u64;
    while start < 1 << 32 {
        for (i, x) in xs.iter_mut().enumerate() {
            *x = f32::from_bits((start + i as u64) as u32);
        }
        for (act, hash) in acts.iter().zip(&mut hashes) {
            ys.copy_from_slice(&xs);
            act(tier, &mut ys);
            for y in &ys {
                *hash = (*hash ^ u64::from(y.to_bits())).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        start += CHUNK;
    }
    println!(
        "{}: sigmoid {:016x} tanh {:016x} (all 2^32 inputs)",
        tier.available_or_best().name(),
        hashes[0],
        hashes[1]
    );
}
