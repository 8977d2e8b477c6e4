"""Crystal structures for X-ray diffraction: a lattice, a basis of atoms, their form factors.

Any lattice (a, b, c, α, β, γ) with any basis, so that an oxide diffracts as itself and not as an
fcc metal: the structure factor F(hkl, E) = Σ_j (f0_j(s) + f'_j(E) + i f''_j(E)) e^{-B s²}
e^{2πi h·x_j} decides which reflections exist (extinctions come out of the basis, no rule table).
Form factors are xraydb's: f0(s) from the Waasmaier–Kirfel fits, f', f'' from the Chantler tables,
with s = sin θ / λ.

Frames: the crystal Cartesian frame has a along x and b in the xy plane (the usual convention, as
in LaueTools and most crystallography codes); for a cubic lattice it is the cube frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .._validate import check_positive, check_vector
from ..errors import ConfigError
from ..materials import MATERIALS, voigt_poisson_ratio

__all__ = ["CrystalStructure", "fcc_structure", "fluorite_structure", "get_structure", "STRUCTURES"]

_AVOGADRO = 6.02214076e23
# energies [keV] at which xraydb's f', f'' and μ are tabulated once per structure (0.1 % steps;
# interpolated in between, which smears an absorption edge over 0.1 % of its energy)
_TABLE_KEV = np.geomspace(1.0, 100.0, 4608)


@dataclass(frozen=True)
class CrystalStructure:
    """A crystal structure.

    Attributes
    ----------
    name : str
        Name (``"Cu"``, ``"UO2"``).
    lattice : tuple
        (a, b, c) [nm] and (α, β, γ) [deg].
    basis : tuple
        ((element, (x, y, z)), ...): every atom of the cell, positions in fractions of a, b, c.
    b_factor : float
        [nm²] Isotropic Debye–Waller factor B (the intensity falls as e^{-2B s²}, s in 1/nm).
    poisson_ratio : float
        ν of the isotropic elastic fields of defects in this crystal (the structures below: the
        Voigt average of their cubic elastic constants).
    """

    name: str
    lattice: tuple
    basis: tuple
    b_factor: float = 0.005
    poisson_ratio: float = 0.3

    def __post_init__(self):
        if len(self.lattice) != 6:
            raise ConfigError("lattice must be (a, b, c, alpha, beta, gamma) in nm and degrees")
        for length, label in zip(self.lattice[:3], "abc"):
            check_positive(length, f"lattice parameter {label}", "nm")
        if not self.basis:
            raise ConfigError("a crystal structure needs at least one atom in its basis")
        object.__setattr__(self, "basis", tuple((str(el), tuple(check_vector(x, "basis position")))
                                                for el, x in self.basis))
        if np.linalg.det(self.direct_basis) <= 0:
            raise ConfigError(f"the angles {self.lattice[3:]} do not make a lattice")

    @property
    def direct_basis(self) -> np.ndarray:
        """[nm] Columns a₁, a₂, a₃ in the crystal Cartesian frame (a along x, b in the xy plane)."""
        a, b, c = self.lattice[:3]
        al, be, ga = np.radians(self.lattice[3:])
        cx = c * np.cos(be)
        cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
        cz = np.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
        return np.array([[a, b * np.cos(ga), cx], [0.0, b * np.sin(ga), cy], [0.0, 0.0, cz]])

    @property
    def reciprocal_basis(self) -> np.ndarray:
        """[1/nm] Columns b₁, b₂, b₃ with aᵢ·bⱼ = 2π δᵢⱼ, so that G_hkl = B @ (h, k, l)."""
        return 2 * np.pi * np.linalg.inv(self.direct_basis).T

    @property
    def cell_volume(self) -> float:
        """[nm³]"""
        return float(np.linalg.det(self.direct_basis))

    @property
    def formula(self) -> str:
        """Chemical formula of the cell's content (for xraydb's absorption)."""
        elements = [el for el, _ in self.basis]
        return "".join(f"{el}{elements.count(el)}" for el in dict.fromkeys(elements))

    @property
    def density(self) -> float:
        """[g/cm³] From the cell's content and volume."""
        import xraydb

        mass = sum(xraydb.atomic_mass(el) for el, _ in self.basis)
        return mass / _AVOGADRO / (self.cell_volume * 1e-21)

    def g_vectors(self, hkl) -> np.ndarray:
        """[1/nm] Bragg vectors (..., 3) in the crystal Cartesian frame for Miller indices (..., 3)."""
        return np.asarray(hkl, dtype=float) @ self.reciprocal_basis.T

    def structure_factor(self, hkl, energy_kev) -> np.ndarray:
        """F(hkl, E) [electrons per cell], complex, for Miller indices (..., 3) at energies (...,) [keV]."""
        import xraydb

        hkl = np.asarray(hkl, dtype=float)
        s = np.linalg.norm(self.g_vectors(hkl), axis=-1) / (4 * np.pi)  # sin θ / λ [1/nm]
        energy = np.broadcast_to(np.asarray(energy_kev, dtype=float), s.shape)
        total = np.zeros(s.shape, dtype=complex)
        for element, (f1, f2) in self._anomalous.items():
            f = (np.asarray(xraydb.f0(element, s.ravel() / 10)).reshape(s.shape)  # xraydb wants 1/Å
                 + np.interp(energy, _TABLE_KEV, f1) + 1j * np.interp(energy, _TABLE_KEV, f2))
            positions = np.array([x for el, x in self.basis if el == element])
            phases = np.exp(2j * np.pi * hkl @ positions.T).sum(axis=-1)
            total += f * phases
        return total * np.exp(-self.b_factor * s * s)

    def allowed(self, hkl) -> np.ndarray:
        """True where the basis does not extinguish hkl (|Σ e^{2πi h·x}| over every atom > 1e-6,
        which is exact for the basis's own extinctions whatever the form factors)."""
        hkl = np.asarray(hkl, dtype=float)
        positions = np.array([x for _, x in self.basis])
        weights = np.array([_ELECTRONS.get(el, 1.0) for el, _ in self.basis])
        return np.abs(np.exp(2j * np.pi * hkl @ positions.T) @ weights) > 1e-6 * weights.sum()

    @cached_property
    def _anomalous(self) -> dict:
        """Per element, Chantler's f'(E) and f''(E) on _TABLE_KEV."""
        import xraydb

        return {el: (xraydb.f1_chantler(el, _TABLE_KEV * 1e3), xraydb.f2_chantler(el, _TABLE_KEV * 1e3))
                for el in dict.fromkeys(el for el, _ in self.basis)}

    @cached_property
    def _attenuation(self) -> np.ndarray:
        import xraydb

        return np.asarray(xraydb.material_mu(self.formula, _TABLE_KEV * 1e3, density=self.density)) * 1e-7

    def linear_attenuation(self, energy_kev) -> np.ndarray:
        """[1/nm] Linear attenuation coefficient μ(E) (photo-absorption and scattering, xraydb),
        interpolated log-log in a table of 0.1 % steps."""
        e = np.asarray(energy_kev, dtype=float)
        return np.exp(np.interp(np.log(e), np.log(_TABLE_KEV), np.log(self._attenuation)))


