"""rnncore: vanilla RNN, LSTM and GRU on the CPU, inference and training, through the C ABI.

Pure Python (ctypes + numpy). Arrays are float32, row-major: x is [batch, seq_len, input_size],
outputs are [batch, seq_len, output_size]. Inputs of another real dtype or layout are
converted (a copy); complex, object and string arrays are refused with TypeError.

Every failing C call raises RnnError, whose `.status` is the C `rnn_status` and whose
message is the library's. Shape mismatches the C ABI cannot see (it takes no length for
`x` in forward/forward_state/trainer steps) are caught here and raised the same way, as
`Status.ERR_INVALID`. A failed call changes nothing (weights, state, outputs).

Threads: ctypes releases the GIL during each C call, so a Model can run forward/step in
several Python threads at once. A trainer step changes its model's weights: this package
makes it wait for (and hold off) the model's other calls. A State or Trainer is guarded by
its own lock.
"""

from __future__ import annotations

import ctypes
import enum
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ._lib import (
    MAX_DENSE,
    FloatP,
    Int32P,
    ModelP,
    RnnConfig,
    RnnModelDesc,
    RnnParallelFor,
    RnnTrainConfig,
    StateP,
    TrainerP,
    Uint32P,
    lib,
)

__all__ = [
    "Activation",
    "Cell",
    "Config",
    "Dense",
    "MAX_DENSE",
    "ModelDesc",
    "Loss",
    "Model",
    "Optimizer",
    "Output",
    "RnnError",
    "State",
    "Status",
    "Targets",
    "Trainer",
    "abi_version",
    "kernel_name",
    "get_num_threads",
    "library_path",
    "set_num_threads",
    "set_parallel_for",
    "status_str",
    "version",
]

from ._lib import library_path  # noqa: E402  (re-exported)

# ---------------------------------------------------------------------------------------
# Enums (numbers as in include/rnncore.h; tests/test_header.py checks them)


class Status(enum.IntEnum):
    OK = 0
    ERR_NULL = 1
    ERR_INVALID = 2
    ERR_IO = 3
    ERR_FORMAT = 4
    ERR_NONFINITE = 5
    ERR_ALLOC = 6
    ERR_PANIC = 7


class Cell(enum.IntEnum):
    RNN_TANH = 0
    RNN_RELU = 1
    LSTM = 2
    GRU = 3  #: reset before the product (the notes, Cho et al. 2014)
    GRU_LBR = 4  #: linear before reset (PyTorch nn.GRU, cuDNN, ONNX)


class Output(enum.IntEnum):
    IDENTITY = 0
    SOFTMAX = 1


class Optimizer(enum.IntEnum):
    SGD = 0
    ADAM = 1
    ADAMW = 2


class Loss(enum.IntEnum):
    MSE = 0
    CROSS_ENTROPY = 1


class Targets(enum.IntEnum):
    EVERY_STEP = 0
    LAST_STEP = 1


class Activation(enum.IntEnum):
    """A dense layer's activation (`rnn_activation`)."""

    IDENTITY = 0
    TANH = 1
    RELU = 2
    SIGMOID = 3
    ELU = 4
    SOFTMAX = 5  #: only as the model's last layer


#: C enum prefixes of each Python enum (for the header check).
C_ENUMS = {
    "rnn_activation": (Activation, "RNN_ACT_"),
    "rnn_status": (Status, "RNN_"),
    "rnn_cell": (Cell, "RNN_CELL_"),
    "rnn_output": (Output, "RNN_OUTPUT_"),
    "rnn_optimizer": (Optimizer, "RNN_OPT_"),
    "rnn_loss": (Loss, "RNN_LOSS_"),
    "rnn_targets": (Targets, "RNN_TARGETS_"),
}


def _enum_value(enum_type, value) -> int:
    """An enum member, its name (case-insensitive) or any int (passed through unchecked,
    so the library can refuse it)."""
    if isinstance(value, str):
        try:
            return int(enum_type[value.upper()])
        except KeyError:
            names = ", ".join(m.name.lower() for m in enum_type)
            raise ValueError(
                f"unknown {enum_type.__name__} {value!r}; expected one of {names}"
            ) from None
    return int(value)


def _maybe_enum(enum_type, value: int):
    try:
        return enum_type(value)
    except ValueError:
        return value


