//! rnncore as a guest in someone else's process: it leaves every thread's CPU affinity
//! as it found it, and a host's own parallel-for ([`rnncore::set_parallel_for`]) gives
//! the bits of the built-in pool. (Its own test binary: the thread settings are
//! process-wide, so the tests here run one after another under one lock.)

mod common;
use common::{bits, vals};
use rnncore::{CellKind, Model, ModelConfig, ParallelFor, Targets, TrainConfig, Trainer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static SERIAL: Mutex<()> = Mutex::new(());

/// Big enough to split (over 4M multiply-adds a call): LSTM H64, 32 sequences of 40.
const B: usize = 32;
const T: usize = 40;

fn model(cell: CellKind) -> Model {
    Model::new(ModelConfig::new(cell, 8, 64, 2), 3).unwrap()
}

/// Forward outputs and three training steps' losses and final weights, as bits.
fn burst(model: &Model) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let x = vals(B * T * 8, 5, 1.0);
    let target = vals(B * T * 64, 6, 0.5);
    let y = bits(&model.forward(&x, B, T).unwrap());
    let mut m = model.clone();
    let mut tr = Trainer::new(&m, TrainConfig::adam(0.01).with_clip(1.0)).unwrap();
    let losses = (0..3)
        .map(|_| {
            let l = tr
                .step_mse(&mut m, None, &x, B, T, &target, Targets::EveryStep)
                .unwrap();
            l.to_bits()
        })
        .collect();
    (y, losses, bits(m.parameters()))
}

/// Every thread of this process and its allowed CPUs, from `/proc/self/task`.
#[cfg(target_os = "linux")]
fn affinities() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| {
            let tid = e.ok()?.file_name().into_string().ok()?;
            let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
                .trim()
                .to_string();
            Some((tid, cpus))
        })
        .collect();
    v.sort();
    v
}

/// A burst of forward and training calls on 2 threads changes no thread's CPU mask:
/// not the caller's, not the pool workers' (recorded after a first call started them),
/// and not during the calls either (read from another thread while they run).
#[cfg(target_os = "linux")]
#[test]
fn no_thread_affinity_is_changed() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    rnncore::set_num_threads(2).unwrap();
    let m = model(CellKind::Lstm);
    burst(&m);
    let before = affinities();
    assert!(
        before.len() >= 3,
        "the pool's threads are running: {before:?}"
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(affinities());
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            seen
        });
        for cell in [CellKind::Lstm, CellKind::Gru, CellKind::GruLbr] {
            burst(&model(cell));
        }
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap()
    });
    let after = affinities();
    rnncore::set_num_threads(0).unwrap();
    let same = |a: &[(String, String)]| {
        a.iter()
            .all(|(tid, cpus)| before.iter().all(|(t, c)| t != tid || c == cpus))
    };
    assert!(same(&after), "before {before:?}\nafter {after:?}");
    for s in &seen {
        assert!(same(s), "during a call: {s:?}\nbefore {before:?}");
    }
}

/// A host pool of `threads` scoped threads that take indices from a shared counter.
struct ScopedPool {
    threads: usize,
    calls: AtomicUsize,
}

impl ParallelFor for ScopedPool {
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..self.threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    task(i);
                });
            }
        });
    }
}

/// Every task in order on the calling thread.
struct InOrder;
impl ParallelFor for InOrder {
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        (0..n).for_each(task);
    }
}

/// A careless host: runs the even indices twice and never the odd ones. rnncore runs
/// the skipped ones itself and the repeats do their work once.
struct Careless;
impl ParallelFor for Careless {
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        for i in (0..n).step_by(2) {
            task(i);
            task(i);
        }
        task(n + 5);
    }
}

#[test]
fn a_host_parallel_for_gives_the_bits_of_the_built_in_pool() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for cell in [
        CellKind::Lstm,
        CellKind::Gru,
        CellKind::GruLbr,
        CellKind::RnnTanh,
    ] {
        let m = model(cell);
        rnncore::set_num_threads(1).unwrap();
        let one = burst(&m);
        rnncore::set_num_threads(2).unwrap();
        assert_eq!(burst(&m), one, "{cell:?} built-in pool");
        for parts in [0, 3] {
            rnncore::set_num_threads(parts).unwrap();
            let pool = Arc::new(ScopedPool {
                threads: 3,
                calls: AtomicUsize::new(0),
            });
            rnncore::set_parallel_for(Some(pool.clone()));
            let got = burst(&m);
            rnncore::set_parallel_for(None);
            assert_eq!(got, one, "{cell:?} host pool, {parts} parts");
            assert!(
                pool.calls.load(Ordering::Relaxed) > 0,
                "the host ran the work"
            );
        }
        rnncore::set_num_threads(4).unwrap();
        for host in [
            Arc::new(InOrder) as Arc<dyn ParallelFor>,
            Arc::new(Careless),
        ] {
            rnncore::set_parallel_for(Some(host));
            let got = burst(&m);
            rnncore::set_parallel_for(None);
            assert_eq!(got, one, "{cell:?}");
        }
        rnncore::set_num_threads(0).unwrap();
    }
}

/// Small work never reaches the host: a call under the split size runs on its thread.
#[test]
fn small_calls_do_not_reach_the_host() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Arc::new(ScopedPool {
        threads: 2,
        calls: AtomicUsize::new(0),
    });
    rnncore::set_parallel_for(Some(pool.clone()));
    let m = Model::new(ModelConfig::new(CellKind::Lstm, 4, 16, 1), 1).unwrap();
    let y = m.forward(&vals(4 * 10 * 4, 1, 1.0), 4, 10).unwrap();
    rnncore::set_parallel_for(None);
    assert_eq!(y.len(), 4 * 10 * 16);
    assert_eq!(pool.calls.load(Ordering::Relaxed), 0);
}
