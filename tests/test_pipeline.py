"""Raw-data loaders (ID01 BLISS and SPEC/EDF, APS 34-ID-C TIFF + SPEC, CXI), the pipeline's
configuration, one scan through the whole chain, resuming, failures, the Dask batch, the HTML
pages in a real browser."""
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from braggscope.errors import ConfigError, FileFormatError
from braggscope.geometry import Geometry

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
DATA = Path(__file__).resolve().parent / "data"


# --- writers of the beamlines' formats (the tests' own, from the formats' documentation) -------

def write_bliss(path, frames, geometry, *, scan=3, sample="crystal", detector="mpx1x4", beam_centre=None):
    """A BLISS master file as ID01 writes it: frames bitshuffle/LZ4-compressed, eta rocking
    (about -x, so eta = -rocking angle), nu = -γ, the detector's calibration."""
    import h5py
    import hdf5plugin

    n = len(frames)
    eta = 10.0 - geometry.rocking_step * (np.arange(n) - n // 2)
    centre = beam_centre or (frames.shape[1] / 2, frames.shape[2] / 2)
    with h5py.File(path, "w") as f:
        entry = f.create_group(f"{sample}_{scan}.1")
        entry.create_dataset(f"measurement/{detector}", data=frames, chunks=(1, *frames.shape[1:]),
                             **hdf5plugin.Bitshuffle(cname="lz4"))
        pos = entry.create_group("instrument/positioners")
        for name, value in {"eta": eta, "phi": 0.0, "delta": geometry.delta, "nu": -geometry.gamma,
                            "mononrj": geometry.energy}.items():
            pos[name] = value
        det = entry.create_group(f"instrument/{detector}")
        det.update({"distance": geometry.detector_distance, "x_pixel_size": geometry.pixel_size * 1e-6,
                    "y_pixel_size": geometry.pixel_size * 1e-6, "beam_center_y": centre[0],
                    "beam_center_x": centre[1]})


def write_34idc(folder, frames, *, theta_step=0.005, delta=32.17, gamma=12.63, energy=9.0, scan=54, header=()):
    """A 34-ID-C scan: one TIFF per rocking angle and a SPEC file with theta, delta, gamma, Energy
    (and the scan header's lines `header`, e.g. ``#UIMR5 …``)."""
    import tifffile

    folder = Path(folder)
    (folder / f"scan_{scan:04d}").mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        tifffile.imwrite(folder / f"scan_{scan:04d}" / f"frame_{i:05d}.tif", frame)
    theta = theta_step * (np.arange(len(frames)) - len(frames) // 2)
    lines = ["#F staff.spec", "#O0 delta  gamma  Energy", "", f"#S {scan}  ascan theta -0.5 0.5 200 1",
             f"#P0 {delta} {gamma} {energy}", *header, "#L theta  Seconds  Monitor"] + [f"{t:.5f} 1 1000" for t in theta]
    (folder / "staff.spec").write_text("\n".join(lines) + "\n")
    return folder / "staff.spec"


@pytest.fixture(scope="module")
def detector_scan():
    """A 40 nm Pt crystal measured at 111 on a rocking scan (detector frame, 48³, 10⁸ photons)."""
    from braggscope.simulate import Crystal, Detector, random_orientation, simulate_bcdi, truncated_octahedron

    geometry = Geometry.for_reflection(d_spacing=0.3924 / np.sqrt(3), energy=9.0, detector_distance=0.06,
                                       pixel_size=55.0, rocking_step=0.1)
    xtal = Crystal(truncated_octahedron(40.0, random_orientation(3)), "Pt", random_orientation(3))
    data = simulate_bcdi(xtal, [], hkl=(1, 1, 1), shape=(24,) * 3, voxel_size=3.0, data_shape=(48,) * 3,
                         geometry=geometry, detector=Detector(photons=1e8), rng=3)
    return data


def assert_same_geometry(a, b):
    from dataclasses import asdict

    for key, value in asdict(b).items():
        assert getattr(a, key) == (value if isinstance(value, str) else pytest.approx(value, rel=1e-9, abs=1e-12)), key


# --- loaders ----------------------------------------------------------------------------------

def test_id01_bliss_loader_recovers_the_geometry_and_frames(tmp_path, detector_scan):
    from braggscope.io.beamline import load_id01_bliss

    g = detector_scan.geometry
    frames = np.zeros((48, 516, 516), np.uint32)  # a full Maxipix 2×2: the scan's frames in one corner
    frames[:, 100:148, 300:348] = detector_scan.intensity
    frames[5, 7, 9] = np.iinfo(np.uint32).max  # how Dectris and some Maxipix readouts flag a dead pixel
    write_bliss(tmp_path / "master.h5", frames, g)
    raw = load_id01_bliss(tmp_path / "master.h5", 3)
    assert_same_geometry(raw.geometry, g)  # eta's sign, nu's sign and the units map back onto the simulator's geometry
    np.testing.assert_array_equal(raw.frames[:, 100:148, 300:348], detector_scan.intensity)
    assert raw.mask[:, 256:260, :].all() and raw.mask[:, :, 256:260].all()
    assert raw.mask[5, 7, 9] and raw.mask[:, :256, :256].sum() == 1
    assert raw.metadata["entry"] == "crystal_3.1" and raw.metadata["detector"] == "mpx1x4"
    with pytest.raises(FileFormatError, match="no detector 'eiger2M'.*mpx1x4"):
        load_id01_bliss(tmp_path / "master.h5", 3, detector="eiger2M")
    with pytest.raises(FileFormatError, match="no entries for scan 4"):
        load_id01_bliss(tmp_path / "master.h5", 4)


def test_id01_spec_edf_loader(tmp_path, detector_scan):
    fabio = pytest.importorskip("fabio")
    from fabio.edfimage import EdfImage

    from braggscope.io.beamline import load_id01_spec

    g, frames = detector_scan.geometry, detector_scan.intensity.astype(np.int32)
    for i, frame in enumerate(frames):
        EdfImage(data=frame).write(str(tmp_path / f"mpx_{100 + i:05d}.edf.gz"))
    eta = 10.0 - g.rocking_step * (np.arange(len(frames)) - len(frames) // 2)
    lines = ["#O0 eta  del  nu  phi", "", "#S 7 ascan eta 9.5 10.5 47 1", f"#P0 10 {g.delta} {-g.gamma} 0",
             "#L eta  mpx4inr  Monitor"] + [f"{e:.6f} {100 + i} 1000" for i, e in enumerate(eta)]
    (tmp_path / "id01.spec").write_text("\n".join(lines) + "\n")
    raw = load_id01_spec(tmp_path / "id01.spec", 7, edf_template=str(tmp_path / "mpx_%05d.edf.gz"), energy=9.0,
                         detector_distance=0.06)
    np.testing.assert_array_equal(raw.frames, frames)
    assert_same_geometry(raw.geometry, g)
    with pytest.raises(FileFormatError, match="detector_distance"):
        load_id01_spec(tmp_path / "id01.spec", 7, edf_template=str(tmp_path / "mpx_%05d.edf.gz"), energy=9.0)
    no_delta = [line.replace("  del", "") if line.startswith("#O0") else line for line in lines]
    no_delta[3] = f"#P0 10 {-g.gamma} 0"
    (tmp_path / "no_delta.spec").write_text("\n".join(no_delta) + "\n")
    with pytest.raises(FileFormatError, match="delta is not recorded"):  # not taken as 0
        load_id01_spec(tmp_path / "no_delta.spec", 7, edf_template=str(tmp_path / "mpx_%05d.edf.gz"), energy=9.0,
                       detector_distance=0.06)
    assert fabio is not None


@pytest.mark.skipif(not (REAL / "aps34idc_scan54_raw.npz").is_file(), reason="the shared real scan is not here")
def test_34idc_loader_and_flat_field_on_the_measured_scan(tmp_path):
    """The real 34-ID-C scan written as TIFF frames + SPEC, read back, and flat-field corrected as
    the shared reference crop was made (frame / W × mean W, bad pixels 0)."""
    import tifffile

    from braggscope.io.beamline import load_34idc
    from braggscope.retrieval import correct_detector

    with np.load(REAL / "aps34idc_scan54_raw.npz") as z:
        frames, white, bad = z["frames"][:80], z["whitefield"], z["bad_pixels"]
    spec = write_34idc(tmp_path, frames)
    tifffile.imwrite(tmp_path / "white.tif", white)
    raw = load_34idc(spec, 54, frames=tmp_path / "scan_0054", whitefield=tmp_path / "white.tif", bad_pixels=bad,
                     detector_distance=0.5)
    np.testing.assert_array_equal(raw.frames, frames)
    assert_same_geometry(raw.geometry, Geometry(energy=9.0, detector_distance=0.5, pixel_size=55.0, rocking_step=0.005,
                                    delta=12.63, gamma=32.17, rocking_axis="y"))  # 34-ID-C's gamma: elevation
    assert raw.mask[:, bad > 0].all()
    counts, mask = correct_detector(raw.frames, raw.mask, whitefield=raw.whitefield)
    with np.load(REAL / "aps34idc_scan54_crop128.npz") as z:
        reference, ref_mask, crop = z["iobs"], z["mask"] > 0, z["crop_slices"]
    window = tuple(slice(a, b) for a, b in crop[1:])
    top = crop[0][0]
    mine, theirs = counts[top:, window[0], window[1]], reference[:80 - top]
    use = ~mask[top:, window[0], window[1]] & ~ref_mask[:80 - top]
    # the same per-pixel gain up to one constant (the reference took mean W over the whole
    # 512² calibration image, of which the shared file keeps a quarter; we average the live pixels)
    scale = np.sum(mine[use] * theirs[use]) / np.sum(theirs[use] ** 2)
    np.testing.assert_allclose(mine[use], scale * theirs[use], rtol=1e-4, atol=1e-3)
    assert 0.8 < scale < 1.25
    with pytest.raises(FileFormatError, match="80 theta positions but 79 TIFF"):
        load_34idc(spec, 54, frames=sorted((tmp_path / "scan_0054").glob("*.tif"))[:79], detector_distance=0.5)
    with pytest.raises(FileFormatError, match="detector_distance"):
        load_34idc(spec, 54, frames=tmp_path / "scan_0054")


def test_34idc_geometry_matches_cohere_axes(tmp_path):
    """The geometry load_34idc reads from SPEC puts every frame and pixel of the TIFFs, as stored,
    at the q that xrayutilities gives under cohere's 34-ID-C definition: sample th about y+ (then
    chi about z-, phi about y+), detector delta about y+ then gamma about x-, beam along z, and
    the frame transposed as cohere reads it, its first index along x+ and its second along y-."""
    xu = pytest.importorskip("xrayutilities")
    from braggscope.io.beamline import load_34idc

    n, c, step = 9, 4, 0.01
    spec = write_34idc(tmp_path, np.zeros((n, n, n), np.uint16), theta_step=step, delta=32.17, gamma=12.63)
    geo = load_34idc(spec, 54, frames=tmp_path / "scan_0054", detector_distance=0.5).geometry
    lam = geo.wavelength * 10  # [Å]
    conv = xu.experiment.QConversion(("y+", "z-", "y+"), ("y+", "x-"), (0, 0, 1), wl=lam)
    conv.init_area("x+", "y-", cch1=c, cch2=c, Nch1=n, Nch2=n, distance=500.0, pwidth1=0.055, pwidth2=0.055)
    theta = step * (np.arange(n) - n // 2)  # as write_34idc writes it
    zeros = np.zeros(n)
    qx, qy, qz = conv.area(theta, zeros, zeros, np.full(n, 32.17), np.full(n, 12.63), wl=lam)
    q_cohere = np.stack([qz, qy, qx]).transpose(0, 1, 3, 2) * 10  # [1/nm] (z, y, x) × (frame, row, column)
    k = np.stack(np.meshgrid(*[np.arange(n) - c] * 3, indexing="ij"))
    q_ours = geo.q_bragg[:, None, None, None] + np.tensordot(geo.q_basis(), k, axes=1)
    np.testing.assert_allclose(q_cohere[:, c, c, c], geo.q_bragg, rtol=1e-9)
    assert np.abs(q_cohere - q_ours).max() < 0.02 * np.linalg.norm(geo.q_basis(), axis=0).max()


@pytest.mark.parametrize("rocking, mu, eta", [("eta", 0.0, 0.0), ("phi", 0.0, 0.0), ("eta", 0.4, 0.0),
                                               ("phi", 0.4, 12.0)])
def test_id01_geometry_matches_the_peers_axes(tmp_path, rocking, mu, eta):
    """The geometry load_id01_bliss reads puts every frame and pixel at the q that xrayutilities
    gives under ID01's definition in bcdi and cdiutils (and PyNX's Bragg ptychography matrix):
    sample mu about y-, eta about x-, phi about y-; detector nu about y-, then delta about x-;
    beam along z; frame rows along y- and columns along x+. Rocking on eta and on phi, also with
    the circles outside the rocking one turned (mu, and eta under phi), which tilt its axis."""
    import h5py
    from scipy.spatial.transform import Rotation
    xu = pytest.importorskip("xrayutilities")
    from braggscope.io.beamline import load_id01_bliss

    n, c, step, delta, nu = 9, 4, 0.01, 30.0, 5.0
    angles = step * (np.arange(n) - c)
    motors = {"mu": mu, "eta": eta, "phi": 0.0, "delta": delta, "nu": nu, "mononrj": 9.0} | {rocking: angles}
    path = tmp_path / "id01.h5"
    with h5py.File(path, "w") as f:
        entry = f.create_group("crystal_1.1")
        entry["measurement/mpx1x4"] = np.zeros((n, n, n), np.uint16)
        entry.create_group("instrument/positioners").update(motors)
        entry.create_group("instrument/mpx1x4").update({"distance": 0.5, "x_pixel_size": 55e-6})
    raw = load_id01_bliss(path, 1)
    geo = raw.geometry
    lam = geo.wavelength * 10  # [Å]
    conv = xu.experiment.QConversion(("y-", "x-", "y-"), ("y-", "x-"), (0, 0, 1), wl=lam)
    conv.init_area("y-", "x+", cch1=c, cch2=c, Nch1=n, Nch2=n, distance=500.0, pwidth1=0.055, pwidth2=0.055)
    zeros = np.zeros(n)
    eta_arg, phi_arg = (angles if rocking == m else zeros + motors[m] for m in ("eta", "phi"))
    qx, qy, qz = conv.area(zeros + mu, eta_arg, phi_arg, np.full(n, nu), np.full(n, delta), wl=lam)
    # xrayutilities gives q in the sample's frame; the sample circles at the centre frame take it to the lab's
    to_lab = Rotation.from_euler("YXY", [-mu, -eta_arg[c], -phi_arg[c]], degrees=True).as_matrix()  # mu·eta·phi
    np.testing.assert_allclose(raw.metadata["sample_rotation"], to_lab[::-1, ::-1], atol=1e-12)  # (z, y, x)
    q_peers = np.einsum("ij,jfrc->ifrc", to_lab, np.stack([qx, qy, qz]))[::-1] * 10  # [1/nm] (z, y, x)
    k = np.stack(np.meshgrid(*[np.arange(n) - c] * 3, indexing="ij"))
    q_ours = geo.q_bragg[:, None, None, None] + np.tensordot(geo.q_basis(), k, axes=1)
    np.testing.assert_allclose(q_peers[:, c, c, c], geo.q_bragg, rtol=1e-9)
    assert np.abs(q_peers - q_ours).max() < 0.02 * np.linalg.norm(geo.q_basis(), axis=0).max()


def write_p10(folder, frames, motors, *, rocking, name="crystal_00012", series=1, pixel_mask=None, pixel=75e-6):
    """A P10 scan as its online software and Eiger write it: <name>/<name>.fio (parameters, and the
    rocking motor's column) and <name>/e4m/<name>_master.h5 (entry/data/data_000001, or one
    dataset per point holding `series` frames each), the detector's pixel mask and pixel size."""
    import h5py

    scan = Path(folder) / name
    (scan / "e4m").mkdir(parents=True, exist_ok=True)
    params = [f"{k} = {v}" for k, v in motors.items() if k != rocking]
    rows = [f" {a:.6f} {i}" for i, a in enumerate(motors[rocking])]
    text = ["!", "! Comments", "%c", f"dscan {rocking} -0.04 0.04 {len(rows) - 1} 1.0", "!", "! Parameter", "%p",
            *params, "!", "! Data", "%d", f" Col 1 {rocking} DOUBLE", " Col 2 e4m DOUBLE", *rows]
    (scan / f"{name}.fio").write_text("\n".join(text) + "\n")
    with h5py.File(scan / "e4m" / f"{name}_master.h5", "w") as f:
        if series == 1:
            f["entry/data/data_000001"] = frames
        for i, frame in enumerate(frames if series > 1 else []):
            f[f"entry/data/data_{i + 1:06d}"] = np.stack([frame // series] * series)
        det = f.create_group("entry/instrument/detector")
        det["x_pixel_size"] = pixel
        if pixel_mask is not None:
            det["detectorSpecific/pixel_mask"] = pixel_mask
    return scan / f"{name}.fio"


@pytest.mark.parametrize("rocking, om, chi", [("om", 0.0, 90.0), ("phi", 0.0, 90.0), ("phi", 10.0, 92.0)])
def test_p10_geometry_matches_bcdi_axes(tmp_path, rocking, om, chi):
    """The geometry load_p10 reads puts every frame and pixel at the q that xrayutilities gives
    under bcdi's definition of P10: sample mu about y+, om about x-, chi about z+ (reading 90 at
    its zero), phi about y-; detector gam about y+, then del about x-; beam along z; frame rows
    along y- and columns along x- (P10's), which the loader flips to run along x+. Rocking on om
    and on phi, also with om and chi turned (they tilt phi's axis)."""
    from scipy.spatial.transform import Rotation
    xu = pytest.importorskip("xrayutilities")
    from braggscope.io.beamline import load_p10

    n, c, step, mu, delta, gam = 9, 4, 0.01, 0.3, 28.0, 6.0
    angles = step * (np.arange(n) - c)
    motors = {"mu": mu, "om": om, "chi": chi, "phi": 0.0, "del": delta, "gam": gam, "fmbenergy": 9000.0}
    motors[rocking] = angles
    frames = np.zeros((n, n, n), np.uint32)
    frames[:, 2, 0] = 7  # a marker in the first column as the detector stores it
    mask = np.zeros((n, n), np.uint32)
    mask[5, 1] = 1
    raw = load_p10(write_p10(tmp_path, frames, motors, rocking=rocking, pixel_mask=mask), detector_distance=0.5)
    assert (raw.frames[:, 2, -1] == 7).all() and raw.mask[:, 5, -2].all() and raw.geometry.pixel_size == 75.0
    geo = raw.geometry
    lam = geo.wavelength * 10  # [Å]
    conv = xu.experiment.QConversion(("y+", "x-", "z+", "y-"), ("y+", "x-"), (0, 0, 1), wl=lam)
    conv.init_area("y-", "x-", cch1=c, cch2=c, Nch1=n, Nch2=n, distance=500.0, pwidth1=0.075, pwidth2=0.075)
    circle = {m: np.zeros(n) + (angles if m == rocking else motors[m]) for m in ("mu", "om", "chi", "phi")}
    circle["chi"] = circle["chi"] - 90.0
    qx, qy, qz = conv.area(circle["mu"], circle["om"], circle["chi"], circle["phi"], np.full(n, gam),
                           np.full(n, delta), wl=lam)
    # xrayutilities gives q in the sample's frame; the sample circles at the centre frame take it to the lab's
    to_lab = (Rotation.from_euler("YXZ", [circle["mu"][c], -circle["om"][c], circle["chi"][c]], degrees=True)
              * Rotation.from_euler("Y", -circle["phi"][c], degrees=True)).as_matrix()  # mu·om·chi·phi
    np.testing.assert_allclose(raw.metadata["sample_rotation"], to_lab[::-1, ::-1], atol=1e-12)  # (z, y, x)
    q_peers = np.einsum("ij,jfrc->ifrc", to_lab, np.stack([qx, qy, qz]))[::-1, :, :, ::-1] * 10  # columns flipped
    k = np.stack(np.meshgrid(*[np.arange(n) - c] * 3, indexing="ij"))
    q_ours = geo.q_bragg[:, None, None, None] + np.tensordot(geo.q_basis(), k, axes=1)
    np.testing.assert_allclose(q_peers[:, c, c, c], geo.q_bragg, rtol=1e-9)
    assert np.abs(q_peers - q_ours).max() < 0.02 * np.linalg.norm(geo.q_basis(), axis=0).max()


def test_p10_reads_a_series_per_point_and_names_what_is_missing(tmp_path):
    """Eiger series (one dataset of several frames per scan point) are summed per point; a FIO
    file without del, or a scan whose rocking motor cannot be told, is refused with a message."""
    from braggscope.io.beamline import load_p10

    n = 5
    frames = np.arange(n * 16, dtype=np.uint32).reshape(n, 4, 4) * 3
    motors = {"om": np.linspace(10, 10.04, n), "del": 30.0, "fmbenergy": 9000.0}
    raw = load_p10(write_p10(tmp_path, frames, motors, rocking="om", series=3), detector_distance=0.5)
    np.testing.assert_array_equal(raw.frames, frames[..., ::-1])
    assert raw.geometry.energy == 9.0 and raw.geometry.rocking_axis == "x"
    no_del = write_p10(tmp_path / "b", frames, {k: v for k, v in motors.items() if k != "del"}, rocking="om")
    with pytest.raises(FileFormatError, match="del is not recorded"):
        load_p10(no_del, detector_distance=0.5)
    with pytest.raises(FileFormatError, match="detector_distance"):
        load_p10(no_del.parent.parent.parent / "crystal_00012" / "crystal_00012.fio")


def test_pipeline_from_a_p10_scan_measures_the_lattice(tmp_path, detector_scan):
    """A simulated scan written as P10 writes it (om rocking, about -x; frames in the detector's
    own orientation, columns inboard) loads back onto the simulator's geometry and frames, and the
    beamline pipeline ("p10") measures Pt 111's d-spacing from it."""
    from braggscope.io.beamline import load_p10
    from braggscope.pipeline import Pipeline

    g, n = detector_scan.geometry, len(detector_scan.intensity)
    motors = {"om": 10.0 - g.rocking_step * (np.arange(n) - n // 2), "del": g.delta, "gam": g.gamma,
              "fmbenergy": g.energy * 1000}
    fio = write_p10(tmp_path, detector_scan.intensity.astype(np.uint32)[..., ::-1], motors, rocking="om",
                    pixel=g.pixel_size * 1e-6)
    raw = load_p10(fio, detector_distance=g.detector_distance)
    assert_same_geometry(raw.geometry, g)
    np.testing.assert_array_equal(raw.frames, detector_scan.intensity)
    rows = Pipeline({"beamline": "p10", "output": str(tmp_path / "out"),
                     "data": {"path": str(tmp_path / "crystal_{scan:05d}" / "crystal_{scan:05d}.fio"), "scans": [12]},
                     "geometry": {"detector_distance": g.detector_distance},
                     "sample": {"material": "Pt", "hkl": [1, 1, 1]},
                     "prepare": {"shape": [48, 48, 48]}, "reconstruct": {"runs": 2},
                     "identify": {"render": False, "classify": False}}).run()
    assert rows[0]["status"] == "done", rows[0].get("error")
    assert rows[0]["d_spacing_nm"] == pytest.approx(0.3924 / np.sqrt(3), rel=2e-3)
    # the result file carries its grid and the scan's sample rotation: `braggscope strain` reads it alone
    from braggscope.cli import main
    from braggscope.io import read_result

    result = Path(rows[0]["folder"]) / "result.cxi"
    config = read_result(result)[3]
    np.testing.assert_allclose(config["sample_rotation"], raw.metadata["sample_rotation"])
    assert config["frame"] == "detector" and list(config["hkl"]) == [1, 1, 1] and config["material"] == "Pt"
    assert main(["strain", str(result), "--out", str(tmp_path / "s.h5"), "-q"]) == 0


@pytest.mark.parametrize("rocking, columns, theta", [("gontheta", "inboard", 0.0), ("gonphi", "outboard", 0.0),
                                                     ("gonphi", "inboard", 15.0)])
def test_nanomax_geometry_matches_the_peers_axes(tmp_path, rocking, columns, theta):
    """The geometry load_nanomax reads puts every frame and pixel at the q that xrayutilities
    gives under the NanoMAX definition bcdi and cdiutils share (gontheta about x-, then gonphi
    about y-; detector gamma about y-, then delta about x-; rows along y-), with the columns along
    the direction the caller states (the peers disagree on it): x- for 'inboard' (flipped to x+),
    x+ for 'outboard'. Rocking on gontheta and on gonphi, the latter also with gontheta at 15°."""
    import h5py
    from scipy.spatial.transform import Rotation
    xu = pytest.importorskip("xrayutilities")
    from braggscope.io.beamline import load_nanomax

    n, c, step, delta, gamma = 9, 4, 0.01, 25.0, 4.0
    angles = step * (np.arange(n) - c)
    snapshot = {"gontheta": theta, "gonphi": 0.0, "delta": delta, "gamma": gamma, "energy": 10000.0}
    path = tmp_path / "scan_000042.h5"
    with h5py.File(path, "w") as f:
        f["entry/measurement/eiger500k/frames"] = np.zeros((n, n, n), np.uint32)
        f[f"entry/measurement/{rocking}"] = angles
        for name, value in snapshot.items():
            f[f"entry/snapshots/post_scan/{name}"] = [value]
    raw = load_nanomax(path, columns=columns, detector_distance=0.5)
    geo = raw.geometry
    assert geo.energy == 10.0 and geo.pixel_size == 75.0
    lam = geo.wavelength * 10  # [Å]
    conv = xu.experiment.QConversion(("x-", "y-"), ("y-", "x-"), (0, 0, 1), wl=lam)
    conv.init_area("y-", "x-" if columns == "inboard" else "x+", cch1=c, cch2=c, Nch1=n, Nch2=n, distance=500.0,
                   pwidth1=0.075, pwidth2=0.075)
    circle = {m: np.zeros(n) + (angles if m == rocking else snapshot[m]) for m in ("gontheta", "gonphi")}
    qx, qy, qz = conv.area(circle["gontheta"], circle["gonphi"], np.full(n, gamma), np.full(n, delta), wl=lam)
    to_lab = Rotation.from_euler("XY", [-circle["gontheta"][c], -circle["gonphi"][c]], degrees=True).as_matrix()
    np.testing.assert_allclose(raw.metadata["sample_rotation"], to_lab[::-1, ::-1], atol=1e-12)  # (z, y, x)
    q_peers = np.einsum("ij,jfrc->ifrc", to_lab, np.stack([qx, qy, qz]))[::-1] * 10  # [1/nm] (z, y, x)
    if columns == "inboard":
        q_peers = q_peers[..., ::-1]  # the loader's flipped frame
    k = np.stack(np.meshgrid(*[np.arange(n) - c] * 3, indexing="ij"))
    q_ours = geo.q_bragg[:, None, None, None] + np.tensordot(geo.q_basis(), k, axes=1)
    np.testing.assert_allclose(q_peers[:, c, c, c], geo.q_bragg, rtol=1e-9)
    assert np.abs(q_peers - q_ours).max() < 0.02 * np.linalg.norm(geo.q_basis(), axis=0).max()
    with pytest.raises(ConfigError, match="columns"):
        load_nanomax(path, columns="left", detector_distance=0.5)
    from braggscope.pipeline import config_from_dict

    with pytest.raises(ConfigError, match="columns must say which way"):  # at configuration time, not per scan
        config_from_dict({"beamline": "nanomax", "output": "out", "data": {"path": str(path), "scans": [42]}})
    config = config_from_dict({"beamline": "nanomax", "output": "out", "geometry": {"detector_distance": 0.5},
                               "data": {"path": str(path), "scans": [42], "columns": columns}})
    from braggscope.pipeline.scan import load_scan

    assert_same_geometry(load_scan(config, 42).geometry, geo)


def test_34idc_reads_the_spec_file_the_beamline_wrote(tmp_path):
    """Scan 54's SPEC file as 34-ID-C wrote it (columns Theta, motors Delta, Gamma, camdist [mm],
    Energy; the command says th) gives the geometry of the shared scan with no motor given by hand."""
    import tifffile

    from braggscope.io.beamline import load_34idc

    folder = tmp_path / "Staff20-1a_S0054"
    folder.mkdir()
    for i in range(201):  # the image ROI the file records (#UIMR5 0 256 0 256)
        tifffile.imwrite(folder / f"Staff20-1a_S0054_{i:05d}.tif", np.zeros((256, 256), np.uint8))
    raw = load_34idc(DATA / "aps34idc_scan54.spec", 54, frames=folder)
    geo = raw.geometry
    assert geo.rocking_step == pytest.approx(0.005, rel=1e-3)
    assert_same_geometry(geo, Geometry(energy=9.0, detector_distance=0.5, pixel_size=55.0, delta=12.6346,
                                       gamma=32.174, rocking_axis="y", rocking_step=geo.rocking_step))
    assert raw.metadata["detector"] == "34idcTIM2" and raw.metadata["detector_area_origin"] == [0, 0]
    assert raw.frames.shape == (201, 256, 256) and not raw.mask.any()  # one chip: no gap inside
    for path in folder.glob("*.tif"):
        tifffile.imwrite(path, np.zeros((128, 256), np.uint8))
    with pytest.raises(FileFormatError, match="image ROI of 256 × 256 pixels .* hold 128 × 256"):
        load_34idc(DATA / "aps34idc_scan54.spec", 54, frames=folder)


def test_34idc_frames_across_the_timepix_chip_gaps_are_put_back_on_one_grid(tmp_path):
    """A frame whose detector area (#UIMR5) straddles the Timepix quad's chip boundaries gets the
    gaps cohere puts there (5 rows before detector row 256, 4 columns before column 256), masked,
    so every pixel is back where it sits on the detector; dark, white field and bad-pixel images
    of the whole 512² detector are cut to the area and given the same gaps."""
    from braggscope.io.beamline import load_34idc

    y0, x0, ny, nx = 220, 200, 80, 100  # detector area: rows 220–299, columns 200–299
    rows, cols = np.arange(ny + 5), np.arange(nx + 4)  # positions on the detector's uniform grid
    on_grid = (1000 * rows[:, None] + cols[None, :]).astype(np.uint32)
    gap_rows, gap_cols = np.arange(256 - y0, 261 - y0), np.arange(256 - x0, 260 - x0)
    stored = np.delete(np.delete(on_grid, gap_rows, axis=0), gap_cols, axis=1)  # what the TIFF holds
    spec = write_34idc(tmp_path, np.stack([stored] * 3), header=("#UIMDET 34idcTIM2:", f"#UIMR5  {x0} {nx} {y0} {ny} 1"))
    white = np.full((512, 512), 2.0, np.float32)
    white[y0 + 10, x0 + 70] = 0.0  # a dead pixel of the full detector, past both gaps
    bad = np.zeros((512, 512), np.int8)
    bad[y0 + 1, x0 + 1] = 1
    raw = load_34idc(spec, 54, frames=tmp_path / "scan_0054", whitefield=white, bad_pixels=bad, dark=np.ones((512, 512)),
                     detector_distance=0.5)
    gap = np.zeros((ny + 5, nx + 4), bool)
    gap[gap_rows] = gap[:, gap_cols] = True
    assert raw.frames.shape == (3, ny + 5, nx + 4) and raw.frames.dtype == np.float32
    np.testing.assert_array_equal(raw.frames[0][~gap], on_grid[~gap])
    np.testing.assert_array_equal(raw.mask[0], gap | (np.arange(ny + 5)[:, None] == 1) & (np.arange(nx + 4) == 1))
    assert np.isnan(raw.whitefield[gap]).all() and raw.whitefield[10, 74] == 0.0  # column 70 + the 4 gap columns
    assert (raw.dark[gap] == 0).all() and (raw.dark[~gap] == 1).all()
    with pytest.raises(FileFormatError, match="white field image \\(100, 100\\) fits neither"):
        load_34idc(spec, 54, frames=tmp_path / "scan_0054", whitefield=white[:100, :100], detector_distance=0.5)


def test_spec_motors_by_mnemonic_and_case_under_the_header_in_force():
    """A motor or column is found by its name, its mnemonic or in another case; a scan after a
    restart takes the new header's motors; a missing motor is named with those there are."""
    from braggscope.io.spec import parse_spec

    text = ("#O0 Delta  Theta\n#o0 del th\n\n#S 1 ascan th 0 1 1 1\n#P0 30 1\n#L Theta  Seconds\n0 1\n1 1\n\n"
            "#F restart\n#O0 Theta  Gamma\n#o0 th gam\n\n"
            "#S 2 ascan th 0 1 1 1\n#P0 2 12.5\n#L Theta  Seconds\n0 1\n1 1\n")
    scans = parse_spec(text)
    assert scans[1].motor("delta") == scans[1].motor("del") == 30
    assert scans[1].column("th").tolist() == [0, 1]
    assert scans[2].motor("theta") == 2 and scans[2].motor("gam") == 12.5
    assert scans[2].motor("delta", None) is None
    with pytest.raises(FileFormatError, match="no motor 'delta' \\(motors: Theta, Gamma\\)"):
        scans[2].motor("delta")


def test_34idc_frames_are_ordered_by_their_number(tmp_path):
    """frame_2.tif is read before frame_10.tif, as the rocking scan took them."""
    import tifffile

    from braggscope.io.beamline import load_34idc

    spec = write_34idc(tmp_path, np.zeros((12, 4, 4), np.uint16))
    for path in (tmp_path / "scan_0054").glob("*.tif"):
        path.unlink()
    for i in range(12):
        tifffile.imwrite(tmp_path / "scan_0054" / f"frame_{i}.tif", np.full((4, 4), i, np.uint16))
    raw = load_34idc(spec, 54, frames=tmp_path / "scan_0054", detector_distance=0.5)
    np.testing.assert_array_equal(raw.frames[:, 0, 0], np.arange(12))


def test_cxi_loader_takes_what_the_file_lacks_from_the_configuration(tmp_path, detector_scan):
    """A PyNX-style CXI with energy, distance and pixel size but no rocking step: the geometry is
    completed from [geometry], or is None (and the pipeline names what to give)."""
    from braggscope.io import write_cxi_data
    from braggscope.io.beamline import load_cxi
    from braggscope.pipeline import Pipeline

    g = detector_scan.geometry
    write_cxi_data(tmp_path / "pynx.cxi", detector_scan.intensity, mask=detector_scan.mask, energy=g.energy,
                   detector_distance=g.detector_distance, pixel_size=g.pixel_size)
    assert load_cxi(tmp_path / "pynx.cxi").geometry is None
    raw = load_cxi(tmp_path / "pynx.cxi", rocking_step=g.rocking_step, delta=g.delta, gamma=g.gamma)
    assert_same_geometry(raw.geometry, g)
    row = Pipeline({"output": str(tmp_path / "out"), "data": {"path": str(tmp_path / "pynx.cxi"), "scans": [1]},
                    "prepare": {"shape": [48, 48, 48]}}).run()[0]
    assert row["status"] == "failed" and "rocking_step" in row["error"]


# --- configuration ----------------------------------------------------------------------------

def test_config_names_the_closest_key_and_fills_beamline_defaults(tmp_path):
    from braggscope.pipeline import config_from_dict, load_config

    base = {"output": "out", "data": {"path": "x.cxi", "scans": [1]}}
    with pytest.raises(ConfigError, match="unknown key 'isosurfce' in \\[strain\\]; did you mean 'isosurface'"):
        config_from_dict(base | {"strain": {"isosurfce": 0.3}})
    with pytest.raises(ConfigError, match="unknown key 'reconstruction' in the top level; did you mean 'reconstruct'"):
        config_from_dict(base | {"reconstruction": {}})
    with pytest.raises(ConfigError, match="beamline"):
        config_from_dict(base | {"beamline": "sixs"})  # no loader yet
    with pytest.raises(ConfigError, match="\\[reconstruct\\] runs must be int, got '4'"):
        config_from_dict(base | {"reconstruct": {"runs": "4"}})
    with pytest.raises(ConfigError, match="\\[prepare\\] shape must be tuple or None, got 128"):
        config_from_dict(base | {"prepare": {"shape": 128}})
    with pytest.raises(ConfigError, match="backend"):
        config_from_dict(base | {"reconstruct": {"backend": "cohere"}})
    with pytest.raises(ConfigError, match="psf shapes the default chain"):
        config_from_dict(base | {"reconstruct": {"psf": True, "recipe": "ER**100"}})
    assert config_from_dict(base | {"reconstruct": {"psf": True}}).reconstruct.psf
    with pytest.raises(ConfigError, match="refraction needs the crystal's index of refraction"):
        config_from_dict(base | {"strain": {"refraction": True}})
    assert config_from_dict(base | {"strain": {"refraction": True}, "sample": {"material": "Au"}}).strain.refraction
    with pytest.raises(ConfigError, match="scans"):
        config_from_dict({"output": "out", "data": {"path": "x.cxi", "scans": []}})
    (tmp_path / "c.toml").write_text('beamline = "id01"\noutput = "o"\n[data]\npath = "m.h5"\nscans = [1, 2]\n')
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.data.format == "id01" and Path(cfg.output) == tmp_path / "o" and cfg.data.scans == (1, 2)
    assert cfg.resolve("m_{scan:03d}.h5", 7) == tmp_path / "m_007.h5"


# --- the pipeline -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def simulated_batch(tmp_path_factory):
    """Three small simulated CXI scans (one with a dislocation) and a config over them plus a
    missing scan."""
    from braggscope.io import write_simulation
    from braggscope.simulate import Crystal, Detector, random_orientation, simulate_bcdi, truncated_octahedron

    folder = tmp_path_factory.mktemp("batch")
    for seed in (1, 2, 3):
        o = random_orientation(seed)
        xtal = Crystal(truncated_octahedron(45.0, o), "Pt", o)
        defects = [xtal.dislocation(burgers=(0.5, 0.5, 0), line=(1, -1, 1), position=(0, 0, 0))] if seed == 2 else []
        data = simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=(24,) * 3, voxel_size=3.0, data_shape=(48,) * 3,
                             detector=Detector(photons=1e8), rng=seed)
        write_simulation(folder / f"sim_{seed}.cxi", data, seed=seed)
    return folder


def _config(folder, output, **cluster):
    from braggscope.pipeline import config_from_dict

    return config_from_dict({"output": str(folder / output), "data": {"path": str(folder / "sim_{scan}.cxi"),
                                                                        "scans": [1, 2, 3, 9]},
                             "prepare": {"shape": [48, 48, 48]}, "reconstruct": {"runs": 2},
                             "identify": {"render": False}, "cluster": cluster})


def test_pipeline_serial_resumes_and_isolates_a_failure(simulated_batch):
    from braggscope.pipeline import Pipeline

    config = _config(simulated_batch, "serial")
    rows = Pipeline(config).run()
    assert [r["status"] for r in rows] == ["done", "done", "done", "failed"]
    assert "no such file" in rows[3]["error"] and (Path(rows[3]["folder"]) / "error.json").is_file()
    for r in rows[:3]:
        folder = Path(r["folder"])
        assert {"data.cxi", "result.cxi", "strain.h5", "strain.png", "defects.json", "report.html",
                "thumb.png"} <= set(r["files"]) and (folder / "summary.json").is_file()
        assert abs(r["d_spacing_nm"] - 0.3924 / np.sqrt(3)) < 2e-4  # |G| of the file's grid
        # the truncated octahedron's largest extent: its circumscribed diameter, edge × √10, with the edge
        # 45 nm / √6 ({111}-to-{111} distance over √6): 58.1 nm, to within a voxel (3 nm)
        assert abs(r["size_nm"] - 45 / np.sqrt(6) * np.sqrt(10)) < 3.0
        assert r["llk"] < 5 and r["psf_fwhm_pixels"] is None  # no PSF by default
        assert not list(folder.glob(".*tmp"))  # no half-written file
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["config"]["reconstruct"]["seed"] == 0 and "torch" in summary["versions"]
        assert set(summary["timings"]) == {"load", "prepare", "classify", "reconstruct", "strain", "identify",
                                           "report"}
    again = Pipeline(config).run()
    assert [r["status"] for r in again] == ["skipped", "skipped", "skipped", "failed"]
    (Path(rows[1]["folder"]) / "strain.h5").unlink()  # an incomplete folder is redone
    assert [r["status"] for r in Pipeline(config).run(scans=[1, 2])] == ["skipped", "done"]
    longer = replace(config, data=replace(config.data, scans=(1, 2, 3, 9, 10)))  # the beamtime's list grows
    assert [r["status"] for r in Pipeline(longer).run(scans=[1, 3])] == ["skipped", "skipped"]
    page = (Path(config.output) / "summary.html").read_text()  # every scan of the beamtime, not only the last run's
    assert page.count("<tr>") == 1 + 4 and page.count("report.html") == 3 and "no such file" in page


def test_pipeline_with_the_pynx_backend(simulated_batch):
    """The network's seed refined by ESRF's PyNX instead of our engine (where PyNX is importable)."""
    from braggscope.io import read_result
    from braggscope.pipeline import Pipeline
    from braggscope.retrieval import pynx_available

    if not pynx_available():
        pytest.skip("PyNX not importable: run .ci/get-pynx and put .deps/pynx on PYTHONPATH")
    config = _config(simulated_batch, "pynx")
    config = replace(config, reconstruct=replace(config.reconstruct, backend="pynx"))
    row = Pipeline(config).run(scans=[1])[0]
    assert row["status"] == "done", row.get("error")
    _, _, _, cfg = read_result(Path(row["folder"]) / "result.cxi")
    assert cfg["backend"] == "pynx" and row["llk"] < 5 and 30 < row["size_nm"] < 60


@pytest.mark.slow
def test_pipeline_on_a_local_dask_cluster_equals_the_serial_run(simulated_batch):
    import torch

    from braggscope.io import read_result
    from braggscope.pipeline import Pipeline

    pytest.importorskip("distributed")
    # the same torch threads as a worker's (one): reductions summed in another order differ in the last
    # bits, which shrink-wrap's thresholds can grow into another solution (LLK 1.11 against 1.06 for
    # one of the scans on a 2-core Intel Xeon, run serially with two threads)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = Pipeline(_config(simulated_batch, "serial_1")).run(scans=[1, 2, 3])
    finally:
        torch.set_num_threads(threads)
    cluster = Pipeline(_config(simulated_batch, "cluster", kind="local", workers=2)).run(scans=[1, 2, 3])
    assert [r["status"] for r in cluster] == ["done"] * 3
    for a, b in zip(serial, cluster):
        assert a["scan"] == b["scan"]
        for key in ("llk", "free_llk", "strain_rms", "size_nm", "voxels"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
        assert a["defect_counts"] == b["defect_counts"]
        obj_a, obj_b = (read_result(Path(r["folder"]) / "result.cxi")[0] for r in (a, b))
        assert np.linalg.norm(obj_a - obj_b) <= 1e-3 * np.linalg.norm(obj_a)


@pytest.mark.parametrize("bins", [(1, 1, 1), (1, 2, 2)])
def test_pipeline_from_a_bliss_file_measures_the_lattice_and_the_crystal(tmp_path, detector_scan, bins):
    """The whole chain from an ID01 master file: the d-spacing from the measured peak and the
    crystal's size on the lab grid agree with the simulation's, also with the detector pixels binned
    2 × 2 (a wrong pixel size, distance, energy, angle unit or binned grid would break them; the
    signs are checked by the loader's test)."""
    from braggscope.pipeline import Pipeline

    frames = np.zeros((48, 516, 516), np.uint32)  # the crystal's peak off the detector's centre, on the
    frames[:, 100:148, 300:348] = detector_scan.intensity  # pixel the direct beam hits at delta = nu = 0
    write_bliss(tmp_path / "master.h5", frames, detector_scan.geometry, beam_centre=(124, 324))
    rows = Pipeline({"beamline": "id01", "output": str(tmp_path / "out"),
                     "data": {"path": str(tmp_path / "master.h5"), "scans": [3], "detector": "mpx1x4"},
                     "prepare": {"shape": [48, 48, 48], "bin": list(bins)}, "reconstruct": {"runs": 2},
                     "sample": {"material": "Pt", "hkl": [2, 0, 0]},  # not the measured 111: flagged
                     "identify": {"render": False, "classify": False},
                     "strain": {"refraction": bins != (1, 1, 1)}}).run()
    row = rows[0]
    assert row["status"] == "done", row.get("error")
    assert (row["refraction"] is None) == (bins == (1, 1, 1))
    if row["refraction"]:  # the twin kept is the one whose phase follows the refraction more
        assert row["refraction"]["share"] >= row["refraction"]["share_of_other_twin"]
    assert row["d_spacing_nm"] == pytest.approx(0.3924 / np.sqrt(3), rel=2e-3)
    assert any(f.startswith("d-spacing +15.") for f in row["flags"])  # d111 / d200 = 2/√3 = 1.155
    from braggscope.io import read_data

    data = read_data(Path(row["folder"]) / "data.cxi")  # the prepared data's own grid, for other tools
    assert data.config["frame"] == "detector" and data.config["rocking_step"] == pytest.approx(0.1)
    np.testing.assert_allclose(data.config["q_basis"], detector_scan.geometry.q_basis() * bins, rtol=1e-9)
    s = detector_scan.sample
    points = np.argwhere(s.support) * s.voxel_size  # [nm] the true crystal's voxel centres
    truth = 2 * np.max(np.linalg.norm(points - points.mean(axis=0), axis=1))
    assert row["size_nm"] == pytest.approx(truth, rel=0.15)


# --- the pages in a browser --------------------------------------------------------------------

def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (.ci/run installs it)")
def test_summary_page_loads_offline_in_chromium(simulated_batch):
    """Chromium, headless and with the network off, runs the page's script (sorting, image count)
    and shows the table and every picture."""
    from braggscope.pipeline import Pipeline

    config = _config(simulated_batch, "serial")
    Pipeline(config).run()
    page = Path(config.output) / "summary.html"
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--proxy-server=127.0.0.1:9", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'data-ready="yes"' in dom
    assert 'data-images="3" data-images-loaded="3"' in dom
    assert dom.count('href="scan_') == 3 and "failed" in dom


def test_run_command_exit_status(simulated_batch, tmp_path):
    """`braggscope run`: 2 for a bad configuration (one line, the closest key named), 1 when a scan
    failed (the others done and listed)."""
    from braggscope.cli import main

    (tmp_path / "bad.toml").write_text('output = "o"\n[data]\npath = "x.cxi"\nscans = [1]\n[reconstruct]\nrun = 2\n')
    assert main(["run", str(tmp_path / "bad.toml")]) == 2
    good = (f'output = "{tmp_path / "o"}"\n[data]\npath = "{simulated_batch / "sim_{scan}.cxi"}"\nscans = [1, 9]\n'
            '[prepare]\nshape = [48, 48, 48]\n[reconstruct]\nruns = 2\n[identify]\nrender = false\n')
    (tmp_path / "good.toml").write_text(good)
    assert main(["run", str(tmp_path / "good.toml"), "-q"]) == 1
    rows = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [r["status"] for r in rows] == ["done", "failed"]


def _scan_that_kills_its_worker(config, scan, **_):
    """run_scan's stand-in: the worker process dies under scan 2 (as the kernel's OOM killer
    ends one), the others finish."""
    if scan == 2:
        os._exit(1)
    return {"scan": scan, "status": "done"}


@pytest.mark.slow
def test_a_scan_whose_worker_dies_fails_alone(tmp_path, monkeypatch):
    """On a local Dask cluster, a scan under which its worker process dies (Dask retries it on
    fresh workers, then gives up) comes back as a failed row with its error.json, and the scans
    around it are done."""
    from braggscope.pipeline import config_from_dict
    from braggscope.pipeline.batch import run_batch

    pytest.importorskip("distributed")
    monkeypatch.setattr("braggscope.pipeline.batch.run_scan", _scan_that_kills_its_worker)
    config = config_from_dict({"output": str(tmp_path / "out"), "data": {"path": str(tmp_path / "s{scan}.cxi"), "scans": [1, 2, 3]},
                               "cluster": {"kind": "local", "workers": 2}})
    rows = run_batch(config, [1, 2, 3])
    assert [r["status"] for r in rows] == ["done", "failed", "done"]
    assert "KilledWorker" in rows[1]["error"] and (Path(rows[1]["folder"]) / "error.json").is_file()


def test_slurm_cluster_job_script():
    """The SLURM jobs a facility cluster gets: one worker process per job, its cores, memory,
    walltime, queue, account and one GPU (built, not submitted)."""
    pytest.importorskip("dask_jobqueue")
    from braggscope.pipeline import config_from_dict
    from braggscope.pipeline.batch import slurm_cluster

    c = config_from_dict({"output": "o", "data": {"path": "x.cxi", "scans": [1]},
                          "cluster": {"kind": "slurm", "queue": "gpu", "account": "ma1234", "cores": 8,
                                      "memory": "32GB", "gpus_per_worker": 1}}).cluster
    with slurm_cluster(c) as cluster:
        script = cluster.job_script()
    for line in ("#SBATCH -p gpu", "#SBATCH -A ma1234", "#SBATCH --cpus-per-task=8", "#SBATCH --gres=gpu:1",
                 "#SBATCH -t 02:00:00"):
        assert line in script
    assert "--nthreads 8" in script
