"""Raw rocking scans as beamlines write them, read into one type, :class:`RawScan`.

- ESRF ID01 with BLISS: one HDF5 master file, frames at ``/{sample}_{scan}.1/measurement/<detector>``,
  motors at ``instrument/positioners/{eta,phi,delta,nu,mononrj}``, the detector's calibration at
  ``instrument/<detector>/{distance,x_pixel_size,beam_center_x,...}``; frames are often
  bitshuffle/LZ4-compressed, so :mod:`hdf5plugin` is imported before h5py opens anything.
- ESRF ID01 before BLISS: a SPEC file whose detector column numbers the EDF frames (read by fabio).
- PETRA III P10: a FIO file with the motors, and the Eiger frames of a Dectris master file.
- MAX IV NanoMAX: one HDF5 file per scan (frames, the rocking motor, a snapshot of the others).
- APS 34-ID-C: TIFF frames (one per rocking angle) and a SPEC file with theta, delta, gamma;
  dark and white field images beside them.
- CXI/.npz/.npy data (PyNX's layout, or ours).

Every loader maps the diffractometer's angles onto :class:`~braggscope.geometry.Geometry`
(z along the beam, y up, x outboard; detector elevation `delta`, azimuth `gamma`, right-handed
rocking about x or y), and fails with a message that names what is missing.

=========  ==================  =========================  ==============================
beamline   rocking motor       detector elevation (δ)     detector azimuth (γ)
=========  ==================  =========================  ==============================
ID01       eta (about -x)      delta                      -nu (nu turns about -y)
           or phi (about -y)
P10        om (about -x)       del (about -x)             gam (about +y)
           or phi (about -y)
NanoMAX    gontheta (about -x) delta (about -x)           -gamma (gamma turns about -y)
           or gonphi (about -y)
34-ID-C    theta (about +y)    gamma (about -x)           delta (about +y)
=========  ==================  =========================  ==============================
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .._validate import check_choice
from ..errors import ConfigError, FileFormatError, OptionalDependencyError
from ..geometry import Geometry
from ..simulate.detector import gap_mask
from .cxi import _h5py, read_data
from .fio import read_fio
from .spec import read_spec_scan

__all__ = ["RawScan", "load_id01_bliss", "load_id01_spec", "load_p10", "load_nanomax", "load_34idc", "load_cxi",
           "load_npz_frames", "detector_gaps", "sample_rotation", "circle_rotation", "rocking_axis", "binned_geometry",
           "read_image", "DETECTOR_LAYOUTS", "DETECTOR_SEAMS", "ID01_SAMPLE_CIRCLES", "P10_SAMPLE_CIRCLES",
           "NANOMAX_SAMPLE_CIRCLES"]

# detector name → (chip gap layout of braggscope.simulate.detector, first gap pixel (row, column))
# (Dectris detectors flag their gaps and dead pixels themselves, with the integer type's largest value)
DETECTOR_LAYOUTS = {"mpx1x4": ("maxipix", (256, 256)), "mpxgaas": ("maxipix", (256, 256)),
                    "mpx4inr": ("maxipix", (256, 256)), "maxipix": ("maxipix", (256, 256))}


@dataclass(frozen=True)
class RawScan:
    """A rocking scan as measured, before any correction.

    Attributes
    ----------
    frames : (N, Y, X) ndarray of float32
        [counts] One detector frame per rocking angle.
    mask : (N, Y, X) ndarray of bool
        True = not measured (module gaps, bad pixels).
    geometry : Geometry or None
        The scan's geometry in braggscope's frame; None for data already gridded (a simulation
        on the orthogonal grid), whose grid is in `config`.
    dark, whitefield : (Y, X) ndarray or None
        [counts] The detector's dark image and flat (white) field, where the beamline records them.
    config : dict
        The file's own parameters (hkl, material, q_basis, frame, ...).
    metadata : dict
        Where it came from: beamline, file, scan, detector, motors, beam centre.
    """

    frames: np.ndarray
    mask: np.ndarray
    geometry: Geometry | None
    dark: np.ndarray | None = None
    whitefield: np.ndarray | None = None
    config: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def detector_gaps(shape, detector) -> np.ndarray:
    """(N, Y, X) mask of the chip gaps of the named `detector` (False everywhere for a detector
    without gaps or one not in :data:`DETECTOR_LAYOUTS`)."""
    layout, offset = DETECTOR_LAYOUTS.get(detector, ("none", None))
    return gap_mask(shape, layout, offset)


def _rocking_step(angles, motor):
    angles = np.asarray(angles, float)
    if angles.size < 2:
        raise FileFormatError(f"the rocking motor '{motor}' has {angles.size} position(s); a rocking scan needs ≥ 2")
    step = float(np.median(np.diff(angles)))
    if step == 0:
        raise FileFormatError(f"the rocking motor '{motor}' does not move during the scan")
    return step


def _required(values, names, where):
    missing = [n for n, v in zip(names, values) if v is None]
    if missing:
        raise FileFormatError(f"{where} does not record {', '.join(missing)}: give "
                              + ", ".join(f"`{n}`" for n in missing) + " (in the config's [geometry] section)")


def _frames_and_mask(frames, bad_pixels, detector):
    """Frames as float32 and their mask: chip gaps, the bad-pixel map, and pixels holding the
    unsigned integer type's largest value (how Eiger and Pilatus files flag gaps and dead pixels)."""
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise FileFormatError(f"expected a stack of 2-D frames (N, Y, X), got shape {frames.shape}")
    mask = detector_gaps(frames.shape, detector)
    if np.issubdtype(frames.dtype, np.unsignedinteger):
        mask |= frames == np.iinfo(frames.dtype).max
    if bad_pixels is not None:
        bad = np.asarray(bad_pixels).astype(bool)
        if bad.shape != frames.shape[1:]:
            raise FileFormatError(f"bad-pixel map {bad.shape} does not fit frames of {frames.shape[1:]}")
        mask |= bad[None]
    return frames.astype(np.float32), mask


