"""A crystal: shape, material and orientation, and defects given in its own cubic frame.

Burgers and fault vectors are given in units of the lattice parameter a in the crystal frame
(``burgers=(0.5, 0, 0.5)`` is a/2[101]); directions and plane normals as crystal indices;
positions in nm in the sample frame relative to the crystal centre.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import check_choice, check_positive, check_vector
from ..errors import ConfigError
from ..materials import Material, get_material
from ..physics import bragg_vector
from .anisotropic import AnisotropicDislocation, AnisotropicLoop, cubic_stiffness, rotate_stiffness
from .dislocations import DislocationLoop, StraightDislocation, circular_loop_vertices
from .fields import DilatationCentre, SmoothStrain, SurfaceRelaxation
from .planar import SplitDislocation, StackingFault, TwinBoundary, equilibrium_separation

__all__ = ["Crystal"]


@dataclass(frozen=True)
class Crystal:
    """A nanocrystal: `shape` (from :mod:`braggscope.simulate.shapes`), `material` (name or
    :class:`~braggscope.materials.Material`) and `orientation` U (crystal → sample frame)."""

    shape: object
    material: Material | str = "Pt"
    orientation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        object.__setattr__(self, "material", get_material(self.material))
        u = np.asarray(self.orientation, dtype=float)
        if u.shape != (3, 3) or not np.allclose(u @ u.T, np.eye(3), atol=1e-6) or np.linalg.det(u) < 0:
            raise ConfigError("orientation must be a 3×3 proper rotation matrix (crystal → sample frame)")
        object.__setattr__(self, "orientation", u)

    @property
    def lattice_parameter(self) -> float:
        """[nm]"""
        return self.material.lattice_parameter

    def to_sample(self, crystal_vector) -> np.ndarray:
        """A crystal-frame vector written in the sample frame (same length)."""
        return self.orientation @ check_vector(crystal_vector, "crystal vector")

    def direction(self, indices) -> np.ndarray:
        """Unit sample-frame vector along the crystal direction [uvw] (or plane normal (hkl))."""
        v = self.to_sample(check_vector(indices, "direction", nonzero=True))
        return v / np.linalg.norm(v)

    def g_vector(self, hkl) -> np.ndarray:
        """[1/nm] Bragg vector of reflection hkl in the sample frame."""
        return bragg_vector(hkl, lattice_parameter=self.lattice_parameter, orientation=self.orientation)

    def dislocation(self, burgers, line, position=(0.0, 0.0, 0.0), *, elasticity="isotropic"):
        """Straight dislocation: `burgers` [a] and `line` [uvw] in the crystal frame,
        through `position` [nm]; its field in isotropic elasticity (:class:`StraightDislocation`,
        the Voigt-average ν) or, with ``elasticity="anisotropic"``, in the material's cubic
        elastic constants (:class:`~braggscope.simulate.anisotropic.AnisotropicDislocation`)."""
        check_choice(elasticity, "elasticity", {"isotropic", "anisotropic"})
        keys = dict(burgers=self.to_sample(burgers) * self.lattice_parameter, line=self.direction(line),
                    position=position)
        if elasticity == "isotropic":
            return StraightDislocation(**keys)
        return AnisotropicDislocation(**keys, stiffness=self.stiffness())

    def split_dislocation(self, burgers, line, plane, position=(0.0, 0.0, 0.0), separation=None) -> SplitDislocation:
        """Perfect dislocation `burgers` a/2<110> [a] dissociated in its glide `plane` {111}
        into Shockley partials a/6<112> (each at 30° to b) `separation` [nm] apart; by default
        the isotropic equilibrium width for the material's stacking-fault energy.
        `line` [uvw] is projected onto the plane; `position` [nm] is on the leading partial."""
        b = check_vector(burgers, "burgers", nonzero=True)
        n = check_vector(plane, "plane", nonzero=True)
        if not np.allclose(np.abs(n), np.abs(n[0])) or abs(b @ n) > 1e-9:
            raise ConfigError(f"a Shockley dissociation needs a {{111}} plane containing b, got b={b}, plane={n}")
        n_hat = n / np.linalg.norm(n)
        side = np.cross(n_hat, b) / (2 * np.sqrt(3))  # in-plane, ⊥ b, |b|/(2√3) long
        b1, b2 = b / 2 + side, b / 2 - side
        t = self.direction(line)
        n_s = self.direction(n)
        t = t - (t @ n_s) * n_s
        if np.linalg.norm(t) < 1e-6:
            raise ConfigError(f"the line {line} is normal to the glide plane {plane}")
        t /= np.linalg.norm(t)
        b_s = self.to_sample(b) * self.lattice_parameter
        character = float(np.degrees(np.arccos(np.clip(abs(b_s @ t) / np.linalg.norm(b_s), 0, 1))))
        if separation is None:
            mat = self.material
            separation = equilibrium_separation(np.linalg.norm(b1) * self.lattice_parameter, character,
                                                shear_modulus=mat.shear_modulus, poisson_ratio=mat.poisson_ratio,
                                                fault_energy=mat.stacking_fault_energy)
        separation = check_positive(separation, "separation", "nm")
        across = np.cross(n_s, t)
        p0 = check_vector(position, "position")
        lead = StraightDislocation(burgers=self.to_sample(b1) * self.lattice_parameter, line=t, position=p0, cut=across)
        trail = StraightDislocation(burgers=self.to_sample(b2) * self.lattice_parameter, line=t,
                                    position=p0 + separation * across, cut=across)
        return SplitDislocation(leading=lead, trailing=trail, normal=n_s, separation=separation)

    def loop(self, burgers, plane, center=(0.0, 0.0, 0.0), radius=10.0, *, sides=None,
             elasticity="isotropic") -> DislocationLoop:
        """Dislocation loop of `radius` [nm] in the `plane` (hkl) through `center` [nm];
        `burgers` [a] along the normal (prismatic), in the plane (shear) or in between.
        The loop is a regular polygon of `sides` sides (16 by default: it departs from the
        circle by 2 % of the radius). Its field in isotropic elasticity (Burgers' formula, the
        Voigt-average ν) or, with ``elasticity="anisotropic"``, in the material's cubic elastic
        constants (:class:`~braggscope.simulate.anisotropic.AnisotropicLoop`: Mura's eigenstrain
        solution by FFT, added to the isotropic closed form as a correction)."""
        check_choice(elasticity, "elasticity", {"isotropic", "anisotropic"})
        verts = circular_loop_vertices(center, self.direction(plane), radius, sides=16 if sides is None else sides)
        keys = dict(burgers=self.to_sample(burgers) * self.lattice_parameter, vertices=verts)
        if elasticity == "isotropic":
            return DislocationLoop(**keys)
        return AnisotropicLoop(**keys, stiffness=self.stiffness())

    def stiffness(self) -> np.ndarray:
        """(3, 3, 3, 3) the material's cubic stiffness C_ijkl [GPa] in the sample frame."""
        m = self.material
        return rotate_stiffness(cubic_stiffness(m.c11, m.c12, m.c44), self.orientation)

    def stacking_fault(self, plane=(1, 1, 1), fault_vector=None, center=(0.0, 0.0, 0.0), radius=20.0,
                       *, sides=None) -> StackingFault:
        """Stacking fault on `plane` {111}, bounded by a partial loop of `radius` [nm].
        `fault_vector` [a] is a Shockley a/6<112> in the plane (default: one of them) or a
        Frank a/3<111> along the normal."""
        plane = check_vector(plane, "plane", nonzero=True)
        if not np.allclose(np.abs(plane), np.abs(plane[0])):
            raise ConfigError(f"fcc stacking faults lie on {{111}} planes, got {plane}")
        if fault_vector is None:
            fault_vector = np.array([plane[0], plane[1], -2 * plane[2]]) / 6.0
        r = check_vector(fault_vector, "fault_vector", nonzero=True)
        in_plane = abs(r @ plane) < 1e-9
        along = np.allclose(np.cross(r, plane), 0)
        if not (in_plane or along):
            raise ConfigError(f"fault vector {r} is neither in the {plane} plane (Shockley) nor along it (Frank)")
        kind = "intrinsic (Shockley-bounded)" if in_plane else ("intrinsic" if r @ plane < 0 else "extrinsic")
        return StackingFault(loop=self.loop(r, plane, center, radius, sides=sides), kind=kind)

    def twin(self, plane=(1, 1, 1), position=(0.0, 0.0, 0.0)) -> TwinBoundary:
        """Coherent twin boundary on the {111} `plane` nearest to `position` [nm] that holds
        atoms (the lattice has an atom at the crystal centre)."""
        n = self.direction(plane)
        d111 = self.material.d_spacing(plane)
        offset = np.round(float(n @ check_vector(position, "position")) / d111) * d111
        return TwinBoundary(normal=n, point=offset * n, plane_hkl=plane)

    def dilatation(self, position, radius, volume_change) -> DilatationCentre:
        """Point-defect cluster: ΔV = `volume_change` [nm³] within `radius` [nm]."""
        return DilatationCentre(position=position, radius=radius, volume_change=volume_change)

    def surface_relaxation(self, amplitude=0.01, decay_length=2.0) -> SurfaceRelaxation:
        """Radial surface relaxation of `amplitude` [nm] decaying over `decay_length` [nm]."""
        return SurfaceRelaxation(amplitude=amplitude, decay_length=check_positive(decay_length, "decay_length", "nm"),
                                 shape=self.shape)

    def smooth_strain(self, amplitude=0.01, wavelength=100.0, *, modes=12, rng=0) -> SmoothStrain:
        """Random long-wavelength field of RMS `amplitude` [nm], wavelengths ≥ `wavelength` [nm]."""
        return SmoothStrain(amplitude=amplitude, wavelength=check_positive(wavelength, "wavelength", "nm"),
                            modes=modes, rng=rng)