# ---------------------------------------------------------------------------------------
# Errors


class RnnError(Exception):
    """A failed rnncore call. `.status` is the `Status`, `.message` the library's message."""

    def __init__(self, status: int, message: str):
        self.status = _maybe_enum(Status, status)
        self.message = message
        name = self.status.name if isinstance(self.status, Status) else str(status)
        super().__init__(f"{name}: {message}")


def _check(status: int, what: str) -> None:
    """Raises RnnError for a non-OK status, with this thread's rnn_last_error() (which names
    the function and the argument); `what` stands in if the message is empty."""
    if status != 0:
        msg = (lib.rnn_last_error() or b"").decode("utf-8", "replace")
        if not msg:
            msg = f"{what}: {lib.rnn_status_str(status).decode()}"
        raise RnnError(status, msg)


def _invalid(message: str) -> RnnError:
    return RnnError(Status.ERR_INVALID, message)


# ---------------------------------------------------------------------------------------
# Library-wide


def version() -> str:
    """The library version, "MAJOR.MINOR.PATCH"."""
    return lib.rnn_version().decode()


def abi_version() -> int:
    """The linked library's ABI generation (`rnn_abi_version`); it only grows."""
    return int(lib.rnn_abi_version())


def kernel_name() -> str:
    """The SIMD kernel tier in use: "avx512", "avx2", "avx", "sse41", "neon" or "scalar"."""
    return lib.rnn_kernel_name().decode()


def status_str(status: int) -> str:
    """A short English description of a status."""
    return lib.rnn_status_str(int(status)).decode()


def set_num_threads(n: int) -> None:
    """Threads used for batched work; 0 restores the default. Streaming steps always run on
    the calling thread."""
    if n < 0:
        raise _invalid(f"threads is {n}, expected >= 0")
    _check(lib.rnn_set_num_threads(n), "rnn_set_num_threads")


def get_num_threads() -> int:
    return int(lib.rnn_get_num_threads())


#: Every callback handed to rnn_set_parallel_for stays alive for the life of the process:
#: a call already running may still use the previous one after it is replaced.
_parallel_fors: list = []
_parallel_for_lock = threading.Lock()


def set_parallel_for(run: Optional[Callable[[int, Callable[[int], None]], None]]) -> None:
    """Runs rnncore's batched work (large forward passes, training steps) on your own
    workers: each parallel section calls `run(n, task)`, which must call `task(i)` once for
    every `i` in `range(n)`, on any threads, and return when all have returned. `task`
    releases the GIL while it works, so a `concurrent.futures.ThreadPoolExecutor` runs
    the parts in parallel. Results are bit-identical to the built-in pool's. An index
    `run` skips (or an exception it raises) is made up on the calling thread after it
    returns. `None` goes back to the built-in pool (`rnn_set_parallel_for`)."""
    if run is None:
        _check(lib.rnn_set_parallel_for(RnnParallelFor(), None), "rnn_set_parallel_for")
        return
    if not callable(run):
        raise _invalid(f"run is {type(run).__name__}, expected a callable or None")

    def c_run(_ctx, n, task, task_ctx):
        try:
            run(int(n), lambda i: task(task_ctx, int(i)))
        except BaseException:  # noqa: BLE001 - C cannot take an exception; rnncore makes up skipped parts
            pass

    callback = RnnParallelFor(c_run)
    with _parallel_for_lock:
        _parallel_fors.append(callback)
        _check(lib.rnn_set_parallel_for(callback, None), "rnn_set_parallel_for")


# ---------------------------------------------------------------------------------------
# Arrays


def _as_array(a, dtype, name: str) -> np.ndarray:
    """`a` as a C-contiguous array of `dtype`, converting (copying) when needed."""
    arr = np.asarray(a)
    if arr.dtype != dtype:
        if dtype == np.float32 and arr.dtype.kind not in "fiu":
            raise TypeError(f"{name}: expected a float32 array, got dtype {arr.dtype}")
        if dtype == np.int32:
            if arr.dtype.kind not in "iu":
                raise TypeError(f"{name}: expected integer class labels, got dtype {arr.dtype}")
            if arr.size and (arr.min() < -(2**31) or arr.max() >= 2**31):
                raise _invalid(f"{name}: labels out of int32 range")
        arr = arr.astype(dtype)
    return np.ascontiguousarray(arr)


