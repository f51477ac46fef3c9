//! Loads every `*.model.safetensors` in a directory and saves it through rnncore into
//! another directory (same file names), printing each model's config. Used to check
//! that rnncore's files load back into PyTorch: see `tools/check_roundtrip.py`.
//!
//! ```sh
//! cargo run --example resave -- tests/fixtures /tmp/resaved
//! /work/venv-torch/bin/python tools/check_roundtrip.py /tmp/resaved
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = &args[..] else {
        eprintln!("usage: resave INPUT_DIR OUTPUT_DIR");
        return ExitCode::from(2);
    };
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(input) {
        Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            eprintln!("cannot read {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    paths.retain(|p| p.to_string_lossy().ends_with(".model.safetensors"));
    paths.sort();
    if let Err(e) = std::fs::create_dir_all(output) {
        eprintln!("cannot create {output}: {e}");
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    for p in &paths {
        let name = p.file_name().expect("a file name");
        let result = rnncore::Model::load(p).and_then(|m| {
            m.save(PathBuf::from(output).join(name))?;
            Ok(m)
        });
        match result {
            Ok(m) => println!("{}: {:?}", name.to_string_lossy(), m.config()),
            Err(e) => {
                failed = true;
                println!("{}: {e}", name.to_string_lossy());
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
