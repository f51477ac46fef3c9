"""The Python API over the C ABI: shapes, conversions, errors (status, message, nothing
modified), streaming equivalences, training, threads, save/load."""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np
import pytest

import rnncore
from rnncore import Cell, Model, Optimizer, Output, RnnError, State, Status, Targets, Trainer
from rnncore._lib import lib

CELLS = list(Cell)


def rng(seed=0):
    return np.random.default_rng(seed)


def rand(shape, seed=0, scale=1.0):
    return (rng(seed).uniform(-1, 1, size=shape) * scale).astype(np.float32)


def expect_status(status, fn, *args, **kwargs) -> RnnError:
    with pytest.raises(RnnError) as info:
        fn(*args, **kwargs)
    assert info.value.status == status, f"{info.value} (expected {status.name})"
    assert info.value.message
    return info.value


# ---------------------------------------------------------------------------------------
# Library-wide


def test_version_and_extras():
    v = rnncore.version()
    assert len(v.split(".")) == 3 and all(p.isdigit() for p in v.split("."))
    assert rnncore.abi_version() >= 1
    assert rnncore.status_str(Status.ERR_INVALID)
    assert rnncore.status_str(Status.OK) != rnncore.status_str(Status.ERR_NULL)
    assert rnncore.status_str(1000)  # outside the enum: still a string
    assert isinstance(lib.rnn_last_error(), bytes)  # never NULL
    assert rnncore.kernel_name() in ("avx512", "avx2", "avx", "sse41", "neon", "scalar")


@pytest.mark.skipif(
    os.environ.get("RNNCORE_TEST_INSTALLED") != "1", reason="run_tests.sh tests the pip install"
)
def test_pip_install_is_self_contained():
    # run_tests.sh installs with `pip install ./bindings/python`: the tests must import that
    # copy, and it must carry its own library rather than reach back into the checkout.
    from conftest import PYTHON_DIR

    pkg = os.path.dirname(os.path.abspath(rnncore.__file__))
    assert not pkg.startswith(str(PYTHON_DIR)), pkg
    if not os.environ.get("RNNCORE_LIB"):
        assert str(rnncore.library_path()).startswith(pkg)
        assert rnncore.library_path().is_file()


def test_kernel_tier_can_be_forced_by_environment():
    import subprocess
    import sys

    code = "import rnncore; print(rnncore.kernel_name())"
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(rnncore.__file__)))
    env = dict(os.environ, RNNCORE_KERNEL="scalar", PYTHONPATH=pkg_parent)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "scalar"


def test_num_threads_and_determinism():
    m = Model(Cell.LSTM, 4, 16, num_layers=2, output_size=3, seed=5)
    x = rand((32, 6, 4), 1)
    try:
        rnncore.set_num_threads(1)
        assert rnncore.get_num_threads() == 1
        y1 = m.forward(x)
        rnncore.set_num_threads(2)
        assert rnncore.get_num_threads() == 2
        y2 = m.forward(x)
        assert np.array_equal(y1, y2)  # bit-identical across thread counts
        expect_status(Status.ERR_INVALID, rnncore.set_num_threads, -1)
        expect_status(Status.ERR_INVALID, rnncore.set_num_threads, 10**9)
    finally:
        rnncore.set_num_threads(0)
    assert rnncore.get_num_threads() >= 1


def _host_pool_work():
    """Two training steps and a forward pass, big enough (> 4M multiply-adds) to be split."""
    m = Model(Cell.LSTM, 8, 64, num_layers=2, output_size=2, seed=3)
    x, target = rand((32, 16, 8), 4), rand((32, 16, 2), 5)
    with Trainer(m, Optimizer.ADAM, learning_rate=0.01) as tr:
        losses = [tr.step_mse(x, target) for _ in range(2)]
    return losses, m.forward(x)