# --- ESRF ID01 -------------------------------------------------------------------------------

def _bliss_entry(f, scan, sample):
    if sample is not None:
        entry = f"{sample}_{scan}.1"
        if entry not in f:
            raise FileFormatError(f"no entry '{entry}' in {f.filename} (entries: {', '.join(list(f)[:8])}…)")
        return entry
    matches = [k for k in f if k == f"{scan}.1" or k.endswith(f"_{scan}.1")]
    if len(matches) != 1:
        raise FileFormatError(f"{'no' if not matches else 'several'} entries for scan {scan} in {f.filename} "
                              f"({', '.join(matches) or ', '.join(list(f)[:8])}); give the sample name")
    return matches[0]


def _bliss_detector(measurement, detector, where):
    frames = [k for k in measurement if getattr(measurement[k], "ndim", 0) == 3]
    if detector is None:
        if len(frames) != 1:
            raise FileFormatError(f"{where}/measurement has {len(frames)} frame stacks ({', '.join(frames)}); "
                                  "name the detector")
        return frames[0]
    if detector not in measurement:
        raise FileFormatError(f"{where}/measurement has no detector '{detector}' (frame stacks: "
                              f"{', '.join(frames) or 'none'})")
    return detector


def _rocking_motor(given, moving, circles, where):
    """The rocking motor: `given`, else the one of `moving` (the circles that moved), which must
    be one of `circles`; a clear error where it cannot be told."""
    motor = given or (moving[0] if len(moving) == 1 else None)
    if motor not in circles or motor not in moving:
        raise FileFormatError(f"{where}: cannot tell the rocking motor (moving: {', '.join(moving) or 'none'}); "
                              f"give rocking_motor = {' or '.join(repr(c) for c in circles)}")
    return motor


def _columns_outboard(frames, mask, whitefield, flip):
    """(frames, mask, white field) with their columns reversed where `flip` (a detector whose
    columns run inboard), so that they run along +x as braggscope's do."""
    if not flip:
        return frames, mask, whitefield
    turn = lambda a: None if a is None else np.ascontiguousarray(a[..., ::-1])
    return turn(frames), turn(mask), turn(whitefield)


def _circle_axis(axis) -> np.ndarray:
    """Unit vector (z, y, x) of a circle's signed axis in xrayutilities' notation ('x+', 'y-', ...)."""
    return {"+": 1.0, "-": -1.0}[axis[1]] * np.array([axis[0] == c for c in "zyx"], float)


def circle_rotation(axis, angle) -> np.ndarray:
    """(3, 3) rotation, components (z, y, x), of a diffractometer circle that turns about `axis`
    (xrayutilities' notation: 'x+', 'y-', ...) by `angle` [deg], right-handed about the signed axis."""
    zyx = np.radians(angle) * _circle_axis(axis)
    return Rotation.from_rotvec(zyx[::-1]).as_matrix()[::-1, ::-1]  # scipy's (x, y, z) order, reversed