def _fptr(arr: np.ndarray):
    return arr.ctypes.data_as(FloatP)


def _ipptr(arr: np.ndarray):
    return arr.ctypes.data_as(Int32P)


def _lengths(lengths, batch: int) -> np.ndarray:
    """`lengths` (one per sequence) as a C-contiguous uint32 array; the library checks the
    count and the range 1..seq_len (RNN_ERR_INVALID naming `lengths`)."""
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise _invalid(f"lengths: expected one length per sequence, got shape {list(arr.shape)}")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= 2**32):
        raise _invalid(f"lengths: {int(arr.min())}..{int(arr.max())} out of range "
                       f"(each is 1..seq_len, for {batch} sequences)")
    return np.ascontiguousarray(arr, dtype=np.uint32)


def _uptr(arr: np.ndarray):
    return arr.ctypes.data_as(Uint32P)


def _path(path) -> bytes:
    return os.fsencode(os.fspath(path))


# ---------------------------------------------------------------------------------------
# A readers-writer lock: forwards share a model, a trainer step excludes them.


class _RWLock:
    """Many readers or one writer; a waiting writer holds off new readers (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def read(self):
        return _Held(self, False)

    def write(self):
        return _Held(self, True)


class _Held:
    __slots__ = ("lock", "write")

    def __init__(self, lock: _RWLock, write: bool) -> None:
        self.lock, self.write = lock, write

    def __enter__(self):
        lk = self.lock
        with lk._cond:
            if self.write:
                lk._writers_waiting += 1
                while lk._writer or lk._readers:
                    lk._cond.wait()
                lk._writers_waiting -= 1
                lk._writer = True
            else:
                while lk._writer or lk._writers_waiting:
                    lk._cond.wait()
                lk._readers += 1

    def __exit__(self, *exc):
        lk = self.lock
        with lk._cond:
            if self.write:
                lk._writer = False
            else:
                lk._readers -= 1
            lk._cond.notify_all()


# ---------------------------------------------------------------------------------------
# Model


class Config(NamedTuple):
    """A model configuration (`rnn_config`). `output_size` 0 means no head."""

    cell: Union[Cell, int]
    input_size: int
    hidden_size: int
    num_layers: int = 1
    output_size: int = 0
    output_activation: Union[Output, int] = Output.IDENTITY

    def _to_c(self) -> RnnConfig:
        vals = [
            _enum_value(Cell, self.cell),
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.output_size,
            _enum_value(Output, self.output_activation),
        ]
        for name, v in zip(self._fields, vals):
            if not 0 <= int(v) < 2**32:
                raise _invalid(f"{name} is {v}, expected a 32-bit unsigned value")
        return RnnConfig(*[int(v) for v in vals])

    @classmethod
    def _from_c(cls, c: RnnConfig) -> "Config":
        return cls(
            _maybe_enum(Cell, c.cell),
            c.input_size,
            c.hidden_size,
            c.num_layers,
            c.output_size,
            _maybe_enum(Output, c.output_activation),
        )


class Dense(NamedTuple):
    """One dense layer of a `ModelDesc`: `size` features out, then `activation`."""

    size: int
    activation: Union[Activation, int] = Activation.IDENTITY


def _dense(item, where: str) -> Dense:
    """A `Dense` from a Dense, a (size, activation) pair or a bare size (identity)."""
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise _invalid(f"{where}: expected (size, activation), got {item!r}")
        return Dense(int(item[0]), _maybe_enum(Activation, _enum_value(Activation, item[1])))
    return Dense(int(item), Activation.IDENTITY)


def _u32(name: str, v) -> int:
    v = int(v)
    if not 0 <= v < 2**32:
        raise _invalid(f"{name} is {v}, expected a 32-bit unsigned value")
    return v


@dataclass(frozen=True)
class ModelDesc:
    """A model's full description (`rnn_model_desc`, ABI version 2): the recurrent stack,
    its head, dense layers before (`pre`) and after (`post`) it, the input `skip` and an
    initial LSTM `forget_bias`. `input_size` is the model's input width (the first pre
    layer reads it). `output_size` is a head right after the stack and must be 0 with
    post layers. `bidirectional` makes every layer run forward and reversed in time
    (outputs 2H wide; whole sequences only, no `State`; only a head around it).
    `proj_size` (LSTM, 0 < P < hidden_size) is PyTorch's projection (outputs P wide);
    `dropout` in [0, 1) applies between layers in training only. Made by `Model.describe()`, taken by
    `Model.from_desc()` / `Model.new_desc()`; the library checks every field."""

    cell: Union[Cell, int]
    input_size: int
    hidden_size: int
    num_layers: int = 1
    output_size: int = 0
    output_activation: Union[Output, int] = Output.IDENTITY
    pre: Tuple[Dense, ...] = ()
    post: Tuple[Dense, ...] = ()
    skip: bool = False
    forget_bias: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    dropout: float = 0.0

    def _to_c(self) -> RnnModelDesc:
        d = RnnModelDesc()
        d.cell = _u32("cell", _enum_value(Cell, self.cell))
        for name in ("input_size", "hidden_size", "num_layers", "output_size", "proj_size"):
            setattr(d, name, _u32(name, getattr(self, name)))
        d.output_activation = _u32("output_activation", _enum_value(Output, self.output_activation))
        d.bidirectional = _u32("bidirectional", self.bidirectional)
        d.skip = _u32("skip", self.skip)
        d.dropout = float(self.dropout)
        d.forget_bias = float(self.forget_bias)
        for part in ("pre", "post"):
            layers = [_dense(item, f"{part}[{k}]") for k, item in enumerate(getattr(self, part))]
            if len(layers) > MAX_DENSE:
                raise _invalid(
                    f"{part} has {len(layers)} layers, expected at most {MAX_DENSE} (RNN_MAX_DENSE)"
                )
            slots = getattr(d, part)
            for k, layer in enumerate(layers):
                slots[k].size = _u32(f"{part}[{k}].size", layer.size)
                slots[k].activation = _u32(
                    f"{part}[{k}].activation", _enum_value(Activation, layer.activation)
                )
            setattr(d, f"num_{part}", len(layers))
        return d

    @classmethod
    def _from_c(cls, d: RnnModelDesc) -> "ModelDesc":
        def layers(slots, n: int) -> Tuple[Dense, ...]:
            return tuple(
                Dense(slots[k].size, _maybe_enum(Activation, slots[k].activation))
                for k in range(min(n, MAX_DENSE))
            )

        return cls(
            cell=_maybe_enum(Cell, d.cell),
            input_size=d.input_size,
            hidden_size=d.hidden_size,
            num_layers=d.num_layers,
            output_size=d.output_size,
            output_activation=_maybe_enum(Output, d.output_activation),
            pre=layers(d.pre, d.num_pre),
            post=layers(d.post, d.num_post),
            skip=bool(d.skip),
            forget_bias=float(d.forget_bias),
            bidirectional=bool(d.bidirectional),
            proj_size=d.proj_size,
            dropout=float(d.dropout),
        )


class Model:
    """An rnncore model (owns an `rnn_model`).

    >>> m = Model("lstm", input_size=3, hidden_size=16, output_size=2, seed=1)
    >>> y = m.forward(np.zeros((4, 10, 3), np.float32))   # [4, 10, 2]

    Free it with `close()` or a `with` block (the garbage collector does too). Closing a
    model first closes the Trainers made for it.
    """

    def __init__(
        self,
        cell: Union[Cell, int, str],
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        output_size: int = 0,
        output_activation: Union[Output, int, str] = Output.IDENTITY,
        seed: int = 0,
    ) -> None:
        self._h = None
        cfg = Config(
            cell, input_size, hidden_size, num_layers, output_size, output_activation
        )._to_c()
        if not 0 <= seed < 2**64:
            raise _invalid(f"seed is {seed}, expected a 64-bit unsigned value")
        out = ModelP()
        _check(lib.rnn_model_new(ctypes.byref(cfg), seed, ctypes.byref(out)), "rnn_model_new")
        self._adopt(out)

    @classmethod
    def from_desc(cls, desc: ModelDesc, seed: int = 0) -> "Model":
        """A new model from a full description (`rnn_model_new_desc`). Without dense
        layers or a forget bias it has the same weights as `Model(...)` with that seed."""
        if not isinstance(desc, ModelDesc):
            raise TypeError(f"desc: expected a ModelDesc, got {type(desc).__name__}")
        if not 0 <= seed < 2**64:
            raise _invalid(f"seed is {seed}, expected a 64-bit unsigned value")
        d = desc._to_c()
        out = ModelP()
        _check(lib.rnn_model_new_desc(ctypes.byref(d), seed, ctypes.byref(out)), "rnn_model_new_desc")
        self = cls.__new__(cls)
        self._adopt(out)
        return self

    @classmethod
    def new_desc(
        cls,
        cell: Union[Cell, int, str],
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        output_size: int = 0,
        output_activation: Union[Output, int, str] = Output.IDENTITY,
        *,
        pre: Sequence = (),
        post: Sequence = (),
        skip: bool = False,
        forget_bias: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        dropout: float = 0.0,
        seed: int = 0,
    ) -> "Model":
        """A new model from keyword arguments: `Model.from_desc(ModelDesc(...), seed)`.
        `pre` and `post` list dense layers as `Dense(size, activation)`, `(size,
        activation)` pairs (activation by name, e.g. "tanh") or bare sizes (identity).

        >>> m = Model.new_desc("lstm", 1, 32, pre=[(8, "tanh")], post=[1], skip=True,
        ...                    forget_bias=1.0, seed=7)
        """
        desc = ModelDesc(
            cell=_maybe_enum(Cell, _enum_value(Cell, cell)),
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            output_size=output_size,
            output_activation=_maybe_enum(Output, _enum_value(Output, output_activation)),
            pre=tuple(_dense(p, f"pre[{k}]") for k, p in enumerate(pre)),
            post=tuple(_dense(p, f"post[{k}]") for k, p in enumerate(post)),
            skip=bool(skip),
            forget_bias=float(forget_bias),
            bidirectional=bool(bidirectional),
            proj_size=proj_size,
            dropout=float(dropout),
        )
        return cls.from_desc(desc, seed)

    def describe(self) -> ModelDesc:
        """The model's full description (`rnn_model_describe`), for any model, loaded ones
        included. `forget_bias` reads 0: it is an initialisation choice, and its values
        are in the weights."""
        d = RnnModelDesc()
        with self._lock.read():
            _check(lib.rnn_model_describe(self._h, ctypes.byref(d)), "rnn_model_describe")
        return ModelDesc._from_c(d)

    @classmethod
    def load(cls, path) -> "Model":
        """Loads a model file, recognised by content: safetensors (PyTorch tensor names;
        see API.md), RTNeural Keras / PyTorch JSON, GuitarML JSON or a NAM LSTM."""
        out = ModelP()
        _check(lib.rnn_model_load(_path(path), ctypes.byref(out)), "rnn_model_load")
        self = cls.__new__(cls)
        self._adopt(out)
        return self

    def _adopt(self, handle) -> None:
        self._h = handle
        self._lock = _RWLock()
        self._trainers: "weakref.WeakSet[Trainer]" = weakref.WeakSet()
        c = RnnConfig()
        _check(lib.rnn_model_config(handle, ctypes.byref(c)), "rnn_model_config")
        self._config = Config._from_c(c)
        self._out = int(lib.rnn_model_output_size(handle))

    # -- lifetime

    def close(self) -> None:
        """Frees the model (and first any Trainer made for it). Idempotent."""
        h, self._h = getattr(self, "_h", None), None
        if h:
            for t in list(self._trainers):
                t.close()
            with self._lock.write():
                lib.rnn_model_free(h)

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    @property
    def closed(self) -> bool:
        return not self._h

    def __repr__(self) -> str:
        state = "closed" if self.closed else repr(tuple(self._config))
        return f"<rnncore.Model {state}>"

    # -- properties

    @property
    def config(self) -> Config:
        """The configuration (read back from the library)."""
        c = RnnConfig()
        with self._lock.read():
            _check(lib.rnn_model_config(self._h, ctypes.byref(c)), "rnn_model_config")
        return Config._from_c(c)

    @property
    def output_size(self) -> int:
        """Elements per output row: the head's size, or hidden_size without a head."""
        return int(lib.rnn_model_output_size(self._h))

    @property
    def input_size(self) -> int:
        return self._config.input_size

    @property
    def hidden_size(self) -> int:
        return self._config.hidden_size

    @property
    def num_layers(self) -> int:
        return self._config.num_layers

    def save(self, path) -> None:
        """Writes the weights and config as safetensors (atomically)."""
        with self._lock.read():
            _check(lib.rnn_model_save(self._h, _path(path)), "rnn_model_save")

    # -- inference

    def _check_x(self, x: np.ndarray, ndim: int, what: str) -> None:
        if x.ndim != ndim or x.shape[-1] != self._config.input_size:
            shape = "[batch, seq_len, input_size]" if ndim == 3 else "[batch, input_size]"
            raise _invalid(
                f"{what}: x has shape {list(x.shape)}, expected {shape} with "
                f"input_size {self._config.input_size}"
            )

    def forward(self, x, lengths=None) -> np.ndarray:
        """Whole sequences from zero state: x [batch, seq_len, input_size] ->
        [batch, seq_len, output_size].

        `lengths` (one int per sequence, each 1..seq_len) makes x a padded batch, as
        PyTorch's pack_padded_sequence: sequence b's outputs past lengths[b] are zero and
        a bidirectional layer's reverse direction starts at its own end
        (rnn_model_forward_lengths)."""
        x = _as_array(x, np.float32, "x")
        self._check_x(x, 3, "forward")
        b, t, _ = x.shape
        y = np.empty((b, t, self._out), np.float32)
        if lengths is not None:
            ls = _lengths(lengths, b)
            with self._lock.read():
                st = lib.rnn_model_forward_lengths(
                    self._h, _fptr(x), b, t, _uptr(ls), ls.size, _fptr(y), y.size
                )
                _check(st, "rnn_model_forward_lengths")
            return y
        with self._lock.read():
            st = lib.rnn_model_forward(self._h, _fptr(x), b, t, _fptr(y), y.size)
            _check(st, "rnn_model_forward")
        return y

    def step(self, state: "State", x) -> np.ndarray:
        """One timestep of every stream: x [batch, input_size] -> [batch, output_size]
        (batch being the state's). The state advances."""
        x = _as_array(x, np.float32, "x")
        y = np.empty((state.batch, self._out), np.float32)
        with self._lock.read(), state._lock:
            _check(
                lib.rnn_model_step(self._h, state._h, _fptr(x), x.size, _fptr(y), y.size),
                "rnn_model_step",
            )
        return y

    def forward_state(self, state: "State", x, lengths=None) -> np.ndarray:
        """A block of seq_len <= state.max_block timesteps from `state`, leaving the final
        state in it: x [batch, seq_len, input_size] -> [batch, seq_len, output_size].

        With `lengths` (one int per stream, each 1..seq_len), stream b advances only
        lengths[b] steps: its outputs past that are zero and the state keeps the one after
        its own last step (rnn_model_forward_state_lengths: allocates, not for a
        real-time thread; seq_len is not limited by max_block)."""
        x = _as_array(x, np.float32, "x")
        self._check_x(x, 3, "forward_state")
        b, t, _ = x.shape
        if b != state.batch:
            raise _invalid(f"forward_state: x has batch {b}, the state holds {state.batch} streams")
        y = np.empty((b, t, self._out), np.float32)
        if lengths is not None:
            ls = _lengths(lengths, b)
            with self._lock.read(), state._lock:
                _check(
                    lib.rnn_model_forward_state_lengths(
                        self._h, state._h, _fptr(x), t, _uptr(ls), ls.size, _fptr(y), y.size
                    ),
                    "rnn_model_forward_state_lengths",
                )
            return y
        with self._lock.read(), state._lock:
            _check(
                lib.rnn_model_forward_state(self._h, state._h, _fptr(x), t, _fptr(y), y.size),
                "rnn_model_forward_state",
            )
        return y