def test_host_parallel_for_gives_the_built_in_bits():
    from concurrent.futures import ThreadPoolExecutor

    calls, threads = [], set()

    def on_pool(n, task):
        def part(i):
            threads.add(threading.get_ident())
            task(i)

        calls.append(n)
        list(pool.map(part, range(n)))

    try:
        rnncore.set_num_threads(1)
        want_losses, want_y = _host_pool_work()
        rnncore.set_num_threads(3)
        with ThreadPoolExecutor(max_workers=3) as pool:
            rnncore.set_parallel_for(on_pool)
            losses, y = _host_pool_work()
        # the work went through the host, split in 3 (a few sections split by data blocks)
        assert 3 in calls and all(n >= 2 for n in calls)
        assert threading.get_ident() not in threads  # on the executor's threads
        assert losses == want_losses and np.array_equal(y, want_y)

        # a host that skips every part, or raises: rnncore makes the parts up itself
        rnncore.set_parallel_for(lambda n, task: None)
        losses, y = _host_pool_work()
        assert losses == want_losses and np.array_equal(y, want_y)

        def raising(n, task):
            task(0)
            raise RuntimeError("host failure")

        rnncore.set_parallel_for(raising)
        losses, y = _host_pool_work()
        assert losses == want_losses and np.array_equal(y, want_y)

        expect_status(Status.ERR_INVALID, rnncore.set_parallel_for, 42)
        rnncore.set_parallel_for(None)  # back to the built-in pool: the host sees no more
        before = len(calls)
        losses, y = _host_pool_work()
        assert len(calls) == before
        assert losses == want_losses and np.array_equal(y, want_y)
    finally:
        rnncore.set_parallel_for(None)
        rnncore.set_num_threads(0)


# ---------------------------------------------------------------------------------------
# Models, shapes, conversions


def test_config_and_sizes():
    m = Model("gru", 3, 8, num_layers=2, output_size=5, output_activation="softmax", seed=1)
    cfg = m.config
    assert cfg == rnncore.Config(Cell.GRU, 3, 8, 2, 5, Output.SOFTMAX)
    assert isinstance(cfg.cell, Cell) and isinstance(cfg.output_activation, Output)
    assert m.output_size == 5 and m.input_size == 3 and m.hidden_size == 8 and m.num_layers == 2
    assert Model(Cell.LSTM, 3, 8).output_size == 8
    with pytest.raises(ValueError, match="unknown Cell"):
        Model("transformer", 3, 8)


def test_forward_shapes_dtypes_layouts():
    m = Model(Cell.LSTM, 3, 6, output_size=2, seed=2)
    x = rand((4, 5, 3), 3)
    y = m.forward(x)
    assert y.shape == (4, 5, 2) and y.dtype == np.float32 and y.flags.c_contiguous
    assert np.isfinite(y).all()
    # float64, lists and non-contiguous views are converted
    assert np.array_equal(m.forward(x.astype(np.float64)), y)
    assert np.array_equal(m.forward(x.tolist()), y)
    xt = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)
    assert not xt.flags.c_contiguous
    assert np.array_equal(m.forward(xt), y)
    # what cannot be converted is refused
    with pytest.raises(TypeError, match="float32"):
        m.forward(x.astype(np.complex64))
    with pytest.raises(TypeError):
        m.forward(np.array([["a"]]))
    # empty batches and sequences are refused by the library
    expect_status(Status.ERR_INVALID, m.forward, np.zeros((2, 0, 3), np.float32))
    expect_status(Status.ERR_INVALID, m.forward, np.zeros((0, 2, 3), np.float32))


def test_same_seed_same_model():
    a, b, c = (Model(Cell.GRU_LBR, 3, 5, output_size=2, seed=s) for s in (7, 7, 8))
    x = rand((2, 4, 3))
    assert np.array_equal(a.forward(x), b.forward(x))
    assert not np.array_equal(a.forward(x), c.forward(x))