def sample_rotation(circles, angles) -> np.ndarray:
    """(3, 3) rotation, components (z, y, x), by which the sample `circles` ({name: axis},
    outermost first) at `angles` ({name: deg, or the positions of a scan, whose mean is taken;
    0 where not given}) turn the sample: a vector fixed in the sample reads R v in the lab. Rᵀ
    turns a reconstruction's lab frame back into the sample's (:func:`braggscope.strain.to_orthogonal`),
    where the reconstructions of several reflections meet."""
    turn = np.eye(3)
    for name, axis in circles.items():
        turn = turn @ circle_rotation(axis, float(np.mean(angles.get(name, 0.0))))
    return turn


def rocking_axis(circles, angles, rocking) -> tuple:
    """(rocking_axis, sign) of :class:`Geometry` for a rocking scan on the circle `rocking` of a
    goniometer whose sample circles are `circles` ({name: axis}, outermost first) at `angles`
    ({name: deg}): the circle's axis turned by the circles outside it; 'x' or 'y' with the sign of
    the step where it lies along one (within 10⁻⁹), else the direction (z, y, x) and sign 1."""
    outer = dict(itertools.takewhile(lambda circle: circle[0] != rocking, circles.items()))
    direction = sample_rotation(outer, angles) @ _circle_axis(circles[rocking])
    for name, unit in (("x", _circle_axis("x+")), ("y", _circle_axis("y+"))):
        for sign in (1.0, -1.0):
            if np.allclose(direction, sign * unit, atol=1e-9):
                return name, sign
    return tuple(float(v) for v in direction), 1.0


ID01_SAMPLE_CIRCLES = {"mu": "y-", "eta": "x-", "phi": "y-"}  # outermost first, as bcdi, cdiutils and PyNX have them


def _id01_geometry(motors, n_frames, *, energy, detector_distance, pixel_size, where, rocking_motor=None):
    """ID01's eta (about -x) or phi (about -y, as bcdi, cdiutils and PyNX have it), delta and nu
    (about -y) as a :class:`Geometry`; the rocking circle's axis as the circles outside it (mu,
    and eta for a phi scan) turn it."""
    moving = [m for m in ("eta", "phi") if np.size(motors.get(m, 0.0)) == n_frames and np.ptp(motors[m]) > 0]
    motor = _rocking_motor(rocking_motor, moving if rocking_motor is None else [rocking_motor], ("eta", "phi"), where)
    if np.size(motors.get(motor, 0.0)) != n_frames:
        raise FileFormatError(f"{where}: the rocking motor '{motor}' has {np.size(motors.get(motor, 0.0))} positions "
                              f"for {n_frames} frames")
    _required((energy, detector_distance, pixel_size), ("energy", "detector_distance", "pixel_size"), where)
    if "delta" not in motors:
        raise FileFormatError(f"{where}: the detector's delta is not recorded (motors: {', '.join(motors) or 'none'})")
    step = _rocking_step(motors[motor], motor)
    delta, nu = float(np.mean(motors["delta"])), float(np.mean(motors.get("nu", 0.0)))  # nu: 0 where not recorded
    axis, sign = rocking_axis(ID01_SAMPLE_CIRCLES, motors, motor)
    return Geometry(energy=energy, detector_distance=detector_distance, pixel_size=pixel_size,
                    rocking_step=sign * step, delta=delta, gamma=-nu, rocking_axis=axis)


def _value(group, key, scale=1.0):
    return float(np.asarray(group[key][()]).ravel()[0]) * scale if key in group else None


def load_id01_bliss(path, scan, *, sample=None, detector=None, rocking_motor=None, bad_pixels=None,
                    whitefield=None, energy=None, detector_distance=None, pixel_size=None) -> RawScan:
    """Scan `scan` of an ID01 BLISS master file.

    Energy [keV] (positioner ``mononrj``), distance [m] and pixel size (``instrument/<detector>``,
    stored in m, returned in µm) come from the file unless given."""
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such BLISS master file: {path}")
    with h5py.File(path, "r") as f:
        entry = _bliss_entry(f, scan, sample)
        for part in ("measurement", "instrument/positioners"):
            if f"{entry}/{part}" not in f:
                raise FileFormatError(f"{path}: {entry} has no '{part}' group; is it a BLISS scan?")
        det = _bliss_detector(f[f"{entry}/measurement"], detector, f"{path}:{entry}")
        frames = f[f"{entry}/measurement/{det}"][()]
        motors = {k: f[f"{entry}/instrument/positioners/{k}"][()] for k in f[f"{entry}/instrument/positioners"]}
        calib = f.get(f"{entry}/instrument/{det}", {})
        energy = energy if energy is not None else _value(f[f"{entry}/instrument/positioners"], "mononrj")
        detector_distance = detector_distance if detector_distance is not None else _value(calib, "distance")
        pixel_size = pixel_size if pixel_size is not None else _value(calib, "x_pixel_size", 1e6)
        centre = [_value(calib, k) for k in ("beam_center_y", "beam_center_x")]
    frames, mask = _frames_and_mask(frames, read_image(bad_pixels, "bad-pixel"), det)
    geometry = _id01_geometry(motors, len(frames), energy=energy, detector_distance=detector_distance,
                              pixel_size=pixel_size, where=f"{path}:{entry}", rocking_motor=rocking_motor)
    return RawScan(frames, mask, geometry, whitefield=read_image(whitefield, "white field"),
                   metadata={"beamline": "ID01", "file": str(path), "entry": entry, "scan": int(scan),
                             "detector": det, "beam_centre": centre,
                             "sample_rotation": sample_rotation(ID01_SAMPLE_CIRCLES, motors).tolist(),
                             "motors": {k: np.asarray(v).tolist() for k, v in motors.items() if np.size(v) < 10000}})


