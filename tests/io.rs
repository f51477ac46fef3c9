//! Weight files: exact round trips, and every malformed input is a loud, typed error
//! (never a panic): `Error::Format` naming the tensor, or `Error::Io` for the OS.

mod common;

use common::configs;
use rnncore::{CellKind, Error, Model, ModelConfig, OutputActivation, Result};
use std::fs;
use std::path::{Path, PathBuf};

// ----------------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------------

/// One tensor of a hand-made file.
#[derive(Clone, Debug)]
struct T {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The model's tensors as f32 `T`s, with `prefix` on the recurrent ones and the head
/// renamed to `head_name` (`head`, `fc`, ...).
fn tensors(m: &Model, prefix: &str, head_name: &str) -> Vec<T> {
    m.layout()
        .entries()
        .iter()
        .map(|e| {
            let name = match e.name.strip_prefix("head.") {
                Some(f) => format!("{head_name}.{f}"),
                None => format!("{prefix}{}", e.name),
            };
            T {
                name,
                dtype: "F32",
                shape: e.shape.clone(),
                data: f32_bytes(m.tensor(&e.name).unwrap()),
            }
        })
        .collect()
}

fn meta_of(c: &ModelConfig) -> Vec<(String, String)> {
    vec![
        ("cell".into(), c.cell.name().into()),
        ("input_size".into(), c.input_size.to_string()),
        ("hidden_size".into(), c.hidden_size.to_string()),
        ("num_layers".into(), c.num_layers.to_string()),
        ("output_size".into(), c.output_size.to_string()),
        (
            "output_activation".into(),
            c.output_activation.name().into(),
        ),
        ("bidirectional".into(), c.bidirectional.to_string()),
        ("proj_size".into(), c.proj_size.to_string()),
        ("dropout".into(), "0".into()),
    ]
}

/// A safetensors file from a JSON header and the data section, as written.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A well-formed safetensors file with these tensors, contiguous in the given order.
fn file(meta: Option<&[(String, String)]>, ts: &[T]) -> Vec<u8> {
    let mut parts = Vec::new();
    if let Some(meta) = meta {
        let kv: Vec<String> = meta
            .iter()
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect();
        parts.push(format!("\"__metadata__\":{{{}}}", kv.join(",")));
    }
    let mut data = Vec::new();
    for t in ts {
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        parts.push(format!(
            "\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            t.name,
            t.dtype,
            shape.join(","),
            data.len(),
            data.len() + t.data.len()
        ));
        data.extend_from_slice(&t.data);
    }
    raw_file(&format!("{{{}}}", parts.join(",")), &data)
}

/// A small LSTM with a head: every kind of tensor, a file of a few hundred bytes.
fn small() -> Model {
    let cfg = ModelConfig::new(CellKind::Lstm, 2, 3, 2).with_head(2, OutputActivation::Identity);
    Model::new(cfg, 11).unwrap()
}

/// Asserts `r` is a Format error whose message contains every one of `needles`.
#[track_caller]
fn format_err(r: Result<Model>, needles: &[&str]) -> String {
    match r {
        Err(Error::Format(m)) => {
            for n in needles {
                assert!(m.contains(n), "message {m:?} lacks {n:?}");
            }
            m
        }
        other => panic!("expected a Format error, got {other:?}"),
    }
}

#[track_caller]
fn io_err<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Io(m)) => m,
        other => panic!("expected an Io error, got {other:?}"),
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// A fresh empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rnncore-io-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// File names in the directory, sorted.
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ----------------------------------------------------------------------------
// Round trips
// ----------------------------------------------------------------------------

#[test]
fn round_trip_is_bit_exact_for_every_config() {
    let mut cfgs = configs(4, 5);
    cfgs.push(ModelConfig::new(CellKind::Gru, 3, 2, 3).with_head(4, OutputActivation::Softmax));
    let dir = TempDir::new("roundtrip");
    for (n, cfg) in cfgs.into_iter().enumerate() {
        let m = Model::new(cfg, n as u64).unwrap();
        let bytes = m.to_safetensors().unwrap();
        let back = Model::from_safetensors(&bytes).unwrap();
        assert_eq!(back.config(), m.config(), "{cfg:?}");
        assert!(same_bits(back.parameters(), m.parameters()), "{cfg:?}");

        let path = dir.path().join("m.safetensors");
        m.save(&path).unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "save writes to_safetensors"
        );
        let back = Model::load(&path).unwrap();
        assert_eq!(back.config(), m.config(), "{cfg:?}");
        assert!(same_bits(back.parameters(), m.parameters()), "{cfg:?}");
    }
    assert_eq!(dir.listing(), vec!["m.safetensors"]);
}

