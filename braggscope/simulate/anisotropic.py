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
from scipy import ndimage

from .._validate import check_positive, check_vector
from ..errors import ConfigError
from .dislocations import _TINY, DislocationLoop, _StraightLine

__all__ = ["AnisotropicDislocation", "AnisotropicLoop", "cubic_stiffness", "isotropic_stiffness", "rotate_stiffness",
           "voigt_poisson_ratio"]


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


def isotropic_stiffness(poisson_ratio, shear_modulus=1.0) -> np.ndarray:
    """(3, 3, 3, 3) C_ijkl = λ δ_ij δ_kl + μ (δ_ik δ_jl + δ_il δ_jk), λ = 2μν/(1 − 2ν)."""
    eye = np.eye(3)
    lam = 2 * shear_modulus * poisson_ratio / (1 - 2 * poisson_ratio)
    return lam * np.einsum("ij,kl->ijkl", eye, eye) + shear_modulus * (np.einsum("ik,jl->ijkl", eye, eye)
                                                                       + np.einsum("il,jk->ijkl", eye, eye))


def voigt_poisson_ratio(stiffness) -> float:
    """Poisson's ratio of the Voigt average of C: λ_V = (2 C_iijj − C_ijij)/15,
    μ_V = (3 C_ijij − C_iijj)/30, ν = λ_V / (2(λ_V + μ_V))."""
    c = np.asarray(stiffness, float)
    c_iijj, c_ijij = np.einsum("iijj->", c), np.einsum("ijij->", c)
    lam, mu = (2 * c_iijj - c_ijij) / 15, (3 * c_ijij - c_iijj) / 30
    return float(lam / (2 * (lam + mu)))


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


def _real(spectrum):
    """The real fields (3, M, M, M) of the half spectra (3, M, M, M/2 + 1)."""
    size = spectrum.shape[1]
    return np.fft.irfftn(spectrum, s=(size,) * 3, axes=(1, 2, 3))


def _eigenstrain_field(stiffness, eigenstrain, k):
    """−i N⁻¹(k) (C:ε*) k, shape (3, ...): the displacement per unit of the eigenstrain's
    transform at wave vectors k (3, ...), N_jm = C_jlmn k_l k_n inverted through its adjugate
    (k = 0 left at zero)."""
    kk = k[:, None] * k[None]
    n = np.tensordot(stiffness, kk, axes=([1, 3], [0, 1]))  # (3, 3, ...): N_jm
    adj = np.stack([np.stack([n[(j + 1) % 3, (m + 1) % 3] * n[(j + 2) % 3, (m + 2) % 3]
                              - n[(j + 1) % 3, (m + 2) % 3] * n[(j + 2) % 3, (m + 1) % 3] for j in range(3)])
                    for m in range(3)])  # adj(N)_mj, the cofactors transposed
    det = np.sum(n[0] * adj[:, 0], axis=0)
    det[det == 0] = np.inf
    force = np.tensordot(np.einsum("jlpq,pq->jl", stiffness, eigenstrain), k, axes=1)  # (C:ε*)_jl k_l
    return -1j * np.sum(adj * force[None], axis=1) / det


