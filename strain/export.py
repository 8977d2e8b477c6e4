"""Strain results on disk: HDF5 for pipelines, .vti for ParaView (through pyvista), and back.

HDF5 layout (NeXus-like, one entry):
/entry_1/strain_1/{amplitude, phase, displacement, strain, support[, strain_spread]} with their
units, the voxel edges `voxel` [nm] (3×3 columns) and `voxel_size` [nm] (orthogonal grids),
`g_vector` [1/nm], `frame`, `phase_ramp` [rad/voxel], `ramp_strain`, the summary statistics
(JSON) and the configuration used under /entry_1/strain_1/process_1/configuration.

The strain tensor of several reflections (:class:`~braggscope.strain.StrainTensor`):
/entry_1/tensor_1/{gradient (3, 3, Z, Y, X), support[, misfit]}, `voxel`, `g_vectors` (n, 3),
`ramp_gradient`, `frame` and the configuration under process_1/configuration.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from braggscope.errors import ConfigError, FileFormatError, OptionalDependencyError
from braggscope.io.cxi import _h5py, _read_dict, _write_dict, atomic_path

from .field import StrainField
from .tensor import StrainTensor

__all__ = ["write_strain", "read_strain", "write_vti", "write_strain_tensor", "read_strain_tensor"]

_MAPS = {"amplitude": "", "phase": "rad", "displacement": "nm", "strain": "", "strain_spread": ""}
_GROUP = "/entry_1/strain_1"


def write_strain(path, field: StrainField, *, config=None) -> Path:
    """Write a :class:`StrainField` (maps, grid, G, summary statistics, `config`) to HDF5,
    atomically."""
    h5py = _h5py()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        group = _new_entry(f, "strain_1", "strain")
        for name, unit in _MAPS.items():
            value = getattr(field, name)
            if value is None:
                continue
            ds = group.create_dataset(name, data=value, chunks=True, compression="gzip", shuffle=True)
            ds.attrs["units"] = unit or "1"
        group.create_dataset("support", data=field.support.astype(np.uint8), chunks=True, compression="gzip")
        group.create_dataset("voxel", data=field.voxel).attrs["units"] = "nm"
        if field.voxel_size is not None:
            group.create_dataset("voxel_size", data=field.voxel_size).attrs["units"] = "nm"
        group.create_dataset("g_vector", data=field.g_vector).attrs["units"] = "1/nm"
        group.create_dataset("frame", data=field.frame)
        group.create_dataset("phase_ramp", data=np.asarray(field.phase_ramp, float)).attrs["units"] = "rad/voxel"
        group.create_dataset("ramp_strain", data=float(field.ramp_strain))
        group.create_dataset("summary", data=json.dumps(field.summary())).attrs["format"] = "json"
        process = group.create_group("process_1")
        process.attrs["NX_class"] = "NXprocess"
        _write_dict(process.create_group("configuration"), (config or {}) | {"metadata": field.metadata})
    return Path(path)


def _new_entry(f, name, signal):
    f.attrs.update({"creator": "braggscope", "default": "entry_1", "file_time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    entry = f.create_group("entry_1")
    entry.attrs.update({"NX_class": "NXentry", "default": name})
    group = entry.create_group(name)
    group.attrs.update({"NX_class": "NXdata", "signal": signal})
    return group


def write_strain_tensor(path, tensor: StrainTensor, *, config=None) -> Path:
    """Write a :class:`~braggscope.strain.StrainTensor` (gradient, support, misfit, grid, the
    Bragg vectors, `config`) to HDF5, atomically."""
    h5py = _h5py()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        group = _new_entry(f, "tensor_1", "gradient")
        group.create_dataset("gradient", data=tensor.gradient, chunks=True, compression="gzip", shuffle=True)
        group["gradient"].attrs.update({"units": "1", "long_name": "du_i/dr_k, components (z, y, x)"})
        group.create_dataset("support", data=tensor.support.astype(np.uint8), chunks=True, compression="gzip")
        if tensor.misfit is not None:
            group.create_dataset("misfit", data=tensor.misfit, chunks=True, compression="gzip")
        group.create_dataset("voxel", data=tensor.voxel).attrs["units"] = "nm"
        group.create_dataset("g_vectors", data=tensor.g_vectors).attrs["units"] = "1/nm"
        group.create_dataset("ramp_gradient", data=tensor.ramp_gradient)
        group.create_dataset("frame", data=tensor.frame)
        process = group.create_group("process_1")
        process.attrs["NX_class"] = "NXprocess"
        _write_dict(process.create_group("configuration"), (config or {}) | {"metadata": tensor.metadata})
    return Path(path)


@contextmanager
def _results(path, group, what):
    """(the HDF5 `group` of a results file, its metadata, its frame name), open while in the
    context; a clear error where the file cannot be read or holds no such group."""
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise FileFormatError(f"cannot read {path} as HDF5: {err}") from None
    with f:
        if group not in f:
            raise FileFormatError(f"{path} has no {what} at {group}; write it with `braggscope strain`")
        g = f[group]
        meta = _read_dict(g["process_1/configuration"]).get("metadata", {}) if "process_1/configuration" in g else {}
        frame = g["frame"][()]
        yield g, meta, frame.decode() if isinstance(frame, bytes) else str(frame)


def read_strain_tensor(path) -> StrainTensor:
    """Read a strain-tensor file written by :func:`write_strain_tensor`."""
    with _results(path, "/entry_1/tensor_1", "strain tensor (several reflections)") as (g, meta, frame):
        return StrainTensor(gradient=g["gradient"][()], support=g["support"][()] > 0,
                            misfit=g["misfit"][()] if "misfit" in g else None, g_vectors=g["g_vectors"][()],
                            voxel=g["voxel"][()], ramp_gradient=g["ramp_gradient"][()], frame=frame, metadata=meta)


def read_strain(path) -> StrainField:
    """Read a strain file written by :func:`write_strain`."""
    with _results(path, _GROUP, "strain results") as (g, meta, frame):
        maps = {name: g[name][()] if name in g else None for name in _MAPS}
        return StrainField(**maps, support=g["support"][()] > 0, voxel=g["voxel"][()], g_vector=g["g_vector"][()],
                           frame=frame, phase_ramp=tuple(g["phase_ramp"][()]), ramp_strain=float(g["ramp_strain"][()]),
                           metadata=meta)


def write_vti(path, field: StrainField) -> Path:
    """Write the maps as a VTK image (.vti) for ParaView: point data amplitude, phase,
    displacement [nm], strain, support (and strain_spread), spacing = the voxel [nm], the
    origin at the grid's centre voxel. Needs an orthogonal grid (resample a detector-frame
    field first) and pyvista."""
    if field.voxel_size is None:
        raise ConfigError("a .vti image needs an orthogonal grid with cubic voxels; resample the field first "
                          "(braggscope.strain.resample)")
    try:
        import pyvista
    except ImportError:
        raise OptionalDependencyError("pyvista", "viz") from None
    shape = field.strain.shape
    h = field.voxel_size
    grid = pyvista.ImageData(dimensions=shape[::-1], spacing=(h,) * 3,
                             origin=tuple(-(n // 2) * h for n in shape[::-1]))  # (x, y, z): x runs fastest
    for name in _MAPS:
        value = getattr(field, name)
        if value is not None:
            grid.point_data[name] = np.ascontiguousarray(value, np.float32).ravel()
    grid.point_data["support"] = field.support.astype(np.uint8).ravel()
    path = Path(path)
    with atomic_path(path) as tmp:
        staged = tmp.with_name(tmp.name + ".vti")  # pyvista picks the writer from the suffix
        try:
            grid.save(staged)
            os.replace(staged, tmp)
        finally:
            if staged.exists():
                staged.unlink()
    return path