def test_softmax_rows_sum_to_one():
    m = Model(Cell.LSTM, 3, 8, output_size=4, output_activation=Output.SOFTMAX, seed=2)
    y = m.forward(rand((2, 3, 3)))
    assert (y > 0).all()
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Streaming equivalences


def split_steps(model, x, state):
    return np.stack([model.step(state, x[:, t]) for t in range(x.shape[1])], axis=1)


@pytest.mark.parametrize("cell", CELLS, ids=[c.name.lower() for c in CELLS])
@pytest.mark.parametrize("head", [0, 5])
def test_forward_equals_step_and_blocks(cell, head):
    m = Model(cell, 4, 7, num_layers=2, output_size=head, seed=11 + cell)
    x = rand((3, 6, 4), 100 + cell)
    y = m.forward(x)
    s1 = State(m, 3)
    np.testing.assert_allclose(split_steps(m, x, s1), y, atol=1e-5, rtol=0)
    sb = State(m, 3, max_block=4)
    yb = np.concatenate([m.forward_state(sb, x[:, :4]), m.forward_state(sb, x[:, 4:])], axis=1)
    np.testing.assert_allclose(yb, y, atol=1e-5, rtol=0)
    np.testing.assert_allclose(s1.get(), sb.get(), atol=1e-5, rtol=0)


def test_state_layout_get_set_h_c():
    m = Model(Cell.LSTM, 2, 3, num_layers=2, seed=3)
    s = State(m, 4)
    assert len(s) == 2 * 2 * 4 * 3 and s.has_cell_state
    m.step(s, rand((4, 2)))
    flat = s.get()
    assert s.h.shape == (2, 4, 3) and s.c.shape == (2, 4, 3)
    assert np.array_equal(np.concatenate([s.h.ravel(), s.c.ravel()]), flat)
    # the top layer's h is the output without a head
    s2 = State(m, 4)
    y = m.step(s2, rand((4, 2), 9))
    assert np.array_equal(s2.h[-1], y)
    # snapshot / restore replays exactly
    snap = s.get()
    a = m.step(s, rand((4, 2), 50))
    s.set_hc(snap[:24].reshape(2, 4, 3), snap[24:].reshape(2, 4, 3))
    assert np.array_equal(s.get(), snap)
    assert np.array_equal(m.step(s, rand((4, 2), 50)), a)
    # reset_stream zeros one stream in every plane
    before = s.get().reshape(4, 4, 3)
    s.reset_stream(2)
    after = s.get().reshape(4, 4, 3)
    assert (after[:, 2] == 0).all()
    assert np.array_equal(np.delete(after, 2, axis=1), np.delete(before, 2, axis=1))
    s.reset()
    assert (s.get() == 0).all()
    g = State(Model(Cell.GRU, 2, 3, seed=1), 2)
    assert g.c is None and not g.has_cell_state
    with pytest.raises(RnnError):
        g.set_hc(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)))


def test_initial_state_is_used():
    m = Model(Cell.GRU, 2, 5, seed=8)
    x = rand((1, 3, 2))
    s = State(m, 1, max_block=3)
    np.testing.assert_allclose(m.forward_state(s, x), m.forward(x), atol=1e-6)
    s.set(np.full(5, 0.5))
    assert np.abs(m.forward_state(s, x) - m.forward(x)).max() > 1e-3


# ---------------------------------------------------------------------------------------
# Errors: right status, library message, nothing modified


def test_bad_config_values():
    expect_status(Status.ERR_INVALID, Model, 99, 2, 4)
    expect_status(Status.ERR_INVALID, Model, Cell.LSTM, 0, 4)
    expect_status(Status.ERR_INVALID, Model, Cell.LSTM, 2, 0)
    expect_status(Status.ERR_INVALID, Model, Cell.LSTM, 2, 4, num_layers=0)
    expect_status(Status.ERR_INVALID, Model, Cell.LSTM, 2, 4, output_size=3, output_activation=7)
    expect_status(Status.ERR_INVALID, Model, Cell.LSTM, 2**32, 4)
    e = expect_status(Status.ERR_INVALID, Model, 99, 2, 4)
    assert "rnn_model_new" in str(e) and "INVALID" in str(e)


