//! Seeded random calls through the C ABI's numeric inputs, each checked against the
//! contract in `include/rnncore.h`: random config fields and enum values (in and out of
//! range, zero, huge), sizes and lengths (right, off by some, overflowing), NaN/Inf at
//! random places, NULL buffers and aliasing input/output buffers. Every call must return
//! the status the header names (when several arguments are wrong, one of theirs), set
//! `rnn_last_error()` to a message on failure and to "" on success, leave the output and
//! the state untouched on failure, and give finite outputs on success.

use rnncore::__testing::ffi::*;
use rnncore::Rng;
use std::ffi::CStr;
use std::ptr;

fn last_error() -> String {
    // SAFETY: rnn_last_error returns a valid NUL-terminated string owned by the library.
    unsafe { CStr::from_ptr(rnn_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Checks `got` against the statuses the contract allows and the error message.
fn expect(what: &str, got: rnn_status, allowed: &[rnn_status]) {
    let msg = last_error();
    assert!(
        allowed.contains(&got),
        "{what}: got {got:?}, expected one of {allowed:?} ({msg})"
    );
    if got == rnn_status::RNN_OK {
        assert_eq!(msg, "", "{what}: success left an error message");
    } else {
        assert!(
            msg.len() >= 12 && msg.contains(' '),
            "{what}: {got:?} with message {msg:?}"
        );
    }
}

/// Zero, small, and over the header's limit of 2^20 (valid models stay small and fast).
fn size(r: &mut Rng) -> u32 {
    [0, 1, 2, 3, 5, 8, (1 << 20) + 1, 1 << 30, u32::MAX][r.below(9)]
}

fn small(r: &mut Rng) -> u32 {
    1 + r.below(5) as u32
}

#[test]
fn random_configs_get_the_contract_status() {
    let mut r = Rng::new(22);
    for case in 0..3000 {
        let wild = r.below(2) == 0;
        let cfg = rnn_config {
            cell: if wild && r.below(3) == 0 {
                [5, 6, 255, u32::MAX][r.below(4)]
            } else {
                r.below(5) as u32
            },
            input_size: if wild && r.below(3) == 0 {
                size(&mut r)
            } else {
                small(&mut r)
            },
            hidden_size: if wild && r.below(3) == 0 {
                size(&mut r)
            } else {
                small(&mut r)
            },
            num_layers: if wild && r.below(3) == 0 {
                [0, 1024, 1025, u32::MAX][r.below(4)]
            } else {
                1 + r.below(3) as u32
            },
            output_size: if wild && r.below(3) == 0 {
                size(&mut r)
            } else {
                r.below(4) as u32
            },
            output_activation: if wild && r.below(3) == 0 {
                [2, 3, u32::MAX][r.below(3)]
            } else {
                r.below(2) as u32
            },
        };
        let mut out: *mut rnn_model = ptr::null_mut();
        // SAFETY: cfg and out are valid for the call.
        let st = unsafe { rnn_model_new(&cfg, case, &mut out) };
        let bad_enum = cfg.cell > 4 || cfg.output_activation > 1;
        let zero = cfg.input_size == 0 || cfg.hidden_size == 0 || cfg.num_layers == 0;
        // Softmax needs a head (the header: "softmax needs output_size >= 1").
        let headless_softmax = cfg.output_activation == 1 && cfg.output_size == 0;
        // The header: "a size of 0 or above 2^20, num_layers above 1024".
        let big = [cfg.input_size, cfg.hidden_size, cfg.output_size]
            .iter()
            .any(|&v| v > 1 << 20)
            || cfg.num_layers > 1024;
        let what = format!("case {case}: {cfg:?}");
        if bad_enum || zero || headless_softmax || big {
            expect(&what, st, &[rnn_status::RNN_ERR_INVALID]);
        } else {
            expect(&what, st, &[rnn_status::RNN_OK]);
        }
        if st == rnn_status::RNN_OK {
            let mut back = rnn_config {
                cell: 9,
                input_size: 0,
                hidden_size: 0,
                num_layers: 0,
                output_size: 0,
                output_activation: 9,
            };
            // SAFETY: out is a live model handle.
            unsafe {
                assert_eq!(rnn_model_config(out, &mut back), rnn_status::RNN_OK);
                rnn_model_free(out);
            }
            assert_eq!(back, cfg, "{what}");
        } else {
            assert!(out.is_null(), "{what}: out written on failure");
        }
    }
}

#[test]
fn random_forward_and_step_calls_get_the_contract_status() {
    let mut r = Rng::new(2022);
    for case in 0..60 {
        let mut cfg = rnn_config {
            cell: r.below(5) as u32,
            input_size: small(&mut r),
            hidden_size: small(&mut r),
            num_layers: 1 + r.below(2) as u32,
            output_size: r.below(3) as u32,
            output_activation: 0,
        };
        if cfg.output_size > 0 {
            cfg.output_activation = r.below(2) as u32;
        }
        let mut model: *mut rnn_model = ptr::null_mut();
        // SAFETY: valid arguments.
        assert_eq!(
            unsafe { rnn_model_new(&cfg, case, &mut model) },
            rnn_status::RNN_OK
        );
        // SAFETY: live handle.
        let out_size = unsafe { rnn_model_output_size(model) };
        let i = cfg.input_size as usize;
        for call in 0..100 {
            let what = format!("case {case} call {call}: {cfg:?}");
            let batch = [0, 1, 2, 3, usize::MAX / 2][r.below(5).min(3 + r.below(2))];
            let seq = [0, 1, 2, 4, usize::MAX / 3][r.below(5).min(3 + r.below(2))];
            let right = batch.checked_mul(seq).and_then(|n| n.checked_mul(out_size));
            let x_n = batch.saturating_mul(seq).saturating_mul(i).min(64);
            let y_len = match (right, r.below(4)) {
                (Some(n), 0) => n + 1 + r.below(3),
                (Some(n), 1) if n > 0 => n - 1,
                (Some(n), _) => n,
                (None, _) => r.below(64),
            };
            // One buffer holds x then y, so aliasing is an offset into it.
            let mut buf = vec![0.25f32; x_n + y_len.min(64) + 8];
            for (k, v) in buf.iter_mut().enumerate().take(x_n) {
                *v = ((k * 7 % 11) as f32 - 5.0) * 0.1;
            }
            let nonfinite = x_n > 0 && r.below(4) == 0;
            if nonfinite {
                buf[r.below(x_n)] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][r.below(3)];
            }
            let alias = x_n > 0 && r.below(5) == 0;
            let y_at = if alias { r.below(x_n) } else { x_n };
            let (null_x, null_y) = (r.below(12) == 0, r.below(12) == 0);
            let sizes_ok = batch > 0 && seq > 0 && right == Some(y_len);
            // The buffer must really hold what the call may touch when the sizes are right.
            if sizes_ok && (x_n != batch * seq * i || y_at + y_len > buf.len()) {
                continue;
            }
            let before = buf.clone();
            let base = buf.as_mut_ptr();
            let x = if null_x {
                ptr::null()
            } else {
                base as *const f32
            };
            // SAFETY: y_at < buf.len().
            let y = if null_y {
                ptr::null_mut()
            } else {
                unsafe { base.add(y_at) }
            };
            // SAFETY: when the sizes are right, x and y point to enough floats (checked
            // above); otherwise the contract has the call refuse before reading.
            let st = unsafe { rnn_model_forward(model, x, batch, seq, y, y_len) };
            let mut allowed = Vec::new();
            if null_x || null_y {
                allowed.push(rnn_status::RNN_ERR_NULL);
            }
            if !sizes_ok || alias {
                allowed.push(rnn_status::RNN_ERR_INVALID);
            }
            if nonfinite && sizes_ok {
                allowed.push(rnn_status::RNN_ERR_NONFINITE);
            }
            if allowed.is_empty() {
                allowed.push(rnn_status::RNN_OK);
            }
            expect(&format!("{what} forward b={batch} t={seq} y_len={y_len} alias={alias} nonfinite={nonfinite}"), st, &allowed);
            if st == rnn_status::RNN_OK {
                assert!(
                    buf[y_at..y_at + y_len].iter().all(|v| v.is_finite()),
                    "{what}"
                );
            } else {
                assert_eq!(
                    crate_bits(&buf),
                    crate_bits(&before),
                    "{what}: written on failure"
                );
            }
        }
        // Streaming steps with random lengths against a state of random batch.
        let sb = 1 + r.below(3);
        let mut state: *mut rnn_state = ptr::null_mut();
        // SAFETY: valid arguments.
        assert_eq!(
            unsafe { rnn_state_new(model, sb, &mut state) },
            rnn_status::RNN_OK
        );
        // SAFETY: live handle.
        let slen = unsafe { rnn_state_len(state) };
        for call in 0..100 {
            let x_len =
                [sb * i, sb * i + 1, (sb * i).saturating_sub(1), 0][r.below(4).min(r.below(5))];
            let y_len = [sb * out_size, sb * out_size + 2, 0][r.below(3).min(r.below(4))];
            let mut x = vec![0.5f32; x_len.max(1)];
            let nonfinite = x_len > 0 && r.below(4) == 0;
            if nonfinite {
                x[r.below(x_len)] = f32::NAN;
            }
            let mut y = vec![f32::NAN; y_len.max(1)];
            let mut s0 = vec![0f32; slen];
            let mut s1 = vec![0f32; slen];
            // SAFETY: live handle, buffer of slen floats.
            unsafe {
                assert_eq!(
                    rnn_state_get(state, s0.as_mut_ptr(), slen),
                    rnn_status::RNN_OK
                )
            };
            // SAFETY: x holds x_len floats, y holds y_len floats.
            let st =
                unsafe { rnn_model_step(model, state, x.as_ptr(), x_len, y.as_mut_ptr(), y_len) };
            let sizes_ok = x_len == sb * i && y_len == sb * out_size;
            let allowed: &[rnn_status] = if !sizes_ok {
                &[rnn_status::RNN_ERR_INVALID]
            } else if nonfinite {
                &[rnn_status::RNN_ERR_NONFINITE]
            } else {
                &[rnn_status::RNN_OK]
            };
            expect(
                &format!("case {case} step {call} x_len={x_len} y_len={y_len}"),
                st,
                allowed,
            );
            // SAFETY: as above.
            unsafe {
                assert_eq!(
                    rnn_state_get(state, s1.as_mut_ptr(), slen),
                    rnn_status::RNN_OK
                )
            };
            if st == rnn_status::RNN_OK {
                assert!(y[..y_len].iter().all(|v| v.is_finite()));
                assert!(s1.iter().all(|v| v.is_finite()));
            } else {
                assert!(
                    y.iter().all(|v| v.is_nan()),
                    "case {case} step {call}: y written on failure"
                );
                assert_eq!(
                    crate_bits(&s0),
                    crate_bits(&s1),
                    "case {case} step {call}: state changed on failure"
                );
            }
        }
        // SAFETY: live handles, freed once.
        unsafe {
            rnn_state_free(state);
            rnn_model_free(model);
        }
    }
}

fn crate_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `rnn_model_forward_lengths` with random `lengths` (count right or off by one, values
/// 0..=seq_len + 1, NULL): OK exactly when every length is in 1..=seq_len and there is
/// one per sequence, RNN_ERR_NULL / RNN_ERR_INVALID otherwise with `y` untouched; on
/// success the outputs are finite up to each length and zero past it.
#[test]
fn random_lengths_get_the_contract_status() {
    let mut r = Rng::new(1818);
    for case in 0..40 {
        let cfg = rnn_config {
            cell: r.below(5) as u32,
            input_size: small(&mut r),
            hidden_size: small(&mut r),
            num_layers: 1 + r.below(2) as u32,
            output_size: r.below(3) as u32,
            output_activation: 0,
        };
        let mut model: *mut rnn_model = ptr::null_mut();
        // SAFETY: valid arguments.
        assert_eq!(
            unsafe { rnn_model_new(&cfg, case, &mut model) },
            rnn_status::RNN_OK
        );
        // SAFETY: live handle.
        let o = unsafe { rnn_model_output_size(model) };
        let i = cfg.input_size as usize;
        for call in 0..50 {
            let (batch, seq) = (1 + r.below(3), 1 + r.below(4));
            let count = match r.below(6) {
                0 => batch + 1,
                1 => batch - 1,
                _ => batch,
            };
            let lengths: Vec<u32> = (0..count).map(|_| r.below(seq + 2) as u32).collect();
            let null = r.below(15) == 0;
            let x: Vec<f32> = (0..batch * seq * i).map(|k| (k % 5) as f32 * 0.1).collect();
            let mut y = vec![-3.5f32; batch * seq * o];
            let lp = if null { ptr::null() } else { lengths.as_ptr() };
            // SAFETY: x and y hold batch * seq * (i | o) floats, lengths `count` (or NULL).
            let st = unsafe {
                rnn_model_forward_lengths(
                    model,
                    x.as_ptr(),
                    batch,
                    seq,
                    lp,
                    count,
                    y.as_mut_ptr(),
                    y.len(),
                )
            };
            let valid = count == batch && lengths.iter().all(|&n| (1..=seq as u32).contains(&n));
            let what = format!("case {case} call {call}: {cfg:?} B{batch} T{seq} {lengths:?}");
            let allowed: &[rnn_status] = match (null, valid) {
                (true, _) => &[rnn_status::RNN_ERR_NULL],
                (false, true) => &[rnn_status::RNN_OK],
                (false, false) => &[rnn_status::RNN_ERR_INVALID],
            };
            expect(&what, st, allowed);
            if st != rnn_status::RNN_OK {
                assert!(y.iter().all(|&v| v == -3.5), "{what}: y written on failure");
                continue;
            }
            for (b, &n) in lengths.iter().enumerate() {
                let row = &y[b * seq * o..(b + 1) * seq * o];
                let (valid_part, padding) = row.split_at(n as usize * o);
                assert!(valid_part.iter().all(|v| v.is_finite()), "{what}");
                assert!(
                    padding.iter().all(|&v| v == 0.0),
                    "{what}: padding not zero"
                );
            }
        }
        // SAFETY: live handle, freed once.
        unsafe { rnn_model_free(model) };
    }
}

/// A state that has stepped a model takes a shorter path on its next steps (the checks
/// it passed are remembered with the model's identity): every check still applies there.
/// After a successful step, each bad call below fails with the status of a state that
/// never stepped, writes nothing and leaves the state alone; a model of the same config
/// steps the state with its own weights, one of another config is refused; and the
/// steps give the bits of one sequence forward.
#[test]
fn a_state_that_stepped_before_still_gets_every_check() {
    for (cell, h) in [(2u32, 8usize), (4, 8), (2, 16), (4, 32), (2, 64), (0, 8)] {
        let cfg = rnn_config {
            cell,
            input_size: 2,
            hidden_size: h as u32,
            num_layers: 1,
            output_size: 1,
            output_activation: 0,
        };
        let new_model = |seed: u64, cfg: &rnn_config| {
            let mut m: *mut rnn_model = ptr::null_mut();
            // SAFETY: valid arguments.
            assert_eq!(
                unsafe { rnn_model_new(cfg, seed, &mut m) },
                rnn_status::RNN_OK
            );
            m
        };
        let (a, b) = (new_model(1, &cfg), new_model(2, &cfg));
        let other = new_model(
            3,
            &rnn_config {
                hidden_size: 2 * h as u32,
                ..cfg
            },
        );
        let mut state: *mut rnn_state = ptr::null_mut();
        // SAFETY: live handle.
        assert_eq!(
            unsafe { rnn_state_new(a, 1, &mut state) },
            rnn_status::RNN_OK
        );
        // SAFETY: live handle.
        let slen = unsafe { rnn_state_len(state) };
        let snapshot = || {
            let mut s = vec![0f32; slen];
            // SAFETY: live handle, s holds slen floats.
            unsafe {
                assert_eq!(
                    rnn_state_get(state, s.as_mut_ptr(), slen),
                    rnn_status::RNN_OK
                )
            };
            crate_bits(&s)
        };
        let xs: Vec<f32> = (0..12).map(|k| (k as f32 * 0.7).sin()).collect();
        let mut ys = vec![0f32; 6];
        for t in 0..6 {
            // SAFETY: x holds 2 floats, y 1.
            let st = unsafe { rnn_model_step(a, state, xs[2 * t..].as_ptr(), 2, &mut ys[t], 1) };
            assert_eq!(st, rnn_status::RNN_OK, "cell {cell} H={h} step {t}");
        }
        let mut want = vec![0f32; 6];
        // SAFETY: x holds 12 floats (batch 1, 6 steps of 2), y 6.
        let st = unsafe { rnn_model_forward(a, xs.as_ptr(), 1, 6, want.as_mut_ptr(), 6) };
        assert_eq!(st, rnn_status::RNN_OK);
        assert_eq!(
            crate_bits(&ys),
            crate_bits(&want),
            "cell {cell} H={h}: steps"
        );

        let before = snapshot();
        let what = |case: &str| format!("cell {cell} H={h}: {case}");
        let mut buf = [0.5f32, -0.25, f32::NAN, 9.0, 9.0];
        let p = buf.as_mut_ptr();
        // (x, x_len, y, y_len, model, status)
        let bad: [(
            &str,
            *const f32,
            usize,
            *mut f32,
            usize,
            *const rnn_model,
            rnn_status,
        ); 8] = [
            (
                "x_len",
                p,
                3,
                p.wrapping_add(3),
                1,
                a,
                rnn_status::RNN_ERR_INVALID,
            ),
            (
                "y_len",
                p,
                2,
                p.wrapping_add(3),
                2,
                a,
                rnn_status::RNN_ERR_INVALID,
            ),
            (
                "NaN",
                p.wrapping_add(1),
                2,
                p.wrapping_add(3),
                1,
                a,
                rnn_status::RNN_ERR_NONFINITE,
            ),
            (
                "y inside x",
                p,
                2,
                p.wrapping_add(1),
                1,
                a,
                rnn_status::RNN_ERR_INVALID,
            ),
            (
                "misaligned y",
                p,
                2,
                (p.wrapping_add(3) as *mut u8).wrapping_add(1).cast(),
                1,
                a,
                rnn_status::RNN_ERR_INVALID,
            ),
            (
                "NULL x",
                ptr::null(),
                2,
                p.wrapping_add(3),
                1,
                a,
                rnn_status::RNN_ERR_NULL,
            ),
            (
                "NULL y",
                p,
                2,
                ptr::null_mut(),
                1,
                a,
                rnn_status::RNN_ERR_NULL,
            ),
            (
                "another config",
                p,
                2,
                p.wrapping_add(3),
                1,
                other,
                rnn_status::RNN_ERR_INVALID,
            ),
        ];
        for (case, x, x_len, y, y_len, m, status) in bad {
            // SAFETY: x and y point into buf (or are NULL, or misaligned on purpose);
            // where the lengths are right the floats are there; the contract has the
            // call refuse before reading otherwise.
            let st = unsafe { rnn_model_step(m, state, x, x_len, y, y_len) };
            assert_eq!(st, status, "{}", what(case));
            assert_eq!(
                crate_bits(&buf[3..]),
                crate_bits(&[9.0, 9.0]),
                "{}",
                what(case)
            );
            assert_eq!(snapshot(), before, "{}", what(case));
        }
        // The same config with other weights: the state steps with b's.
        let s0: Vec<f32> = before.iter().map(|&u| f32::from_bits(u)).collect();
        let mut fresh: *mut rnn_state = ptr::null_mut();
        let (mut y_b, mut y_fresh) = (0f32, 0f32);
        // SAFETY: live handles; s0 holds slen floats; x 2 floats, y 1.
        unsafe {
            assert_eq!(rnn_state_new(b, 1, &mut fresh), rnn_status::RNN_OK);
            assert_eq!(rnn_state_set(fresh, s0.as_ptr(), slen), rnn_status::RNN_OK);
            assert_eq!(
                rnn_model_step(b, fresh, p, 2, &mut y_fresh, 1),
                rnn_status::RNN_OK
            );
            assert_eq!(
                rnn_model_step(b, state, p, 2, &mut y_b, 1),
                rnn_status::RNN_OK
            );
        }
        assert_eq!(y_b.to_bits(), y_fresh.to_bits(), "{}", what("model b"));
        // SAFETY: live handles, freed once.
        unsafe {
            rnn_state_free(fresh);
            rnn_state_free(state);
            for m in [a, b, other] {
                rnn_model_free(m);
            }
        }
    }
}

/// The same for models with dense layers around the stack (RTNeural's own files): after a
/// first step the state's steps take a shorter path, which gives the bits of
/// `rnn_model_forward_state` one step at a time (the whole path), and every bad argument
/// still fails with nothing written.
#[test]
fn a_layered_state_that_stepped_before_still_gets_every_check() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/third_party/rtneural/"
    );
    for name in ["lstm.json", "gru.json", "gru_1d.json"] {
        let path = std::ffi::CString::new(format!("{dir}{name}")).unwrap();
        let mut m: *mut rnn_model = ptr::null_mut();
        // SAFETY: a NUL-terminated path, an out pointer.
        assert_eq!(
            unsafe { rnn_model_load(path.as_ptr(), &mut m) },
            rnn_status::RNN_OK
        );
        let (mut a, mut b): (*mut rnn_state, *mut rnn_state) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live handle, out pointers.
        unsafe {
            assert_eq!(rnn_state_new(m, 1, &mut a), rnn_status::RNN_OK);
            assert_eq!(rnn_state_new(m, 1, &mut b), rnn_status::RNN_OK);
        }
        // SAFETY: live handles.
        let slen = unsafe { rnn_state_len(a) };
        let snap = |s: *mut rnn_state| {
            let mut v = vec![0f32; slen];
            // SAFETY: live handle, v holds slen floats.
            unsafe { assert_eq!(rnn_state_get(s, v.as_mut_ptr(), slen), rnn_status::RNN_OK) };
            crate_bits(&v)
        };
        for t in 0..8 {
            let x = (t as f32 * 0.9).sin();
            let (mut ya, mut yb) = (0f32, 0f32);
            // SAFETY: one input, one output each (these models map 1 -> 1).
            unsafe {
                assert_eq!(rnn_model_step(m, a, &x, 1, &mut ya, 1), rnn_status::RNN_OK);
                assert_eq!(
                    rnn_model_forward_state(m, b, &x, 1, &mut yb, 1),
                    rnn_status::RNN_OK
                );
            }
            assert_eq!(ya.to_bits(), yb.to_bits(), "{name} step {t}");
        }
        assert_eq!(snap(a), snap(b), "{name}");
        let before = snap(a);
        let mut buf = [0.5f32, f32::NAN, 9.0, 9.0];
        let p = buf.as_mut_ptr();
        let bad: [(&str, *const f32, usize, *mut f32, usize, rnn_status); 5] = [
            (
                "x_len",
                p,
                2,
                p.wrapping_add(2),
                1,
                rnn_status::RNN_ERR_INVALID,
            ),
            (
                "y_len",
                p,
                1,
                p.wrapping_add(2),
                2,
                rnn_status::RNN_ERR_INVALID,
            ),
            (
                "NaN",
                p.wrapping_add(1),
                1,
                p.wrapping_add(2),
                1,
                rnn_status::RNN_ERR_NONFINITE,
            ),
            ("y is x", p, 1, p, 1, rnn_status::RNN_ERR_INVALID),
            (
                "misaligned y",
                p,
                1,
                (p.wrapping_add(2) as *mut u8).wrapping_add(1).cast(),
                1,
                rnn_status::RNN_ERR_INVALID,
            ),
        ];
        for (case, x, x_len, y, y_len, status) in bad {
            // SAFETY: pointers into buf (misaligned on purpose in one case); where the
            // lengths are right the floats are there.
            let st = unsafe { rnn_model_step(m, a, x, x_len, y, y_len) };
            assert_eq!(st, status, "{name}: {case}");
            assert_eq!(
                crate_bits(&buf[2..]),
                crate_bits(&[9.0, 9.0]),
                "{name}: {case}"
            );
            assert_eq!(buf[0].to_bits(), 0.5f32.to_bits(), "{name}: {case}");
            assert_eq!(snap(a), before, "{name}: {case}");
        }
        // SAFETY: live handles, freed once.
        unsafe {
            rnn_state_free(a);
            rnn_state_free(b);
            rnn_model_free(m);
        }
    }
}
