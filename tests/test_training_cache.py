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


def test_source_fingerprint_counts_what_a_module_imports_and_nothing_else(tmp_path, monkeypatch):
    """A module's fingerprint follows the modules of its package that it imports, directly, in
    a function or through another one, and ignores the package's other modules."""
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = tmp_path / "lab"
    (pkg / "sub").mkdir(parents=True)
    files = {"__init__.py": "", "maker.py": "from .helper import f\n\ndef g():\n    from lab.sub import deep\n",
             "helper.py": "from . import far\nf = 1\n", "far.py": "X = 1\n", "unrelated.py": "Y = 1\n",
             "sub/__init__.py": "", "sub/deep.py": "Z = 1\n"}
    for name, text in files.items():
        (pkg / name).write_text(text)
    before = source_fingerprint(["lab.maker"])
    (pkg / "unrelated.py").write_text("Y = 2\n")
    assert source_fingerprint(["lab.maker"]) == before
    for name in ("helper.py", "far.py", "sub/deep.py"):
        (pkg / name).write_text(files[name] + "# changed\n")
        assert source_fingerprint(["lab.maker"]) != before, name
        before = source_fingerprint(["lab.maker"])


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
