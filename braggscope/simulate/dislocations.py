"""Displacement fields of dislocations in an isotropic crystal (vectorised, float64, nm).

Burgers-vector convention: b = ∮ du along a right-handed circuit about the line direction
(counter-clockwise seen from the tip of the line vector). The cut surface of a straight
dislocation is the half-plane behind the edge component (local x < 0, y = 0); that of a loop is
the flat surface the loop bounds. Across a cut, u jumps by b, so G·u jumps by G·b, a multiple
of 2π for a perfect dislocation: the cut is invisible in exp(iG·u).

References
----------
J. P. Hirth and J. Lothe, *Theory of Dislocations*, 2nd ed. (Wiley, 1982): eq. (3-45)
(edge), (3-2) (screw) and the Burgers formula (4-25) for loops (R. de Wit, Solid State Phys.
10, 249 (1960), doi:10.1016/S0081-1947(08)60703-3). Solid angle of a triangle:
A. Van Oosterom and J. Strackee, IEEE Trans. Biomed. Eng. 30, 125 (1983),
doi:10.1109/TBME.1983.325207. For polygonal loops the result equals Barnett's triangular-loop
solution (D. M. Barnett, Philos. Mag. A 51, 383 (1985), doi:10.1080/01418618508237562).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import check_positive, check_vector
from ..errors import ConfigError

__all__ = ["StraightDislocation", "DislocationLoop", "circular_loop_vertices", "straight_dislocation_derivatives"]

_TINY = 1e-9  # [nm] floor on distances to a line, below any physical core radius


def _unit(v, name):
    v = check_vector(v, name, nonzero=True)
    return v / np.linalg.norm(v)


def _perpendicular(t):
    """A unit vector perpendicular to unit t."""
    trial = np.eye(3)[np.argmin(np.abs(t))]
    p = trial - (trial @ t) * t
    return p / np.linalg.norm(p)


def _dot(vec, points):
    """vec · points for points of shape (3, ...)."""
    return np.tensordot(vec, points, axes=(0, 0))


def _dot3(a, b):
    """Component-wise dot product of (3, N) arrays (faster than a reduction over axis 0)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross3(a, b):
    """Cross product of (3, N) arrays (or a (3, 1) with a (3, N))."""
    return np.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _outer(vec, field):
    """vec ⊗ field: shape (3, ...)."""
    return vec.reshape((3,) + (1,) * np.ndim(field)) * field


class _StraightLine:
    """What every straight dislocation has, whatever its elasticity: a Burgers vector, a line and
    a point on it (sample frame, nm), its character, local frame and distance to points."""

    def _check_line(self):
        object.__setattr__(self, "burgers", check_vector(self.burgers, "burgers", nonzero=True))
        object.__setattr__(self, "line", _unit(self.line, "line"))
        object.__setattr__(self, "position", check_vector(self.position, "position"))

    @property
    def character_angle(self) -> float:
        """[deg] Angle between b and the line: 0 screw, 90 edge."""
        c = abs(self.burgers @ self.line) / np.linalg.norm(self.burgers)
        return float(np.degrees(np.arccos(np.clip(c, 0, 1))))

    def local_frame(self):
        """(e1, e2, t): e1 along the edge component of b, e2 = t × e1, t the line."""
        t = self.line
        b_edge = self.burgers - (self.burgers @ t) * t
        e1 = b_edge / np.linalg.norm(b_edge) if np.linalg.norm(b_edge) > 1e-12 * np.linalg.norm(self.burgers) \
            else _perpendicular(t)
        return e1, np.cross(t, e1), t

    def distance(self, points) -> np.ndarray:
        """[nm] Distance of each point to the line."""
        d = np.asarray(points, dtype=float) - self.position.reshape((3,) + (1,) * (np.ndim(points) - 1))
        along = _dot(self.line, d)
        perp2 = np.sum(d * d, axis=0) - along * along
        return np.sqrt(np.maximum(perp2, 0))

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        return {"type": "dislocation", "burgers_nm": self.burgers.tolist(), "line_direction": self.line.tolist(),
                "position_nm": self.position.tolist(), "character_deg": self.character_angle}


