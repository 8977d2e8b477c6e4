"""Straight dislocations in an anisotropic crystal: Stroh's sextic formalism (vectorised, float64, nm).

In the dislocation's frame (m along the edge component of b, n = t × m, t the line) the
displacement of an infinite straight dislocation through the origin is

    u(r) = (1/π) Im Σ_α a_α (l_α · b) ln(x₁ + p_α x₂),   x₁ = m·r, x₂ = n·r,

where p_α (Im p_α > 0) and ξ_α = (a_α, l_α) are three eigenvalues and eigenvectors of Stroh's
6 × 6 matrix N = [[−T⁻¹Rᵀ, T⁻¹], [RT⁻¹Rᵀ − Q, −RT⁻¹]] built from the stiffness C_ijkl:
Q_ik = C_ijkl m_j m_l, R_ik = C_ijkl m_j n_l, T_ik = C_ijkl n_j n_l, normalised so that
2 a_α·l_α = 1. The closure relation Σ_α (a_α l_αᵀ + c.c.) = I makes u jump by b across the cut
(the half-plane x₂ = 0, x₁ < 0, as :class:`~braggscope.simulate.StraightDislocation`'s), with
the same Burgers convention. In an isotropic crystal the three p_α coincide (p = i) and N cannot
be diagonalised: there, use the isotropic field.

References
----------
A. N. Stroh, Philos. Mag. 3, 625 (1958), doi:10.1080/14786435808565804;
J. P. Hirth and J. Lothe, *Theory of Dislocations*, 2nd ed. (Wiley, 1982), ch. 13;
T. C. T. Ting, *Anisotropic Elasticity* (Oxford University Press, 1996), ch. 5 and 8.

>>> import numpy as np
>>> from braggscope.materials import get_material
>>> au = get_material("Au")
>>> c = cubic_stiffness(au.c11, au.c12, au.c44)
>>> d = AnisotropicDislocation(burgers=[0, 0.204, 0.204], line=[0, 1, 1], position=[0, 0, 0], stiffness=c)
>>> e1, e2, _ = d.local_frame()
>>> u = d.displacement(np.stack([-e1 + 1e-9 * e2, -e1 - 1e-9 * e2], axis=1))  # either side of the cut
>>> (np.round(u[:, 0] - u[:, 1], 3) + 0.0).tolist()  # the jump is b
[0.0, 0.204, 0.204]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import check_vector
from ..errors import ConfigError
from .dislocations import _TINY, _StraightLine

__all__ = ["AnisotropicDislocation", "cubic_stiffness", "rotate_stiffness"]


def cubic_stiffness(c11, c12, c44) -> np.ndarray:
    """(3, 3, 3, 3) stiffness tensor C_ijkl of a cubic crystal in its cubic axes (the unit of the
    constants, GPa for :mod:`braggscope.materials`)."""
    c = np.zeros((3, 3, 3, 3))
    for i in range(3):
        for j in range(3):
            c[i, i, j, j] = c11 if i == j else c12
            if i != j:
                c[i, j, i, j] = c[i, j, j, i] = c44
    return c


def rotate_stiffness(stiffness, rotation) -> np.ndarray:
    """C'_ijkl = U_ia U_jb U_kc U_ld C_abcd: the stiffness written in the crystal's axes, seen in
    the frame where v' = U v (a crystal orientation U of :mod:`braggscope.simulate`)."""
    u = np.asarray(rotation, float)
    return np.einsum("ia,jb,kc,ld,abcd->ijkl", u, u, u, u, np.asarray(stiffness, float))


