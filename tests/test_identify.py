"""Defect identification: phase vortices, planar jumps, the U-Net, scores, defect list, pictures, CLI."""
import json

import numpy as np
import pytest
from scipy import ndimage

from braggscope.identify import (baseline_defects, close_core_tubes, find_defects, fit_plane, plaquette_winding,
                                 planar_defects, vortex_lines)
from braggscope.identify.metrics import class_iou, detection_counts, f1, line_counts
from braggscope.simulate import Crystal, simulate_sample, sphere
from braggscope.strain import strain_field

H = 2.5  # [nm] voxel


def _field(defects_of, hkl=(1, 1, 1), shape=(40,) * 3, material="Pt", size=80.0):
    xtal = Crystal(sphere(size), material)
    s = simulate_sample(xtal, defects_of(xtal), shape=shape, voxel_size=H, hkl=hkl)
    return s, strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=H)


@pytest.mark.parametrize("hkl, b, winding", [((1, 1, 1), (0.5, 0.5, 0), 1), ((2, 2, 0), (0.5, 0.5, 0), 2),
                                             ((2, 0, 0), (0, 0.5, 0.5), 0)])
def test_vortex_winding_is_g_dot_b_over_2pi(hkl, b, winding):
    s, field = _field(lambda x: [x.dislocation(b, (1, -1, 1) if b[0] == 0.5 else (0, 1, -1), (1.0, 2.0, -1.5))],
                      hkl=hkl)
    g_b = s.g_vector @ np.asarray(s.defects[0]["burgers_nm"]) / (2 * np.pi)
    assert abs(g_b) == pytest.approx(winding, abs=1e-9)
    lines = [d for d in baseline_defects(field).defects if d["type"].startswith("dislocation")]
    if winding == 0:
        assert lines == []
        return
    assert len(lines) == 1 and lines[0]["winding"] == winding
    true_line = np.asarray(s.defects[0]["line_direction"])
    assert abs(lines[0]["line_direction"] @ true_line) > np.cos(np.radians(5))
    # the centre line passes within a voxel of the true line
    offset = np.asarray(lines[0]["centre_nm"]) - np.asarray(s.defects[0]["position_nm"])
    assert np.linalg.norm(offset - (offset @ true_line) * true_line) < H


def test_winding_sign_follows_the_line_direction_right_handed():
    """A phase φ = atan2(y, x) winds +1 counter-clockwise about +z (x, y, z physical)."""
    z, y, x = np.indices((9, 9, 9)) - 4.0 + 0.5
    w = plaquette_winding(np.exp(1j * np.arctan2(y, x)))
    assert w[0].sum() == 8 and w[1].sum() == 0 and w[2].sum() == 0   # one plaquette per z layer, +1


def test_core_tube_must_be_closed_for_the_vortex_search():
    s, field = _field(lambda x: [x.dislocation((0.5, 0.5, 0), (1, -1, 0), (0.0, 1.0, 0.0))])
    amplitude_support = s.support & ~s.dislocation_mask   # what an amplitude threshold leaves
    assert not plaquette_winding(s.obj, amplitude_support).any()
    assert close_core_tubes(amplitude_support)[s.dislocation_mask].all()
    line, _ = vortex_lines(s.obj, amplitude_support)
    assert line.sum() > 20


def test_stacking_fault_plane_normal_jump_and_area():
    s, field = _field(lambda x: [x.stacking_fault((1, 1, 1), (1 / 6, 1 / 6, -1 / 3), (0.0, 3.0, 0.0), 28.0)],
                      hkl=(1, 1, -1), shape=(48,) * 3, size=100.0)
    faults = [d for d in baseline_defects(field).defects if d["type"] == "stacking_fault"]
    assert len(faults) == 1
    truth = s.defects[0]
    assert abs(faults[0]["plane_normal"] @ np.asarray(truth["plane_normal"])) > np.cos(np.radians(3))
    assert faults[0]["phase_jump_rad"] == pytest.approx(2 * np.pi / 3, abs=0.3)
    # the fault seen away from the partial's core tube and the surface layer
    assert 0.4 * truth["area_nm2"] < faults[0]["area_nm2"] < 1.1 * truth["area_nm2"]


