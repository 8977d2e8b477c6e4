import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


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
