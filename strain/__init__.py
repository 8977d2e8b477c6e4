"""Phase → displacement → strain, and the detector-to-lab geometry (issue: strain maps).

>>> from braggscope.strain import strain_field, to_orthogonal, phase_gradient
"""
from .average import average_strain
from .corrections import (apodize, beam_path_length, correct_refraction, refraction_path, refraction_share,
                          refractive_index, twin_by_refraction)
from .export import read_strain, read_strain_tensor, write_strain, write_strain_tensor, write_vti
from .field import (StrainField, crystal_size, strain_field, support_from_amplitude, surface_layers, unwrap_phase,
                    voxel_matrix)
from .frames import crystal_rotation, resample, rotation_to_axis, to_orthogonal
from .gradient import phase_gradient, phase_steps
from .reflections import TensorResult, tensor_from_results
from .tensor import OrientationFit, StrainTensor, align_reflections, orientation_from_reflections, strain_tensor

__all__ = ["average_strain", "apodize", "beam_path_length", "refraction_path", "correct_refraction", "refractive_index",
           "read_strain", "write_strain", "write_vti", "read_strain_tensor", "write_strain_tensor", "StrainField",
           "strain_field", "support_from_amplitude", "surface_layers", "unwrap_phase", "voxel_matrix", "crystal_size", "crystal_rotation", "resample",
           "rotation_to_axis", "to_orthogonal", "phase_gradient", "phase_steps", "refraction_share", "twin_by_refraction",
           "StrainTensor", "strain_tensor", "align_reflections", "OrientationFit", "orientation_from_reflections",
           "TensorResult", "tensor_from_results"]