def test_amplitude_domain_is_a_twin_boundary():
    shape = (40,) * 3
    z, y, x = np.indices(shape) - 20.0
    crystal = x**2 + y**2 + z**2 < 16**2
    amp = np.where(x + y + z > 3.0, 0.4, 1.0) * crystal
    planes = planar_defects(amp.astype(np.complex64), crystal, np.eye(3) * H)
    assert [p["type"] for p in planes] == ["twin_boundary"]
    assert abs(planes[0]["normal"] @ (np.ones(3) / np.sqrt(3))) > np.cos(np.radians(3))


def test_perfect_strained_crystal_has_no_defect():
    s, field = _field(lambda x: [x.smooth_strain(0.02, 60.0, rng=3)])
    assert baseline_defects(field).defects == []


def test_fit_plane_is_robust_to_outliers():
    rng = np.random.default_rng(0)
    n = np.array([1.0, 2.0, -2.0]) / 3
    u = np.cross(n, [1, 0, 0]); u /= np.linalg.norm(u)
    v = np.cross(n, u)
    pts = rng.uniform(-20, 20, (200, 1)) * u + rng.uniform(-20, 20, (200, 1)) * v + rng.normal(0, 0.2, (200, 1)) * n
    pts = np.vstack([pts, rng.uniform(-20, 20, (60, 3))])
    _, normal, inliers = fit_plane(pts, tolerance=1.0)
    assert abs(normal @ n) > np.cos(np.radians(1)) and inliers[:200].mean() > 0.95 and inliers[200:].mean() < 0.3


def test_scores():
    line = np.zeros((30,) * 3, bool)
    line[15, 15, 5:25] = True
    tube = ndimage.binary_dilation(line)
    assert f1(line_counts(tube, line)) == 1.0
    far = np.roll(tube, 4, axis=1)
    assert f1(line_counts(far, line)) == 0.0
    assert f1(line_counts(np.roll(tube, 1, axis=1), line)) == 1.0
    assert f1(line_counts(np.roll(tube, 2, axis=1), line)) > 0.9        # within the 2-voxel tolerance
    plane = np.zeros_like(line)
    plane[10] = True
    counts = detection_counts([plane, line], [plane])
    assert counts == {"tp": 1, "fp": 1, "fn": 0} and f1(counts) == pytest.approx(2 / 3)
    assert np.allclose(class_iou(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 4)[:3], [1, 0.5, 0.5])


def test_defect_list_json(tmp_path):
    _, field = _field(lambda x: [x.dislocation((0.5, 0.5, 0), (1, -1, 0))])
    report = find_defects(field, method="baseline")
    path = report.to_json(tmp_path / "d.json")
    doc = json.loads(path.read_text())
    (d,) = doc["defects"]
    assert doc["method"] == "baseline" and doc["counts"] == {"dislocation": 1}
    for key in ("type", "voxels", "centre_nm", "extent_nm", "line_direction", "length_nm", "winding", "confidence"):
        assert key in d
    assert 60 < d["length_nm"] < 85           # chord of an 80 nm sphere, less the surface layer
    assert list(tmp_path.iterdir()) == [path]


# --- U-Net ------------------------------------------------------------------------------------

def test_unet_shapes_2d_3d_and_tiles_agree():
    import torch

    from braggscope.identify import UNet, predict_tiled

    torch.manual_seed(0)
    net3 = UNet(in_channels=4, classes=4, features=(4, 8, 16)).eval()
    x = np.random.default_rng(0).normal(size=(4, 40, 36, 44)).astype(np.float32)
    whole = predict_tiled(net3, x, tile=48)
    tiled = predict_tiled(net3, x, tile=24, overlap=8)
    assert whole.shape == (4, 40, 36, 44) and np.allclose(whole.sum(axis=0), 1, atol=1e-5)
    assert np.abs(whole - tiled).max() < 0.05        # only the zero-padded borders of tiles differ
    net2 = UNet(in_channels=1, classes=3, features=(4, 8), spatial_dims=2).eval()
    assert net2(torch.zeros(2, 1, 16, 20)).shape == (2, 3, 16, 20)