# ---------------------------------------------------------------------------------------
# State


class State:
    """The carried state of `batch` streams (owns an `rnn_state`), with scratch for blocks
    of up to `max_block` timesteps. Works with any model of the same config.

    Snapshot layout (`get`/`set`): h as [num_layers, batch, H], then for LSTM c as
    [num_layers, batch, H], flattened.
    """

    def __init__(self, model: Model, batch: int, max_block: int = 1) -> None:
        self._h = None
        if batch < 0 or max_block < 0:
            raise _invalid(f"batch {batch} / max_block {max_block} must be >= 1")
        out = StateP()
        if max_block == 1:
            st = lib.rnn_state_new(model._h, batch, ctypes.byref(out))
            _check(st, "rnn_state_new")
        else:
            st = lib.rnn_state_new_block(model._h, batch, max_block, ctypes.byref(out))
            _check(st, "rnn_state_new_block")
        self._h = out
        self._lock = threading.Lock()
        self.batch = batch
        self.max_block = max_block
        cfg = model._config
        self.num_layers = cfg.num_layers
        self.hidden_size = cfg.hidden_size
        self.has_cell_state = cfg.cell == Cell.LSTM
        self._len = int(lib.rnn_state_len(out))
        # h's width: hidden_size, or an LSTM projection's proj_size (the snapshot holds h
        # [layers][batch][h_size], then c [layers][batch][hidden_size]).
        per_row = self._len // max(1, self.num_layers * batch)
        self.h_size = per_row - self.hidden_size if self.has_cell_state else per_row

    def close(self) -> None:
        h, self._h = getattr(self, "_h", None), None
        if h:
            with self._lock:
                lib.rnn_state_free(h)

    def __enter__(self) -> "State":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return not self._h

    def __len__(self) -> int:
        """Elements of a snapshot."""
        return int(lib.rnn_state_len(self._h))

    def reset(self) -> None:
        """Every stream back to zeros."""
        with self._lock:
            _check(lib.rnn_state_reset(self._h), "rnn_state_reset")

    def reset_stream(self, stream: int) -> None:
        """One stream back to zeros."""
        if stream < 0:
            raise _invalid(f"stream is {stream}, expected 0..{self.batch}")
        with self._lock:
            _check(lib.rnn_state_reset_stream(self._h, stream), "rnn_state_reset_stream")

    def get(self) -> np.ndarray:
        """The snapshot, flat (see the class doc for the layout)."""
        out = np.empty(self._len, np.float32)
        with self._lock:
            _check(lib.rnn_state_get(self._h, _fptr(out), out.size), "rnn_state_get")
        return out

    def set(self, values) -> None:
        """Replaces the snapshot with `values` (any shape, len(self) elements, C order).
        Non-finite values are refused (Status.ERR_NONFINITE), leaving the state unchanged."""
        v = _as_array(values, np.float32, "values").reshape(-1)
        with self._lock:
            _check(lib.rnn_state_set(self._h, _fptr(v), v.size), "rnn_state_set")

    @property
    def h(self) -> np.ndarray:
        """h as [num_layers, batch, hidden_size] (proj_size with a projection; a copy)."""
        n = self.num_layers * self.batch * self.h_size
        return self.get()[:n].reshape(self.num_layers, self.batch, self.h_size)

    @property
    def c(self) -> Optional[np.ndarray]:
        """LSTM: c as [num_layers, batch, hidden_size] (a copy); else None."""
        if not self.has_cell_state:
            return None
        n = self.num_layers * self.batch * self.h_size
        return self.get()[n:].reshape(self.num_layers, self.batch, self.hidden_size)

    def set_hc(self, h, c=None) -> None:
        """Sets h (and, for LSTM, c), each [num_layers, batch, hidden_size] (h
        [num_layers, batch, proj_size] with a projection)."""
        h = _as_array(h, np.float32, "h").reshape(-1)
        if self.has_cell_state:
            if c is None:
                raise _invalid("an LSTM state needs c as well as h")
            v = np.concatenate([h, _as_array(c, np.float32, "c").reshape(-1)])
        else:
            if c is not None:
                raise _invalid("only an LSTM state has c")
            v = h
        self.set(v)


