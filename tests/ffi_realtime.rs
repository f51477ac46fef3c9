//! The real-time contract through the C entry points: `rnn_model_step`,
//! `rnn_model_forward_state` and the state calls perform no heap allocation, including
//! the panic boundary and the per-thread last error (on a thread's very first call, and
//! after a failure has left a message behind). A counting global allocator, per thread.

mod common;
use common::counting::{allocations, Counting};
use rnncore::__testing::ffi::*;
use std::ffi::CStr;
use std::ptr;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn last_error() -> String {
    // SAFETY: rnn_last_error never returns NULL and its string is NUL-terminated.
    unsafe { CStr::from_ptr(rnn_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Streams through the C entry points on a thread of its own (so its first call into the
/// library is inside the measured window) and returns the allocations counted there.
fn stream_on_fresh_thread(
    model: SendPtr<rnn_model>,
    state: SendPtr<rnn_state>,
    dims: (usize, usize, usize),
    fail_first: bool,
) -> usize {
    std::thread::spawn(move || {
        let (model, state) = (model.get() as *const rnn_model, state.get());
        let (batch, i, o) = dims;
        let x: Vec<f32> = (0..batch * 32 * i)
            .map(|k| (k as f32 * 0.37).sin())
            .collect();
        let mut y = vec![0.0f32; batch * 32 * o];
        let mut snap = vec![0.0f32; 4096];
        if fail_first {
            // A failure allocates its message; the successes after it must not.
            // SAFETY: live handles; a wrong length is the point.
            let s = unsafe {
                rnn_model_step(
                    model,
                    state,
                    x.as_ptr(),
                    batch * i + 1,
                    y.as_mut_ptr(),
                    batch * o,
                )
            };
            assert_eq!(s, rnn_status::RNN_ERR_INVALID);
            assert!(last_error().contains("x_len"));
        }
        let before = allocations();
        for n in 0..1000 {
            // SAFETY: live handles; x and y hold the sizes passed.
            unsafe {
                let s = rnn_model_step(
                    model,
                    state,
                    x.as_ptr(),
                    batch * i,
                    y.as_mut_ptr(),
                    batch * o,
                );
                assert_eq!(s, rnn_status::RNN_OK);
                if n % 50 == 0 {
                    let s = rnn_model_forward_state(
                        model,
                        state,
                        x.as_ptr(),
                        32,
                        y.as_mut_ptr(),
                        batch * 32 * o,
                    );
                    assert_eq!(s, rnn_status::RNN_OK);
                    let len = rnn_state_len(state);
                    assert_eq!(
                        rnn_state_get(state, snap.as_mut_ptr(), len),
                        rnn_status::RNN_OK
                    );
                    assert_eq!(rnn_state_set(state, snap.as_ptr(), len), rnn_status::RNN_OK);
                    assert_eq!(rnn_state_reset_stream(state, batch - 1), rnn_status::RNN_OK);
                    assert_eq!(rnn_model_output_size(model), o);
                }
            }
        }
        let counted = allocations() - before;
        assert_eq!(last_error(), "", "success clears the last error");
        counted
    })
    .join()
    .expect("streaming thread")
}

struct SendPtr<T>(*mut T);
impl<T> SendPtr<T> {
    // A method, so that the closure captures the whole (Send) wrapper, not its field.
    fn get(&self) -> *mut T {
        self.0
    }
}
// SAFETY: the handles are used by one thread at a time (the spawned one, then joined).
unsafe impl<T> Send for SendPtr<T> {}

#[test]
fn c_streaming_calls_never_allocate() {
    for (cell, i, h, l, o) in [
        (rnn_cell::RNN_CELL_LSTM, 1, 32, 2, 1),
        (rnn_cell::RNN_CELL_GRU, 3, 13, 1, 4),
        (rnn_cell::RNN_CELL_GRU_LBR, 1, 8, 1, 0),
        (rnn_cell::RNN_CELL_RNN_TANH, 2, 16, 2, 2),
    ] {
        let cfg = rnn_config {
            cell: cell as u32,
            input_size: i,
            hidden_size: h,
            num_layers: l,
            output_size: o,
            output_activation: if o > 0 { 1 } else { 0 },
        };
        let out = if o > 0 { o } else { h } as usize;
        for batch in [1usize, 3] {
            for fail_first in [false, true] {
                let mut model = ptr::null_mut();
                let mut state = ptr::null_mut();
                // SAFETY: valid config and out-pointers.
                unsafe {
                    assert_eq!(rnn_model_new(&cfg, 5, &mut model), rnn_status::RNN_OK);
                    assert_eq!(
                        rnn_state_new_block(model, batch, 32, &mut state),
                        rnn_status::RNN_OK
                    );
                }
                let n = stream_on_fresh_thread(
                    SendPtr(model),
                    SendPtr(state),
                    (batch, i as usize, out),
                    fail_first,
                );
                assert_eq!(n, 0, "{cfg:?} batch {batch} fail_first {fail_first}");
                // SAFETY: handles from the calls above, freed once.
                unsafe {
                    rnn_state_free(state);
                    rnn_model_free(model);
                }
            }
        }
    }
}

#[test]
fn rnn_model_describe_never_allocates() {
    // Documented "No allocation": a host may read a model's description on any thread.
    let mut d = rnn_model_desc {
        struct_size: RNN_MODEL_DESC_SIZE_V1,
        cell: rnn_cell::RNN_CELL_LSTM as u32,
        input_size: 2,
        hidden_size: 8,
        num_layers: 1,
        num_pre: 1,
        num_post: 2,
        ..Default::default()
    };
    d.pre[0] = rnn_dense {
        size: 4,
        activation: rnn_activation::RNN_ACT_TANH as u32,
    };
    d.post[0] = rnn_dense {
        size: 3,
        activation: rnn_activation::RNN_ACT_RELU as u32,
    };
    d.post[1] = rnn_dense {
        size: 2,
        activation: 0,
    };
    let mut model = ptr::null_mut();
    // SAFETY: a whole description and a writable out-pointer.
    assert_eq!(
        unsafe { rnn_model_new_desc(&d, 1, &mut model) },
        rnn_status::RNN_OK
    );
    let m = SendPtr(model);
    let counted = std::thread::spawn(move || {
        let model = m.get() as *const rnn_model;
        let mut back = rnn_model_desc::default();
        let before = allocations();
        for _ in 0..100 {
            back.struct_size = RNN_MODEL_DESC_SIZE_V1;
            // SAFETY: a live model; `back` is a whole writable description.
            assert_eq!(
                unsafe { rnn_model_describe(model, &mut back) },
                rnn_status::RNN_OK
            );
        }
        let n = allocations() - before;
        assert_eq!(back, d);
        n
    })
    .join()
    .expect("describe thread");
    assert_eq!(counted, 0);
    // SAFETY: the handle from rnn_model_new_desc, freed once.
    unsafe { rnn_model_free(model) };
}