@dataclass(frozen=True, kw_only=True)
class StraightDislocation(_StraightLine):
    """Infinite straight dislocation (Volterra solution in isotropic elasticity).

    Attributes
    ----------
    burgers : (3,) ndarray
        [nm] Burgers vector, sample frame (z, y, x).
    line : (3,) ndarray
        Line direction (normalised on construction).
    position : (3,) ndarray
        [nm] A point on the line, relative to the crystal centre.
    cut : (3,) ndarray, optional
        Direction, perpendicular to the line, of the cut half-plane across which u jumps by b
        (default: behind the edge component, -e1). Only the jump's place changes, not ∇u.
    """

    burgers: np.ndarray
    line: np.ndarray
    position: np.ndarray
    cut: np.ndarray | None = None

    def __post_init__(self):
        self._check_line()
        if self.cut is not None:
            c = check_vector(self.cut, "cut", nonzero=True)
            c = c - (c @ self.line) * self.line
            if np.linalg.norm(c) < 1e-9:
                raise ConfigError("the cut direction must not be parallel to the dislocation line")
            object.__setattr__(self, "cut", c / np.linalg.norm(c))

    def _angle(self, x, y, e1, e2):
        """[rad] θ = atan2(y, x) on the branch whose 2π jump lies on the cut half-plane."""
        theta = np.arctan2(y, x)
        if self.cut is None:
            return theta
        theta_cut = float(np.arctan2(self.cut @ e2, self.cut @ e1))
        return theta_cut - 2 * np.pi + np.mod(theta - theta_cut, 2 * np.pi)

    def displacement(self, points, *, poisson_ratio) -> np.ndarray:
        """[nm] Displacement u(r), shape (3, ...), at `points` [nm] of shape (3, ...).

        In the local frame (x along the edge component b_e, z along the line):
        u_x = b_e/2π [θ + xy / (2(1-ν) r²)],
        u_y = -b_e/2π [(1-2ν)/(4(1-ν)) ln r² + (x²-y²) / (4(1-ν) r²)],
        u_z = b_s θ / 2π, with θ = atan2(y, x) (Hirth & Lothe 3-45 and 3-2).
        """
        nu = float(poisson_ratio)
        e1, e2, t = self.local_frame()
        d = np.asarray(points, dtype=float) - self.position.reshape((3,) + (1,) * (np.ndim(points) - 1))
        x, y = _dot(e1, d), _dot(e2, d)
        r2 = np.maximum(x * x + y * y, _TINY**2)
        theta = self._angle(x, y, e1, e2)
        b_screw = float(self.burgers @ t)
        b_edge = float(self.burgers @ e1)
        ux = b_edge / (2 * np.pi) * (theta + x * y / (2 * (1 - nu) * r2))
        uy = -b_edge / (2 * np.pi) * ((1 - 2 * nu) / (4 * (1 - nu)) * np.log(r2)
                                      + (x * x - y * y) / (4 * (1 - nu) * r2))
        uz = b_screw / (2 * np.pi) * theta
        return _outer(e1, ux) + _outer(e2, uy) + _outer(t, uz)

    def directional_derivative(self, points, direction, *, poisson_ratio) -> np.ndarray:
        """∂u/∂s along the unit `direction` (3, ...), dimensionless: the closed-form derivative
        of :meth:`displacement`, free of the cut."""
        p = np.asarray(points, dtype=float)
        flat = p.reshape(3, -1)
        d = straight_dislocation_derivatives([self], flat, np.asarray(direction, dtype=float)[None],
                                             poisson_ratio=poisson_ratio)
        return d[0].reshape(p.shape)