#[test]
fn round_trip_keeps_extreme_values_exactly() {
    let cfg = ModelConfig::new(CellKind::RnnRelu, 2, 2, 1).with_head(1, OutputActivation::Identity);
    let n = rnncore::ParamLayout::new(&cfg).unwrap().total();
    let special = [
        0.0f32,
        -0.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1.0e-45, // smallest subnormal
        -1.0e-42,
        1.0 + f32::EPSILON,
    ];
    let params: Vec<f32> = (0..n).map(|i| special[i % special.len()]).collect();
    let m = Model::from_parameters(cfg, params.clone()).unwrap();
    let back = Model::from_safetensors(&m.to_safetensors().unwrap()).unwrap();
    assert!(same_bits(back.parameters(), &params));
    assert_eq!(back.config(), &cfg);
}

#[test]
fn saved_files_follow_the_format_for_other_readers() {
    let m = small();
    let bytes = m.to_safetensors().unwrap();
    assert_eq!(bytes, m.to_safetensors().unwrap(), "deterministic bytes");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "data starts 8-byte aligned");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    // state_dict() order in the data section, no prefix, f32.
    let order: Vec<String> = m
        .layout()
        .entries()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    let mut by_offset: Vec<(usize, String)> = st
        .iter()
        .map(|(name, v)| {
            assert_eq!(v.dtype(), safetensors::Dtype::F32, "{name}");
            let e = m.layout().find(name).unwrap();
            assert_eq!(v.shape(), &e.shape[..], "{name}");
            assert_eq!(v.data(), &f32_bytes(m.tensor(name).unwrap())[..], "{name}");
            (e.offset, name.to_string())
        })
        .collect();
    by_offset.sort();
    assert_eq!(
        by_offset.into_iter().map(|p| p.1).collect::<Vec<_>>(),
        order
    );
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let positions: Vec<usize> = order
        .iter()
        .map(|k| header.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "header lists state_dict order"
    );
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().as_ref().unwrap();
    for (k, v) in meta_of(m.config()) {
        assert_eq!(meta.get(&k), Some(&v), "{k}");
    }
    assert_eq!(meta.len(), 9);
}

// ----------------------------------------------------------------------------
// Names, metadata and inference
// ----------------------------------------------------------------------------

#[test]
fn prefixes_and_head_names_are_accepted() {
    let m = small();
    for prefix in ["", "lstm.", "rnn.", "gru.", "encoder.", "model.rnn."] {
        for head in ["head", "fc", "linear", "out", "decoder"] {
            let ts = tensors(&m, prefix, head);
            for meta in [None, Some(meta_of(m.config()))] {
                let got = Model::from_safetensors(&file(meta.as_deref(), &ts)).unwrap();
                assert_eq!(got.config(), m.config(), "{prefix} {head}");
                assert!(same_bits(got.parameters(), m.parameters()));
            }
        }
    }
}

#[test]
fn tensor_order_in_the_file_does_not_matter() {
    let m = small();
    let mut ts = tensors(&m, "", "head");
    ts.reverse();
    let got = Model::from_safetensors(&file(None, &ts)).unwrap();
    assert!(same_bits(got.parameters(), m.parameters()));
}

#[test]
fn config_is_inferred_without_metadata() {
    for (cell, want) in [
        (CellKind::RnnTanh, CellKind::RnnTanh),
        (CellKind::RnnRelu, CellKind::RnnTanh), // relu is only known from metadata
        (CellKind::Lstm, CellKind::Lstm),
        (CellKind::Gru, CellKind::GruLbr), // the notes' GRU is only known from metadata
        (CellKind::GruLbr, CellKind::GruLbr),
    ] {
        for (layers, head) in [(1, 0), (3, 4)] {
            let mut cfg = ModelConfig::new(cell, 5, 6, layers);
            if head > 0 {
                cfg = cfg.with_head(head, OutputActivation::Softmax);
            }
            let m = Model::new(cfg, 3).unwrap();
            let got = Model::from_safetensors(&file(None, &tensors(&m, "", "head"))).unwrap();
            let mut expect = cfg;
            expect.cell = want;
            expect.output_activation = OutputActivation::Identity;
            assert_eq!(got.config(), &expect);
            assert!(same_bits(got.parameters(), m.parameters()));
        }
    }
}

