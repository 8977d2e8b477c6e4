"""The PyNX back end on the same data and starts as the torch engine (PyNX from Debian's
python3-pynx, unpacked by .ci/get-pynx; these tests skip, saying so, where it is absent)."""
import sys

import numpy as np
import pytest

from braggscope.errors import ConfigError, OptionalDependencyError
from braggscope.metrics import band_limited, reconstruction_error
from braggscope.retrieval import pynx_available, reconstruct
from braggscope.simulate import Crystal, continuum_intensity, random_orientation, simulate_sample, truncated_octahedron

needs_pynx = pytest.mark.skipif(not pynx_available(), reason="PyNX not importable: run .ci/get-pynx and put "
                                                             ".deps/pynx on PYTHONPATH (make test does both)")


@pytest.fixture(scope="module")
def counts():
    xtal = Crystal(truncated_octahedron(48.0, random_orientation(1)), "Pt", random_orientation(1))
    s = simulate_sample(xtal, [xtal.smooth_strain(0.02, 50.0, rng=0)], shape=(24,) * 3, voxel_size=3.0,
                        hkl=(1, 1, 1))
    i = continuum_intensity(s.obj, shape=(48,) * 3)
    return band_limited(s.obj, (48,) * 3), np.random.default_rng(0).poisson(i / i.sum() * 1e8).astype(np.float32)


@needs_pynx
def test_pynx_and_torch_agree_on_the_same_start(counts):
    truth, data = counts
    recipe = "ER**100 * (ShrinkWrap * RAAR**20)**20"
    ours = reconstruct(data, recipe, n_runs=2, rng=1, device="cpu")
    theirs = reconstruct(data, recipe, n_runs=2, rng=1, backend="pynx")
    assert theirs.config["backend"] == "pynx" and theirs.obj.shape == ours.obj.shape
    err_ours = reconstruction_error(ours.obj[0], truth)["error"]
    err_pynx = reconstruction_error(theirs.obj[0], truth)["error"]
    assert err_pynx < 0.05 and err_ours < 0.05
    assert theirs.llk[0] == pytest.approx(ours.llk[0], rel=0.15)  # our LLK of both objects
    assert len(theirs.history) > 10 and np.isfinite(theirs.history[-2]["llk"]).all()  # PyNX's own records


@needs_pynx
def test_cli_backend_pynx(tmp_path, capsys):
    from braggscope.cli import main

    data = tmp_path / "d.cxi"
    assert main(["simulate", str(data), "--shape", "16", "--voxel-size", "3", "--size", "30", "--oversampling", "2",
                 "--photons", "1e8", "-q"]) == 0
    out = tmp_path / "r.cxi"
    assert main(["reconstruct", str(data), "--out", str(out), "--backend", "pynx", "--runs", "2", "--algorithm",
                 "ER**20 * (ShrinkWrap * HIO**20)**5", "-q"]) == 0
    assert "on pynx/cpu" in capsys.readouterr().out


def test_missing_pynx_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynx", None)
    monkeypatch.setitem(sys.modules, "pynx.cdi", None)
    assert not pynx_available()
    with pytest.raises(OptionalDependencyError, match="get-pynx"):
        reconstruct(np.ones((8, 8, 8)), "ER**2", backend="pynx")
    with pytest.raises(ConfigError, match="backend"):
        reconstruct(np.ones((8, 8, 8)), "ER**2", backend="cohere")