def straight_dislocation_derivatives(dislocations, points, directions, *, poisson_ratio, chunk=64) -> np.ndarray:
    """Σ over straight `dislocations` of ∂u/∂s along each of `directions` (K, 3), at `points`
    (3, P) [nm]: (K, 3, P), dimensionless; vectorised over the dislocations (`chunk` at a time).

    In each line's frame (x along the edge component b_e, y = t × x, t the line):
    ∂θ = (x g_y − y g_x)/r², ∂u_x = b_e/2π [∂θ + (g_x y (y² − x²) + g_y x (x² − y²)) / (2(1−ν) r⁴)],
    ∂u_y = −b_e/2π [(1−2ν)/(2(1−ν)) (x g_x + y g_y)/r² + x y (g_x y − g_y x) / ((1−ν) r⁴)],
    ∂u_t = b_s/2π ∂θ: the derivatives of Hirth & Lothe's (3-45) and (3-2), free of the cut."""
    nu = float(poisson_ratio)
    p = np.asarray(points, dtype=float)
    g_dirs = np.asarray(directions, dtype=float)
    out = np.zeros((len(g_dirs), 3, p.shape[1]))
    for start in range(0, len(dislocations), chunk):
        part = dislocations[start:start + chunk]
        frames = np.array([d.local_frame() for d in part])  # (L, 3, 3): e1, e2, t
        b_edge = np.array([d.burgers @ f[0] for d, f in zip(part, frames)])[:, None]
        b_screw = np.array([d.burgers @ f[2] for d, f in zip(part, frames)])[:, None]
        rel = p[None] - np.array([d.position for d in part])[:, :, None]  # (L, 3, P)
        x, y = np.einsum("li,lip->lp", frames[:, 0], rel), np.einsum("li,lip->lp", frames[:, 1], rel)
        r2 = np.maximum(x * x + y * y, _TINY**2)
        r4 = r2 * r2
        for k, g in enumerate(g_dirs):
            gx, gy = (frames[:, 0] @ g)[:, None], (frames[:, 1] @ g)[:, None]
            dtheta = (x * gy - y * gx) / r2
            dux = b_edge / (2 * np.pi) * (dtheta + (gx * y * (y * y - x * x) + gy * x * (x * x - y * y))
                                          / (2 * (1 - nu) * r4))
            duy = -b_edge / (2 * np.pi) * ((1 - 2 * nu) / (2 * (1 - nu)) * (x * gx + y * gy) / r2
                                           + (x * y * (gx * y - gy * x)) / ((1 - nu) * r4))
            dut = b_screw / (2 * np.pi) * dtheta
            out[k] += (np.einsum("li,lp->ip", frames[:, 0], dux) + np.einsum("li,lp->ip", frames[:, 1], duy)
                       + np.einsum("li,lp->ip", frames[:, 2], dut))
    return out


def circular_loop_vertices(center, normal, radius, *, sides=None, max_sagitta=0.05) -> np.ndarray:
    """Vertices (M, 3) [nm] of a regular polygon of `radius` [nm] (vertex distance from the
    centre), counter-clockwise about `normal`: `sides` sides, or by default enough that it
    departs from the circle by at most `max_sagitta` [nm] (12 to 256 sides)."""
    radius = check_positive(radius, "loop radius", "nm")
    n = _unit(normal, "loop normal")
    if sides is None:
        half_angle = np.arccos(np.clip(1 - max_sagitta / radius, -1, 1))
        sides = min(max(12, int(np.ceil(np.pi / max(half_angle, 1e-6)))), 256)
    if int(sides) < 3:
        raise ConfigError(f"a loop needs at least 3 sides, got {sides}")
    e1 = _perpendicular(n)
    e2 = np.cross(n, e1)
    phi = 2 * np.pi * np.arange(int(sides)) / int(sides)
    return np.asarray(center, dtype=float) + radius * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)


@dataclass(frozen=True)
class _Segment:
    """Closed-form line integrals of the straight side a→b at points x (3, N).

    With p_E = (E - x)·t, ρ the distance to the side's line and R_E = |x - E|:
    Λ = ∫ ds/R = asinh(p_b/ρ) - asinh(p_a/ρ),
    ∇Λ = -t (1/R_b - 1/R_a) - x⊥ (q_b - q_a)/ρ²  with q_E = p_E/R_E,
    ∫ t × (x - x')/R³ ds = (t × x⊥)(q_b - q_a)/ρ²  (the gradient of the solid angle).
    """

    t: np.ndarray
    xa: np.ndarray
    perp: np.ndarray
    rho2: np.ndarray
    p_a: np.ndarray
    p_b: np.ndarray
    r_a: np.ndarray
    r_b: np.ndarray
    lam: np.ndarray
    dq: np.ndarray

    @classmethod
    def at(cls, x, a, b):
        t = b - a
        length = np.linalg.norm(t)
        t = t / length
        xa = x - a[:, None]
        along = t @ xa
        perp = xa - t[:, None] * along
        rho2 = np.maximum(_dot3(perp, perp), _TINY**2)
        rho = np.sqrt(rho2)
        p_a, p_b = -along, length - along
        r_a, r_b = np.sqrt(p_a * p_a + rho2), np.sqrt(p_b * p_b + rho2)
        lam = np.arcsinh(p_b / rho) - np.arcsinh(p_a / rho)
        return cls(t, xa, perp, rho2, p_a, p_b, r_a, r_b, lam, p_b / r_b - p_a / r_a)

    def grad_lam(self):
        """∇Λ, shape (3, N)."""
        return -self.t[:, None] * (1 / self.r_b - 1 / self.r_a) - self.perp * (self.dq / self.rho2)

    def directional_grad_lam(self, g):
        """(g·∇)∇Λ for the unit vector g, shape (3, N)."""
        t, tg = self.t, float(self.t @ g)
        xb = self.xa + t[:, None] * (self.p_a - self.p_b)  # x - b
        g_xa, g_xb = g @ self.xa, g @ xb
        d_inv_r = -g_xb / self.r_b**3 + g_xa / self.r_a**3
        d_q = (-tg / self.r_b - self.p_b * g_xb / self.r_b**3) - (-tg / self.r_a - self.p_a * g_xa / self.r_a**3)
        g_perp = g - tg * t
        d_rho2 = 2 * (g_perp @ self.perp)
        term = (d_q - self.dq * d_rho2 / self.rho2) / self.rho2
        return -t[:, None] * d_inv_r - g_perp[:, None] * (self.dq / self.rho2) - self.perp * term

    def grad_solid_angle(self):
        """This side's share of ∇Ω, shape (3, N)."""
        return _cross3(self.t[:, None], self.perp) * (self.dq / self.rho2)