def test_forward_wrong_sizes_and_nonfinite():
    m = Model(Cell.LSTM, 3, 5, output_size=2, seed=1)
    expect_status(Status.ERR_INVALID, m.forward, rand((2, 4, 2)))  # input_size
    expect_status(Status.ERR_INVALID, m.forward, rand((4, 3)))  # rank
    x = rand((2, 4, 3))
    x[1, 2, 0] = np.nan
    expect_status(Status.ERR_NONFINITE, m.forward, x)
    x[1, 2, 0] = np.inf
    expect_status(Status.ERR_NONFINITE, m.forward, x)


def test_c_checks_y_len_and_leaves_y_untouched():
    m = Model(Cell.GRU, 3, 5, seed=1)
    x = rand((2, 4, 3))
    fp = ctypes.POINTER(ctypes.c_float)
    for n in (2 * 4 * 5 - 1, 2 * 4 * 5 + 1):
        y = np.full(n, np.nan, np.float32)
        st = lib.rnn_model_forward(m._h, x.ctypes.data_as(fp), 2, 4, y.ctypes.data_as(fp), n)
        assert st == Status.ERR_INVALID
        assert lib.rnn_last_error()
        assert np.isnan(y).all()
    assert lib.rnn_model_forward(m._h, None, 2, 4, None, 40) == Status.ERR_NULL


def test_streaming_errors_leave_state_unchanged():
    m = Model(Cell.LSTM, 2, 3, num_layers=2, seed=7)
    s = State(m, 2, max_block=4)
    m.forward_state(s, rand((2, 4, 2), 1))
    snap = s.get()
    assert np.isfinite(snap).all() and (snap != 0).any()

    expect_status(Status.ERR_INVALID, m.step, s, rand((2, 3)))  # x size, checked by C
    expect_status(Status.ERR_INVALID, m.step, s, rand((3, 2)))  # batch
    expect_status(Status.ERR_INVALID, m.forward_state, s, rand((2, 5, 2)))  # 5 > max_block 4
    expect_status(Status.ERR_INVALID, m.forward_state, s, rand((1, 2, 2)))  # batch
    xn = rand((2, 2))
    xn[0, 1] = np.nan
    expect_status(Status.ERR_NONFINITE, m.step, s, xn)
    expect_status(Status.ERR_INVALID, s.set, np.zeros(len(s) - 1))
    bad = np.full(len(s), 0.25, np.float32)
    bad[-1] = np.inf
    expect_status(Status.ERR_NONFINITE, s.set, bad)
    expect_status(Status.ERR_INVALID, s.reset_stream, 2)
    expect_status(Status.ERR_INVALID, s.reset_stream, -1)
    other = Model(Cell.LSTM, 2, 4, num_layers=2, seed=7)  # another config
    expect_status(Status.ERR_INVALID, other.step, s, rand((2, 2)))
    assert np.array_equal(s.get(), snap)

    expect_status(Status.ERR_INVALID, State, m, 0)
    expect_status(Status.ERR_INVALID, State, m, 1, max_block=0)
    expect_status(Status.ERR_INVALID, State, m, -1)