@dataclass(frozen=True, kw_only=True)
class AnisotropicLoop(DislocationLoop):
    """Planar polygonal dislocation loop in a crystal of `stiffness`, its field from Mura's
    eigenstrain solution evaluated by FFT (no closed form exists for a loop in an anisotropic
    crystal); the interface, the geometry and the ground truth of
    :class:`~braggscope.simulate.DislocationLoop`, whose `poisson_ratio` arguments are accepted and
    not used.

    The loop is the plate eigenstrain ε*_mn = −½(b_m n_n + b_n n_m) δ_S on its surface S, whose
    total displacement in an infinite crystal is, in Fourier space,

        û_m(k) = −i N⁻¹_mj(k) C_jlpq k_l ε̂*_pq(k),   N_jm(k) = C_jlmn k_l k_n,

    with u jumping by −b across S along its normal, as the isotropic loop's. The field is the
    isotropic loop's closed form (Burgers' formula, at the Voigt average of the stiffness) plus the
    difference of the two FFT solutions, anisotropic minus isotropic, on one grid: what the grid
    does wrong (the periodic images, the ringing of the sharp surface and line) is nearly the
    same in both and cancels, and with an isotropic stiffness the field is the closed form. The
    grid is cubic, of `spacing` [nm] (default: that of the points asked for, where they lie on a
    grid, kept between 1/80 of their extent and 1/4 of the loop's radius), over twice the extent
    of the points and the loop; the surface's δ is a linear hat one spacing wide; the difference is read at
    the points by trilinear interpolation (exact on the grid's nodes, with which a grid of voxels
    centred as :func:`~braggscope.simulate.sample.grid_points` places them coincides), its
    derivatives spectrally (i k û).

    Attributes
    ----------
    burgers, vertices
        As :class:`~braggscope.simulate.DislocationLoop`'s ([nm], sample frame).
    stiffness : (3, 3, 3, 3) ndarray
        C_ijkl in the sample frame (:func:`rotate_stiffness`), any unit.
    spacing : float, optional
        [nm] Grid spacing of the FFT.
    """

    stiffness: np.ndarray
    spacing: float | None = None

    def __post_init__(self):
        super().__post_init__()
        c = np.asarray(self.stiffness, float)
        if c.shape != (3, 3, 3, 3):
            raise ConfigError(f"the stiffness must be a (3, 3, 3, 3) tensor, got shape {c.shape}")
        object.__setattr__(self, "stiffness", c)
        object.__setattr__(self, "_cache", {})

    def displacement(self, points, *, poisson_ratio=None) -> np.ndarray:
        """[nm] Displacement u(r), shape (3, ...), at `points` [nm] of shape (3, ...)."""
        return self.displacement_and_derivative(points, None)[0]

    def directional_derivative(self, points, direction, *, poisson_ratio=None) -> np.ndarray:
        """∂u/∂s along the unit `direction` (3, ...), dimensionless (spectral, then interpolated)."""
        return self.displacement_and_derivative(points, direction)[1]

    def displacement_and_derivative(self, points, direction, *, poisson_ratio=None):
        """u [nm] and (d·∇)u along the unit `direction` (None: not computed) at `points`."""
        p = np.asarray(points, float)
        origin, h, u_hat, k, u_grid = self._difference(p.reshape(3, -1))
        idx = (p.reshape(3, -1) - origin[:, None]) / h
        read = lambda fields: np.stack([ndimage.map_coordinates(f, idx, order=1) for f in fields]).reshape(p.shape)
        u, du = super().displacement_and_derivative(p, direction, poisson_ratio=voigt_poisson_ratio(self.stiffness))
        u += read(u_grid)
        if direction is not None:
            du += read(_real(1j * np.tensordot(np.asarray(direction, float), k, axes=1) * u_hat))
        return u, du

    def _difference(self, points):
        """(grid origin [nm], spacing [nm], û (3, M, M, M/2 + 1), wave vectors k, the difference
        field on the grid (3, M, M, M) [nm]) on the grid that covers `points` (3, P) and the loop
        twice over, cached per grid."""
        h = self._spacing(points)
        both = np.concatenate([points, self.vertices.T], axis=1)
        low, high = np.floor(both.min(axis=1) / h), np.ceil(both.max(axis=1) / h)
        size = int(2 * np.max(high - low) + 4)
        size += size % 2
        centre = np.round((low + high) / 2)
        key = (h, size, tuple(centre))
        if key not in self._cache:
            self._cache.clear()
            origin = (centre - size // 2) * h
            u_hat, k = self._solve(origin, h, size)
            self._cache[key] = (origin, h, u_hat, k, _real(u_hat))
        return self._cache[key]

    def _spacing(self, points):
        """[nm] The FFT grid's spacing: `spacing`, else the points' own grid step along z (the
        smallest gap between their distinct z), kept between an eightieth of the points' extent
        and a quarter of the loop's radius."""
        if self.spacing is not None:
            return check_positive(self.spacing, "spacing", "nm")
        radius = float(np.mean(np.linalg.norm(self.vertices - self.center, axis=1)))
        z = np.unique(np.round(points[0], 6))
        step = float(np.min(np.diff(z))) if len(z) > 1 else radius / 4
        extent = float(np.max(np.ptp(points, axis=1))) if points.shape[1] > 1 else radius
        return float(np.clip(step, extent / 80, radius / 4))

    def _solve(self, origin, h, size):
        """(û of the anisotropic field less the isotropic one, k) of the plate eigenstrain on the
        grid (origin, h, size³)."""
        axes = [origin[i] + h * np.arange(size) for i in range(3)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"))
        n = self.normal
        across = np.tensordot(n, grid - self.center.reshape(3, 1, 1, 1), axes=1)
        surface = np.clip(1 - np.abs(across) / h, 0, None) / h * self.inside_polygon(grid)  # δ_S [1/nm]
        eigen = -0.5 * (np.outer(self.burgers, n) + np.outer(n, self.burgers))
        freq = 2 * np.pi * np.fft.fftfreq(size, d=h)
        k = np.stack(np.meshgrid(freq, freq, 2 * np.pi * np.fft.rfftfreq(size, d=h), indexing="ij"))
        plate = np.fft.rfftn(surface)
        iso = isotropic_stiffness(voigt_poisson_ratio(self.stiffness))
        u_hat = (_eigenstrain_field(self.stiffness, eigen, k) - _eigenstrain_field(iso, eigen, k)) * plate
        u_hat[:, 0, 0, 0] = 0  # the mean displacement: a global phase
        return u_hat, k

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        return super().describe() | {"elasticity": "anisotropic"}