def _triangle_solid_angle(vc, lc, va, la, vb, lb):
    """Signed solid angle [sr] of the triangle (c, a, b) seen from points x, given the vectors
    v = corner - x (3, N) and their lengths; positive where c → a → b looks clockwise."""
    num = _dot3(vc, _cross3(va, vb))
    den = lc * la * lb + _dot3(vc, va) * lb + _dot3(vc, vb) * la + _dot3(va, vb) * lc
    return 2 * np.arctan2(num, den)


@dataclass(frozen=True, kw_only=True)
class DislocationLoop:
    """Planar polygonal dislocation loop (prismatic, shear or mixed) in an isotropic crystal.

    Attributes
    ----------
    burgers : (3,) ndarray
        [nm] Burgers vector, sample frame.
    vertices : (M, 3) ndarray
        [nm] Corners of the loop in order; the line direction runs from each vertex to the
        next, and the loop normal is n = the right-hand normal of that circulation.
    """

    burgers: np.ndarray
    vertices: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "burgers", check_vector(self.burgers, "burgers", nonzero=True))
        v = np.asarray(self.vertices, dtype=float)
        if v.ndim != 2 or v.shape[1] != 3 or len(v) < 3:
            raise ConfigError(f"a loop needs at least 3 vertices of 3 components, got shape {v.shape}")
        object.__setattr__(self, "vertices", v)

    @property
    def center(self) -> np.ndarray:
        """[nm] Centroid of the vertices."""
        return self.vertices.mean(axis=0)

    @property
    def normal(self) -> np.ndarray:
        """Unit normal, right-handed with the vertex order."""
        c = self.center
        n = sum(np.cross(a - c, b - c) for a, b in zip(self.vertices, np.roll(self.vertices, -1, axis=0)))
        return n / np.linalg.norm(n)

    @property
    def area(self) -> float:
        """[nm²] Area enclosed by the loop."""
        c = self.center
        return 0.5 * float(np.linalg.norm(sum(np.cross(a - c, b - c) for a, b in
                                              zip(self.vertices, np.roll(self.vertices, -1, axis=0)))))

    def displacement(self, points, *, poisson_ratio) -> np.ndarray:
        """[nm] Displacement u(r), shape (3, ...), at `points` [nm] (3, ...) by the Burgers formula

        u = b Ω/4π - 1/4π ∮ (b × dl)/R + 1/(8π(1-ν)) ∇ ∮ [b × (r' - r)]·dl / R,

        with R = |r - r'|, Ω the signed solid angle of the loop surface seen from r (positive
        where the circulation looks clockwise), and each straight side integrated in closed form.
        Crossing the flat loop surface along its normal, u changes by -b; near any side the
        field is that of :class:`StraightDislocation` with the same b and line direction.
        """
        return self.displacement_and_derivative(points, None, poisson_ratio=poisson_ratio)[0]

    def directional_derivative(self, points, direction, *, poisson_ratio) -> np.ndarray:
        """∂u/∂s along the unit `direction` (3, ...), dimensionless, in closed form (the solid
        angle's gradient is the Biot–Savart integral of the loop)."""
        return self.displacement_and_derivative(points, direction, poisson_ratio=poisson_ratio)[1]

    def displacement_and_derivative(self, points, direction, *, poisson_ratio, chunk=1 << 15):
        """u [nm] and (d·∇)u along the unit `direction` (None: derivative not computed) in one
        pass over the sides, in chunks of `chunk` points that stay in cache."""
        p = np.asarray(points, dtype=float)
        flat = p.reshape(3, -1)
        g = None if direction is None else np.asarray(direction, dtype=float)
        u = np.empty_like(flat)
        du = None if g is None else np.empty_like(flat)
        for start in range(0, flat.shape[1], chunk):
            part = self._field(flat[:, start:start + chunk], float(poisson_ratio), g)
            u[:, start:start + chunk] = part[0]
            if g is not None:
                du[:, start:start + chunk] = part[1]
        return u.reshape(p.shape), None if du is None else du.reshape(p.shape)

    def _field(self, x, nu, g):
        """u and, if g is given, (g·∇)u at points x (3, N)."""
        b = self.burgers
        omega, line_term, elastic = np.zeros(x.shape[1]), np.zeros_like(x), np.zeros_like(x)
        if g is not None:
            d_omega, d_line, d_elastic = np.zeros(x.shape[1]), np.zeros_like(x), np.zeros_like(x)
        vc = self.center[:, None] - x
        lc = np.sqrt(_dot3(vc, vc))
        corners = [v[:, None] - x for v in self.vertices]
        lengths = [np.sqrt(_dot3(v, v)) for v in corners]
        for i, (a, e) in enumerate(zip(self.vertices, np.roll(self.vertices, -1, axis=0))):
            seg = _Segment.at(x, a, e)
            tb, bt = np.cross(seg.t, b), np.cross(b, seg.t)
            c_lin = tb @ seg.xa  # [b × (x - x')]·t, linear in x
            grad = seg.grad_lam()
            k = (i + 1) % len(corners)
            omega += _triangle_solid_angle(vc, lc, corners[i], lengths[i], corners[k], lengths[k])
            line_term += bt[:, None] * seg.lam
            elastic += tb[:, None] * seg.lam + c_lin * grad
            if g is not None:
                lam_g = g @ grad
                d_omega += g @ seg.grad_solid_angle()
                d_line += bt[:, None] * lam_g
                d_elastic += tb[:, None] * lam_g + float(tb @ g) * grad + c_lin * seg.directional_grad_lam(g)
        k_el = 1 / (8 * np.pi * (1 - nu))
        u = b[:, None] * omega / (4 * np.pi) - line_term / (4 * np.pi) - elastic * k_el
        du = None if g is None else b[:, None] * d_omega / (4 * np.pi) - d_line / (4 * np.pi) - d_elastic * k_el
        return u, du

    def distance(self, points) -> np.ndarray:
        """[nm] Distance of each point to the loop line."""
        p = np.asarray(points, dtype=float)
        x = p.reshape(3, -1)
        best = np.full(x.shape[1], np.inf)
        for a, e in zip(self.vertices, np.roll(self.vertices, -1, axis=0)):
            seg = e - a
            s = np.clip((seg @ (x - a[:, None])) / (seg @ seg), 0, 1)
            d = x - (a[:, None] + seg[:, None] * s)
            best = np.minimum(best, _dot3(d, d))
        return np.sqrt(best).reshape(p.shape[1:])

    def inside_polygon(self, points) -> np.ndarray:
        """True where the projection of a point on the loop plane falls inside the loop
        (convex loops)."""
        p = np.asarray(points, dtype=float)
        x = p.reshape(3, -1)
        n, inside = self.normal, np.ones(x.shape[1], dtype=bool)
        for a, e in zip(self.vertices, np.roll(self.vertices, -1, axis=0)):
            inside &= (np.cross(n, e - a) @ (x - a[:, None])) >= 0
        return inside.reshape(p.shape[1:])

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        n = self.normal
        kind = "prismatic" if abs(self.burgers @ n) > 0.99 * np.linalg.norm(self.burgers) else (
            "shear" if abs(self.burgers @ n) < 0.01 * np.linalg.norm(self.burgers) else "mixed")
        radius = float(np.mean(np.linalg.norm(self.vertices - self.center, axis=1)))
        return {"type": "loop", "character": kind, "burgers_nm": self.burgers.tolist(),
                "position_nm": self.center.tolist(), "plane_normal": n.tolist(), "radius_nm": radius,
                "area_nm2": self.area}