def test_segmentation_loss_and_augmentation_keep_inputs_and_labels_together():
    import torch

    from braggscope.identify.training import augment, segmentation_loss

    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.integers(0, 4, (2, 8, 10, 12)))
    x = torch.zeros(2, 4, 8, 10, 12)
    x[:, 0] = y.float()
    x[:, 1], x[:, 3] = 1.0, y.float() / 3
    xa, ya = augment(x, y, rng)
    assert torch.equal(xa[:, 0], ya.float()) and torch.allclose(xa[:, 3], ya.float() / 3)
    assert torch.allclose(xa[:, 1] ** 2 + xa[:, 2] ** 2, torch.ones_like(ya, dtype=torch.float32), atol=1e-6)
    w = torch.ones(4)
    perfect = torch.nn.functional.one_hot(y, 4).movedim(-1, 1).float() * 20
    assert segmentation_loss(perfect, y, w) < 1e-3 < segmentation_loss(torch.zeros_like(perfect), y, w)


@pytest.fixture(scope="module")
def held_out():
    """Six held-out reconstructions at 10⁸ photons (seeds the training never used)."""
    from braggscope.identify.data import simulate_example
    from braggscope.identify.training import TEST_SEED

    return [simulate_example(TEST_SEED + 500 + k, photons=1e8) for k in range(6)]


def test_shipped_unet_scores_on_held_out_reconstructions(held_out):
    """The shipped weights find the lines of held-out crystals; their record says how they were made."""
    from braggscope.identify import load_unet

    model = load_unet()
    assert model.meta["validation"]["line_f1"] > 0.5 and model.meta["args"]["seed"] == 0
    counts = {}
    for ex in held_out:
        report = find_defects(ex.field, method="unet", model=model)
        for k, v in line_counts(report.labels == 1, ex.labels == 1).items():
            counts[k] = counts.get(k, 0) + v
    assert counts["true"] > 0 and f1(counts) > 0.6


# --- command line and pictures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def strain_file(tmp_path_factory):
    from braggscope.strain import write_strain

    _, field = _field(lambda x: [x.dislocation((0.5, 0.5, 0), (1, -1, 0), (0.0, 2.0, 0.0)),
                                 x.stacking_fault((1, 1, 1), (1 / 6, 1 / 6, -1 / 3), (0.0, -6.0, 0.0), 22.0)],
                      hkl=(1, 1, -1), shape=(44,) * 3, size=90.0)
    return write_strain(tmp_path_factory.mktemp("identify") / "strain.h5", field)


def test_cli_identify_baseline_with_picture(strain_file, tmp_path):
    pytest.importorskip("pyvista")
    from PIL import Image

    from braggscope.cli import main

    out, png = tmp_path / "defects.json", tmp_path / "defects.png"
    assert main(["identify", str(strain_file), "--out", str(out), "--png", str(png), "--method", "baseline"]) == 0
    doc = json.loads(out.read_text())
    assert doc["counts"].get("stacking_fault") == 1 and doc["counts"].get("dislocation", 0) >= 1
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 80) & (rgb[..., 2] < 100)       # crimson line tubes
    blue = (rgb[..., 2] > 150) & (rgb[..., 0] < 120) & (rgb[..., 1] < 160)     # royal-blue fault
    assert red.sum() > 200 and blue.sum() > 200


def test_cli_identify_bad_input_exits_2_and_writes_nothing(strain_file, tmp_path, capsys):
    from braggscope.cli import main

    out = tmp_path / "d.json"
    bad = tmp_path / "not_strain.h5"
    bad.write_bytes(b"not hdf5")
    assert main(["identify", str(bad), "--out", str(out)]) == 2
    assert main(["identify", str(strain_file), "--out", str(strain_file)]) == 2
    assert main(["identify", str(strain_file), "--out", str(out), "--weights", str(tmp_path / "none.pt")]) == 2
    assert "error" in capsys.readouterr().err and not out.exists()