#[test]
fn partial_metadata_is_completed_by_inference() {
    let cfg = ModelConfig::new(CellKind::Gru, 5, 6, 2).with_head(3, OutputActivation::Identity);
    let m = Model::new(cfg, 5).unwrap();
    let ts = tensors(&m, "gru.", "fc");
    let only = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    let got = Model::from_safetensors(&file(Some(&only("cell", "gru")), &ts)).unwrap();
    assert_eq!(got.config(), &cfg);
    let got =
        Model::from_safetensors(&file(Some(&only("output_activation", "softmax")), &ts)).unwrap();
    assert_eq!(got.config().cell, CellKind::GruLbr);
    assert_eq!(got.config().output_activation, OutputActivation::Softmax);
    // Unknown keys (safetensors.torch writes `format`) are ignored.
    let got = Model::from_safetensors(&file(Some(&only("format", "pt")), &ts)).unwrap();
    assert_eq!(got.config().cell, CellKind::GruLbr);

    let relu = Model::new(ModelConfig::new(CellKind::RnnRelu, 2, 3, 1), 1).unwrap();
    let got = Model::from_safetensors(&file(
        Some(&only("cell", "rnn_relu")),
        &tensors(&relu, "rnn.", "head"),
    ))
    .unwrap();
    assert_eq!(got.config(), relu.config());
}

#[test]
fn metadata_contradicting_the_shapes_names_the_tensor() {
    let m = small(); // lstm, I=2, H=3, 2 layers, head 2
    let ts = tensors(&m, "lstm.", "fc");
    let with = |k: &str, v: &str| {
        let mut meta = meta_of(m.config());
        meta.iter_mut().find(|(key, _)| key == k).unwrap().1 = v.to_string();
        Model::from_safetensors(&file(Some(&meta), &ts))
    };
    format_err(
        with("cell", "gru"),
        &["lstm.weight_ih_l0", "[12, 2]", "[9, 2]"],
    );
    format_err(with("cell", "rnn_tanh"), &["lstm.weight_ih_l0"]);
    format_err(with("input_size", "3"), &["lstm.weight_ih_l0", "[12, 3]"]);
    format_err(with("hidden_size", "4"), &["lstm.weight_ih_l0"]);
    format_err(
        with("num_layers", "1"),
        &["unexpected tensor `lstm.weight_ih_l1`"],
    );
    format_err(
        with("num_layers", "3"),
        &["missing tensor `lstm.weight_ih_l2`"],
    );
    format_err(with("output_size", "0"), &["unexpected tensor `fc."]);
    format_err(with("output_size", "5"), &["fc.weight", "[5, 3]"]);
    // Values that are not values.
    format_err(with("cell", "transformer"), &["cell", "transformer"]);
    format_err(with("hidden_size", "-3"), &["hidden_size", "-3"]);
    format_err(with("hidden_size", ""), &["hidden_size"]);
    format_err(
        with("num_layers", "99999999999999999999999"),
        &["num_layers"],
    );
    format_err(with("num_layers", "0"), &["num_layers"]);
    format_err(
        with("output_activation", "relu"),
        &["output_activation", "relu"],
    );
    let no_head = Model::new(ModelConfig::new(CellKind::Lstm, 2, 3, 1), 1).unwrap();
    let mut meta = meta_of(no_head.config());
    meta[5].1 = "softmax".into();
    format_err(
        Model::from_safetensors(&file(Some(&meta), &tensors(&no_head, "", "head"))),
        &["softmax"],
    );
}

