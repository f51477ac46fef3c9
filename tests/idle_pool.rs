//! Calls that find the thread pool idle: the calling thread starts on the work at once
//! and the pool's workers join as they wake (`src/parallel/scatter.rs`), so how much each
//! does depends on the clock. Several threads making such calls at once, with pauses
//! between them so that many calls find the pool asleep, must neither hang nor change a
//! bit of any result. (Its own test binary: the thread count is process-wide.)

mod common;
use common::{bits, vals};
use rnncore::{CellKind, Model, ModelConfig, Targets, TrainConfig, Trainer};
use std::time::Duration;

#[test]
fn concurrent_calls_on_an_idle_pool_keep_their_bits() {
    let cfg = ModelConfig::new(CellKind::Lstm, 8, 64, 1);
    let model = Model::new(cfg, 3).unwrap();
    // Large enough to leave the calling thread (over 4M multiply-adds): 32 x 40 rows.
    let (b, t) = (32, 40);
    let x = vals(b * t * 8, 5, 1.0);
    let target = vals(b * t * 64, 6, 0.5);
    let train = |model: &mut Model| {
        let mut tr = Trainer::new(model, TrainConfig::sgd(0.01, 0.0)).unwrap();
        let losses: Vec<u32> = (0..3)
            .map(|_| {
                let loss = tr
                    .step_mse(model, None, &x, b, t, &target, Targets::EveryStep)
                    .unwrap();
                loss.to_bits()
            })
            .collect();
        (losses, bits(model.parameters()))
    };
    // A smaller call (6M multiply-adds), which an idle pool may leave to the caller.
    let bs = 8;
    let xs = &x[..bs * t * 8];
    rnncore::set_num_threads(1).unwrap();
    let want_y = bits(&model.forward(&x, b, t).unwrap());
    let want_small = bits(&model.forward(xs, bs, t).unwrap());
    let want_train = train(&mut model.clone());

    rnncore::set_num_threads(2).unwrap();
    std::thread::scope(|s| {
        for caller in 0..3usize {
            let (model, x, want_y, want_train) = (&model, &x, &want_y, &want_train);
            let want_small = &want_small;
            s.spawn(move || {
                for round in 0..12 {
                    // Pauses of 1-5 ms: some calls find the pool busy, many idle.
                    let pause = 1 + ((2 * caller + round) % 5) as u64;
                    std::thread::sleep(Duration::from_millis(pause));
                    match (caller + round) % 3 {
                        0 => assert_eq!(&train(&mut model.clone()), want_train, "caller {caller}"),
                        1 => {
                            let y = model.forward(x, b, t).unwrap();
                            assert_eq!(&bits(&y), want_y, "caller {caller} round {round}");
                        }
                        _ => {
                            let y = model.forward(xs, bs, t).unwrap();
                            assert_eq!(&bits(&y), want_small, "caller {caller} round {round}");
                        }
                    }
                }
            });
        }
    });
    rnncore::set_num_threads(0).unwrap();
}
