"""The full model description through the C ABI (rnn_model_new_desc / rnn_model_describe):
Model.new_desc / Model.from_desc / Model.describe round trips for plain, layered and loaded
models, the forget-gate bias in the saved weights, refusals naming the field."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from conftest import REPO_ROOT
from rnncore import (
    MAX_DENSE,
    Activation,
    Cell,
    Dense,
    Model,
    ModelDesc,
    Output,
    RnnError,
    State,
    Status,
)
from rnncore._lib import ModelP, RnnModelDesc, lib
from safetensors_np import read as read_safetensors

THIRD = REPO_ROOT / "tests" / "fixtures" / "third_party"


def x_of(m: Model, batch=2, seq=5, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, seq, m.input_size)).astype(np.float32)


def refused(fn, field: str) -> RnnError:
    with pytest.raises(RnnError) as info:
        fn()
    assert info.value.status == Status.ERR_INVALID, info.value
    assert field in info.value.message, info.value.message
    return info.value


def test_plain_description_is_the_config_model():
    m = Model.new_desc("gru_lbr", 3, 8, 2, output_size=4, output_activation="softmax", seed=11)
    plain = Model(Cell.GRU_LBR, 3, 8, 2, 4, Output.SOFTMAX, seed=11)
    x = x_of(m)
    assert np.array_equal(m.forward(x), plain.forward(x))
    want = ModelDesc(Cell.GRU_LBR, 3, 8, 2, 4, Output.SOFTMAX)
    assert m.describe() == want
    assert plain.describe() == want


def test_layered_round_trip_and_save(tmp_path):
    m = Model.new_desc(
        "lstm",
        2,
        6,
        pre=[(5, "tanh"), Dense(4, Activation.ELU)],
        post=[(3, "relu"), 2],
        skip=True,
        forget_bias=1.0,
        seed=3,
    )
    assert m.input_size == 2 and m.output_size == 2
    d = m.describe()
    assert d == ModelDesc(
        Cell.LSTM,
        2,
        6,
        pre=(Dense(5, Activation.TANH), Dense(4, Activation.ELU)),
        post=(Dense(3, Activation.RELU), Dense(2, Activation.IDENTITY)),
        skip=True,
    )
    assert d.forget_bias == 0.0  # an initialisation choice: in the weights, not described
    # Rebuilt from its description: the same shape.
    again = Model.from_desc(d, seed=4)
    assert again.describe() == d
    # Saved and loaded: the same description and outputs.
    path = tmp_path / "layered.safetensors"
    m.save(path)
    loaded = Model.load(path)
    assert loaded.describe() == d
    x = x_of(m)
    assert np.array_equal(loaded.forward(x), m.forward(x))
    # The forget-gate rows (PyTorch's i, f, g, o) hold the bias.
    t, _ = read_safetensors(path)
    assert np.all(t["bias_ih_l0"][6:12] == 1.0) and np.all(t["bias_hh_l0"][6:12] == 0.0)
    assert not np.all(t["bias_ih_l0"][:6] == 1.0)


def test_a_lone_softmax_post_layer_is_the_head():
    m = Model.new_desc("rnn_tanh", 3, 4, post=[(2, "softmax")])
    d = m.describe()
    assert d.post == () and d.output_size == 2 and d.output_activation == Output.SOFTMAX


@pytest.mark.parametrize(
    "path,pre,post,skip",
    [
        ("rtneural/gru.json", [(8, Activation.TANH)], [(8, Activation.SIGMOID), (1, Activation.IDENTITY)], False),
        ("rtneural/lstm.json", [(8, Activation.TANH)], [(1, Activation.IDENTITY)], False),
        ("agm/ht1-ht11_lstm32.json", [], [(1, Activation.IDENTITY)], True),
    ],
)
def test_loaded_layered_models_describe_their_layers(path, pre, post, skip):
    m = Model.load(THIRD / path)
    d = m.describe()
    assert d.input_size == 1 and d.output_size == 0
    assert [tuple(p) for p in d.pre] == pre
    assert [tuple(p) for p in d.post] == post
    assert d.skip == skip
    assert (d.bidirectional, d.proj_size, d.dropout, d.forget_bias) == (False, 0, 0.0, 0.0)
    rebuilt = Model.from_desc(d, seed=1)
    assert rebuilt.describe() == d
    assert rebuilt.config == m.config


def test_bidirectional_runs_whole_sequences_and_refuses_streaming():
    m = Model.new_desc("gru_lbr", 3, 4, num_layers=2, bidirectional=True, seed=5)
    d = m.describe()
    assert d.bidirectional and d.hidden_size == 4 and d.num_layers == 2
    assert Model.from_desc(d, seed=5).describe() == d
    assert m.output_size == 8
    x = np.linspace(-1, 1, 2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    y = m.forward(x)
    assert y.shape == (2, 5, 8) and np.isfinite(y).all()
    # One layer: the reverse half of the first step has seen the whole sequence, so
    # changing the last input changes it; the forward half stays the same.
    one = Model.new_desc("gru_lbr", 3, 4, bidirectional=True, seed=5)
    x2 = x.copy()
    x2[:, -1, :] += 1.0
    y1, y2 = one.forward(x), one.forward(x2)
    assert np.array_equal(y1[:, 0, :4], y2[:, 0, :4])
    assert not np.array_equal(y1[:, 0, 4:], y2[:, 0, 4:])
    refused(lambda: State(m, 1), "bidirectional")
    head = Model.new_desc("lstm", 3, 4, bidirectional=True, output_size=2, seed=5)
    assert head.forward(x).shape == (2, 5, 2)
    refused(lambda: Model.new_desc("lstm", 3, 4, bidirectional=True, pre=[(2, "tanh")]), "bidirectional")


def test_projection_and_dropout_reach_the_model():
    m = Model.new_desc("lstm", 3, 4, num_layers=2, proj_size=2, dropout=0.25, seed=2)
    d = m.describe()
    assert (d.proj_size, d.dropout, d.bidirectional) == (2, 0.25, False)
    assert Model.from_desc(d, seed=2).describe() == d
    assert m.output_size == 2
    x = np.linspace(-1, 1, 2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    assert m.forward(x).shape == (2, 5, 2)
    # Streaming works with a projection: a block equals the whole-sequence forward.
    s = State(m, 2, max_block=5)
    assert np.allclose(m.forward_state(s, x), m.forward(x), atol=1e-6)
    refused(lambda: Model.new_desc("gru", 3, 4, proj_size=2), "proj_size")
    refused(lambda: Model.new_desc("lstm", 3, 4, proj_size=4), "proj_size")
    refused(lambda: Model.new_desc("lstm", 3, 4, dropout=0.3, pre=[(2, "tanh")]), "dropout")


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(cell=9), "cell"),
        (dict(input_size=0), "input_size"),
        (dict(hidden_size=0), "hidden_size"),
        (dict(num_layers=0), "num_layers"),
        (dict(output_activation=Output.SOFTMAX), "output_activation"),
        (dict(dropout=float("nan")), "dropout"),
        (dict(dropout=1.0), "dropout"),
        (dict(forget_bias=float("inf")), "forget_bias"),
        (dict(cell=Cell.GRU, forget_bias=1.0), "forget_bias"),
        (dict(pre=[0]), "size"),
        (dict(pre=[(3, 17)]), "activation"),
        (dict(pre=[(3, "softmax")]), "softmax"),
        (dict(post=[(3, "softmax"), 2]), "softmax"),
        (dict(output_size=2, post=[3]), "output_size"),
        (dict(skip=True, output_size=3), "skip"),
    ],
)
def test_bad_fields_are_refused_by_name(kwargs, field):
    args = dict(cell=Cell.LSTM, input_size=2, hidden_size=4)
    args.update(kwargs)
    refused(lambda: Model.from_desc(ModelDesc(**args)), field)


def test_too_many_layers_and_bad_values_are_caught_in_python():
    e = refused(lambda: Model.new_desc("lstm", 2, 4, post=[2] * (MAX_DENSE + 1)), "post")
    assert str(MAX_DENSE) in e.message
    refused(lambda: Model.new_desc("lstm", -1, 4), "input_size")
    with pytest.raises(ValueError):
        Model.new_desc("lstm", 2, 4, pre=[(3, "swish")])
    with pytest.raises(TypeError):
        Model.from_desc({"cell": "lstm"})


def test_struct_size_is_set_and_checked():
    d = RnnModelDesc()
    assert d.struct_size == ctypes.sizeof(RnnModelDesc) == 312
    m = Model.new_desc("gru", 2, 3)
    # The library refuses a struct_size below its first version, and writes nothing.
    d.struct_size = 100
    d.hidden_size = 77
    assert lib.rnn_model_describe(m._h, ctypes.byref(d)) == Status.ERR_INVALID
    assert b"struct_size" in lib.rnn_last_error()
    assert d.hidden_size == 77 and d.struct_size == 100
    # A larger struct (a newer header) with a zero tail is read; a nonzero tail refused.
    buf = (ctypes.c_uint8 * 400)()
    ctypes.memmove(buf, ctypes.byref(ModelDesc(Cell.GRU, 2, 3)._to_c()), 312)
    ctypes.cast(buf, ctypes.POINTER(ctypes.c_uint32))[0] = 400
    p = ctypes.cast(buf, ctypes.POINTER(RnnModelDesc))
    out = ModelP()
    assert lib.rnn_model_new_desc(p, 1, ctypes.byref(out)) == Status.OK
    assert out
    lib.rnn_model_free(out)
    buf[399] = 1
    out = ModelP()
    assert lib.rnn_model_new_desc(p, 1, ctypes.byref(out)) == Status.ERR_INVALID
    assert b"byte 399" in lib.rnn_last_error()
    assert not out  # nothing written


def test_dropout_masks_follow_the_trainer_seed():
    from rnncore import Trainer

    x = np.linspace(-1, 1, 2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    target = np.linspace(1, -1, 2 * 5 * 4, dtype=np.float32).reshape(2, 5, 4)
    outs = []
    for seed in (None, 0, 7):
        m = Model.new_desc("lstm", 3, 4, num_layers=2, dropout=0.5, seed=9)
        tr = Trainer(m, "adam", learning_rate=0.05)
        if seed is not None:
            tr.set_dropout_seed(seed)
        tr.step_mse(x, target)
        outs.append(m.forward(x))
    assert np.array_equal(outs[0], outs[1])  # the default seed is 0
    assert not np.array_equal(outs[0], outs[2])