#[test]
fn missing_extra_and_misshaped_tensors_name_the_tensor() {
    let m = small();
    let ts = tensors(&m, "rnn.", "head");
    let meta = meta_of(m.config());
    for (i, t) in ts.iter().enumerate() {
        let mut fewer = ts.clone();
        fewer.remove(i);
        for md in [None, Some(&meta[..])] {
            let r = Model::from_safetensors(&file(md, &fewer));
            // Without metadata, dropping the head's weight or a whole layer's tensor can
            // change what is inferred; every case must still fail and name a tensor.
            let msg = format_err(r, &[]);
            assert!(msg.contains("`"), "{msg}");
            if md.is_some() {
                assert!(
                    msg.contains(&format!("missing tensor `{}`", t.name)),
                    "{msg}"
                );
            }
        }
    }
    // bias=False modules get a hint.
    let mut nobias = ts.clone();
    nobias.retain(|t| !t.name.contains("bias_ih_l0"));
    format_err(
        Model::from_safetensors(&file(None, &nobias)),
        &["rnn.bias_ih_l0", "bias=False"],
    );

    // Extra tensors.
    let extra = |name: &str| {
        let mut more = ts.clone();
        more.push(T {
            name: name.into(),
            dtype: "F32",
            shape: vec![1],
            data: f32_bytes(&[0.0]),
        });
        Model::from_safetensors(&file(None, &more))
    };
    format_err(
        extra("rnn.num_batches_tracked"),
        &["rnn.num_batches_tracked"],
    );
    format_err(
        extra("rnn.weight_ih_l0_reverse"),
        &["weight_ih_l0_reverse", "bidirectional"],
    );
    // A projection's tensor is known now: misshaped, or on a cell without projections.
    format_err(extra("rnn.weight_hr_l0"), &["weight_hr_l0", "matrix"]);
    format_err(extra("weight_ih_l0"), &["prefix"]); // a second prefix (none)
    format_err(extra("lstm.bias_hh_l1"), &["prefix"]);
    format_err(extra("fc.bias"), &["fc.bias", "head.weight"]); // a second head
    format_err(extra("rnn.weight_ih_l01"), &["weight_ih_l01"]);
    format_err(
        extra("rnn.weight_ih_l99999999999999999999999"),
        &["weight_ih_l9999"],
    );
    format_err(extra("rnn.weight_ih_l5000"), &["weight_ih_l5000"]);
    format_err(
        extra("rnn.weight_ih_l3"),
        &["missing tensor `rnn.weight_ih_l2`"],
    ); // 4 layers inferred
    format_err(extra(""), &["``"]);

    // Mis-shaped tensors.
    for (i, t) in ts.iter().enumerate() {
        let n_el: usize = t.shape.iter().product();
        for shape in [vec![n_el], vec![1, n_el], vec![n_el, 1, 1]] {
            if shape == t.shape {
                continue;
            }
            let mut bad = ts.clone();
            bad[i].shape = shape.clone();
            for md in [None, Some(&meta[..])] {
                format_err(Model::from_safetensors(&file(md, &bad)), &[&t.name]);
            }
        }
        // Shape and data both changed consistently (one row more).
        let mut bad = ts.clone();
        bad[i].shape[0] += 1;
        let row: usize = bad[i].shape[1..].iter().product();
        bad[i].data.extend(f32_bytes(&vec![0.5; row]));
        let r = Model::from_safetensors(&file(Some(&meta), &bad));
        format_err(r, &[&t.name]);
    }
    // Nothing recurrent at all.
    format_err(
        Model::from_safetensors(&file(None, &[])),
        &["no recurrent tensors"],
    );
    format_err(
        Model::from_safetensors(&file(None, &ts[ts.len() - 2..])),
        &["no recurrent tensors"],
    );
    // Row count that is no gate count.
    let mut odd = ts.clone();
    for t in odd.iter_mut().filter(|t| t.name.contains("_l0")) {
        t.shape[0] = 6; // 2 * H
        let cols: usize = t.shape[1..].iter().product();
        t.data.truncate(4 * 6 * cols);
    }
    format_err(
        Model::from_safetensors(&file(None, &odd)),
        &["rnn.weight_hh_l0", "6 rows"],
    );
}

// ----------------------------------------------------------------------------
// Dtypes and values
// ----------------------------------------------------------------------------

/// `small()` with every weight rounded to a value exact in bf16 (hence in f16's range
/// and precision as well when small): the dtype files must load bit-identical.
fn exact_in_16_bits() -> Model {
    let m = small();
    let p: Vec<f32> = m
        .parameters()
        .iter()
        .map(|v| (v * 64.0).round() / 64.0) // multiples of 1/64 in (-1, 1): exact in f16 and bf16
        .collect();
    Model::from_parameters(*m.config(), p).unwrap()
}

fn convert(ts: &[T], dtype: &'static str, f: impl Fn(f32) -> Vec<u8>) -> Vec<T> {
    ts.iter()
        .map(|t| T {
            dtype,
            data: t
                .data
                .chunks_exact(4)
                .flat_map(|b| f(f32::from_le_bytes(b.try_into().unwrap())))
                .collect(),
            ..t.clone()
        })
        .collect()
}