def test_trainer_errors_leave_weights_unchanged():
    m = Model(Cell.LSTM, 2, 4, output_size=2, seed=3)
    x = rand((3, 5, 2), 1)
    probe = m.forward(x)
    expect_status(Status.ERR_INVALID, Trainer, m, optimizer=3, learning_rate=0.1)
    expect_status(Status.ERR_INVALID, Trainer, m, optimizer="adam", learning_rate=-1.0)
    expect_status(Status.ERR_INVALID, Trainer, m, optimizer="sgd", learning_rate=0.1, momentum=1.5)

    t = Trainer(m, Optimizer.ADAM, learning_rate=0.05)
    target = rand((3, 5, 2), 2)
    expect_status(Status.ERR_INVALID, t.step_mse, x, target, targets=2)  # bad enum
    expect_status(Status.ERR_INVALID, t.step_mse, x, target, targets=Targets.LAST_STEP)
    expect_status(Status.ERR_INVALID, t.step_mse, x[..., :1], target)  # input size
    tn = target.copy()
    tn[0, 0, 1] = np.nan
    expect_status(Status.ERR_NONFINITE, t.step_mse, x, tn)
    xn = x.copy()
    xn[2, 4, 0] = -np.inf
    expect_status(Status.ERR_NONFINITE, t.step_mse, xn, target)
    labels = np.ones((3, 5), np.int32)
    labels[1, 1] = 2  # output_size is 2
    expect_status(Status.ERR_INVALID, t.step_xent, x, labels)
    labels[1, 1] = -2
    expect_status(Status.ERR_INVALID, t.step_xent, x, labels)
    expect_status(Status.ERR_INVALID, t.step_xent, x, np.ones((3, 4), np.int32))
    with pytest.raises(TypeError, match="integer"):
        t.step_xent(x, np.ones((3, 5), np.float32))
    expect_status(Status.ERR_INVALID, t.step_xent, x, np.full((3, 5), 2**40))
    s = State(m, 2)  # wrong batch
    snap = s.get()
    expect_status(Status.ERR_INVALID, t.step_mse, x, target, state=s)
    assert np.array_equal(s.get(), snap)

    assert np.array_equal(m.forward(x), probe)
    t.step_mse(x, target)
    assert not np.array_equal(m.forward(x), probe)


def test_load_errors(tmp_path):
    expect_status(Status.ERR_IO, Model.load, tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    expect_status(Status.ERR_FORMAT, Model.load, junk)
    m = Model(Cell.GRU, 2, 3, output_size=2, seed=1)
    good = tmp_path / "good.safetensors"
    m.save(good)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-7])
    expect_status(Status.ERR_FORMAT, Model.load, cut)
    expect_status(Status.ERR_IO, m.save, tmp_path / "no-such-dir" / "m.safetensors")


def test_closed_objects_raise_null():
    m = Model(Cell.GRU, 2, 3, output_size=1, seed=1)
    s = State(m, 1)
    t = Trainer(m, "sgd", learning_rate=0.1)
    with m:
        pass
    assert m.closed and t.closed  # closing the model closed its trainer first
    expect_status(Status.ERR_NULL, m.forward, rand((1, 2, 2)))
    expect_status(Status.ERR_NULL, lambda: m.config)
    expect_status(Status.ERR_NULL, m.step, s, rand((1, 2)))
    expect_status(Status.ERR_NULL, t.step_mse, rand((1, 2, 2)), rand((1, 2, 1)))
    expect_status(Status.ERR_NULL, State, m, 1)
    m.close()  # idempotent
    s.close()
    expect_status(Status.ERR_NULL, s.reset)
    with State(Model(Cell.GRU, 2, 3), 1) as s2:
        assert not s2.closed
    assert s2.closed


# ---------------------------------------------------------------------------------------
# Training


