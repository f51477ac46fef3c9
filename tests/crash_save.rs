//! A save killed with SIGKILL at a random moment leaves the old model or the new one,
//! whole, and — once the next load has run — no temporary file in the directory.
//!
//! The test binary is its own child: run with `RNNCORE_CRASH_CHILD=DIR` it saves two
//! models over `DIR/m.safetensors` in turn forever; the parent kills it after a random
//! delay, checks the file and the directory, and repeats. Both ways of making the
//! temporary file are run: unnamed (`O_TMPFILE`, Linux) and named (the fallback), the
//! latter being the one where a kill leaves a file that the next load must clean up.
#![cfg(unix)]

use rnncore::__testing::{write_atomic_using, TempFile};
use rnncore::Rng;
use rnncore::{CellKind, Model, ModelConfig, OutputActivation};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs};

const CHILD_ENV: &str = "RNNCORE_CRASH_CHILD";
const HOW_ENV: &str = "RNNCORE_CRASH_HOW";
const ROUNDS: usize = 20;
const READY: &str = "rnncore-crash-child-ready";

/// The two models, ~0.25 MB each: large enough that a write takes a while.
fn models() -> (Model, Model) {
    let cfg = ModelConfig::new(CellKind::Lstm, 16, 64, 2).with_head(4, OutputActivation::Identity);
    (Model::new(cfg, 1).unwrap(), Model::new(cfg, 2).unwrap())
}

fn how(name: &str) -> TempFile {
    match name {
        "named" => TempFile::Named,
        _ => TempFile::Best,
    }
}

fn save(bytes: &[u8], model: &Model, path: &Path, how: TempFile) {
    match how {
        // The public entry point itself.
        TempFile::Best => model.save(path).unwrap(),
        TempFile::Named => write_atomic_using(path, bytes, how).unwrap(),
    }
}

/// The child: save A, B, A, B, ... until killed.
fn child(dir: &Path) -> ! {
    let how = how(&env::var(HOW_ENV).unwrap_or_default());
    let (a, b) = models();
    let (ba, bb) = (a.to_safetensors().unwrap(), b.to_safetensors().unwrap());
    let path = dir.join("m.safetensors");
    println!("\n{READY}");
    loop {
        save(&bb, &b, &path, how);
        save(&ba, &a, &path, how);
    }
}

fn temps(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "m.safetensors")
        .collect()
}

#[test]
fn a_save_killed_at_any_moment_leaves_old_or_new_and_no_temp_file() {
    if let Ok(dir) = env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir: PathBuf = env::temp_dir().join(format!("rnncore-crash-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    let (a, b) = models();
    let (ba, bb) = (a.to_safetensors().unwrap(), b.to_safetensors().unwrap());

    // Kill within a few saves' time, so the moments spread over whole save cycles.
    let t0 = Instant::now();
    for _ in 0..4 {
        a.save(&path).unwrap();
    }
    let one_save = t0.elapsed() / 4;
    let window_us = (one_save.as_micros() as usize * 6).max(2000);

    let mut rng = Rng::new(22);
    for mode in ["unnamed", "named"] {
        let (mut old, mut new, mut leftovers) = (0, 0, 0);
        for round in 0..ROUNDS {
            a.save(&path).unwrap();
            let mut child = Command::new(env::current_exe().unwrap())
                .args([
                    "--exact",
                    "a_save_killed_at_any_moment_leaves_old_or_new_and_no_temp_file",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &dir)
                .env(HOW_ENV, mode)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            loop {
                line.clear();
                assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
                if line.trim_end().ends_with(READY) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(window_us) as u64));
            child.kill().unwrap(); // SIGKILL
            let status = child.wait().unwrap();
            assert!(
                !status.success(),
                "{mode} round {round}: the child was not killed"
            );

            if !temps(&dir).is_empty() {
                leftovers += 1;
            }
            let got = fs::read(&path).unwrap();
            let back = Model::load(&path)
                .unwrap_or_else(|e| panic!("{mode} round {round}: {}", e.message()));
            if got == ba {
                old += 1;
            } else if got == bb {
                new += 1;
            } else {
                panic!("{mode} round {round}: the file is neither model");
            }
            assert_eq!(back.to_safetensors().unwrap(), got);
            assert_eq!(
                temps(&dir),
                Vec::<String>::new(),
                "{mode} round {round}: the load left a temporary file"
            );
        }
        eprintln!(
            "{mode}: {ROUNDS} kills: old model {old}, new model {new}; \
             a temporary file left at the kill {leftovers} times, removed by the load"
        );
        // The kills landed at different points of the save cycle.
        assert!(new > 0, "{mode}: the child never finished a save");
    }
    fs::remove_dir_all(&dir).unwrap();
}
