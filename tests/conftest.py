import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


class _InProcessPool:
    """Stands in for the process pool of braggscope._backend.simulated_set: runs in this process
    and records the seeds it simulates."""

    seeds = []

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, function, seeds, chunksize=1):
        _InProcessPool.seeds += list(seeds)
        return map(function, seeds)


@pytest.fixture
def simulated_seeds(monkeypatch):
    """The seeds that training sets simulate during the test (a list that grows; clear it to
    watch a later call), with the process pool replaced by one in this process."""
    import concurrent.futures

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _InProcessPool)
    monkeypatch.setattr(_InProcessPool, "seeds", [])
    return _InProcessPool.seeds


@pytest.fixture(scope="session")
def small_crystal():
    """A strained 48 nm Pt crystal (24³ voxels of 3 nm) and its noise-free 111 intensity on 48³."""
    from braggscope.simulate import (Crystal, continuum_intensity, random_orientation, simulate_sample,
                                     truncated_octahedron)

    xtal = Crystal(truncated_octahedron(48.0, random_orientation(1)), "Pt", random_orientation(1))
    s = simulate_sample(xtal, [xtal.smooth_strain(0.02, 50.0, rng=0)], shape=(24,) * 3, voxel_size=3.0,
                        hkl=(1, 1, 1))
    return s, continuum_intensity(s.obj, shape=(48,) * 3)


@pytest.fixture(scope="session")
def small_crystal_counts(small_crystal):
    """The band-limited truth of `small_crystal` and its Poisson counts at 10⁸ photons."""
    from braggscope.metrics import band_limited

    s, i = small_crystal
    return band_limited(s.obj, (48,) * 3), np.random.default_rng(0).poisson(i / i.sum() * 1e8).astype(np.float32)


def hirth_lothe_edge_strain(x, y, *, burgers, poisson_ratio):
    """In-plane strain (ε_xx, ε_yy, ε_xy) of a straight edge dislocation (b along x, line along z)
    from the closed-form stresses (Hirth & Lothe eq. 3-43) and isotropic Hooke's law in plane
    strain, with the shear modulus set to 1 (it cancels)."""
    nu, r2 = poisson_ratio, x * x + y * y
    d = burgers / (2 * np.pi * (1 - nu))
    sxx = -d * y * (3 * x * x + y * y) / r2**2
    syy = d * y * (x * x - y * y) / r2**2
    sxy = d * x * (x * x - y * y) / r2**2
    trace = sxx + syy
    return (sxx - nu * trace) / 2, (syy - nu * trace) / 2, sxy / 2
