"""One scan through the whole chain: load → prepare → classify the pattern → reconstruct (the
network's seed + our engine or PyNX) → strain → identify → report, every step's output kept in
the scan's folder.

The folder is complete when ``summary.json`` is there (it is written last, atomically, like every
other file) with the digest of the configuration that made it; :func:`run_scan` then skips the
scan. A failure is caught, written to ``error.json`` and returned as a row with status 'failed'.
"""
from __future__ import annotations

import json
import platform
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io.cxi import atomic_path

__all__ = ["run_scan", "failed_row", "process_scan", "scan_folder", "load_scan", "is_complete", "STEPS"]

STEPS = ("load", "prepare", "classify", "reconstruct", "strain", "identify", "report")


def scan_folder(config, scan) -> Path:
    """The folder of `scan`'s outputs."""
    return Path(config.output) / (f"scan_{scan:04d}" if isinstance(scan, int) else f"scan_{scan}")


def versions() -> dict:
    """Versions of Python and of the packages that shape the results."""
    import scipy
    import torch

    from .. import __version__

    return {"braggscope": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "torch": torch.__version__}


def _write_json(path, doc):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, default=_plain))


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    return str(v)


# --- the steps ----------------------------------------------------------------------------------

def _override_geometry(geometry, g):
    changes = {k: getattr(g, k) for k in ("rocking_step", "delta", "gamma", "rocking_axis")
               if getattr(g, k) is not None}
    return replace(geometry, **changes) if geometry is not None and changes else geometry


def _given_geometry(g):
    """The [geometry] table as a :class:`~braggscope.geometry.Geometry` (raw frames carry none)."""
    from ..geometry import Geometry

    values = {k: getattr(g, k) for k in ("energy", "detector_distance", "pixel_size", "rocking_step")}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ConfigError(f"raw .npz frames carry no geometry: give {', '.join(missing)} in [geometry]")
    return Geometry(**values, delta=g.delta or 0.0, gamma=g.gamma or 0.0, rocking_axis=g.rocking_axis or "x")


def load_scan(config, scan):
    """The :class:`~braggscope.io.beamline.RawScan` of `scan`, as the config's [data] and
    [geometry] say."""
    from ..io import beamline as bl

    d, g = config.data, config.geometry
    path = config.resolve(d.path, scan)
    common = {"energy": g.energy, "detector_distance": g.detector_distance}
    pixel = {} if g.pixel_size is None else {"pixel_size": g.pixel_size}
    images = {k: config.resolve(getattr(d, k), scan) for k in ("dark", "whitefield", "bad_pixels")}
    if d.format == "id01":
        raw = bl.load_id01_bliss(path, scan, sample=d.sample, detector=d.detector, rocking_motor=d.rocking_motor,
                                 bad_pixels=images["bad_pixels"],
                                 whitefield=images["whitefield"], **common, **pixel)
    elif d.format == "id01_spec":
        raw = bl.load_id01_spec(path, scan, edf_template=str(config.resolve(d.frames, scan)),
                                detector=d.detector or "mpx4inr", rocking_motor=d.rocking_motor,
                                bad_pixels=images["bad_pixels"],
                                whitefield=images["whitefield"], **common, **pixel)
    elif d.format == "p10":
        raw = bl.load_p10(path, master=None if d.frames is None else config.resolve(d.frames, scan),
                          detector=d.detector or "e4m", rocking_motor=d.rocking_motor,
                          bad_pixels=images["bad_pixels"], whitefield=images["whitefield"], **common, **pixel)
    elif d.format == "nanomax":
        raw = bl.load_nanomax(path, columns=d.columns, detector=d.detector, rocking_motor=d.rocking_motor,
                              bad_pixels=images["bad_pixels"], whitefield=images["whitefield"], **common, **pixel)
    elif d.format == "34idc":
        if d.frames is None:
            raise ConfigError("[data] frames must name the folder of the scan's TIFF frames (e.g. 'scan_{scan:04d}')")
        raw = bl.load_34idc(path, scan, frames=config.resolve(d.frames, scan), detector=d.detector,
                            dark=images["dark"], whitefield=images["whitefield"], bad_pixels=images["bad_pixels"],
                            **common, **pixel)
    elif d.format == "npz":
        raw = bl.load_npz_frames(path, geometry=_given_geometry(g), detector=d.detector)
    else:
        raw = bl.load_cxi(path, **{k: getattr(g, k) for k in ("energy", "detector_distance", "pixel_size",
                                                               "rocking_step", "delta", "gamma", "rocking_axis")})
    if g.beam_centre is not None:
        raw = replace(raw, metadata=raw.metadata | {"beam_centre": [float(v) for v in g.beam_centre]})
    return replace(raw, geometry=_override_geometry(raw.geometry, g))