# atomic numbers of the elements used below, only to weight the extinction test
_ELECTRONS = {"O": 8, "F": 9, "Ca": 20, "Ni": 28, "Cu": 29, "Zr": 40, "Pd": 46, "Ag": 47, "Ce": 58, "Pt": 78,
              "Au": 79, "U": 92}

_FCC = ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0))


def fcc_structure(material) -> CrystalStructure:
    """The fcc metal `material` (a name in :data:`braggscope.materials.MATERIALS`)."""
    from ..materials import get_material

    mat = get_material(material)
    a = mat.lattice_parameter
    return CrystalStructure(mat.name, (a, a, a, 90.0, 90.0, 90.0), tuple((mat.name, x) for x in _FCC),
                            poisson_ratio=mat.poisson_ratio)


def fluorite_structure(name, cation, anion, lattice_parameter, elastic_constants) -> CrystalStructure:
    """A fluorite-type (CaF₂, Fm-3m) crystal: cations on the fcc sites, anions at (¼,¼,¼) + fcc;
    `elastic_constants` (C11, C12, C44) [GPa] give its Poisson ratio."""
    a = float(lattice_parameter)
    anions = tuple((anion, tuple(np.add(x, s) % 1.0)) for x in _FCC for s in ((0.25,) * 3, (0.75,) * 3))
    return CrystalStructure(name, (a, a, a, 90.0, 90.0, 90.0), tuple((cation, x) for x in _FCC) + anions,
                            poisson_ratio=voigt_poisson_ratio(*elastic_constants))


STRUCTURES = {name: fcc_structure(name) for name in MATERIALS} | {
    # a at room temperature [nm]: UO2 0.5470, CeO2 0.5411, cubic ZrO2 (as the Y-stabilised phase) 0.5135;
    # C11, C12, C44 [GPa]: UO2 from Wachtman et al., J. Nucl. Mater. 16, 39 (1965); CeO2 from Nakajima et
    # al., Phys. Rev. B 50, 13297 (1994); round values typical of Y-stabilised cubic zirconia
    "UO2": fluorite_structure("UO2", "U", "O", 0.5470, (396.0, 121.0, 64.1)),
    "CeO2": fluorite_structure("CeO2", "Ce", "O", 0.5411, (403.0, 105.0, 60.0)),
    "ZrO2": fluorite_structure("ZrO2", "Zr", "O", 0.5135, (400.0, 100.0, 60.0)),
}


def get_structure(name) -> CrystalStructure:
    """The structure called `name` (case-insensitive), or `name` if it already is one."""
    if isinstance(name, CrystalStructure):
        return name
    for key, structure in STRUCTURES.items():
        if str(name).lower() == key.lower():
            return structure
    raise ConfigError(f"unknown crystal structure {name!r}; choose one of {', '.join(STRUCTURES)}")