def _fabio():
    try:
        import fabio
    except ImportError:
        raise OptionalDependencyError("fabio", "beamline") from None
    return fabio


def load_id01_spec(spec_path, scan, *, edf_template, detector="mpx4inr", rocking_motor=None, bad_pixels=None,
                   whitefield=None, energy=None, detector_distance=None, pixel_size=55.0) -> RawScan:
    """Scan `scan` of an ID01 SPEC file, its frames from EDF files named by ``edf_template % number``
    (the numbers in the SPEC column `detector`). SPEC does not record the energy [keV] or the
    detector distance [m]: give them."""
    fabio = _fabio()
    spec = read_spec_scan(spec_path, scan)
    numbers = spec.column(detector).astype(int)
    files = [Path(edf_template % n) for n in numbers]
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise FileFormatError(f"{len(missing)} of {len(files)} EDF frames of scan {scan} are missing, "
                              f"first {missing[0]}")
    frames = np.stack([fabio.open(str(p)).data for p in files])
    frames, mask = _frames_and_mask(frames, read_image(bad_pixels, "bad-pixel"), detector)
    motors = {m: spec.values(m, None) for m in ("eta", "phi", "del", "nu")}
    motors = {"delta" if m == "del" else m: v for m, v in motors.items() if v is not None}
    geometry = _id01_geometry(motors, len(frames), energy=energy, detector_distance=detector_distance,
                              pixel_size=pixel_size, where=f"{spec_path} scan {scan}", rocking_motor=rocking_motor)
    return RawScan(frames, mask, geometry, whitefield=read_image(whitefield, "white field"),
                   metadata={"beamline": "ID01 (SPEC)", "file": str(spec_path), "scan": int(scan),
                             "detector": detector, "command": spec.command, "frames": [str(p) for p in files],
                             "sample_rotation": sample_rotation(ID01_SAMPLE_CIRCLES, motors).tolist()})


# --- PETRA III P10 -----------------------------------------------------------------------------

P10_SAMPLE_CIRCLES = {"mu": "y+", "om": "x-", "chi": "z+", "phi": "y-"}  # outermost first, as bcdi defines P10
P10_CHI_OFFSET = 90.0  # [deg] what chi reads with the sample circles at their zero (bcdi's default offset)


def _eiger_frames(master, n_points):
    """(frames (N, Y, X), pixel mask or None, pixel size [µm] or None) of a Dectris master file:
    its datasets ``entry/data/data_*`` in order, each a chunk of frames, or one per scan point
    holding that point's series of frames (summed)."""
    h5py = _h5py()
    if not master.is_file():
        raise FileFormatError(f"no such Eiger master file: {master}")
    with h5py.File(master, "r") as f:
        names = sorted(k for k in f.get("entry/data", {}) if k.startswith("data_"))
        if not names:
            raise FileFormatError(f"{master} has no entry/data/data_* frames; is it an Eiger master file?")
        try:
            parts = [f[f"entry/data/{k}"][()] for k in names]
        except (KeyError, OSError) as err:
            raise FileFormatError(f"{master}: cannot read its frames ({err}); the data files it links to must sit "
                                  "beside it") from None
        det = f.get("entry/instrument/detector", {})
        mask = det["detectorSpecific/pixel_mask"][()] if "detectorSpecific/pixel_mask" in det else None
        pixel = _value(det, "x_pixel_size", 1e6)
    if len(parts) == n_points and any(len(p) > 1 for p in parts):  # one series of frames per scan point
        frames = np.stack([p.astype(np.int64).sum(axis=0) for p in parts])
    else:
        frames = np.concatenate(parts)
    if len(frames) != n_points:
        raise FileFormatError(f"{master} holds {len(frames)} frames for the {n_points} points of the scan")
    return frames, mask, pixel