def prepare_scan(config, raw):
    """Dark, flat field and masks, then :func:`~braggscope.retrieval.prepare` (crop on the peak,
    bin, hot pixels, aliens)."""
    from ..retrieval import correct_detector, prepare

    counts, mask = correct_detector(raw.frames, raw.mask, dark=raw.dark, whitefield=raw.whitefield)
    p = config.prepare
    shape = None if p.shape is None else tuple(min(s, n) for s, n in zip(p.shape, counts.shape))
    return prepare(counts, mask, shape=shape, bin=p.bin if any(b != 1 for b in p.bin) else 1,
                   saturation=p.saturation, remove_hot_pixels=p.remove_hot_pixels, remove_aliens=p.remove_aliens)


def scan_grid(raw, prepared, config):
    """(voxel edges [nm] (3×3 columns), G [1/nm] in the voxels' frame, frame name, grid) of the
    reconstruction of `prepared`; `grid` describes the prepared data's grid for its file
    (frame, q_basis, g_vector, and the binned scan geometry, peak pixel and beam centre).

    With a rocking-scan geometry, G is the measured q at the Bragg peak (its pixel's offset from
    the beam centre of the file or of [geometry], else from the frame's centre); otherwise the
    file's q_basis and g_vector (a simulation's grid)."""
    from ..geometry import object_voxel_from_q_basis
    from ..io.beamline import binned_geometry
    from ..retrieval import peak_position

    shape, bins = prepared.intensity.shape, np.broadcast_to(np.asarray(config.prepare.bin, int), (3,))
    if raw.geometry is not None:
        geo = binned_geometry(raw.geometry, bins)
        peak = np.array(prepared.offset) + np.array(peak_position(prepared.intensity, prepared.mask)) * bins
        centre = raw.metadata.get("beam_centre") or [None, None]
        centre = [c if c is not None else n / 2 for c, n in zip(centre, raw.frames.shape[1:])]
        offset = (peak - np.array([peak[0], *centre])) / bins  # no rocking offset: the peak is the Bragg condition
        g = geo.q_bragg + geo.q_basis() @ offset
        grid = {"frame": "detector", "q_basis": geo.q_basis(), "g_vector": g, "geometry": asdict(geo),
                "peak_pixel": peak.tolist(), "beam_centre": centre}
        return geo.object_voxel(shape), g, "detector", grid
    cfg = raw.config
    if "q_basis" not in cfg or "g_vector" not in cfg:
        raise ConfigError(f"{raw.metadata.get('file')} records no scan geometry and no q_basis: give what it lacks "
                          "of [geometry] energy, detector_distance, pixel_size, rocking_step (and delta, gamma)")
    q_basis = np.asarray(cfg["q_basis"], float) * bins[None, :]
    frame = cfg.get("frame", "orthogonal")
    g = np.asarray(cfg["g_vector"], float)
    grid = {"frame": frame, "q_basis": q_basis, "g_vector": g}
    return object_voxel_from_q_basis(q_basis, shape, frame=frame), g, "detector" if frame == "detector" else "lab", grid


def _worker_device(requested):
    """The device of this scan: `requested`, or on a Dask worker with several GPUs, the GPU of its
    index (one GPU per worker)."""
    import torch

    from .._backend import resolve_device

    if requested != "auto" or not torch.cuda.is_available():
        return str(resolve_device(requested))
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return "cuda"
    index = name if isinstance(name, int) else sum(map(ord, str(name)))
    return f"cuda:{index % torch.cuda.device_count()}"