fn to_f16(v: f32) -> Vec<u8> {
    // Only for values exact in f16 (normal range, <= 10 mantissa bits) or zero.
    let b = v.to_bits();
    let h: u16 = if v == 0.0 {
        (b >> 16) as u16 & 0x8000
    } else {
        let sign = ((b >> 16) & 0x8000) as u16;
        let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
        assert!(
            (1..31).contains(&exp) && b & 0x1fff == 0,
            "{v} not exact in f16"
        );
        sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
    };
    h.to_le_bytes().to_vec()
}

#[test]
fn f16_bf16_and_f64_files_load_exactly() {
    let m = exact_in_16_bits();
    let ts = tensors(&m, "", "head");
    let cases: Vec<(&str, Vec<T>)> = vec![
        (
            "F64",
            convert(&ts, "F64", |v| (v as f64).to_le_bytes().to_vec()),
        ),
        (
            "BF16",
            convert(&ts, "BF16", |v| {
                ((v.to_bits() >> 16) as u16).to_le_bytes().to_vec()
            }),
        ),
        ("F16", convert(&ts, "F16", to_f16)),
    ];
    for (dt, t) in cases {
        let got = Model::from_safetensors(&file(None, &t)).unwrap();
        assert!(same_bits(got.parameters(), m.parameters()), "{dt}");
        // Mixed dtypes in one file are fine too.
        let mut mixed = ts.clone();
        mixed[1] = t[1].clone();
        let got = Model::from_safetensors(&file(None, &mixed)).unwrap();
        assert!(same_bits(got.parameters(), m.parameters()), "{dt} mixed");
    }
}

#[test]
fn unsupported_dtypes_name_the_tensor_and_dtype() {
    let m = small();
    let ts = tensors(&m, "", "head");
    for (dtype, size) in [
        ("I32", 4),
        ("U8", 1),
        ("I64", 8),
        ("BOOL", 1),
        ("F8_E4M3", 1),
        ("C64", 8),
    ] {
        let mut bad = ts.clone();
        let n: usize = bad[2].shape.iter().product();
        bad[2].dtype = dtype;
        bad[2].data = vec![0; n * size];
        format_err(
            Model::from_safetensors(&file(None, &bad)),
            &["bias_ih_l0", dtype],
        );
    }
    // A dtype name no reader knows.
    let mut bad = ts.clone();
    bad[0].dtype = "F17";
    format_err(
        Model::from_safetensors(&file(None, &bad)),
        &["weight_ih_l0", "F17"],
    );
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let m = small();
    let ts = tensors(&m, "", "head");
    for (i, t) in ts.iter().enumerate() {
        for bad_value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut bad = ts.clone();
            let last = bad[i].data.len() - 4;
            bad[i].data[last..].copy_from_slice(&bad_value.to_le_bytes());
            format_err(
                Model::from_safetensors(&file(None, &bad)),
                &[&t.name, "non-finite"],
            );
        }
    }
    // f16 infinity, bf16 NaN, f64 beyond the f32 range.
    let mut f16 = convert(&tensors(&exact_in_16_bits(), "", "head"), "F16", to_f16);
    f16[3].data[0..2].copy_from_slice(&0x7c00u16.to_le_bytes());
    format_err(
        Model::from_safetensors(&file(None, &f16)),
        &["bias_hh_l0", "non-finite"],
    );
    let mut bf16 = convert(&ts, "BF16", |v| {
        ((v.to_bits() >> 16) as u16).to_le_bytes().to_vec()
    });
    bf16[0].data[2..4].copy_from_slice(&0x7fc1u16.to_le_bytes());
    format_err(
        Model::from_safetensors(&file(None, &bf16)),
        &["weight_ih_l0", "non-finite"],
    );
    for (v, needle) in [
        (1e300f64, "f32 range"),
        (-1e39, "f32 range"),
        (f64::NAN, "non-finite"),
    ] {
        let mut f64s = convert(&ts, "F64", |v| (v as f64).to_le_bytes().to_vec());
        f64s[1].data[8..16].copy_from_slice(&v.to_le_bytes());
        format_err(
            Model::from_safetensors(&file(None, &f64s)),
            &["weight_hh_l0", needle],
        );
    }
    // Values just inside the f32 range round to finite values and load.
    let mut f64s = convert(&ts, "F64", |v| (v as f64).to_le_bytes().to_vec());
    f64s[1].data[8..16].copy_from_slice(&(f32::MAX as f64).to_le_bytes());
    f64s[1].data[16..24].copy_from_slice(&1e-50f64.to_le_bytes());
    let got = Model::from_safetensors(&file(None, &f64s)).unwrap();
    let w = got.tensor("weight_hh_l0").unwrap();
    assert_eq!((w[1], w[2]), (f32::MAX, 0.0));
}