def load_p10(fio_path, *, master=None, detector="e4m", rocking_motor=None, bad_pixels=None, whitefield=None,
             energy=None, detector_distance=None, pixel_size=None) -> RawScan:
    """A PETRA III P10 scan: the motors of its FIO file (mu, om, chi, phi; del, gam; ``fmbenergy``
    [eV]) and the Eiger frames of its master file, by default ``<detector>/<FIO name>_master.h5``
    beside the FIO file, with the detector's pixel mask and pixel size where it records them.

    The goniometer is bcdi's definition of P10 (mu about y+, om about x−, chi about z+ reading
    90° at its zero, phi about y−; detector gam about y+, then del about x−: our γ and δ); the
    rocking axis (om or phi, whichever the scan moves) is turned by the circles outside it.
    P10's frame columns run inboard: the frames (and the bad-pixel map and white field, given in
    the detector's own orientation) are flipped left to right so that they run along +x as
    braggscope's do. The FIO file records no detector distance: give it [m]."""
    fio = read_fio(fio_path)
    fio_path = Path(fio_path)
    master = Path(master) if master is not None else fio_path.parent / detector / f"{fio_path.stem}_master.h5"
    where = str(fio_path)
    motor = _rocking_motor(rocking_motor, [m for m in ("om", "phi") if m in fio.columns], ("om", "phi"), where)
    if fio.values("del") is None:
        raise FileFormatError(f"{where}: the detector's del is not recorded (parameters: "
                              f"{', '.join(fio.parameters) or 'none'})")
    frames, eiger_mask, stored_pixel = _eiger_frames(master, len(fio.columns[motor]))
    frames, mask = _frames_and_mask(frames, read_image(bad_pixels, "bad-pixel"), detector)
    if eiger_mask is not None:
        mask |= np.asarray(eiger_mask).astype(bool)[None]
    if energy is None and fio.values("fmbenergy") is not None:
        energy = fio.values("fmbenergy") / 1000  # [eV] → [keV]
    pixel_size = pixel_size if pixel_size is not None else stored_pixel
    _required((energy, detector_distance, pixel_size), ("energy", "detector_distance", "pixel_size"), where)
    angles = {m: float(np.mean(fio.values(m, 0.0))) for m in P10_SAMPLE_CIRCLES}
    angles["chi"] = float(np.mean(fio.values("chi", P10_CHI_OFFSET))) - P10_CHI_OFFSET
    axis, sign = rocking_axis(P10_SAMPLE_CIRCLES, angles, motor)
    geometry = Geometry(energy=energy, detector_distance=detector_distance, pixel_size=pixel_size,
                        rocking_step=sign * _rocking_step(fio.columns[motor], motor), delta=float(fio.values("del")),
                        gamma=float(fio.values("gam", 0.0)), rocking_axis=axis)
    frames, mask, white = _columns_outboard(frames, mask, read_image(whitefield, "white field"), True)
    return RawScan(frames, mask, geometry, whitefield=white,
                   metadata={"beamline": "P10", "file": where, "master": str(master), "detector": detector,
                             "command": fio.command, "columns_flipped": True,
                             "sample_rotation": sample_rotation(P10_SAMPLE_CIRCLES, angles).tolist()})


# --- MAX IV NanoMAX ----------------------------------------------------------------------------

NANOMAX_SAMPLE_CIRCLES = {"gontheta": "x-", "gonphi": "y-"}  # outermost first, as bcdi and cdiutils have them
NANOMAX_PIXEL_SIZES = {"eiger500k": 75.0, "eiger1m": 75.0, "eiger4m": 75.0, "merlin": 55.0, "pil100k": 172.0}  # [µm]


def _nanomax_frames(f, detector, where):
    """(detector name, frames) of a NanoMAX scan file: ``entry/measurement/<detector>/frames``."""
    measurement = f["entry/measurement"]
    stacks = [k for k in measurement if f"{k}/frames" in measurement]
    name = detector or (stacks[0] if len(stacks) == 1 else None)
    if name is None or f"{name}/frames" not in measurement:
        raise FileFormatError(f"{where}: entry/measurement holds the frames of {', '.join(stacks) or 'no detector'}; "
                              "name the detector")
    return name, measurement[f"{name}/frames"][()]


