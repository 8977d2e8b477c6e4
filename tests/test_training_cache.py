"""The cache of simulated training sets (braggscope._backend.simulated_set): reused only for the
same seeds made by the same code."""
import numpy as np

from braggscope._backend import simulated_set, source_fingerprint


def _square(seed):
    return np.full(3, seed**2), seed % 2 == 0


def _cube(seed):
    return np.full(3, seed**3), seed % 2 == 0


def test_source_fingerprint_follows_the_code(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "made_here.py").write_text("A = 1\n")
    before = source_fingerprint(["made_here"])
    assert source_fingerprint(["made_here"]) == before
    (tmp_path / "made_here.py").write_text("A = 2\n")
    assert source_fingerprint(["made_here"]) != before
    assert source_fingerprint(["braggscope.simulate"]) != source_fingerprint(["braggscope.simulate.tem"])
    assert source_fingerprint(["made_here", _square]) != source_fingerprint(["made_here", _cube])


def test_a_function_counts_by_its_own_text_wherever_it_moves_in_its_file(tmp_path, monkeypatch):
    """A function's fingerprint follows its own source text as the file reads now: an edit above
    it (which shifts it) leaves it alone, an edit of its body does not."""
    import importlib

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "simulator.py").write_text("def one(seed):\n    return seed\n")
    one = importlib.import_module("simulator").one
    before = source_fingerprint([one])
    (tmp_path / "simulator.py").write_text("A = 1\nB = 2\n\n\ndef one(seed):\n    return seed\n")
    assert source_fingerprint([one]) == before
    (tmp_path / "simulator.py").write_text("A = 1\nB = 2\n\n\ndef one(seed):\n    return seed + 1\n")
    assert source_fingerprint([one]) != before


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


def test_simulated_set_is_reused_only_for_the_same_seeds_and_code(tmp_path, monkeypatch, simulated_seeds):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "maker.py").write_text("VERSION = 1\n")
    path = tmp_path / "set.npz"

    def cached(simulate_one, seeds):
        """The set read from the cache: fails if anything is simulated."""
        simulated_seeds.clear()
        data = simulated_set(simulate_one, seeds, ("square", "even"), path, sources=["maker"], workers=1)
        assert simulated_seeds == [], f"seeds {simulated_seeds} simulated although they are cached"
        return data

    data = simulated_set(_square, range(4), ("square", "even"), path, sources=["maker"], workers=1)
    np.testing.assert_array_equal(data["square"][:, 0], [0, 1, 4, 9])
    np.testing.assert_array_equal(data["even"], [True, False, True, False])
    np.testing.assert_array_equal(cached(_square, range(4))["square"], data["square"])
    other_seeds = simulated_set(_square, range(1, 5), ("square", "even"), path, sources=["maker"], workers=1)
    np.testing.assert_array_equal(other_seeds["square"][:, 0], [1, 4, 9, 16])
    other_code = simulated_set(_cube, range(1, 5), ("square", "even"), path, sources=["maker"], workers=1)
    np.testing.assert_array_equal(other_code["square"][:, 0], [1, 8, 27, 64])  # the simulating function counts
    np.testing.assert_array_equal(cached(_cube, range(1, 5))["square"], other_code["square"])
    with np.testing.assert_raises(AssertionError):  # made by _cube: _square simulates again
        cached(_square, range(1, 5))
    simulated_set(_cube, range(1, 5), ("square", "even"), path, sources=["maker"], workers=1)  # _cube's again
    np.testing.assert_array_equal(cached(_cube, range(1, 5))["square"], other_code["square"])
    (tmp_path / "maker.py").write_text("VERSION = 2\n")  # the code it calls changed: the same seeds made again
    with np.testing.assert_raises(AssertionError):
        cached(_cube, range(1, 5))
    remade = simulated_set(_cube, range(1, 5), ("square", "even"), path, sources=["maker"], workers=1)
    np.testing.assert_array_equal(cached(_cube, range(1, 5))["square"], remade["square"])