// ----------------------------------------------------------------------------
// Corrupt files
// ----------------------------------------------------------------------------

#[test]
fn garbage_and_empty_inputs_are_format_errors() {
    format_err(Model::from_safetensors(&[]), &["0 bytes"]);
    format_err(Model::from_safetensors(b"\x01"), &[]);
    let mut r = rnncore::Rng::new(9);
    for len in [8usize, 9, 64, 1000, 5000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| (r.uniform(0.0, 256.0) as u32) as u8)
            .collect();
        format_err(Model::from_safetensors(&bytes), &[]);
        // Plausible length prefix, garbage header.
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&((len as u64).saturating_sub(8) / 2).to_le_bytes());
        format_err(Model::from_safetensors(&b), &[]);
    }
    format_err(
        Model::from_safetensors(&raw_file("{}", &[])),
        &["no recurrent tensors"],
    );
    format_err(Model::from_safetensors(&raw_file("[]", &[])), &["JSON"]);
    format_err(
        Model::from_safetensors(&raw_file("{\"a\":1}", &[])),
        &["`a`"],
    );
    format_err(
        Model::from_safetensors(&raw_file("{\"__metadata__\":{\"cell\":3}}", &[])),
        &["cell"],
    );
    format_err(
        Model::from_safetensors(&raw_file("{\"__metadata__\":[]}", &[])),
        &["__metadata__"],
    );
    format_err(Model::from_safetensors(&raw_file("{} x", &[])), &["JSON"]);
    format_err(
        Model::from_safetensors(&raw_file(&"[".repeat(10_000), &[])),
        &["JSON"],
    );
    let dir = TempDir::new("empty");
    let p = dir.path().join("empty.safetensors");
    fs::write(&p, b"").unwrap();
    format_err(Model::load(&p), &["empty.safetensors", "0 bytes"]);
}

#[test]
fn every_truncation_is_a_format_error() {
    let bytes = small().to_safetensors().unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut named = 0;
    for len in 0..bytes.len() {
        let msg = format_err(Model::from_safetensors(&bytes[..len]), &[]);
        if len > 8 + n {
            // In the data section: the message names the cut tensor.
            assert!(
                msg.contains("truncated") && msg.contains('`'),
                "{len}: {msg}"
            );
            named += 1;
        }
    }
    assert!(named > 100);
    // And one byte too many.
    let mut longer = bytes.clone();
    longer.push(0);
    format_err(Model::from_safetensors(&longer), &["trailing"]);
}

#[test]
fn flipped_header_bits_never_panic_and_never_change_the_weights() {
    let m = small();
    let bytes = m.to_safetensors().unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let (mut errors, mut accepted) = (0, 0);
    for pos in 0..8 + n {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[pos] ^= 1 << bit;
            match Model::from_safetensors(&b) {
                Err(Error::Format(_)) => errors += 1,
                // A flip in a metadata key (`cell` -> `celm`) leaves a valid file whose
                // config is inferred instead; the weights must be untouched.
                Ok(got) => {
                    accepted += 1;
                    assert!(
                        same_bits(got.parameters(), m.parameters()),
                        "byte {pos} bit {bit}"
                    );
                }
                Err(e) => panic!("byte {pos} bit {bit}: {e:?}"),
            }
        }
    }
    assert!(errors > 8 * n / 2, "{errors} errors, {accepted} accepted");
}

#[test]
fn absurd_header_lengths_are_refused_before_any_allocation() {
    let bytes = small().to_safetensors().unwrap();
    let after = bytes.len() as u64 - 8;
    for n in [u64::MAX, u64::MAX / 2, 1 << 40, after + 1, 100_000_001] {
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        format_err(Model::from_safetensors(&b), &["header length"]);
    }
    // Header length over the 100 MB limit, in a file that is really that long.
    let big = 100_000_001u64;
    let mut b = big.to_le_bytes().to_vec();
    b.resize(8 + big as usize, b' ');
    format_err(Model::from_safetensors(&b), &["header length", "limit"]);
}

