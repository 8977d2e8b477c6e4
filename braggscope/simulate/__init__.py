"""Forward simulator of defective fcc nanocrystals and their Bragg coherent diffraction.

Crystal shapes (:mod:`.shapes`), defect displacement fields (:mod:`.dislocations`,
:mod:`.planar`, :mod:`.fields`), the object and its ground truth on a grid (:mod:`.sample`),
continuum and atomistic kinematical diffraction (:mod:`.diffraction`), the detector
(:mod:`.detector`) and the whole chain (:func:`simulate_bcdi`); transmission electron micrographs
of the same defects in :mod:`.tem` (two-beam diffraction contrast, Fresnel contrast, the camera);
Laue microdiffraction of defective polycrystals in :mod:`.laue` (with :mod:`.structure` and
:mod:`.polycrystal`).

Examples
--------
>>> from braggscope.simulate import Crystal, truncated_octahedron, simulate_sample
>>> xtal = Crystal(truncated_octahedron(40.0), "Pt")
>>> edge = xtal.dislocation(burgers=(0.5, 0, 0.5), line=(1, -1, 1))
>>> s = simulate_sample(xtal, [edge], shape=(16, 16, 16), voxel_size=4.0, hkl=(1, 1, 1))
>>> s.obj.dtype, s.obj.shape, bool(s.dislocation_mask.any())
(dtype('complex64'), (16, 16, 16), True)
"""
from .anisotropic import AnisotropicDislocation, AnisotropicLoop, cubic_stiffness, rotate_stiffness
from .bcdi import BCDIData, align_to_geometry, simulate_bcdi
from .crystal import Crystal
from .detector import Detector, Measurement, gap_mask, measure, partially_coherent, pixel_integrated
from .diffraction import (atomistic_amplitude, circumradius, continuum_amplitude_on, continuum_intensity, fcc_atoms,
                          kinematic_amplitude, orthogonal_q_basis, to_ase_atoms)
from .dislocations import DislocationLoop, StraightDislocation, circular_loop_vertices
from .fields import DilatationCentre, SmoothStrain, SurfaceRelaxation
from .planar import StackingFault, TwinBoundary, twin_shares_reflection
from .random import REFLECTIONS, random_crystal, random_defects
from .sample import Sample, displacement_and_strain, displacement_field, grid_points, object_at, simulate_sample, \
    support_fraction
from .shapes import (Ellipsoid, Polyhedron, Sphere, cube, cuboctahedron, ellipsoid, octahedron,
                     orientation_from_axes, random_faceted, random_orientation, sphere, truncated_octahedron,
                     wulff)

__all__ = [
    "AnisotropicDislocation", "AnisotropicLoop", "cubic_stiffness", "rotate_stiffness", "BCDIData", "align_to_geometry", "simulate_bcdi", "Crystal", "Detector", "Measurement", "gap_mask", "measure",
    "pixel_integrated", "partially_coherent",
    "atomistic_amplitude", "circumradius", "continuum_amplitude_on", "continuum_intensity", "fcc_atoms", "kinematic_amplitude",
    "orthogonal_q_basis", "to_ase_atoms", "DislocationLoop", "StraightDislocation", "circular_loop_vertices", "DilatationCentre",
    "SmoothStrain", "SurfaceRelaxation", "StackingFault", "TwinBoundary", "twin_shares_reflection",
    "REFLECTIONS", "random_crystal", "random_defects", "Sample", "displacement_and_strain", "displacement_field", "grid_points", "object_at",
    "simulate_sample", "support_fraction", "Ellipsoid", "Polyhedron", "Sphere", "cube", "cuboctahedron",
    "ellipsoid", "octahedron", "orientation_from_axes", "random_faceted", "random_orientation", "sphere",
    "truncated_octahedron", "wulff",
]