# ---------------------------------------------------------------------------------------
# Trainer


class Trainer:
    """Optimizer state for one model (owns an `rnn_trainer`); each step updates the model's
    weights in place (BPTT). Keeps the model alive; `model.close()` closes it first.

    Hyperparameters follow PyTorch (torch.optim.SGD/Adam/AdamW, clip_grad_norm_);
    `clip_norm` 0 means no clipping.
    """

    def __init__(
        self,
        model: Model,
        optimizer: Union[Optimizer, int, str] = Optimizer.ADAM,
        learning_rate: float = 1e-3,
        momentum: float = 0.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        clip_norm: float = 0.0,
    ) -> None:
        self._h = None
        opt = _enum_value(Optimizer, optimizer)
        if not 0 <= opt < 2**32:
            raise _invalid(f"optimizer is {opt}")
        cfg = RnnTrainConfig(
            opt, learning_rate, momentum, beta1, beta2, eps, weight_decay, clip_norm
        )
        out = TrainerP()
        st = lib.rnn_trainer_new(model._h, ctypes.byref(cfg), ctypes.byref(out))
        _check(st, "rnn_trainer_new")
        self._h = out
        self._lock = threading.Lock()
        self.model = model
        model._trainers.add(self)

    def close(self) -> None:
        h, self._h = getattr(self, "_h", None), None
        if h:
            with self._lock:
                lib.rnn_trainer_free(h)

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return not self._h

    def set_dropout_seed(self, seed: int) -> None:
        """Seeds the dropout masks (a model with dropout between layers): step n uses
        masks from a hash of (seed, n), the same on any number of threads; 0 for a new
        trainer (rnn_trainer_set_dropout_seed)."""
        if not 0 <= int(seed) < 2**64:
            raise _invalid(f"seed is {seed}, expected 0..2**64")
        with self._lock:
            _check(lib.rnn_trainer_set_dropout_seed(self._h, int(seed)),
                   "rnn_trainer_set_dropout_seed")

    def _run(self, fn, name, x, state, arr, arr_ptr, targets, lengths=None) -> float:
        model = self.model
        x = _as_array(x, np.float32, "x")
        model._check_x(x, 3, name)
        b, t, _ = x.shape
        tg = _enum_value(Targets, targets)
        if not 0 <= tg < 2**32:
            raise _invalid(f"targets is {tg}")
        loss = ctypes.c_float(np.nan)
        sh = state._h if state is not None else None
        slock = state._lock if state is not None else _NO_LOCK
        lead = (self._h, sh, _fptr(x), b, t)
        if lengths is not None:
            ls = _lengths(lengths, b)
            lead += (_uptr(ls), ls.size)
        with model._lock.write(), self._lock, slock:
            st = fn(*lead, arr_ptr(arr), arr.size, tg, ctypes.byref(loss))
            _check(st, name)
        return float(loss.value)

    def step_mse(self, x, target, targets: Union[Targets, int, str] = Targets.EVERY_STEP,
                 state: Optional[State] = None, lengths=None) -> float:
        """One optimizer step on the MSE of the logits. x [batch, seq_len, input_size];
        target [batch, seq_len, out] (EVERY_STEP) or [batch, out] (LAST_STEP).
        `state`: None starts from zeros; a State starts from it and is left holding the final
        state (truncated BPTT). Returns the loss before the update.

        `lengths` (one int per sequence, each 1..seq_len) makes x a padded batch
        (rnn_trainer_step_mse_lengths): the loss averages over valid steps only, targets
        past a length are ignored, LAST_STEP compares each sequence's own last step, and a
        state keeps each sequence's state after its own last step."""
        target = _as_array(target, np.float32, "target")
        if lengths is not None:
            fn, name = lib.rnn_trainer_step_mse_lengths, "rnn_trainer_step_mse_lengths"
        else:
            fn, name = lib.rnn_trainer_step_mse, "rnn_trainer_step_mse"
        return self._run(fn, name, x, state, target, _fptr, targets, lengths)

    def step_xent(self, x, labels, targets: Union[Targets, int, str] = Targets.EVERY_STEP,
                  state: Optional[State] = None, lengths=None) -> float:
        """One optimizer step on softmax cross-entropy of the logits. labels: int class
        indices, [batch, seq_len] (EVERY_STEP) or [batch] (LAST_STEP); -1 = ignored.
        `lengths`: as in step_mse; labels past a length are ignored
        (rnn_trainer_step_xent_lengths)."""
        labels = _as_array(labels, np.int32, "labels")
        if lengths is not None:
            fn, name = lib.rnn_trainer_step_xent_lengths, "rnn_trainer_step_xent_lengths"
        else:
            fn, name = lib.rnn_trainer_step_xent, "rnn_trainer_step_xent"
        return self._run(fn, name, x, state, labels, _ipptr, targets, lengths)


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


_NO_LOCK = _NoLock()