#[test]
fn duplicated_overlapping_and_gapped_tensors_are_refused() {
    let m = small();
    let ts = tensors(&m, "", "head");
    // Same entry twice: `safetensors` alone would keep one and accept the file.
    let t = &ts[2];
    let entry = |name: &str, s: usize, e: usize| {
        format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":{:?},\"data_offsets\":[{s},{e}]}}",
            t.shape
        )
    };
    let len = t.data.len();
    let dup = format!(
        "{{{},{}}}",
        entry("bias_ih_l0", 0, len),
        entry("bias_ih_l0", 0, len)
    );
    format_err(
        Model::from_safetensors(&raw_file(&dup, &t.data)),
        &["duplicate", "bias_ih_l0"],
    );
    let dup_meta = "{\"__metadata__\":{},\"__metadata__\":{}}";
    format_err(
        Model::from_safetensors(&raw_file(dup_meta, &[])),
        &["duplicate", "__metadata__"],
    );
    // Overlap: two tensors on the same bytes.
    let two = format!(
        "{{{},{}}}",
        entry("bias_ih_l0", 0, len),
        entry("bias_hh_l0", 0, len)
    );
    format_err(
        Model::from_safetensors(&raw_file(&two, &t.data)),
        &["overlap", "bias_ih_l0", "bias_hh_l0"],
    );
    let part = format!(
        "{{{},{}}}",
        entry("bias_ih_l0", 0, len),
        entry("bias_hh_l0", len - 4, 2 * len - 4)
    );
    let data = [&t.data[..], &t.data[..len - 4]].concat();
    format_err(
        Model::from_safetensors(&raw_file(&part, &data)),
        &["overlap"],
    );
    // Gap before a tensor, and offsets running backwards.
    let gap = format!("{{{}}}", entry("bias_ih_l0", 4, len + 4));
    let data = [&[0u8; 4][..], &t.data[..]].concat();
    format_err(
        Model::from_safetensors(&raw_file(&gap, &data)),
        &["bias_ih_l0", "no tensor"],
    );
    let back = format!("{{{}}}", entry("bias_ih_l0", len, 0));
    format_err(
        Model::from_safetensors(&raw_file(&back, &t.data)),
        &["bias_ih_l0", "backwards"],
    );
    // Offsets that disagree with shape x dtype.
    let short = format!("{{{}}}", entry("bias_ih_l0", 0, len - 4));
    format_err(
        Model::from_safetensors(&raw_file(&short, &t.data[..len - 4])),
        &["bias_ih_l0", "bytes"],
    );
    // Shapes whose element count overflows.
    let huge = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}";
    format_err(
        Model::from_safetensors(&raw_file(huge, &[])),
        &["`w`", "overflow"],
    );
    let neg = "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}";
    format_err(Model::from_safetensors(&raw_file(neg, &[])), &["`w`"]);
    let missing_field = "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,0]}}";
    format_err(
        Model::from_safetensors(&raw_file(missing_field, &[])),
        &["`w`", "shape"],
    );
}

#[test]
fn huge_files_are_refused_without_reading_them() {
    let dir = TempDir::new("huge");
    let p = dir.path().join("huge.safetensors");
    let f = fs::File::create(&p).unwrap();
    // Sparse: no disk space is used.
    if f.set_len(rnncore::io::MAX_FILE_BYTES + 1).is_err() {
        eprintln!("skipped: this file system cannot make an 8 GiB sparse file");
        return;
    }
    drop(f);
    format_err(Model::load(&p), &["huge.safetensors", "limit"]);
}

// ----------------------------------------------------------------------------
// Files and directories
// ----------------------------------------------------------------------------

#[test]
fn missing_files_and_directories_are_io_errors() {
    let dir = TempDir::new("paths");
    let msg = io_err(Model::load(dir.path().join("nope.safetensors")));
    assert!(msg.contains("nope.safetensors"), "{msg}");
    let msg = io_err(Model::load(dir.path()));
    assert!(msg.contains("directory"), "{msg}");
    #[cfg(unix)]
    {
        let msg = io_err(Model::load("/dev/null"));
        assert!(msg.contains("not a regular file"), "{msg}");
    }
    let m = small();
    let msg = io_err(m.save(dir.path()));
    assert!(msg.contains("directory"), "{msg}");
    let msg = io_err(m.save(dir.path().join("no/such/dir/m.safetensors")));
    assert!(msg.contains("no/such/dir"), "{msg}");
    fs::write(dir.path().join("file"), b"x").unwrap();
    let msg = io_err(m.save(dir.path().join("file/m.safetensors")));
    assert!(msg.contains("not a directory"), "{msg}");
    assert_eq!(dir.listing(), vec!["file"]);
}

