"""The strain tensor of one crystal from the result files of its reconstructions at several
reflections (what ``braggscope strain R1 R2 R3 ...`` and the pipeline's [tensor] step run).

Each file must say its grid (q_basis, g_vector, frame: braggscope's result files do) and, unless
given, its reflection and material; a beamline scan's file also holds its sample rotation (the
goniometer's sample circles at the scan's centre), which turns its lab frame back into the
sample's. A file without one is taken as already in the sample frame (a simulation on the
sample's grid).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from braggscope.errors import ConfigError

from .field import support_from_amplitude
from .frames import to_orthogonal
from .tensor import StrainTensor, align_reflections, orientation_from_reflections, strain_tensor

__all__ = ["TensorResult", "tensor_from_results"]


@dataclass(frozen=True)
class TensorResult:
    """What :func:`tensor_from_results` found.

    Attributes
    ----------
    tensor : StrainTensor
        In the sample frame, or the crystal's where asked.
    orientation : (3, 3) ndarray
        U (crystal → sample), fitted from the measured G unless given.
    config : dict
        The inputs, hkls, alignment (shifts, twins), orientation fit and where each sample
        rotation came from, for the output file.
    dislocations : list of dict
        The Burgers vector of each dislocation line found
        (:func:`braggscope.identify.burgers_vectors`; the sample frame, and the cubic axes).
    """

    tensor: StrainTensor
    orientation: np.ndarray
    config: dict
    dislocations: list


def _reflection(path, hkl, material, isosurface):
    """One reconstruction, read for the tensor: its object and support, hkl, material, voxel
    edges, the turn of its lab frame into the sample's, and G in the sample frame (the measured
    direction, the length of the material's G_hkl)."""
    from braggscope.geometry import object_voxel_from_q_basis
    from braggscope.io import read_result
    from braggscope.materials import get_material
    from braggscope.physics import bragg_vector

    obj, support, _, config = read_result(path)
    hkl, material = hkl or config.get("hkl"), material or config.get("material")
    if hkl is None or material is None:
        raise ConfigError(f"{path} does not say its reflection and material (hkl, material): the strain tensor needs "
                          "each file's own")
    if support is None or isosurface is not None:
        support = support_from_amplitude(obj, isosurface or 0.3)
    if "q_basis" not in config or "g_vector" not in config:
        raise ConfigError(f"{path} carries no grid (q_basis, g_vector): reconstruct it with `braggscope reconstruct` "
                          "from a data file that has one")
    voxel = object_voxel_from_q_basis(config["q_basis"], np.shape(obj), frame=config.get("frame", "orthogonal"))
    turn = np.asarray(config.get("sample_rotation", np.eye(3)), float).T  # lab → sample
    g_lab = np.asarray(config["g_vector"], float)
    g_norm = np.linalg.norm(bragg_vector(hkl, lattice_parameter=get_material(material).lattice_parameter))
    return {"obj": obj, "support": np.asarray(support, bool), "hkl": tuple(int(v) for v in hkl), "material": material,
            "voxel": voxel, "voxel_size": abs(np.linalg.det(voxel)) ** (1 / 3), "turn": turn,
            "g_vector": g_norm * (turn @ g_lab) / np.linalg.norm(g_lab),
            "rotation_from": "file" if "sample_rotation" in config else "none (taken as the sample frame)"}


def _on_one_grid(inputs, h):
    """The reconstructions resampled onto one orthogonal sample-frame grid of voxel `h` [nm],
    the smallest that holds them all (each centred on index N // 2)."""
    from braggscope.simulate.diffraction import _pad_centred

    resampled = [to_orthogonal(r["obj"], r["support"], r["voxel"], rotation=r["turn"], voxel_size=h)[0]
                 for r in inputs]
    shape = tuple(max(o.shape[a] for o in resampled) for a in range(3))
    return [_pad_centred(o, shape) for o in resampled]


