"""Loading librnncore and declaring every C function of include/rnncore.h for ctypes.

`FUNCTIONS` is the single table of (restype, argtypes) for each function of the header;
`tests/test_header.py` parses the header and fails when the two disagree (a function
missing on either side, a different number of parameters, or a different type).
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_float,
    c_int32,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

# ---------------------------------------------------------------------------------------
# C types

#: `rnn_status` and the other enums are 32-bit unsigned in the ABI.
c_status = c_uint32


class RnnConfig(Structure):
    """`rnn_config`."""

    _fields_ = [
        ("cell", c_uint32),
        ("input_size", c_uint32),
        ("hidden_size", c_uint32),
        ("num_layers", c_uint32),
        ("output_size", c_uint32),
        ("output_activation", c_uint32),
    ]


class RnnTrainConfig(Structure):
    """`rnn_train_config`."""

    _fields_ = [
        ("optimizer", c_uint32),
        ("learning_rate", c_float),
        ("momentum", c_float),
        ("beta1", c_float),
        ("beta2", c_float),
        ("eps", c_float),
        ("weight_decay", c_float),
        ("clip_norm", c_float),
    ]


#: `RNN_MAX_DENSE`: dense layers on each side of the stack that `rnn_model_desc` holds.
MAX_DENSE = 16
#: `RNN_MODEL_DESC_SIZE_V1`: sizeof(rnn_model_desc) of its first version.
MODEL_DESC_SIZE_V1 = 312


class RnnDense(Structure):
    """`rnn_dense`: one dense layer of a model description."""

    _fields_ = [("size", c_uint32), ("activation", c_uint32)]


class RnnModelDesc(Structure):
    """`rnn_model_desc`, zero-initialised with `struct_size` set to this declaration's
    size (the library reads only what struct_size covers; see the header)."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("cell", c_uint32),
        ("input_size", c_uint32),
        ("hidden_size", c_uint32),
        ("num_layers", c_uint32),
        ("output_size", c_uint32),
        ("output_activation", c_uint32),
        ("bidirectional", c_uint32),
        ("proj_size", c_uint32),
        ("dropout", c_float),
        ("forget_bias", c_float),
        ("skip", c_uint32),
        ("num_pre", c_uint32),
        ("num_post", c_uint32),
        ("pre", RnnDense * MAX_DENSE),
        ("post", RnnDense * MAX_DENSE),
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "struct_size" not in kwargs:
            self.struct_size = ctypes.sizeof(RnnModelDesc)


class RnnModel(Structure):
    """Opaque `rnn_model`."""


class RnnState(Structure):
    """Opaque `rnn_state`."""


class RnnTrainer(Structure):
    """Opaque `rnn_trainer`."""


ModelP = POINTER(RnnModel)
StateP = POINTER(RnnState)
TrainerP = POINTER(RnnTrainer)
FloatP = POINTER(c_float)
Int32P = POINTER(c_int32)
Uint32P = POINTER(c_uint32)

#: Struct types of the header, by C name (checked field by field against the header).
STRUCTS = {
    "rnn_config": RnnConfig,
    "rnn_train_config": RnnTrainConfig,
    "rnn_dense": RnnDense,
    "rnn_model_desc": RnnModelDesc,
}
#: `#define`d numbers of the header that these declarations depend on (checked).
DEFINES = {
    "RNN_MAX_DENSE": MAX_DENSE,
    "RNN_MODEL_DESC_SIZE_V1": MODEL_DESC_SIZE_V1,
}
#: Opaque handle types of the header, by C name.
OPAQUE = {"rnn_model": RnnModel, "rnn_state": RnnState, "rnn_trainer": RnnTrainer}

#: `rnn_task`: one task of a host parallel-for, `task(task_ctx, i)`.
RnnTask = CFUNCTYPE(None, c_void_p, c_size_t)
#: `rnn_parallel_for`: a host's parallel-for, `run(ctx, n, task, task_ctx)`.
RnnParallelFor = CFUNCTYPE(None, c_void_p, c_size_t, RnnTask, c_void_p)
#: Function-pointer types of the header, by C name (checked against the header).
CALLBACKS = {"rnn_task": RnnTask, "rnn_parallel_for": RnnParallelFor}

# ---------------------------------------------------------------------------------------
# Every function of include/rnncore.h: name -> (restype, argtypes)

