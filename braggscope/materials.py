"""Face-centred cubic metals: lattice parameter, cubic elastic constants, isotropic averages.

Lattice parameters at room temperature [nm]; elastic constants C11, C12, C44 [GPa] at room
temperature (G. Simmons and H. Wang, *Single Crystal Elastic Constants and Calculated Aggregate
Properties*, MIT Press 1971); Debye temperatures [K] from C. Kittel, *Introduction to Solid State
Physics* (Wiley, 8th ed.), table 5.1. The isotropic shear modulus and Poisson ratio are Voigt averages,
which is what isotropic dislocation theory uses for these metals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

__all__ = ["Material", "get_material", "MATERIALS", "voigt_poisson_ratio"]


@dataclass(frozen=True, kw_only=True)
class Material:
    """An fcc metal.

    Attributes
    ----------
    name : str
        Chemical symbol.
    lattice_parameter : float
        [nm] Cubic lattice parameter a.
    c11, c12, c44 : float
        [GPa] Cubic elastic constants.
    atomic_number : int
        Z, used as the (q-independent) atomic form factor of the kinematical sum.
    stacking_fault_energy : float
        [mJ/m²] Intrinsic stacking-fault energy γ_SF.
    debye_temperature : float
        [K] Θ_D, which sets the thermal vibration of the atoms (the Debye–Waller factor).
    """

    name: str
    lattice_parameter: float
    c11: float
    c12: float
    c44: float
    atomic_number: int
    stacking_fault_energy: float
    debye_temperature: float

    @property
    def shear_modulus(self) -> float:
        """[GPa] Voigt average G_V = (C11 - C12 + 3 C44) / 5."""
        return (self.c11 - self.c12 + 3 * self.c44) / 5

    @property
    def bulk_modulus(self) -> float:
        """[GPa] K = (C11 + 2 C12) / 3 (exact for cubic crystals)."""
        return (self.c11 + 2 * self.c12) / 3

    @property
    def poisson_ratio(self) -> float:
        """Voigt-average Poisson ratio (:func:`voigt_poisson_ratio`)."""
        return voigt_poisson_ratio(self.c11, self.c12, self.c44)

    @property
    def zener_anisotropy(self) -> float:
        """A = 2 C44 / (C11 - C12); 1 for an isotropic crystal."""
        return 2 * self.c44 / (self.c11 - self.c12)

    def d_spacing(self, hkl) -> float:
        """[nm] Spacing of the (hkl) lattice planes, a / sqrt(h² + k² + l²)."""
        h = np.asarray(hkl, dtype=float)
        return self.lattice_parameter / float(np.sqrt(h @ h))


def voigt_poisson_ratio(c11, c12, c44) -> float:
    """Voigt-average Poisson ratio ν = (3K - 2G) / (2 (3K + G)) of a cubic crystal with elastic
    constants C11, C12, C44 (any one unit), K = (C11 + 2 C12) / 3, G = (C11 - C12 + 3 C44) / 5."""
    k, g = (c11 + 2 * c12) / 3, (c11 - c12 + 3 * c44) / 5
    return (3 * k - 2 * g) / (2 * (3 * k + g))


MATERIALS = {
    m.name: m
    for m in (
        Material(name="Pt", lattice_parameter=0.39242, c11=346.7, c12=250.7, c44=76.5,
                 atomic_number=78, stacking_fault_energy=322.0, debye_temperature=240.0),
        Material(name="Au", lattice_parameter=0.40782, c11=192.9, c12=163.8, c44=41.5,
                 atomic_number=79, stacking_fault_energy=32.0, debye_temperature=165.0),
        Material(name="Ni", lattice_parameter=0.35240, c11=246.5, c12=147.3, c44=124.7,
                 atomic_number=28, stacking_fault_energy=125.0, debye_temperature=450.0),
        Material(name="Cu", lattice_parameter=0.36149, c11=168.4, c12=121.4, c44=75.4,
                 atomic_number=29, stacking_fault_energy=45.0, debye_temperature=343.0),
        Material(name="Ag", lattice_parameter=0.40853, c11=124.0, c12=93.4, c44=46.1,
                 atomic_number=47, stacking_fault_energy=16.0, debye_temperature=225.0),
        Material(name="Pd", lattice_parameter=0.38907, c11=227.1, c12=176.0, c44=71.7,
                 atomic_number=46, stacking_fault_energy=180.0, debye_temperature=274.0),
    )
}


def get_material(name) -> Material:
    """Return the :class:`Material` called `name` (case-insensitive), or `name` if it is one."""
    if isinstance(name, Material):
        return name
    for key, mat in MATERIALS.items():
        if str(name).lower() == key.lower():
            return mat
    raise ConfigError(f"unknown material {name!r}; choose one of {', '.join(MATERIALS)}")
