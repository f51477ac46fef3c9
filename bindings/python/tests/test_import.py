"""Real audio models through the C ABI (tests/fixtures/third_party/, see its README):
RTNeural's test models load from their JSON files as they are and reproduce RTNeural's
reference outputs within RTNeural's own tolerances; unsupported layers are refused."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO_ROOT
from rnncore import Model, State

THIRD = REPO_ROOT / "tests" / "fixtures" / "third_party"

CASES = [
    ("lstm", 1e-6),
    ("lstm_1d", 1e-6),
    ("gru", 5e-6),
    ("gru_1d", 1e-6),
    ("lstm_torch", 1e-6),
    ("gru_torch", 1e-6),
]


@pytest.mark.parametrize("name,tol", CASES)
def test_rtneural_model_matches_reference(name, tol):
    m = Model.load(THIRD / "rtneural" / f"{name}.json")
    x = np.loadtxt(THIRD / "rtneural" / f"{name}_x_python.csv", dtype=np.float64).astype(np.float32)
    want = np.loadtxt(THIRD / "rtneural" / f"{name}_y_python.csv", dtype=np.float64)
    y = m.forward(x.reshape(1, -1, 1)).reshape(-1)
    assert np.max(np.abs(y - want)) <= tol
    st = State(m, 1)
    ys = np.array([m.step(st, x[t : t + 1].reshape(1, 1))[0, 0] for t in range(len(x))])
    assert np.max(np.abs(ys - want)) <= tol


@pytest.mark.parametrize(
    "path,says",
    [("rtneural/full_model.json", "conv1d"), ("nam/wavenet.nam", "WaveNet")],
)
def test_unsupported_layers_are_refused_by_name(path, says):
    with pytest.raises(Exception) as e:
        Model.load(THIRD / path)
    assert says in str(e.value)