def tensor_from_results(paths, *, hkls=None, material=None, voxel_size=None, isosurface=None, remove_ramp=True,
                        order=4, frame="sample", orientation=None) -> TensorResult:
    """The strain tensor of one crystal from its reconstructions at n ≥ 3 reflections.

    Each is turned into the sample frame by its file's sample rotation and resampled (trilinear)
    onto one orthogonal grid, the runs are aligned (:func:`align_reflections`: shift, twins by the
    misfit), the tensor taken (:func:`strain_tensor`), the orientation fitted from the measured G
    (:func:`orientation_from_reflections`) and the Burgers vector of every dislocation line
    determined (:func:`braggscope.identify.burgers_vectors`).

    Parameters
    ----------
    paths : sequence of path
        Result files (braggscope's CXI, with their grid).
    hkls : sequence of (3,) int, optional
        Each file's reflection, where the files do not say it (or say one for all).
    material : str, optional
        The crystal's material, where the files do not say it.
    voxel_size : float, optional
        [nm] The common grid's voxel; default the coarsest input's.
    isosurface : float, optional
        Supports at this fraction of each object's largest amplitude (default: the files'
        supports, then 0.3 after the alignment).
    remove_ramp, order
        As :func:`strain_tensor`.
    frame : {'sample', 'crystal'}
        The tensor's components: the sample frame's, or the cubic axes of `orientation`.
    orientation : (3, 3) array_like, optional
        U to use instead of the fitted one.
    """
    from braggscope.identify.burgers import burgers_vectors
    from braggscope.materials import get_material

    if frame not in ("sample", "crystal"):
        raise ConfigError(f"several reflections meet in the sample frame: frame 'sample' or 'crystal', not {frame!r}")
    paths = list(paths)
    hkls = [None] * len(paths) if hkls is None else list(hkls)
    if len(hkls) != len(paths):
        raise ConfigError(f"{len(hkls)} reflections for {len(paths)} result files")
    inputs = [_reflection(p, k, material, isosurface) for p, k in zip(paths, hkls)]
    materials = {r["material"] for r in inputs}
    if len(materials) != 1:
        raise ConfigError(f"the reconstructions name different materials ({', '.join(sorted(materials))}); "
                          "one crystal has one")
    h = voxel_size or max(r["voxel_size"] for r in inputs)
    objects, g = _on_one_grid(inputs, h), [r["g_vector"] for r in inputs]
    threshold = isosurface or 0.3
    aligned, info = align_reflections(objects, g_vectors=g, voxel_size=h, threshold=threshold)
    supports = [support_from_amplitude(o, threshold) for o in aligned]
    tensor = strain_tensor(aligned, supports, g_vectors=g, voxel_size=h, remove_ramp=remove_ramp, order=order,
                           frame="sample")
    lattice = get_material(inputs[0]["material"]).lattice_parameter
    fit = orientation_from_reflections([r["hkl"] for r in inputs], g, lattice_parameter=lattice)
    u = fit.orientation if orientation is None else np.asarray(orientation, float).reshape(3, 3)
    dislocations = burgers_vectors(aligned, supports, g_vectors=g, voxel_size=h, orientation=u,
                                   lattice_parameter=lattice)
    if frame == "crystal":
        tensor = tensor.in_frame(u.T, frame="crystal")
    tensor = replace(tensor, metadata=tensor.metadata | {
        "hkls": [list(r["hkl"]) for r in inputs], "orientation": u.tolist(),
        "orientation_misfit_deg": fit.misfit_deg.tolist(), "twins": [i["twin"] for i in info],
        "dislocations": _jsonable(dislocations)})
    config = {"inputs": [str(p) for p in paths], "hkls": [list(r["hkl"]) for r in inputs], "order": order,
              "isosurface": threshold, "alignment": info, "orientation": u.tolist(),
              "orientation_misfit_deg": fit.misfit_deg.tolist(), "lattice_strain": fit.lattice_strain.tolist(),
              "sample_rotation_from": [r["rotation_from"] for r in inputs], "dislocations": _jsonable(dislocations)}
    return TensorResult(tensor, u, config, dislocations)


def _jsonable(dislocations):
    return [{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in d.items()} for d in dislocations]
