//! The committed C header must be exactly what cbindgen makes of `src/ffi` today.
//! Regenerate it with `RNNCORE_BLESS_HEADER=1 cargo test --test header`, review the
//! diff (API.md is the contract) and commit it.

use std::path::Path;

fn generate() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    out
}

#[test]
fn committed_header_is_current() {
    let fresh = generate();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/rnncore.h");
    if std::env::var_os("RNNCORE_BLESS_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write include/rnncore.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed != fresh {
        let (old, new) = (
            String::from_utf8_lossy(&committed),
            String::from_utf8_lossy(&fresh),
        );
        let line = old
            .lines()
            .zip(new.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| old.lines().count().min(new.lines().count()));
        panic!(
            "include/rnncore.h is stale (first difference at line {}):\n  committed: {:?}\n  generated: {:?}\n\
             regenerate it with `RNNCORE_BLESS_HEADER=1 cargo test --test header`, review and commit",
            line + 1,
            old.lines().nth(line).unwrap_or("<end of file>"),
            new.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

/// The names and numbers API.md fixes, spelled as a C compiler will see them.
#[test]
fn header_spells_the_contract() {
    let h = String::from_utf8(generate()).unwrap();
    // cbindgen writes `struct rnn_config *` / `enum rnn_status` in signatures where
    // API.md writes the typedef names; C and C++ read both the same.
    let squashed = h
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("struct ", "")
        .replace("enum ", "");
    for needle in [
        "typedef rnn_status {",
        "RNN_OK = 0,",
        "RNN_ERR_PANIC = 7,",
        "} rnn_status;",
        "typedef rnn_cell {",
        "RNN_CELL_GRU_LBR = 4,",
        "typedef rnn_output {",
        "typedef rnn_optimizer {",
        "RNN_OPT_ADAMW = 2,",
        "typedef rnn_loss {",
        "typedef rnn_targets {",
        "RNN_TARGETS_LAST_STEP = 1,",
        "typedef rnn_model rnn_model;",
        "typedef rnn_state rnn_state;",
        "typedef rnn_trainer rnn_trainer;",
        "typedef rnn_config {",
        "uint32_t output_activation;",
        "typedef rnn_train_config {",
        "float clip_norm;",
        "const char *rnn_version(void);",
        "const char *rnn_last_error(void);",
        "const char *rnn_status_str(rnn_status status);",
        "rnn_status rnn_model_new(const rnn_config *config, uint64_t seed, rnn_model **out);",
        "size_t rnn_model_output_size(const rnn_model *model);",
        "void rnn_model_free(rnn_model *model);",
        "rnn_status rnn_state_get(const rnn_state *state, float *out, size_t len);",
        "rnn_status rnn_trainer_new(rnn_model *model, const rnn_train_config *config, rnn_trainer **out);",
        // ABI version 2: the model description.
        "#define RNN_ABI_VERSION 2",
        "#define RNN_MAX_DENSE 16",
        "#define RNN_MODEL_DESC_SIZE_V1 312",
        "typedef rnn_activation {",
        "RNN_ACT_IDENTITY = 0,",
        "RNN_ACT_SOFTMAX = 5,",
        "typedef rnn_dense {",
        "typedef rnn_model_desc {",
        "uint32_t struct_size;",
        "rnn_dense pre[RNN_MAX_DENSE];",
        "rnn_dense post[RNN_MAX_DENSE];",
        "rnn_status rnn_model_new_desc(const rnn_model_desc *desc, uint64_t seed, rnn_model **out);",
        "rnn_status rnn_model_describe(const rnn_model *model, rnn_model_desc *desc);",
        // ABI version 2: variable lengths.
        "rnn_status rnn_model_forward_lengths(const rnn_model *model, const float *x, size_t batch, size_t seq_len, const uint32_t *lengths, size_t lengths_len, float *y, size_t y_len);",
        "rnn_status rnn_model_forward_state_lengths(const rnn_model *model, rnn_state *state, const float *x, size_t seq_len, const uint32_t *lengths, size_t lengths_len, float *y, size_t y_len);",
        "rnn_status rnn_trainer_step_mse_lengths(rnn_trainer *trainer, rnn_state *state, const float *x, size_t batch, size_t seq_len, const uint32_t *lengths, size_t lengths_len, const float *target, size_t target_len, uint32_t targets, float *loss_out);",
        "rnn_status rnn_trainer_step_xent_lengths(rnn_trainer *trainer, rnn_state *state, const float *x, size_t batch, size_t seq_len, const uint32_t *lengths, size_t lengths_len, const int32_t *labels, size_t labels_len, uint32_t targets, float *loss_out);",
        "rnn_status rnn_trainer_set_dropout_seed(rnn_trainer *trainer, uint64_t seed);",
    ] {
        assert!(
            squashed.contains(needle),
            "the header lacks `{needle}`"
        );
    }
    assert!(!h.contains("rnn_status_value"), "the alias must not leak");
    for tagged in [
        "typedef enum rnn_status {",
        "typedef struct rnn_config {",
        "typedef struct rnn_model rnn_model;",
    ] {
        assert!(h.contains(tagged), "the header lacks `{tagged}`");
    }
    assert!(
        !h.contains("CellKind") && !h.contains("MAX_DIM"),
        "only src/ffi is exported"
    );
    assert!(!h.contains("uintptr_t"), "sizes must be size_t");
}
