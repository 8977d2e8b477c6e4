"""CXI files and the command line."""
import h5py
import numpy as np
import pytest

from braggscope.cli import main
from braggscope.errors import FileFormatError, ShapeError
from braggscope.io import atomic_path, read_data, write_cxi_data, write_simulation
from braggscope.simulate import Crystal, Detector, simulate_bcdi, truncated_octahedron


@pytest.fixture(scope="module")
def simulated():
    xtal = Crystal(truncated_octahedron(60.0), "Pt")
    defects = [xtal.dislocation((0.5, 0, 0.5), (1, -1, 1)), xtal.stacking_fault((1, 1, 1), radius=12.0)]
    return simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=(24,) * 3, voxel_size=3.0, data_shape=(32,) * 3,
                         detector=Detector(photons=1e7, gaps="maxipix"), rng=1)


def test_cxi_round_trip_keeps_data_truth_and_pynx_paths(tmp_path, simulated):
    path = write_simulation(tmp_path / "s.cxi", simulated, seed=1)
    back = read_data(path)
    np.testing.assert_array_equal(back.intensity, simulated.intensity)
    np.testing.assert_array_equal(back.mask, simulated.mask)
    truth = back.ground_truth
    np.testing.assert_array_equal(truth["object"], simulated.sample.obj)
    np.testing.assert_array_equal(truth["strain"], simulated.sample.strain)
    assert [d["type"] for d in truth["defects"]] == ["dislocation", "stacking_fault"]
    with h5py.File(path) as f:  # the paths PyNX, silx and cdiutils read
        assert f["/entry_1/data_1/data"].shape == simulated.intensity.shape
        assert f["/entry_1/instrument_1/detector_1/mask"].dtype == np.uint8
        assert f["/entry_last/instrument_1/detector_1/data"].shape == (32, 32, 32)
        assert isinstance(f["entry_1/data_1"].get("data", getlink=True), h5py.SoftLink)


def test_energy_distance_and_pixel_are_stored_in_si(tmp_path):
    i = np.ones((8, 8), np.float32)
    write_cxi_data(tmp_path / "d.cxi", i, energy=9.0, detector_distance=0.5, pixel_size=55.0)
    with h5py.File(tmp_path / "d.cxi") as f:
        assert f["/entry_1/instrument_1/source_1/energy"][()] == pytest.approx(9e3 * 1.602176634e-19)
        assert f["/entry_1/instrument_1/detector_1/x_pixel_size"][()] == pytest.approx(55e-6)
    d = read_data(tmp_path / "d.cxi")
    assert d.energy == pytest.approx(9.0) and d.pixel_size == pytest.approx(55.0) and d.detector_distance == 0.5