def load_nanomax(path, *, columns, detector=None, rocking_motor=None, bad_pixels=None, whitefield=None, energy=None,
                 detector_distance=None, pixel_size=None) -> RawScan:
    """A MAX IV NanoMAX scan file: the frames at ``entry/measurement/<detector>/frames``, the
    rocking motor's positions at ``entry/measurement/{gontheta,gonphi}`` and the other motors and
    the energy (keV or eV, told apart by size) in the snapshot group (``entry/snapshots/post_scan``,
    or ``entry/snapshot`` in older files).

    The goniometer is as bcdi and cdiutils both define NanoMAX: gontheta about x−, then gonphi
    about y−; detector gamma about y−, then delta about x− (so our γ = −gamma, δ = delta), rows
    downwards. The two disagree on the columns (bcdi: outboard; cdiutils: inboard), which decides
    the crystal's mirror image, so `columns` must say it: ``'outboard'`` (kept) or ``'inboard'``
    (flipped left to right, with the bad-pixel map and white field). NanoMAX files record no
    detector distance: give it [m]; the pixel size is the detector's where not given."""
    check_choice(columns, "columns (which way the detector's columns run)", {"inboard", "outboard"})
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such NanoMAX scan file: {path}")
    with h5py.File(path, "r") as f:
        if "entry/measurement" not in f:
            raise FileFormatError(f"{path} has no entry/measurement group; is it a NanoMAX scan file?")
        snapshot = next((f[g] for g in ("entry/snapshots/post_scan", "entry/snapshot") if g in f), {})
        name, frames = _nanomax_frames(f, detector, str(path))
        motors = {m: float(np.ravel(snapshot[m][()])[0]) for m in ("gontheta", "gonphi", "delta", "gamma", "energy")
                  if m in snapshot}
        motor = _rocking_motor(rocking_motor, [m for m in ("gontheta", "gonphi") if m in f["entry/measurement"]],
                               ("gontheta", "gonphi"), str(path))
        angles = np.asarray(f[f"entry/measurement/{motor}"][()], float)
    if "delta" not in motors:
        raise FileFormatError(f"{path}: the detector's delta is not recorded (snapshot: {', '.join(motors) or 'none'})")
    if len(angles) != len(frames):
        raise FileFormatError(f"{path}: {len(angles)} {motor} positions for {len(frames)} frames")
    frames, mask = _frames_and_mask(frames, read_image(bad_pixels, "bad-pixel"), name)
    if energy is None and "energy" in motors:
        energy = motors["energy"] / (1000 if motors["energy"] > 1000 else 1)  # [eV] or [keV] → [keV]
    pixel_size = pixel_size if pixel_size is not None else NANOMAX_PIXEL_SIZES.get(name.lower())
    _required((energy, detector_distance, pixel_size), ("energy", "detector_distance", "pixel_size"), str(path))
    axis, sign = rocking_axis(NANOMAX_SAMPLE_CIRCLES, motors, motor)
    geometry = Geometry(energy=energy, detector_distance=detector_distance, pixel_size=pixel_size,
                        rocking_step=sign * _rocking_step(angles, motor), delta=motors["delta"],
                        gamma=-motors.get("gamma", 0.0), rocking_axis=axis)
    frames, mask, white = _columns_outboard(frames, mask, read_image(whitefield, "white field"), columns == "inboard")
    return RawScan(frames, mask, geometry, whitefield=white,
                   metadata={"beamline": "NanoMAX", "file": str(path), "detector": name,
                             "columns_flipped": columns == "inboard",
                             "sample_rotation": sample_rotation(NANOMAX_SAMPLE_CIRCLES,
                                                                motors | {motor: angles}).tolist()})


# --- APS 34-ID-C -------------------------------------------------------------------------------

def _tiff_stack(paths):
    import tifffile

    return np.stack([tifffile.imread(p) for p in paths])


def _frame_number(path):
    """Sort key of a TIFF frame: the number its name ends with, so that frame_2.tif comes before
    frame_10.tif (file names need not be zero-padded); names without a number come last, by name."""
    number = re.search(r"\d+$", path.stem)
    return (0, int(number.group()), path.name) if number else (1, 0, path.name)


def read_image(value, name):
    """A 2-D calibration image (dark, white field, bad-pixel map) from an array or a TIFF or .npy
    file; None stays None. `name` is what an error calls it."""
    if value is None or isinstance(value, np.ndarray):
        return value
    path = Path(value)
    if not path.is_file():
        raise FileFormatError(f"no such {name} file: {path}")
    return np.load(path) if path.suffix == ".npy" else _tiff_stack([path])[0]


# 34-ID-C's Timepix quad (512² pixels in four 256² chips): the chips sit apart by more than a pixel.
# cohere, the beamline's code, puts 5 empty rows before detector row 256 and 4 empty columns before
# column 256 in a frame that straddles them, so that the pixels lie on one uniform grid again.
DETECTOR_SEAMS = {"34idcTIM2": ((256, 5), (256, 4))}  # detector → ((row, rows), (column, columns)) of the gap


