"""The cache of simulated training sets (braggscope._backend.simulated_set): reused only for the
same seeds made by the same code."""
import numpy as np

from braggscope._backend import simulated_set, source_fingerprint


def _square(seed):
    return np.full(3, seed**2), seed % 2 == 0


def _cube(seed):
    return np.full(3, seed**3), seed % 2 == 0


def _refuse(seed):
    raise AssertionError(f"seed {seed} simulated although it is cached")


def test_source_fingerprint_follows_the_code(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "made_here.py").write_text("A = 1\n")
    before = source_fingerprint(["made_here"])
    assert source_fingerprint(["made_here"]) == before
    (tmp_path / "made_here.py").write_text("A = 2\n")
    assert source_fingerprint(["made_here"]) != before
    assert source_fingerprint(["braggscope.simulate"]) != source_fingerprint(["braggscope.simulate.tem"])


def test_simulated_set_is_reused_only_for_the_same_seeds_and_code(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "maker.py").write_text("VERSION = 1\n")
    path = tmp_path / "set.npz"
    data = simulated_set(_square, range(4), ("square", "even"), path, sources=["maker"], workers=1)
    np.testing.assert_array_equal(data["square"][:, 0], [0, 1, 4, 9])
    np.testing.assert_array_equal(data["even"], [True, False, True, False])
    cached = simulated_set(_refuse, range(4), ("square", "even"), path, sources=["maker"], workers=1)
    np.testing.assert_array_equal(cached["square"], data["square"])
    other_seeds = simulated_set(_square, range(1, 5), ("square", "even"), path, sources=["maker"], workers=1)
    np.testing.assert_array_equal(other_seeds["square"][:, 0], [1, 4, 9, 16])
    (tmp_path / "maker.py").write_text("VERSION = 2\n")  # the code changed: the same seeds are made again
    remade = simulated_set(_cube, range(1, 5), ("square", "even"), path, sources=["maker"], workers=1)
    np.testing.assert_array_equal(remade["square"][:, 0], [1, 8, 27, 64])
    again = simulated_set(_refuse, range(1, 5), ("square", "even"), path, sources=["maker"], workers=1)
    np.testing.assert_array_equal(again["square"], remade["square"])