def reconstruct_scan(config, prepared, device):
    """(combined :class:`~braggscope.retrieval.Solution`, Reconstruction, seeded) of the prepared data."""
    from ..retrieval import combine_runs, network_start, reconstruct

    r = config.reconstruct
    intensity, mask = prepared.intensity, prepared.mask
    start, guess = network_start(intensity, mask, n_runs=r.runs, seed_net=r.seed_net, psf=r.psf, rng=r.seed,
                                 device=device)
    if r.recipe:
        start["recipe"] = r.recipe
    result = reconstruct(intensity, mask=mask, n_runs=r.runs, rng=r.seed, device=device, backend=r.backend, **start)
    keep = r.keep if r.keep is not None else max(1, r.runs // 2)
    return combine_runs(result, intensity, mask, keep=keep, method=r.combine), result, guess is not None


def strain_scan(config, solution, voxel, g_vector, frame, energy=None):
    """The strain field of the solution, resampled onto an orthogonal lab grid if it was computed
    on the detector frame's. With [strain] refraction the beams' refraction and absorption are
    undone first (k_f = k_i + G at the scan's `energy` [keV], the index of [sample] material), on
    the one of the twin pair whose phase follows the refraction more (:func:`~braggscope.strain.
    twin_by_refraction`; the choice is in the field's metadata)."""
    from .. import strain as st
    from ..geometry import INCIDENT_DIRECTION, wavelength_nm

    s = config.strain
    support = st.support_from_amplitude(solution.obj, s.isosurface)
    obj, refraction = solution.obj, None
    if s.refraction:
        if energy is None:  # [sample] material is checked with the configuration
            raise ConfigError("[strain] refraction needs the scan's energy: a rocking-scan geometry")
        delta, beta = st.refractive_index(config.sample.material, energy)
        scattered = INCIDENT_DIRECTION + np.asarray(g_vector) * wavelength_nm(energy) / (2 * np.pi)
        obj, support, flipped, share, other = st.twin_by_refraction(obj, support, voxel=voxel, energy=energy,
                                                                    delta=delta, scattered=scattered)
        obj = st.correct_refraction(obj, support, voxel=voxel, energy=energy, delta=delta, beta=beta,
                                    scattered=scattered)
        refraction = {"twin_flipped": flipped, "share": share, "share_of_other_twin": other}
    field = st.strain_field(obj, support, g_vector=g_vector, voxel_size=voxel, reference=s.reference,
                            order=s.order, frame=frame)
    if refraction:
        field.metadata["refraction"] = refraction
    return st.resample(field) if frame == "detector" else field


# --- the scan -----------------------------------------------------------------------------------

def _flags(row, solution, field):
    """Quality flags a scientist should see before trusting the crystal's numbers."""
    flags = []
    if row["llk"] > 3:
        flags.append(f"high LLK ({row['llk']:.1f})")
    if solution.mode_fraction < 0.8:
        flags.append(f"runs disagree (mode {solution.mode_fraction:.2f})")
    edge = np.zeros(field.support.shape, bool)
    for axis in range(field.support.ndim):
        edge[(slice(None),) * axis + (0,)] = edge[(slice(None),) * axis + (-1,)] = True
    if np.any(field.support & edge):
        flags.append("support touches the box")
    if (row.get("pattern") or {}).get("label") == "unknown":
        flags.append("pattern out of the classifier's range")
    if row["prtf_resolution_voxels"] > 3:
        flags.append(f"PRTF resolution {row['prtf_resolution_voxels']:.1f} voxels")
    if row.get("d_spacing_expected_nm"):
        off = row["d_spacing_nm"] / row["d_spacing_expected_nm"] - 1
        if abs(off) > 0.01:
            flags.append(f"d-spacing {100 * off:+.1f} % from the [sample]'s reflection")
    if row.get("defect_counts"):
        flags.append("defects")
    return flags


def expected_d_spacing(material, hkl) -> float | None:
    """[nm] d of the material's reflection hkl, where both are given."""
    from ..materials import get_material

    if material is None or hkl is None:
        return None
    return float(get_material(material).d_spacing(hkl))


def process_scan(config, scan, *, progress=None) -> dict:
    """Run every step on `scan`, write its files, and return its summary row."""
    from .. import strain as st
    from . import outputs

    folder = scan_folder(config, scan)
    folder.mkdir(parents=True, exist_ok=True)
    step = progress or (lambda name: None)
    timings, row = {}, {"scan": scan, "folder": str(folder), "digest": config.digest()}
    device = _worker_device(config.reconstruct.device)
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        timings[name], clock = now - clock, now
        step(name)

    raw = load_scan(config, scan)
    lap("load")
    prepared = prepare_scan(config, raw)
    voxel, g_vector, frame, grid = scan_grid(raw, prepared, config)
    hkl = config.sample.hkl_of(scan)
    outputs.write_data(folder, config, raw, prepared, grid, hkl)
    lap("prepare")
    row["pattern"] = outputs.classify(folder, config, prepared, device, hkl) if config.identify.classify else None
    lap("classify")
    solution, result, seeded = reconstruct_scan(config, prepared, device)
    outputs.write_result(folder, config, solution, result, seeded, outputs.grid_layout(config, raw, grid, hkl))
    lap("reconstruct")
    field = strain_scan(config, solution, voxel, g_vector, frame,
                        energy=raw.geometry.energy if raw.geometry is not None else None)
    outputs.write_strain(folder, config, field, g_vector)
    lap("strain")
    report = outputs.identify(folder, config, field, device)
    lap("identify")
    stats = field.summary()
    row |= {"status": "done", "beamline": raw.metadata.get("beamline"), "size_nm": st.crystal_size(field),
            "voxels": stats["voxels"], "strain_mean": stats["strain_mean"], "strain_rms": stats["strain_rms"],
            "bulk_strain_rms": stats["bulk_strain_rms"], "d_spacing_nm": float(2 * np.pi / np.linalg.norm(g_vector)),
            "hkl": None if hkl is None else list(hkl),
            "d_spacing_expected_nm": expected_d_spacing(config.sample.material, hkl),
            "llk": float(solution.llk), "free_llk": float(solution.free_llk),
            "mode_fraction": float(solution.mode_fraction), "prtf_resolution_voxels": solution.prtf["resolution"],
            "seed_net": bool(seeded), "recipe": result.recipe, "device": str(device),
            "psf_fwhm_pixels": None if solution.psf_fwhm is None else list(solution.psf_fwhm),
            "defect_counts": report.counts(), "prepare": prepared.report["masked_voxels"],
            "refraction": field.metadata.get("refraction")}
    row["flags"] = _flags(row, solution, field)
    outputs.write_report(folder, config, row, timings, field, report)
    lap("report")
    row |= {"timings": timings, "versions": versions(), "config": config.as_dict(),
            "files": sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name != "error.json")}
    _write_json(folder / "summary.json", row)
    (folder / "error.json").unlink(missing_ok=True)
    return row


