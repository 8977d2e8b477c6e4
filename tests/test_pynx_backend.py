"""The PyNX back end on the same data and starts as the torch engine (PyNX from Debian's
python3-pynx, unpacked by .ci/get-pynx; these tests skip, saying so, where it is absent)."""
import sys

import numpy as np
import pytest

from braggscope.errors import ConfigError, OptionalDependencyError
from braggscope.metrics import reconstruction_error
from braggscope.retrieval import pynx_available, reconstruct

needs_pynx = pytest.mark.skipif(not pynx_available(), reason="PyNX not importable: run .ci/get-pynx and put "
                                                             ".deps/pynx on PYTHONPATH (make test does both)")


@needs_pynx
def test_pynx_and_torch_agree_on_the_same_start(small_crystal_counts):
    truth, data = small_crystal_counts
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
