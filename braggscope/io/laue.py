"""Laue frames on disk: HDF5 (the frame, the calibration, the beam and the simulator's truth) and TIFF.

Layout (NeXus-like, one entry)::

    /entry/instrument/detector/data          uint16 (rows, cols) counts
    /entry/instrument/detector/calibration   [dd (mm), xcen, ycen (pixel), xbet, xgam (deg)]
    /entry/instrument/detector/x_pixel_size  [mm] (and y_pixel_size)
    /entry/instrument/source/band            [emin, emax] (keV), critical_energy (keV)
    /entry/instrument/beam/fwhm              [nm], incidence [deg]
    /entry/ground_truth/expected, saturated, grain_map, voxel_size, spots (JSON), grains (JSON)

Written atomically (a temporary name, then a rename), as every braggscope output.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import FileFormatError
from ..simulate.laue import Beam, LaueDetector, LaueFrame, LauePattern, Spectrum
from .cxi import _h5py, atomic_path

__all__ = ["write_laue", "read_laue", "read_det", "read_frame"]


def write_laue(path, frame: LaueFrame, detector: LaueDetector, beam: Beam, *, pattern: LauePattern | None = None,
               grain_map=None, voxel_size=None, tiff=None) -> Path:
    """Write `frame` with its geometry (and the simulator's truth if `pattern` is given) to the
    HDF5 file `path`; also the counts to the TIFF file `tiff` if given."""
    h5py = _h5py()
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        det = f.create_group("entry/instrument/detector")
        det.create_dataset("data", data=frame.counts, compression="gzip", shuffle=True)
        det["calibration"] = [detector.distance, detector.xcen, detector.ycen, detector.xbet, detector.xgam]
        det["x_pixel_size"] = det["y_pixel_size"] = detector.pixel_size
        src = f.create_group("entry/instrument/source")
        src["band"] = [beam.spectrum.emin, beam.spectrum.emax]
        src["critical_energy"] = beam.spectrum.critical_energy
        b = f.create_group("entry/instrument/beam")
        b["fwhm"], b["incidence"] = beam.fwhm, beam.incidence
        if pattern is not None:
            truth = f.create_group("entry/ground_truth")
            truth.create_dataset("expected", data=frame.expected.astype(np.float32), compression="gzip")
            truth.create_dataset("saturated", data=frame.saturated, compression="gzip")
            truth["spots"] = json.dumps(pattern.spots)
            truth["grains"] = json.dumps(pattern.grains)
            if grain_map is not None:
                truth.create_dataset("grain_map", data=grain_map, compression="gzip")
                truth["voxel_size"] = float(voxel_size)
    if tiff is not None:
        import tifffile

        with atomic_path(Path(tiff)) as tmp:
            tifffile.imwrite(tmp, frame.counts)
    return path


def read_laue(path) -> dict:
    """Read a Laue HDF5 file: 'counts', 'detector' (LaueDetector), 'beam' (Beam) and, if the file
    holds the simulator's truth, 'grains' and 'spots' (lists of dicts)."""
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            det = f["entry/instrument/detector"]
            counts = det["data"][()]
            dd, xcen, ycen, xbet, xgam = det["calibration"][()]
            detector = LaueDetector(distance=dd, xcen=xcen, ycen=ycen, xbet=xbet, xgam=xgam,
                                    pixel_size=float(det["x_pixel_size"][()]), shape=tuple(counts.shape))
            src, b = f["entry/instrument/source"], f["entry/instrument/beam"]
            emin, emax = src["band"][()]
            beam = Beam(fwhm=float(b["fwhm"][()]), incidence=float(b["incidence"][()]),
                        spectrum=Spectrum(float(emin), float(emax), float(src["critical_energy"][()])))
            out = {"counts": counts, "detector": detector, "beam": beam}
            if "entry/ground_truth" in f:
                truth = f["entry/ground_truth"]
                out["grains"] = json.loads(truth["grains"][()])
                out["spots"] = json.loads(truth["spots"][()])
    except (OSError, KeyError) as err:
        raise FileFormatError(f"{path}: not a braggscope Laue file ({err}); expected "
                              "/entry/instrument/detector/data and its calibration") from None
    return out


def read_det(path) -> LaueDetector:
    """The detector of a LaueTools calibration file (.det): its first line holds
    dd [mm], xcen, ycen [pixel], xbet, xgam [deg], pixel size [mm], and the frame's rows and columns,
    comma-separated."""
    path = Path(path)
    try:
        first = path.read_text().splitlines()[0]
        values = [float(v) for v in first.replace("[", "").replace("]", "").split(",")[:8]]
    except (OSError, IndexError, ValueError) as err:
        raise FileFormatError(f"{path}: not a LaueTools .det calibration file ({err}); its first line must be "
                              "'dd, xcen, ycen, xbet, xgam, pixelsize, rows, cols'") from None
    if len(values) < 8:
        raise FileFormatError(f"{path}: the first line has {len(values)} numbers; a .det file has 8 "
                              "(dd, xcen, ycen, xbet, xgam, pixelsize, rows, cols)")
    dd, xcen, ycen, xbet, xgam, pixel, rows, cols = values
    return LaueDetector(distance=dd, xcen=xcen, ycen=ycen, xbet=xbet, xgam=xgam, pixel_size=pixel,
                        shape=(int(rows), int(cols)))


def read_frame(path) -> np.ndarray:
    """The counts of a Laue frame in a TIFF file (as detectors and LaueTools write them)."""
    import tifffile

    try:
        counts = tifffile.imread(Path(path))
    except (OSError, ValueError) as err:
        raise FileFormatError(f"{path}: cannot read the frame ({err})") from None
    if counts.ndim != 2:
        raise FileFormatError(f"{path}: a Laue frame is one 2-D image, got shape {counts.shape}")
    return counts
