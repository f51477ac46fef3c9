//! Seeded random descriptions through `rnn_model_new_desc` and `rnn_model_describe`,
//! checked against an oracle written from the header's rules for `rnn_model_desc` (not
//! from the implementation): every description the rules allow builds a model whose
//! description reads back as given (forget_bias as 0, a lone identity/softmax post layer
//! as the head), whose `rnn_config` and output size agree and whose forward runs;
//! every other is `RNN_ERR_INVALID` with a message and `*out` untouched.

use rnncore::__testing::ffi::*;
use rnncore::Rng;
use std::ffi::CStr;
use std::ptr;

const MAX_DIM: u32 = 1 << 20;

fn last_error() -> String {
    // SAFETY: rnn_last_error returns a valid NUL-terminated string owned by the library.
    unsafe { CStr::from_ptr(rnn_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Mostly valid values, sometimes one from the edges.
fn pick(r: &mut Rng, good: &[u32], bad: &[u32]) -> u32 {
    if r.below(40) == 0 {
        bad[r.below(bad.len())]
    } else {
        good[r.below(good.len())]
    }
}

fn pick_f(r: &mut Rng, good: &[f32], bad: &[f32]) -> f32 {
    if r.below(40) == 0 {
        bad[r.below(bad.len())]
    } else {
        good[r.below(good.len())]
    }
}

fn random_desc(r: &mut Rng) -> rnn_model_desc {
    let mut d = rnn_model_desc {
        struct_size: RNN_MODEL_DESC_SIZE_V1,
        cell: pick(r, &[0, 1, 2, 2, 3, 4], &[5, u32::MAX]),
        input_size: pick(r, &[1, 2, 3], &[0, MAX_DIM + 1]),
        hidden_size: pick(r, &[1, 2, 4], &[0, MAX_DIM + 1]),
        num_layers: pick(r, &[1, 1, 2], &[0, 1025]),
        output_size: pick(r, &[0, 0, 0, 1, 3], &[MAX_DIM + 1]),
        output_activation: pick(r, &[0, 0, 1], &[2]),
        bidirectional: pick(r, &[0, 0, 0, 1], &[2]),
        proj_size: pick(r, &[0, 0, 0, 0, 0, 0, 0, 0, 1, 3], &[u32::MAX]),
        dropout: pick_f(r, &[0.0, -0.0, 0.0, 0.0, 0.0, 0.5], &[1.0, -0.1, f32::NAN]),
        forget_bias: pick_f(r, &[0.0, 0.0, 1.0, -2.0], &[f32::INFINITY, f32::NAN]),
        skip: pick(r, &[0, 0, 0, 1], &[2]),
        num_pre: pick(r, &[0, 0, 1, 2], &[17, RNN_MAX_DENSE as u32]),
        num_post: pick(r, &[0, 0, 1, 2, 3], &[17, u32::MAX]),
        ..Default::default()
    };
    let (np, nq) = (
        (d.num_pre as usize).min(RNN_MAX_DENSE),
        (d.num_post as usize).min(RNN_MAX_DENSE),
    );
    for k in 0..RNN_MAX_DENSE {
        for (slots, n) in [(&mut d.pre, np), (&mut d.post, nq)] {
            if k < n {
                slots[k] = rnn_dense {
                    size: pick(r, &[1, 2, 3], &[0, MAX_DIM + 1]),
                    activation: pick(r, &[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5], &[6, u32::MAX]),
                };
            } else if r.below(200) == 0 {
                slots[k].size = 1; // a stray unused entry
            }
        }
    }
    d
}

/// Whether the header's rules allow `d` (rnn_model_desc's and rnn_model_new_desc's docs).
fn allowed(d: &rnn_model_desc) -> bool {
    let sizes = |v: u32| (1..=MAX_DIM).contains(&v);
    let list = |slots: &[rnn_dense; RNN_MAX_DENSE], n: u32| {
        (n as usize) <= RNN_MAX_DENSE
            && slots[..n as usize]
                .iter()
                .all(|e| sizes(e.size) && e.activation <= 5)
            && slots[n as usize..]
                .iter()
                .all(|e| e.size == 0 && e.activation == 0)
    };
    if d.cell > 4
        || d.output_activation > 1
        || !sizes(d.input_size)
        || !sizes(d.hidden_size)
        || !(1..=1024).contains(&d.num_layers)
        || d.output_size > MAX_DIM
        || d.bidirectional > 1
        || (d.proj_size != 0 && (d.cell != 2 || d.proj_size >= d.hidden_size))
        || d.dropout.is_nan()
        || !(0.0..1.0).contains(&d.dropout)
        || !d.forget_bias.is_finite()
        || (d.forget_bias != 0.0 && d.cell != 2)
        || d.skip > 1
        || !list(&d.pre, d.num_pre)
        || !list(&d.post, d.num_post)
    {
        return false;
    }
    let pre = &d.pre[..d.num_pre as usize];
    let post = &d.post[..d.num_post as usize];
    const SOFTMAX: u32 = rnn_activation::RNN_ACT_SOFTMAX as u32;
    if pre.iter().any(|e| e.activation == SOFTMAX)
        || post.iter().rev().skip(1).any(|e| e.activation == SOFTMAX)
        || (d.output_size != 0 && !post.is_empty())
        || (d.output_activation == 1 && d.output_size == 0)
    {
        return false;
    }
    // Around a bidirectional stack only a head: output_size, or one identity or softmax
    // post layer.
    let lone_head = pre.is_empty()
        && d.skip == 0
        && post.len() == 1
        && (post[0].activation == 0 || post[0].activation == SOFTMAX);
    let composed = d.bidirectional == 1 || d.proj_size != 0;
    if composed && (!pre.is_empty() || d.skip == 1 || (!post.is_empty() && !lone_head)) {
        return false;
    }
    // Dropout: not with dense layers (a lone head is none).
    let dense = !pre.is_empty() || d.skip == 1 || (!post.is_empty() && !lone_head);
    if d.dropout != 0.0 && dense {
        return false;
    }
    if d.skip == 1 {
        let ends_in_softmax = match post.last() {
            Some(e) => e.activation == SOFTMAX,
            None => d.output_activation == 1,
        };
        if ends_in_softmax || d.input_size != output_width(d) {
            return false;
        }
    }
    true
}

fn output_width(d: &rnn_model_desc) -> u32 {
    match d.post[..d.num_post as usize].last() {
        Some(e) => e.size,
        None if d.output_size > 0 => d.output_size,
        None => {
            let per = if d.proj_size > 0 {
                d.proj_size
            } else {
                d.hidden_size
            };
            per * (1 + d.bidirectional)
        }
    }
}

/// What rnn_model_describe gives back for an allowed `d`.
fn expected_description(d: &rnn_model_desc) -> rnn_model_desc {
    let mut e = *d;
    e.forget_bias = 0.0;
    if e.dropout == 0.0 {
        e.dropout = 0.0; // -0.0 reads back as 0.0
    }
    let lone_head =
        e.num_pre == 0 && e.skip == 0 && e.num_post == 1 && matches!(e.post[0].activation, 0 | 5);
    if lone_head {
        e.output_size = e.post[0].size;
        e.output_activation = u32::from(e.post[0].activation == 5);
        e.num_post = 0;
        e.post[0] = rnn_dense::default();
    }
    e
}

#[test]
fn random_descriptions_follow_the_header() {
    let mut r = Rng::new(18);
    let (mut built, mut refused) = (0, 0);
    for case in 0..10000u64 {
        let d = random_desc(&mut r);
        let what = format!("case {case}: {d:?}");
        let sentinel = ptr::NonNull::<rnn_model>::dangling().as_ptr();
        let mut out = sentinel;
        // SAFETY: `d` is a whole rnn_model_desc; `out` is writable.
        let st = unsafe { rnn_model_new_desc(&d, case, &mut out) };
        if !allowed(&d) {
            assert_eq!(st, rnn_status::RNN_ERR_INVALID, "{what}: {}", last_error());
            assert!(last_error().contains("rnn_model_new_desc: "), "{what}");
            assert_eq!(out, sentinel, "{what}: out written on failure");
            refused += 1;
            continue;
        }
        assert_eq!(st, rnn_status::RNN_OK, "{what}: {}", last_error());
        built += 1;
        let mut back = rnn_model_desc {
            struct_size: RNN_MODEL_DESC_SIZE_V1,
            cell: 99,
            ..Default::default()
        };
        back.pre[3].size = 77; // must be cleared
        let mut cfg = rnn_config {
            cell: 9,
            input_size: 0,
            hidden_size: 0,
            num_layers: 0,
            output_size: 0,
            output_activation: 9,
        };
        // SAFETY: `out` is a live model; `back` and `cfg` are writable.
        unsafe {
            assert_eq!(rnn_model_describe(out, &mut back), rnn_status::RNN_OK);
            assert_eq!(rnn_model_config(out, &mut cfg), rnn_status::RNN_OK);
        }
        assert_eq!(back, expected_description(&d), "{what}");
        let width = output_width(&d);
        // SAFETY: live handle.
        assert_eq!(
            unsafe { rnn_model_output_size(out) },
            width as usize,
            "{what}"
        );
        assert_eq!(
            (cfg.cell, cfg.input_size, cfg.hidden_size, cfg.num_layers),
            (d.cell, d.input_size, d.hidden_size, d.num_layers),
            "{what}"
        );
        let has_output_layer = d.num_post > 0 || d.output_size > 0;
        assert_eq!(
            cfg.output_size,
            if has_output_layer { width } else { 0 },
            "{what}"
        );
        // Rebuilt from its description, the same shape; and it runs.
        let mut again = ptr::null_mut();
        let x = vec![0.5f32; 2 * d.input_size as usize];
        let mut y = vec![f32::NAN; 2 * width as usize];
        // SAFETY: valid descriptions, buffers of the sizes given.
        unsafe {
            assert_eq!(
                rnn_model_new_desc(&back, 1, &mut again),
                rnn_status::RNN_OK,
                "{what}"
            );
            let mut back2 = rnn_model_desc {
                struct_size: RNN_MODEL_DESC_SIZE_V1,
                ..Default::default()
            };
            assert_eq!(rnn_model_describe(again, &mut back2), rnn_status::RNN_OK);
            assert_eq!(back2, back, "{what}");
            assert_eq!(
                rnn_model_forward(out, x.as_ptr(), 1, 2, y.as_mut_ptr(), y.len()),
                rnn_status::RNN_OK,
                "{what}: {}",
                last_error()
            );
            rnn_model_free(again);
            rnn_model_free(out);
        }
        assert!(y.iter().all(|v| v.is_finite()), "{what}: {y:?}");
    }
    // The generator reaches both sides often enough to mean something.
    assert!(
        built > 500 && refused > 500,
        "built {built}, refused {refused}"
    );
}

#[test]
fn arbitrary_bytes_are_refused_or_built_never_a_panic() {
    // Any bytes behind a struct_size the library accepts are a defined call: OK or
    // RNN_ERR_INVALID (never RNN_ERR_PANIC), and on failure `*out` is untouched. The
    // buffer holds 4096 bytes, the most a struct_size may say.
    let mut r = Rng::new(1818);
    let mut buf = vec![0u32; 1024];
    let mut seen_ok = 0;
    for case in 0..3000u64 {
        if r.below(2) == 0 {
            // Noise: mostly small numbers (plausible fields), some anything.
            for w in buf.iter_mut() {
                *w = match r.below(8) {
                    0 => r.next_u64() as u32,
                    1..=3 => 0,
                    _ => r.below(4) as u32,
                };
            }
        } else {
            // A valid description with one word (inside it or past it) changed.
            buf.fill(0);
            buf[1..5].copy_from_slice(&[r.below(5) as u32, 1 + r.below(3) as u32, 2, 1]);
            let span = if r.below(2) == 0 { 80 } else { 1023 };
            let k = 1 + r.below(span);
            let v = [0, 1, 2, r.next_u64() as u32][r.below(4)];
            buf[k] = v;
        }
        buf[0] = match r.below(4) {
            0 => r.below(5000) as u32,
            _ => RNN_MODEL_DESC_SIZE_V1 + 4 * r.below(3) as u32,
        };
        let size = buf[0];
        let sentinel = ptr::NonNull::<rnn_model>::dangling().as_ptr();
        let mut out = sentinel;
        // SAFETY: `buf` holds 4096 readable bytes, at least any accepted struct_size.
        let st = unsafe { rnn_model_new_desc(buf.as_ptr().cast(), case, &mut out) };
        let what = format!("case {case}, struct_size {size}: {}", last_error());
        match st {
            rnn_status::RNN_OK => {
                seen_ok += 1;
                assert!((RNN_MODEL_DESC_SIZE_V1..=4096).contains(&size), "{what}");
                assert!(
                    buf[RNN_MODEL_DESC_SIZE_V1 as usize / 4..size as usize / 4]
                        .iter()
                        .all(|&w| w == 0),
                    "{what}: a nonzero tail was accepted"
                );
                // SAFETY: a model just made.
                unsafe { rnn_model_free(out) };
            }
            rnn_status::RNN_ERR_INVALID => assert_eq!(out, sentinel, "{what}"),
            other => panic!("{what}: status {other:?}"),
        }
    }
    assert!(seen_ok > 10, "only {seen_ok} accepted");
}