def is_complete(config, scan) -> dict | None:
    """The summary row of `scan` if its folder holds every output of this configuration, else None."""
    path = scan_folder(config, scan) / "summary.json"
    if not path.is_file():
        return None
    try:
        row = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    complete = row.get("digest") == config.digest() and all((path.parent / f).is_file() for f in row.get("files", []))
    return row if complete else None


def run_scan(config, scan, *, force=False, threads=None) -> dict:
    """:func:`process_scan`, skipped where the outputs are complete (status 'skipped'), and a
    failure caught: written to ``error.json`` and returned as a row with status 'failed'.
    `threads` sets torch's CPU threads (a Dask worker's share of the cores)."""
    import torch

    if not force and (row := is_complete(config, scan)) is not None:
        return row | {"status": "skipped"}
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return process_scan(config, scan)
    except Exception as err:  # one scan's failure is reported and does not stop the batch
        return failed_row(config, scan, err)


def failed_row(config, scan, err) -> dict:
    """The row of a scan that failed with `err`, also written to its folder's ``error.json``."""
    row = {"scan": scan, "status": "failed", "folder": str(scan_folder(config, scan)),
           "error": f"{type(err).__name__}: {err}", "traceback": "".join(traceback.format_exception(err, limit=6))}
    _write_json(scan_folder(config, scan) / "error.json", row)
    return row
