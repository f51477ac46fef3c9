//! Weight files: exact round trips, and every malformed input is a loud, typed error.

mod common;

use common::configs;
use rnncore::{Error, Model};

#[test]
fn round_trip_is_bit_exact_for_every_config() {
    for (n, cfg) in configs(4, 5).into_iter().enumerate() {
        let m = Model::new(cfg, n as u64).unwrap();
        let bytes = m.to_safetensors().unwrap();
        let back = Model::from_safetensors(&bytes).unwrap();
        assert_eq!(back.config(), m.config(), "{cfg:?}");
        let (a, b) = (m.parameters(), back.parameters());
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{cfg:?}"
        );
        assert!(matches!(
            Model::from_safetensors(&bytes[..bytes.len() - 1]),
            Err(Error::Format(_))
        ));
    }
}