def _stroh(stiffness, m, n):
    """(p, a, l): the three Stroh eigenvalues with Im p > 0 and their eigenvectors, normalised
    2 a·l = 1, of the stiffness in the plane spanned by m and n."""
    q = np.einsum("ijkl,j,l->ik", stiffness, m, m)
    r = np.einsum("ijkl,j,l->ik", stiffness, m, n)
    t = np.einsum("ijkl,j,l->ik", stiffness, n, n)
    t_inv = np.linalg.inv(t)
    stroh_matrix = np.block([[-t_inv @ r.T, t_inv], [r @ t_inv @ r.T - q, -r @ t_inv]])  # N
    p, xi = np.linalg.eig(stroh_matrix)
    upper = np.argsort(-p.imag)[:3]
    p, a, ell = p[upper], xi[:3, upper], xi[3:, upper]
    if np.min(p.imag) <= 1e-9 or min(abs(p[i] - p[j]) for i, j in ((0, 1), (0, 2), (1, 2))) < 1e-6:
        raise ConfigError("Stroh's eigenvalues coincide (an isotropic stiffness): use the isotropic "
                          "StraightDislocation instead")
    norm = np.sqrt(2 * np.einsum("ia,ia->a", a, ell))
    return p, a / norm, ell / norm


@dataclass(frozen=True, kw_only=True)
class AnisotropicDislocation(_StraightLine):
    """Infinite straight dislocation in a crystal of `stiffness` (Stroh's solution; the module's
    docstring), with the interface of :class:`~braggscope.simulate.StraightDislocation`: its
    `poisson_ratio` arguments are accepted and not used, the stiffness says it all.

    Attributes
    ----------
    burgers, line, position : (3,) ndarray
        As :class:`~braggscope.simulate.StraightDislocation`'s ([nm], sample frame (z, y, x)).
    stiffness : (3, 3, 3, 3) ndarray
        C_ijkl in the sample frame (:func:`rotate_stiffness`), any unit: the displacement does not
        depend on its scale.
    """

    burgers: np.ndarray
    line: np.ndarray
    position: np.ndarray
    stiffness: np.ndarray

    def __post_init__(self):
        self._check_line()
        c = np.asarray(self.stiffness, float)
        if c.shape != (3, 3, 3, 3):
            raise ConfigError(f"the stiffness must be a (3, 3, 3, 3) tensor, got shape {c.shape}")
        object.__setattr__(self, "stiffness", c)
        m, n, _ = self.local_frame()
        p, a, ell = _stroh(c, m, n)
        object.__setattr__(self, "_stroh", (m, n, p, a * (ell.T @ self.burgers)))  # weights a_α (l_α·b): columns α

    def _z(self, points):
        """x₁ + p_α x₂ of each point, shape (3, ...) over α (x₁ floored on the line itself)."""
        m, n, p, _ = self._stroh
        d = np.asarray(points, float) - self.position.reshape((3,) + (1,) * (np.ndim(points) - 1))
        x1, x2 = np.tensordot(m, d, axes=(0, 0)), np.tensordot(n, d, axes=(0, 0))
        x1 = np.where(np.hypot(x1, x2) < _TINY, _TINY, x1)
        return x1[None] + p.reshape((3,) + (1,) * x2.ndim) * x2[None]

    def displacement(self, points, *, poisson_ratio=None) -> np.ndarray:
        """[nm] Displacement u(r), shape (3, ...), at `points` [nm] of shape (3, ...)."""
        weights = self._stroh[3]
        return np.tensordot(weights, np.log(self._z(points)), axes=(1, 0)).imag / np.pi

    def directional_derivative(self, points, direction, *, poisson_ratio=None) -> np.ndarray:
        """∂u/∂s along the unit `direction` (3, ...), dimensionless: (1/π) Im Σ_α a_α (l_α·b)
        (g·m + p_α g·n) / (x₁ + p_α x₂), free of the cut."""
        m, n, p, weights = self._stroh
        g = check_vector(direction, "direction", nonzero=True)
        z = self._z(points)
        slope = (g @ m + p * (g @ n)).reshape((3,) + (1,) * (z.ndim - 1))
        return np.tensordot(weights, slope / z, axes=(1, 0)).imag / np.pi

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        return super().describe() | {"elasticity": "anisotropic"}