def _roi_34idc(spec, shape, where):
    """(first row, first column) [detector pixels] of the area the TIFF frames hold, from the scan's
    ``#UIMR5`` line (areaDetector's image ROI: minX sizeX minY sizeY), checked against the frames'
    (rows, columns) `shape`; None where the SPEC file does not record it."""
    line = spec.header("UIMR5")
    if line is None:
        return None
    try:
        x0, nx, y0, ny = (int(v) for v in line.split()[:4])
    except ValueError:
        raise FileFormatError(f"{where}: cannot read the image ROI '#UIMR5 {line}'") from None
    if (ny, nx) != tuple(shape):
        raise FileFormatError(f"{where} records an image ROI of {ny} × {nx} pixels (#UIMR5) but the TIFF frames "
                              f"hold {shape[0]} × {shape[1]}: are they this scan's?")
    return y0, x0


def _on_roi(image, roi, shape, name):
    """A calibration image cut to the frames' area where it covers the whole detector (the
    beamline's dark and white fields are 512²), as it is where it fits the frames already."""
    if image is None or image.shape == tuple(shape):
        return image
    if roi is not None and all(r + n <= m for r, n, m in zip(roi, shape, image.shape)):
        return image[roi[0]:roi[0] + shape[0], roi[1]:roi[1] + shape[1]]
    raise FileFormatError(f"the {name} image {image.shape} fits neither the frames {tuple(shape)} nor the "
                          "detector area they were read from")


def _with_seams(arrays, roi, detector):
    """{name: array} of `arrays` ({name: ((..., rows, columns) array or None, value of its empty
    pixels)}) with the chip gaps of `detector` (:data:`DETECTOR_SEAMS`) put in where the frames' area,
    starting at detector pixel `roi`, straddles them."""
    seams = DETECTOR_SEAMS.get(detector) if roi is not None else None
    out = {}
    for name, (a, fill) in arrays.items():
        for axis, start, (at, width) in zip((-2, -1), roi or (), seams or ()):
            if a is not None and 0 < at - start < a.shape[axis]:
                a = np.insert(a.astype(np.result_type(a, fill)), [at - start] * width, fill, axis=axis)
        out[name] = a
    return out


def load_34idc(spec_path, scan, *, frames, dark=None, whitefield=None, bad_pixels=None, detector=None,
               energy=None, detector_distance=None, pixel_size=55.0) -> RawScan:
    """Scan `scan` of APS 34-ID-C: the TIFF frames in the folder `frames` (in the order of the
    number each file name ends with) or a list of files in rocking order, and theta (the rocking
    column), delta and gamma from the SPEC file. The frames are kept as stored (row, column);
    cohere transposes them and names the axes x+ and y- instead, the same directions.

    SPEC names are matched through the file's mnemonics and in any case (34-ID-C writes ``Theta``,
    ``Delta``, ``Gamma``; its scan commands say ``th``). The energy [keV] is the motor ``Energy`` and
    the detector distance the motor ``camdist`` [mm] where recorded and not given [m]. The detector
    is the scan's ``#UIMDET`` where not given (else 34idcTIM2), and the detector area the frames hold
    its ``#UIMR5``: dark, white field and bad-pixel images of the whole detector are cut to that area,
    and where it straddles the Timepix quad's chip gaps they are put in, masked (:data:`DETECTOR_SEAMS`)."""
    spec = read_spec_scan(spec_path, scan)
    if isinstance(frames, (str, Path)):
        paths = sorted(Path(frames).glob("*.tif*"), key=_frame_number)
    else:
        paths = [Path(p) for p in frames]
    if not paths:
        raise FileFormatError(f"no TIFF frames in {frames}")
    theta = spec.column("th", "theta")
    if len(theta) != len(paths):
        raise FileFormatError(f"SPEC scan {scan} has {len(theta)} theta positions but {len(paths)} TIFF frames "
                              f"in {frames}")
    where = f"{spec_path} scan {scan}"
    detector = detector or (spec.header("UIMDET") or "34idcTIM2").rstrip(":")
    stack = _tiff_stack(paths)
    roi = _roi_34idc(spec, stack.shape[1:], where)
    images = {name: _on_roi(read_image(value, name), roi, stack.shape[1:], name)
              for name, value in (("dark", dark), ("white field", whitefield), ("bad-pixel", bad_pixels))}
    stack, mask = _frames_and_mask(stack, images["bad-pixel"], detector)
    seamed = _with_seams({"frames": (stack, 0), "mask": (mask, True), "dark": (images["dark"], 0),
                          "white field": (images["white field"], np.nan)}, roi, detector)
    energy = energy if energy is not None else spec.motor("Energy", None)
    camdist = spec.motor("camdist", None)  # [mm]
    if detector_distance is None and camdist is not None:
        detector_distance = camdist / 1000
    _required((energy, detector_distance), ("energy", "detector_distance"), where)
    geometry = Geometry(energy=energy, detector_distance=detector_distance, pixel_size=pixel_size,
                        rocking_step=_rocking_step(theta, "theta"), delta=spec.motor("gamma"),
                        gamma=spec.motor("delta"), rocking_axis="y")
    return RawScan(seamed["frames"], seamed["mask"], geometry, dark=seamed["dark"], whitefield=seamed["white field"],
                   metadata={"beamline": "34-ID-C", "file": str(spec_path), "scan": int(scan), "detector": detector,
                             "detector_area_origin": None if roi is None else list(roi),
                             "command": spec.command, "frames": [str(p) for p in paths]})