#[test]
fn save_replaces_an_existing_file_and_leaves_no_temp_file() {
    let dir = TempDir::new("replace");
    let p = dir.path().join("m.safetensors");
    fs::write(&p, b"old contents").unwrap();
    let m = small();
    m.save(&p).unwrap();
    assert_eq!(fs::read(&p).unwrap(), m.to_safetensors().unwrap());
    assert_eq!(dir.listing(), vec!["m.safetensors"]);
    // A relative path (no parent component) saves into the current directory.
    let cwd = std::env::current_dir().unwrap();
    let rel = format!("rnncore-io-rel-{}.safetensors", std::process::id());
    m.save(&rel).unwrap();
    assert!(same_bits(
        Model::load(&rel).unwrap().parameters(),
        m.parameters()
    ));
    fs::remove_file(cwd.join(&rel)).unwrap();
}

#[cfg(unix)]
#[test]
fn failed_saves_leave_the_existing_file_byte_identical() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("readonly");
    let p = dir.path().join("m.safetensors");
    let old = small();
    old.save(&p).unwrap();
    let before = fs::read(&p).unwrap();
    let other = Model::new(ModelConfig::new(CellKind::Gru, 2, 3, 1), 2).unwrap();

    // Target is a directory; parent is missing: nothing written anywhere.
    let sub = dir.path().join("sub.safetensors");
    fs::create_dir(&sub).unwrap();
    io_err(other.save(&sub));
    assert!(sub.is_dir() && fs::read_dir(&sub).unwrap().next().is_none());
    fs::remove_dir(&sub).unwrap();

    // Read-only directory. Root ignores permission bits: then this part cannot fail
    // and is skipped (the /proc case below and the fault-injection unit test in
    // src/io/safetensors.rs cover the failing save there).
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
    let probe = dir.path().join("probe");
    if fs::write(&probe, b"").is_ok() {
        let _ = fs::remove_file(&probe);
        eprintln!("running with privileges that ignore permissions: read-only dir check skipped");
    } else {
        let msg = io_err(other.save(&p));
        assert!(msg.contains("temp file"), "{msg}");
        assert_eq!(fs::read(&p).unwrap(), before);
        assert_eq!(dir.listing(), vec!["m.safetensors"]);
    }
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(fs::read(&p).unwrap(), before);
    assert_eq!(dir.listing(), vec!["m.safetensors"]);
}

/// /proc is read-only even for root: saving over a file there must fail cleanly and
/// leave the file as it was.
#[cfg(target_os = "linux")]
#[test]
fn saving_into_a_read_only_file_system_fails_cleanly() {
    let target = Path::new("/proc/version");
    let Ok(before) = fs::read(target) else {
        eprintln!("skipped: no /proc/version");
        return;
    };
    io_err(small().save(target));
    assert_eq!(fs::read(target).unwrap(), before);
}

#[test]
fn extra_metadata_round_trips_and_cannot_replace_the_config() {
    use rnncore::{CellKind, ModelConfig};
    let dir = std::env::temp_dir().join(format!("rnncore-meta-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    let model = Model::new(ModelConfig::new(CellKind::Gru, 2, 3, 1), 4).unwrap();
    model
        .save_with_metadata(&path, &[("app.vocab", "abc\"\\\n"), ("app.task", "charlm")])
        .unwrap();
    let back = Model::load(&path).unwrap();
    assert_eq!(back.parameters(), model.parameters());
    assert_eq!(back.config(), model.config());
    let meta = rnncore::io::read_metadata(&path).unwrap();
    assert!(meta.contains(&("app.vocab".to_string(), "abc\"\\\n".to_string())));
    assert!(meta.contains(&("app.task".to_string(), "charlm".to_string())));
    assert!(meta.contains(&("cell".to_string(), "gru".to_string())));
    // Config keys belong to rnncore; a key twice is ambiguous; nothing is written.
    let before = std::fs::read(&path).unwrap();
    for extra in [&[("cell", "lstm")][..], &[("a", "1"), ("a", "2")][..]] {
        assert!(matches!(
            model.save_with_metadata(&path, extra),
            Err(rnncore::Error::Invalid(_))
        ));
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(matches!(
        rnncore::io::read_metadata(&dir.join("missing.safetensors")),
        Err(rnncore::Error::Io(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
