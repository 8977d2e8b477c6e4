"""CXI (HDF5) files laid out as PyNX writes and reads them, plus .npz/.npy input.

Data file: intensities at /entry_1/instrument_1/detector_1/data (centred), mask beside them
(0 = valid, 1 = ignore, as PyNX), distance and x/y_pixel_size [m], the photon energy at
/entry_1/instrument_1/source_1/energy [J], and /entry_1/data_1/data a soft link to the
intensities. braggscope's own extras (q-basis, frame, reflection) go under
/entry_1/data_1/process_1/configuration and the simulator's truth under /entry_1/ground_truth.
Files are written to a temporary name and renamed: a crash never leaves half a file.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validate import check_finite
from ..errors import FileFormatError, ShapeError

__all__ = ["CXIData", "write_cxi_data", "read_data", "write_cxi_result", "read_cxi_result", "read_result", "atomic_path",
           "validate_intensity", "EV_TO_J"]

EV_TO_J = 1.602176634e-19
_DET = "/entry_1/instrument_1/detector_1"
_CONF = "/entry_1/data_1/process_1/configuration"
_TRUTH = "/entry_1/ground_truth"


def _h5py():
    import hdf5plugin  # noqa: F401  (registers bitshuffle/LZ4 and friends: ESRF files use them)
    import h5py

    return h5py


@dataclass(frozen=True, kw_only=True)
class CXIData:
    """Diffraction data read from a file.

    Attributes
    ----------
    intensity : ndarray of float32
        [photons] Centred intensities (frames first in 3-D).
    mask : ndarray of bool
        True = ignore.
    energy : float or None
        [keV]
    detector_distance : float or None
        [m]
    pixel_size : float or None
        [µm]
    config : dict
        Extra parameters stored with the data (q_basis, hkl, frame, ...).
    ground_truth : dict or None
        The simulator's truth, if the file has it.
    """

    intensity: np.ndarray
    mask: np.ndarray
    energy: float | None = None
    detector_distance: float | None = None
    pixel_size: float | None = None
    config: dict = field(default_factory=dict)
    ground_truth: dict | None = None


def validate_intensity(intensity, mask=None, *, name="intensity"):
    """Check measured intensities: 2-D or 3-D, finite, ≥ 0, some signal on unmasked pixels.

    Returns (intensity float32, mask bool)."""
    i = np.asarray(intensity)
    if i.ndim not in (2, 3):
        raise ShapeError(f"`{name}` must be 2-D (Y, X) or 3-D (Z, Y, X), got shape {i.shape}; "
                         "stack the rocking curve along axis 0", expected="(Z, Y, X)", actual=i.shape)
    if not np.issubdtype(i.dtype, np.number) or np.iscomplexobj(i):
        raise FileFormatError(f"`{name}` must hold real numbers, got dtype {i.dtype}")
    check_finite(i, name)
    if np.any(i < 0):
        raise FileFormatError(f"`{name}` has negative counts (min {i.min():g}); subtract the background "
                              "with clipping at 0, or mask those pixels")
    m = np.zeros(i.shape, bool) if mask is None else np.asarray(mask).astype(bool)
    if m.shape != i.shape:
        raise ShapeError(f"mask shape {m.shape} differs from {name} shape {i.shape}", expected=i.shape, actual=m.shape)
    if m.all():
        raise FileFormatError("the mask covers every pixel: nothing is left to use")
    if not np.any(i[~m] > 0):
        raise FileFormatError(f"`{name}` is zero on every unmasked pixel: no diffraction signal")
    return i.astype(np.float32, copy=False), m


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")  # the writer creates it (umask applies)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _put(group, name, value, units=None, compress=False):
    kw = {"chunks": True, "shuffle": True, "compression": "gzip"} if compress and np.ndim(value) >= 2 else {}
    ds = group.create_dataset(name, data=value, **kw)
    if units:
        ds.attrs["units"] = units
    return ds


def write_cxi_data(path, intensity, *, mask=None, energy=None, detector_distance=None, pixel_size=None,
                   config=None, ground_truth=None, sample_name=None) -> Path:
    """Write diffraction data (and optional simulator truth) to a CXI file, atomically.

    Parameters
    ----------
    path : str or Path
        Output file (.cxi).
    intensity : (Z, Y, X) or (Y, X) ndarray
        [photons] Centred intensities.
    mask : ndarray of bool, optional
        True = ignore (stored as 1, PyNX's convention).
    energy : float, optional
        [keV] Photon energy (stored in J).
    detector_distance : float, optional
        [m]
    pixel_size : float, optional
        [µm] (stored in m)
    config : dict, optional
        Scalars, strings and arrays stored under process_1/configuration.
    ground_truth : dict, optional
        Arrays and JSON-able values stored under /entry_1/ground_truth (dicts and lists as JSON).
    sample_name : str, optional

    Returns
    -------
    Path
    """
    intensity, mask = validate_intensity(intensity, mask)
    h5py = _h5py()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"creator": "braggscope", "default": "entry_1",
                        "file_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "HDF5_Version": h5py.version.hdf5_version})
        f.create_dataset("cxi_version", data=150)
        entry = f.create_group("entry_1")
        entry.attrs.update({"NX_class": "NXentry", "default": "data_1"})
        from .. import __version__
        entry.create_dataset("program_name", data=f"braggscope {__version__}")
        if sample_name:
            entry.create_group("sample_1").create_dataset("name", data=sample_name)
        inst = entry.create_group("instrument_1")
        inst.attrs["NX_class"] = "NXinstrument"
        if energy is not None:
            src = inst.create_group("source_1")
            src.attrs["NX_class"] = "NXsource"
            _put(src, "energy", float(energy) * 1e3 * EV_TO_J, "J")
        det = inst.create_group("detector_1")
        det.attrs["NX_class"] = "NXdetector"
        if detector_distance is not None:
            _put(det, "distance", float(detector_distance), "m")
        if pixel_size is not None:
            _put(det, "x_pixel_size", float(pixel_size) * 1e-6, "m")
            _put(det, "y_pixel_size", float(pixel_size) * 1e-6, "m")
        _put(det, "data", intensity, compress=True)
        _put(det, "mask", mask.astype(np.uint8), compress=True)
        data_1 = entry.create_group("data_1")
        data_1.attrs.update({"NX_class": "NXdata", "signal": "data",
                             "interpretation": "scaler" if intensity.ndim == 3 else "image"})
        data_1["data"] = h5py.SoftLink(f"{_DET}/data")
        proc = data_1.create_group("process_1")
        proc.attrs["NX_class"] = "NXprocess"
        proc.create_dataset("program", data="braggscope")
        _write_dict(proc.create_group("configuration"), config or {})
        if ground_truth is not None:
            _write_dict(entry.create_group("ground_truth"), ground_truth, compress=True)
        f["entry_last"] = h5py.SoftLink("/entry_1")
    return Path(path)


def _write_dict(group, values, compress=False):
    group.attrs["NX_class"] = "NXcollection"
    for key, v in values.items():
        if v is None:
            continue
        if isinstance(v, (dict, list, tuple)) and not (isinstance(v, (list, tuple)) and _is_numeric_list(v)):
            group.create_dataset(key, data=json.dumps(v))
            group[key].attrs["format"] = "json"
        else:
            _put(group, key, np.asarray(v) if not isinstance(v, str) else v, compress=compress)


def _is_numeric_list(v):
    try:
        return np.asarray(v).dtype.kind in "biuf"
    except ValueError:
        return False


def _read_dict(group):
    out = {}
    for key, ds in group.items():
        value = ds[()]
        if isinstance(value, bytes):
            value = value.decode()
        if ds.attrs.get("format") == "json":
            value = json.loads(value)
        out[key] = value
    return out


@contextmanager
def _open_entry(path):
    """Open a CXI file read-only and yield (file, newest entry path); unreadable → FileFormatError."""
    try:
        f = _h5py().File(path, "r")
    except OSError as err:
        raise FileFormatError(f"cannot read {path} as HDF5/CXI: {err}") from None
    with f:
        yield f, "/entry_last" if "entry_last" in f else "/entry_1"


def _read_cxi(path) -> CXIData:
    with _open_entry(path) as (f, entry):
        for key in (f"{entry}/instrument_1/detector_1/data", f"{entry}/data_1/data"):
            if key in f:
                intensity = f[key][()]
                break
        else:
            raise FileFormatError(f"{path} has no diffraction data at {entry}/instrument_1/detector_1/data "
                                  f"(nor {entry}/data_1/data); is it a CXI data file?")
        det = f.get(f"{entry}/instrument_1/detector_1", {})
        mask = det["mask"][()] > 0 if "mask" in det else None
        energy = f[f"{entry}/instrument_1/source_1/energy"][()] / EV_TO_J / 1e3 \
            if f"{entry}/instrument_1/source_1/energy" in f else None
        distance = float(det["distance"][()]) if "distance" in det else None
        pixel = float(det["x_pixel_size"][()]) * 1e6 if "x_pixel_size" in det else None
        config = _read_dict(f[f"{entry}/data_1/process_1/configuration"]) \
            if f"{entry}/data_1/process_1/configuration" in f else {}
        truth = _read_dict(f[f"{entry}/ground_truth"]) if f"{entry}/ground_truth" in f else None
    intensity, mask = validate_intensity(intensity, mask)
    return CXIData(intensity=intensity, mask=mask, energy=None if energy is None else float(energy),
                   detector_distance=distance, pixel_size=pixel, config=config, ground_truth=truth)


def _read_npz(path) -> CXIData:
    with np.load(path) as z:
        for key in ("data", "iobs", "intensity", "frames"):
            if key in z:
                intensity = z[key]
                break
        else:
            raise FileFormatError(f"{path} has none of the arrays 'data', 'iobs', 'intensity' or 'frames' "
                                  f"(it has {', '.join(z.files)})")
        mask = z["mask"] if "mask" in z else None
    intensity, mask = validate_intensity(intensity, mask)
    return CXIData(intensity=intensity, mask=mask)


def read_data(path) -> CXIData:
    """Read diffraction data from a CXI/HDF5 file (PyNX layout), an .npz (arrays 'data', 'iobs',
    'intensity' or 'frames', optional 'mask' with nonzero = ignore) or an .npy file."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".cxi", ".h5", ".hdf5", ".nxs"):
        return _read_cxi(path)
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".npy":
        intensity, mask = validate_intensity(np.load(path))
        return CXIData(intensity=intensity, mask=mask)
    raise FileFormatError(f"unknown data file type '{suffix}' ({path}); use .cxi, .h5, .npz or .npy")


def write_cxi_result(path, obj, support, *, llk=None, free_llk=None, history=None, config=None,
                     results=None, psf=None) -> Path:
    """Write a reconstruction as PyNX does, atomically: the object at /entry_1/image_1/data,
    the support at image_1/mask (and image_1/support linking to it), LLKs and the LLK history
    under image_1/process_1/results, every parameter under image_1/process_1/configuration,
    and /entry_last linking to the entry.

    Parameters
    ----------
    obj : ndarray of complex
        Centred object (one run).
    support : ndarray of bool
    llk, free_llk : float, optional
        Final normalised Poisson LLKs.
    history : list of dict, optional
        Per-record 'cycle', 'llk', 'free_llk', 'support_fraction' of this run.
    config : dict, optional
    results : dict, optional
        More figures for process_1/results (e.g. mode fraction, PRTF resolution).
    psf : ndarray, optional
        Centred point-spread function of partial coherence (detector pixels), written where PyNX
        writes it: image_1/instrument_1/detector_1/point_spread_function.
    """
    obj, results_extra = np.asarray(obj), results
    if obj.ndim not in (2, 3) or np.shape(support) != obj.shape:
        raise ShapeError(f"the object must be 2-D or 3-D with a support of the same shape, got {obj.shape} "
                         f"and {np.shape(support)}", expected=obj.shape, actual=np.shape(support))
    h5py = _h5py()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"creator": "braggscope", "default": "entry_1", "file_time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        f.create_dataset("cxi_version", data=150)
        entry = f.create_group("entry_1")
        entry.attrs.update({"NX_class": "NXentry", "default": "image_1"})
        image = entry.create_group("image_1")
        image.attrs.update({"NX_class": "NXdata", "signal": "data", "interpretation": "image"})
        _put(image, "data", obj.astype(np.complex64), compress=True)
        _put(image, "mask", np.asarray(support).astype(np.uint8), compress=True)
        image["support"] = h5py.SoftLink("/entry_1/image_1/mask")
        process = image.create_group("process_1")
        process.attrs["NX_class"] = "NXprocess"
        results = process.create_group("results")
        results.attrs["NX_class"] = "NXcollection"
        for name, value in (("llk_poisson", llk), ("free_llk_poisson", free_llk)):
            if value is not None:
                results.create_dataset(name, data=float(value))
        if history:
            for key in ("cycle", "llk", "free_llk", "llk_gaussian", "support_fraction"):
                if all(key in h for h in history):
                    results.create_dataset(f"history_{key}", data=np.array([h[key] for h in history], dtype=float))
        _write_dict(results, results_extra or {})
        _write_dict(process.create_group("configuration"), config or {})
        if psf is not None:
            detector = image.create_group("instrument_1").create_group("detector_1")
            _put(detector, "point_spread_function", np.asarray(psf, np.float32), compress=True)
        f["entry_last"] = h5py.SoftLink("/entry_1")
    return Path(path)


def read_result(path):
    """A reconstruction from a result file: CXI/HDF5 (ours or PyNX's), .npz (arrays 'obj',
    'object' or 'data', and 'support' or 'mask' with nonzero = crystal) or .npy (the object).

    Returns
    -------
    obj : ndarray of complex
    support : ndarray of bool or None
        None where the file holds none.
    results : dict
        LLKs and other figures of the retrieval (CXI only).
    config : dict
        The retrieval's configuration, with the data's grid and geometry when braggscope wrote it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".cxi", ".h5", ".hdf5", ".nxs"):
        obj, support, results = read_cxi_result(path)
        with _open_entry(path) as (f, entry):
            key = f"{entry}/image_1/process_1/configuration"
            config = _read_dict(f[key]) if key in f else {}
        return obj, support, results, config
    if suffix == ".npz":
        with np.load(path) as z:
            name = next((k for k in ("obj", "object", "data") if k in z), None)
            if name is None:
                raise FileFormatError(f"{path} has none of the arrays 'obj', 'object' or 'data' (it has "
                                      f"{', '.join(z.files)})")
            obj = z[name]
            support = next((z[k] != 0 for k in ("support", "mask") if k in z), None)
        return obj, support, {}, {}
    if suffix == ".npy":
        return np.load(path), None, {}, {}
    raise FileFormatError(f"unknown result file type '{suffix}' ({path}); use .cxi, .h5, .npz or .npy")


def read_cxi_result(path):
    """Read (object, support, results dict) from a result CXI file (ours or PyNX's)."""
    with _open_entry(path) as (f, entry):
        if f"{entry}/image_1/data" not in f:
            raise FileFormatError(f"{path} has no reconstruction at {entry}/image_1/data; is it a result file?")
        obj = f[f"{entry}/image_1/data"][()]
        key = f"{entry}/image_1/mask" if f"{entry}/image_1/mask" in f else f"{entry}/image_1/support"
        support = f[key][()] > 0 if key in f else np.abs(obj) > 0
        results = _read_dict(f[f"{entry}/image_1/process_1/results"]) \
            if f"{entry}/image_1/process_1/results" in f else {}
    return obj, support, results