FUNCTIONS: dict[str, tuple[object, list[object]]] = {
    "rnn_version": (c_char_p, []),
    "rnn_last_error": (c_char_p, []),
    "rnn_status_str": (c_char_p, [c_status]),
    "rnn_abi_version": (c_uint32, []),
    "rnn_kernel_name": (c_char_p, []),
    "rnn_set_num_threads": (c_status, [c_size_t]),
    "rnn_get_num_threads": (c_size_t, []),
    "rnn_set_parallel_for": (c_status, [RnnParallelFor, c_void_p]),
    # models
    "rnn_model_new": (c_status, [POINTER(RnnConfig), c_uint64, POINTER(ModelP)]),
    "rnn_model_load": (c_status, [c_char_p, POINTER(ModelP)]),
    "rnn_model_save": (c_status, [ModelP, c_char_p]),
    "rnn_model_config": (c_status, [ModelP, POINTER(RnnConfig)]),
    "rnn_model_new_desc": (c_status, [POINTER(RnnModelDesc), c_uint64, POINTER(ModelP)]),
    "rnn_model_describe": (c_status, [ModelP, POINTER(RnnModelDesc)]),
    "rnn_model_output_size": (c_size_t, [ModelP]),
    "rnn_model_free": (None, [ModelP]),
    "rnn_model_forward": (c_status, [ModelP, FloatP, c_size_t, c_size_t, FloatP, c_size_t]),
    "rnn_model_forward_lengths": (
        c_status,
        [ModelP, FloatP, c_size_t, c_size_t, Uint32P, c_size_t, FloatP, c_size_t],
    ),
    # states
    "rnn_state_new": (c_status, [ModelP, c_size_t, POINTER(StateP)]),
    "rnn_state_new_block": (c_status, [ModelP, c_size_t, c_size_t, POINTER(StateP)]),
    "rnn_state_free": (None, [StateP]),
    "rnn_state_reset": (c_status, [StateP]),
    "rnn_state_reset_stream": (c_status, [StateP, c_size_t]),
    "rnn_state_len": (c_size_t, [StateP]),
    "rnn_state_get": (c_status, [StateP, FloatP, c_size_t]),
    "rnn_state_set": (c_status, [StateP, FloatP, c_size_t]),
    "rnn_model_step": (c_status, [ModelP, StateP, FloatP, c_size_t, FloatP, c_size_t]),
    "rnn_model_forward_state": (c_status, [ModelP, StateP, FloatP, c_size_t, FloatP, c_size_t]),
    "rnn_model_forward_state_lengths": (
        c_status,
        [ModelP, StateP, FloatP, c_size_t, Uint32P, c_size_t, FloatP, c_size_t],
    ),
    # training
    "rnn_trainer_new": (c_status, [ModelP, POINTER(RnnTrainConfig), POINTER(TrainerP)]),
    "rnn_trainer_free": (None, [TrainerP]),
    "rnn_trainer_step_mse": (
        c_status,
        [TrainerP, StateP, FloatP, c_size_t, c_size_t, FloatP, c_size_t, c_uint32, FloatP],
    ),
    "rnn_trainer_step_xent": (
        c_status,
        [TrainerP, StateP, FloatP, c_size_t, c_size_t, Int32P, c_size_t, c_uint32, FloatP],
    ),
    "rnn_trainer_step_mse_lengths": (
        c_status,
        [TrainerP, StateP, FloatP, c_size_t, c_size_t, Uint32P, c_size_t,
         FloatP, c_size_t, c_uint32, FloatP],
    ),
    "rnn_trainer_step_xent_lengths": (
        c_status,
        [TrainerP, StateP, FloatP, c_size_t, c_size_t, Uint32P, c_size_t,
         Int32P, c_size_t, c_uint32, FloatP],
    ),
    "rnn_trainer_set_dropout_seed": (c_status, [TrainerP, c_uint64]),
}

# ---------------------------------------------------------------------------------------
# Finding and loading the library

_LIB_NAMES = {"linux": "librnncore.so", "darwin": "librnncore.dylib", "win32": "rnncore.dll"}


def repo_root() -> Path:
    """The repository this package lives in (bindings/python/rnncore/ -> the root)."""
    return Path(__file__).resolve().parents[3]


def library_path() -> Path:
    """Where the shared library is looked for: `$RNNCORE_LIB` if set; else the copy that
    `pip install` put into this package; else `$CARGO_TARGET_DIR/release/` (relative to
    the current directory, as cargo reads it), else `<repo>/target/release/` (the
    package used from a checkout, with PYTHONPATH)."""
    env = os.environ.get("RNNCORE_LIB")
    if env:
        return Path(env)
    name = _LIB_NAMES.get(sys.platform, "librnncore.so")
    bundled = Path(__file__).resolve().parent / name
    if bundled.is_file():
        return bundled
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target).resolve() if target else repo_root() / "target"
    return base / "release" / name


def _load() -> ctypes.CDLL:
    path = library_path()
    if not path.exists():
        raise OSError(
            f"rnncore: shared library not found at {path}. Install the package with "
            "`pip install ./bindings/python` from the repository root, or build it with "
            "`cargo build --release` and use the package from the checkout, or point "
            "RNNCORE_LIB at a built library."
        )
    lib = ctypes.CDLL(str(path))
    missing = []
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise OSError(f"rnncore: {path} lacks {', '.join(missing)} (an older build?)")
    return lib


#: The ABI generation these declarations were written for (RNN_ABI_VERSION in the header).
#: A library of this generation or a later one has every function declared here.
ABI_VERSION = 2

lib = _load()
if lib.rnn_abi_version() < ABI_VERSION:
    raise ImportError(
        f"rnncore: {library_path()} has ABI version {lib.rnn_abi_version()}, older than "
        f"the {ABI_VERSION} these bindings were written for"
    )