# --- files already in one array ----------------------------------------------------------------

def load_npz_frames(path, *, geometry, detector=None) -> RawScan:
    """Raw frames saved with numpy: ``frames`` (N, Y, X), optional ``dark``, ``whitefield``
    (Y, X) and ``bad_pixels`` (Y, X, nonzero = bad), with the scan's `geometry` given."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such file: {path}")
    if not isinstance(geometry, Geometry):
        raise ConfigError("raw .npz frames carry no geometry: give energy, detector_distance, pixel_size, "
                          "rocking_step, delta, gamma and rocking_axis")
    with np.load(path) as z:
        if "frames" not in z:
            raise FileFormatError(f"{path} has no array 'frames' (it has {', '.join(z.files)})")
        arrays = {k: z[k] for k in ("frames", "dark", "whitefield", "bad_pixels") if k in z}
    frames, mask = _frames_and_mask(arrays["frames"], arrays.get("bad_pixels"), detector)
    return RawScan(frames, mask, geometry, dark=arrays.get("dark"), whitefield=arrays.get("whitefield"),
                   metadata={"beamline": "frames (.npz)", "file": str(path), "detector": detector})


def _axis_of(value):
    """A stored rocking axis as Geometry takes it: 'x' or 'y' (HDF5 may give bytes), or the direction as read."""
    return value.decode() if isinstance(value, bytes) else value


def load_cxi(path, *, energy=None, detector_distance=None, pixel_size=None, rocking_step=None, delta=None,
             gamma=None, rocking_axis=None) -> RawScan:
    """Diffraction data in a CXI (PyNX layout), .npz or .npy file, with the rocking scan's geometry
    from the arguments (keV, m, µm, degrees) where given, else from the file; None where neither
    gives the energy, distance, pixel size and rocking step, and for a simulation on the
    orthogonal grid, whose q_basis is the grid."""
    data = read_data(path)
    config = dict(data.config)
    if data.intensity.ndim != 3:
        raise FileFormatError(f"{path} holds 2-D data; the pipeline needs a 3-D rocking scan")
    pick = lambda given, stored: given if given is not None else stored
    values = {"energy": pick(energy, data.energy), "detector_distance": pick(detector_distance, data.detector_distance),
              "pixel_size": pick(pixel_size, data.pixel_size), "rocking_step": pick(rocking_step,
                                                                                    config.get("rocking_step"))}
    geometry = None
    if None not in values.values() and config.get("frame") != "orthogonal":
        geometry = Geometry(**{k: float(v) for k, v in values.items()},
                            delta=float(pick(delta, config.get("delta", 0.0))),
                            gamma=float(pick(gamma, config.get("gamma", 0.0))),
                            rocking_axis=_axis_of(pick(rocking_axis, config.get("rocking_axis", "x"))))
    return RawScan(data.intensity, data.mask, geometry, config=config,
                   metadata={"beamline": "CXI", "file": str(path), "ground_truth": data.ground_truth is not None}
                   | ({"sample_rotation": config["sample_rotation"]} if "sample_rotation" in config else {}))


def binned_geometry(geometry, bins):
    """The geometry of data binned by `bins` (rocking frames, rows, columns): a bigger rocking
    step and pixel (rows and columns must be binned alike)."""
    b = np.broadcast_to(np.asarray(bins, int), (3,))
    if b[1] != b[2]:
        raise ConfigError(f"bin detector rows and columns alike (got {tuple(b)}): the geometry has square pixels")
    return replace(geometry, rocking_step=geometry.rocking_step * int(b[0]), pixel_size=geometry.pixel_size * int(b[1]))