@pytest.mark.parametrize("data, mask, error, match", [
    (np.full((4, 4), np.nan), None, ValueError, "NaN"),
    (-np.ones((4, 4)), None, FileFormatError, "negative"),
    (np.ones(5), None, ShapeError, "2-D"),
    (np.ones((4, 4)), np.ones((4, 4), bool), FileFormatError, "covers every pixel"),
    (np.zeros((4, 4)), None, FileFormatError, "no diffraction signal"),
])
def test_bad_data_is_a_clear_error_and_leaves_no_file(tmp_path, data, mask, error, match):
    with pytest.raises(error, match=match):
        write_cxi_data(tmp_path / "bad.cxi", data, mask=mask)
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_leaves_nothing_after_a_crash(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.cxi") as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_read_npz_npy_and_missing_keys(tmp_path):
    np.savez(tmp_path / "a.npz", iobs=np.ones((4, 4, 4)), mask=np.zeros((4, 4, 4), np.int8))
    assert read_data(tmp_path / "a.npz").intensity.shape == (4, 4, 4)
    np.save(tmp_path / "b.npy", np.ones((4, 4)))
    assert read_data(tmp_path / "b.npy").mask.shape == (4, 4)
    np.savez(tmp_path / "c.npz", other=np.ones(3))
    with pytest.raises(FileFormatError, match="none of the arrays"):
        read_data(tmp_path / "c.npz")
    with h5py.File(tmp_path / "d.cxi", "w") as f:
        f["entry_1/x"] = 1
    with pytest.raises(FileFormatError, match="no diffraction data"):
        read_data(tmp_path / "d.cxi")
    with pytest.raises(FileFormatError, match="no such file"):
        read_data(tmp_path / "nope.cxi")


def test_real_34idc_crop_reads(tmp_path):
    from pathlib import Path

    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "aps34idc_scan54_crop128.npz"
    if not real.is_file():
        pytest.skip(f"measured scan not found at {real}")
    d = read_data(real)
    assert d.intensity.shape == (128, 128, 128) and d.mask.any() and not d.mask.all()


def test_cli_simulate_writes_a_file(tmp_path, capsys):
    out = tmp_path / "sim.cxi"
    status = main(["simulate", str(out), "--shape", "24", "--voxel-size", "3", "--size", "50",
                   "--defects", "dislocation,loop", "--gaps", "maxipix", "--hot-pixels", "2", "--seed", "3", "-q",
                   "--png", str(tmp_path / "pic")])
    assert status == 0 and out.is_file()
    truth = read_data(out).ground_truth
    assert [d["type"] for d in truth["defects"]] == ["dislocation", "loop"]
    assert (tmp_path / "pic_truth.png").is_file() and (tmp_path / "pic_data.png").is_file()
    assert main(["simulate", str(tmp_path / "aniso.cxi"), "--shape", "24", "--voxel-size", "3", "--size", "50",
                 "--defects", "dislocation", "--elasticity", "anisotropic", "--seed", "3", "-q"]) == 0
    assert read_data(tmp_path / "aniso.cxi").ground_truth["defects"][0]["elasticity"] == "anisotropic"


def test_cli_detector_frame_and_atomistic(tmp_path):
    out = tmp_path / "det.cxi"
    assert main(["simulate", str(out), "--shape", "24", "--voxel-size", "1.5", "--size", "14", "--model",
                 "atomistic", "--detector-frame", "--distance", "2.0", "--material", "Au", "-q"]) == 0
    d = read_data(out)
    assert d.config["frame"] == "detector" and d.energy == pytest.approx(9.0)


@pytest.mark.parametrize("args, message", [
    (["--size", "-3"], "size"),
    (["--material", "Fe"], "unknown material"),
    (["--hkl", "0", "0", "0"], "0 0 0"),
    (["--voxel-size", "1000"], "voxel"),
    (["--defects", "vacancy"], "unknown defect kind"),
])
def test_cli_user_errors_exit_2_in_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "x.cxi"
    assert main(["simulate", str(out), "--shape", "16", "-q", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_unknown_benchmark_is_a_user_error(capsys):
    assert main(["bench", "nonexistent", "-q"]) == 2
    assert "available" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_report_and_pictures(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--device", "cpu", "-q"]) == 0
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert names == ["batch", "data.cxi", "defects.json", "defects.png", "diffraction.png", "laue_frame.h5",
                     "laue_frame.png",
                     "reconstruction.png", "report.html", "result.cxi", "sample.png", "strain.h5", "strain.png",
                     "tem_micrograph.tif", "tem_objects.png"]
    html = (tmp_path / "demo" / "report.html").read_text()
    assert "data:image/png;base64" in html and "stacking_fault" in html and "free LLK" in html
    assert "Strain along G" in html and "Found in the reconstruction by the U-Net" in html
    assert "Next scan" in html and "oversampling 3 of the detector plane" in html and "G·b = 0" in html
    assert "Howie–Whelan" in html and "Laue microdiffraction of a Cu polycrystal" in html
    assert "true loops with g·b = 0 here" in html
    assert html.count("data:image/png;base64") == 7
    assert "A beamtime batch" in html and (tmp_path / "demo" / "batch" / "summary.html").is_file()
    assert html.count("<td>done</td>") == 2