@pytest.mark.parametrize(
    "cell", [Cell.LSTM, Cell.GRU, Cell.RNN_TANH], ids=["lstm", "gru", "rnn_tanh"]
)
def test_training_mse_loss_falls(cell):
    # echo the input delayed by one step
    x = rand((8, 10, 1), 3)
    target = np.zeros_like(x)
    target[:, 1:] = x[:, :-1]
    m = Model(cell, 1, 12, output_size=1, seed=5)
    t = Trainer(m, "adam", learning_rate=0.02, clip_norm=1.0)
    losses = [t.step_mse(x, target) for _ in range(150)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses[::30]
    # the returned loss is the MSE of the outputs before the step
    want = np.mean((m.forward(x).astype(np.float64) - target) ** 2)
    np.testing.assert_allclose(t.step_mse(x, target), want, rtol=1e-4)


def test_training_xent_loss_falls():
    x = rand((8, 6, 1), 7)
    labels = (np.cumsum(x[..., 0], axis=1) > 0).astype(np.int64)
    labels[:, 0] = -1
    m = Model(Cell.GRU_LBR, 1, 10, output_size=2, output_activation="softmax", seed=9)
    t = Trainer(m, Optimizer.ADAMW, learning_rate=0.03, weight_decay=0.01)
    losses = [t.step_xent(x, labels) for _ in range(100)]
    assert losses[-1] < 0.5 * losses[0], losses[::20]
    assert np.isfinite(t.step_xent(x, labels[:, -1], targets="last_step"))


def test_training_with_state_carries_it():
    m = Model(Cell.LSTM, 1, 6, output_size=1, seed=2)
    t = Trainer(m, "sgd", learning_rate=0.01)
    s = State(m, 2)
    loss = t.step_mse(rand((2, 4, 1)), rand((2, 1)), targets=Targets.LAST_STEP, state=s)
    assert np.isfinite(loss)
    assert (s.get() != 0).any()


# ---------------------------------------------------------------------------------------
# Save / load


@pytest.mark.parametrize("cell", CELLS, ids=[c.name.lower() for c in CELLS])
def test_save_load_roundtrip(tmp_path, cell):
    head = 0 if cell == Cell.LSTM else 4
    act = Output.SOFTMAX if cell == Cell.GRU else Output.IDENTITY
    m = Model(cell, 3, 5, num_layers=2, output_size=head, output_activation=act, seed=100 + cell)
    t = Trainer(m, "sgd", learning_rate=0.3)
    t.step_mse(rand((2, 3, 3)), rand((2, 3, m.output_size)))
    p = tmp_path / f"{cell.name}.safetensors"
    m.save(p)
    back = Model.load(str(p))
    assert back.config == m.config
    x = rand((2, 4, 3), 5)
    assert np.array_equal(back.forward(x), m.forward(x))


# ---------------------------------------------------------------------------------------
# Threads


def test_concurrent_forward_from_python_threads():
    m = Model(Cell.LSTM, 3, 32, num_layers=2, output_size=4, seed=6)
    x = rand((4, 16, 3), 1)
    want = m.forward(x)
    errors = []

    def work(k):
        try:
            s = State(m, 4, max_block=16)
            for r in range(20):
                if (r + k) % 2:
                    got = m.forward(x)
                    if not np.array_equal(got, want):
                        errors.append("forward")
                else:
                    s.reset()
                    if np.abs(m.forward_state(s, x) - want).max() > 1e-5:
                        errors.append("forward_state")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_training_excludes_concurrent_forward():
    # A trainer step and forwards of the same model from other threads: the package's
    # readers-writer lock serialises them; every forward sees a whole set of weights.
    m = Model(Cell.GRU, 2, 16, output_size=1, seed=4)
    x = rand((4, 8, 2), 1)
    target = rand((4, 8, 1), 2)
    t = Trainer(m, "adam", learning_rate=0.01)
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            y = m.forward(x)
            if not np.isfinite(y).all():
                errors.append("non-finite")

    rs = [threading.Thread(target=reader) for _ in range(2)]
    for r in rs:
        r.start()
    for _ in range(30):
        t.step_mse(x, target)
    stop.set()
    for r in rs:
        r.join()
    assert not errors


# ---------------------------------------------------------------------------------------
# Variable lengths


@pytest.mark.parametrize("bidirectional", [False, True])
def test_forward_with_lengths(bidirectional):
    m = Model.new_desc("lstm", 2, 5, num_layers=2, output_size=3, bidirectional=bidirectional,
                       seed=4)
    x = rand((3, 6, 2), 5)
    assert np.array_equal(m.forward(x, lengths=[6, 6, 6]), m.forward(x))
    ls = np.array([6, 2, 4], np.int64)
    y = m.forward(x, lengths=ls)
    for b, n in enumerate(ls):
        np.testing.assert_allclose(y[b, :n], m.forward(x[b:b + 1, :n])[0], atol=1e-5)
        assert np.all(y[b, n:] == 0.0)


def test_forward_state_with_lengths():
    m = Model(Cell.GRU_LBR, 2, 5, output_size=2, seed=3)
    x = rand((2, 4, 2), 6)
    a, s = State(m, 2, max_block=4), State(m, 2, max_block=4)
    ya, ys = m.forward_state(a, x), m.forward_state(s, x, lengths=[4, 4])
    assert np.array_equal(ya, ys) and np.array_equal(a.get(), s.get())
    s.reset()
    y = m.forward_state(s, x, lengths=[4, 1])
    one = State(m, 1)
    y1 = m.forward_state(one, x[1:, :1])
    np.testing.assert_allclose(y[1, :1], y1[0], atol=1e-5)
    assert np.all(y[1, 1:] == 0.0)
    np.testing.assert_allclose(s.h[:, 1], one.h[:, 0], atol=1e-5)


def test_trainer_steps_with_lengths():
    x = rand((3, 5, 1), 1)
    target = rand((3, 5, 2), 2)
    labels = np.ones((3, 5), np.int32)
    a, b = (Model(Cell.LSTM, 1, 6, output_size=2, seed=7) for _ in range(2))
    ta, tb = Trainer(a, learning_rate=0.05), Trainer(b, learning_rate=0.05)
    assert ta.step_mse(x, target) == tb.step_mse(x, target, lengths=[5, 5, 5])
    assert ta.step_xent(x, labels) == tb.step_xent(x, labels, lengths=[5, 5, 5])
    assert np.array_equal(a.forward(x), b.forward(x))
    # Targets past a length are ignored: the same loss with other values there.
    c, d = (Model(Cell.LSTM, 1, 6, output_size=2, seed=7) for _ in range(2))
    t2 = target.copy()
    t2[1, 2:] = 9.0
    lc = Trainer(c, learning_rate=0.05).step_mse(x, target, lengths=[5, 2, 3])
    assert Trainer(d, learning_rate=0.05).step_mse(x, t2, lengths=[5, 2, 3]) == lc
    assert not np.array_equal(a.forward(x), c.forward(x))


def test_bad_lengths_change_nothing():
    m = Model(Cell.LSTM, 1, 4, output_size=2, seed=1)
    tr = Trainer(m, learning_rate=0.1)
    s = State(m, 3, max_block=5)
    s.set(rand(len(s), 3))
    x = rand((3, 5, 1), 2)
    target = rand((3, 5, 2), 4)
    before, sb = m.forward(x), s.get()
    for bad in ([5, 0, 1], [5, 6, 1], [5, 5], [5, 5, 5, 5]):
        e = expect_status(Status.ERR_INVALID, m.forward, x, lengths=bad)
        assert "lengths" in e.message
        expect_status(Status.ERR_INVALID, m.forward_state, s, x, lengths=bad)
        expect_status(Status.ERR_INVALID, tr.step_mse, x, target, state=s, lengths=bad)
        expect_status(Status.ERR_INVALID, tr.step_xent, x, np.zeros((3, 5), np.int32), lengths=bad)
    e = expect_status(Status.ERR_INVALID, m.forward, x, lengths=[5, 0, 1])
    assert "lengths[1]" in e.message
    expect_status(Status.ERR_INVALID, m.forward, x, lengths=[5, -1, 1])
    with pytest.raises(TypeError):
        m.forward(x, lengths=[5.0, 2.5, 1.0])
    assert np.array_equal(m.forward(x), before) and np.array_equal(s.get(), sb)
