"""The full strain tensor from several reflections (braggscope.strain.tensor) against the
simulator's closed-form displacement gradients."""
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from braggscope.errors import ConfigError, ShapeError
from braggscope.physics import bragg_vector
from braggscope.retrieval.postprocess import flip_twin
from braggscope.simulate import Crystal, random_orientation, simulate_sample, truncated_octahedron
from braggscope.simulate.sample import displacement_gradient, grid_points
from braggscope.strain import (align_reflections, orientation_from_reflections, strain_field, strain_tensor,
                               surface_layers)

H = 3.0  # [nm] voxel
SHAPE = (56,) * 3
ORIENTATION = random_orientation(3)
CRYSTAL = Crystal(truncated_octahedron(120.0, ORIENTATION), "Pt", ORIENTATION)  # centrosymmetric
DEFECTS = [CRYSTAL.dislocation((0.5, 0, 0.5), (1, -1, 0), (3.0, 2.0, 1.0)), CRYSTAL.smooth_strain(0.02, 80.0, rng=0)]
HKLS = [(1, 1, 1), (-1, 1, 1), (1, -1, 1), (2, 0, 0)]


@pytest.fixture(scope="module")
def reflections():
    return [simulate_sample(CRYSTAL, DEFECTS, shape=SHAPE, voxel_size=H, hkl=h) for h in HKLS]


@pytest.fixture(scope="module")
def closed_form_gradient():
    """J_ik = ∂u_i/∂r_k of the defects, from each field's closed-form directional derivative."""
    return displacement_gradient(DEFECTS, grid_points(SHAPE, H), poisson_ratio=CRYSTAL.material.poisson_ratio)


def _away_from_core(samples):
    """The common support without a 2-voxel tube around the dislocation core."""
    core = np.logical_or.reduce([s.dislocation_mask for s in samples])
    return np.logical_and.reduce([s.support for s in samples]) & ~ndimage.binary_dilation(core, iterations=2)


def _rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def _tensor(samples, objects=None, **options):
    objects = [s.obj for s in samples] if objects is None else objects
    return strain_tensor(objects, [s.support for s in samples], g_vectors=[s.g_vector for s in samples],
                         voxel_size=H, **options)


def test_tensor_matches_the_closed_form_displacement_gradient(reflections, closed_form_gradient):
    """From 3 and from 4 reflections the displacement gradient of a mixed dislocation in a
    smoothly strained crystal is its closed form outside the core (no unwrapping: the dislocation's
    cut leaves no wall); its rotation part is not symmetric, so a transposed J would fail. With 3
    reflections the normal strain along each G is strain_field's; with 4 the misfit is nil."""
    ok = _away_from_core(reflections)
    scale = _rms(closed_form_gradient[:, :, ok])
    for n in (3, 4):
        t = _tensor(reflections[:n], remove_ramp=False)
        assert _rms(t.gradient[:, :, ok] - closed_form_gradient[:, :, ok]) < 0.02 * scale, n
        assert _rms(np.swapaxes(t.gradient, 0, 1)[:, :, ok] - closed_form_gradient[:, :, ok]) > 0.5 * scale
        assert np.isnan(t.gradient[:, :, ~t.support]).all() and (t.misfit is None) == (n == 3)
    three = _tensor(reflections[:3], remove_ramp=False)
    for s in reflections[:3]:
        one = strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=H, remove_ramp=False)
        np.testing.assert_allclose(three.along(s.g_vector)[three.support], one.strain[three.support], atol=1e-6)
    four = _tensor(reflections, remove_ramp=False)
    assert np.median(four.misfit[ok]) < 1e-6
    np.testing.assert_allclose(four.dilatation[ok], np.trace(closed_form_gradient, axis1=0, axis2=1)[ok], atol=2e-3)


def test_burgers_vector_from_the_windings_at_several_reflections(reflections):
    """The mixed dislocation a/2[101] comes back as its Burgers vector from the circuits' windings
    at 111, −111, 1−11 and 200, though −111 does not see it (G·b = 0) and no single reflection
    gives more than G·b; along the simulator's line direction b has the simulator's sign. From
    two of them (no three G span space) it cannot be had."""
    from braggscope.identify import burgers_vectors

    dislocation = DEFECTS[0]
    found = burgers_vectors([s.obj for s in reflections], [s.support for s in reflections],
                            g_vectors=[s.g_vector for s in reflections], voxel_size=H, orientation=ORIENTATION,
                            lattice_parameter=CRYSTAL.lattice_parameter)
    assert len(found) == 1
    d = found[0]
    along = np.sign(d["direction"] @ dislocation.line)
    np.testing.assert_allclose(along * d["burgers_nm"], dislocation.burgers, atol=1e-9)
    assert d["windings"][1] == 0 and d["agreement"] == 1.0 and d["circuits"] > 20
    assert d["nearest"] == ("a/2[1 0 1]" if along > 0 else "a/2[-1 0 -1]") and d["nearest_distance"] < 1e-9
    np.testing.assert_allclose(np.linalg.norm(d["centre_nm"] - dislocation.position
                                              - (d["centre_nm"] - dislocation.position) @ dislocation.line
                                              * dislocation.line), 0, atol=1.5 * H)
    with pytest.raises(ConfigError, match="at least 3"):
        burgers_vectors([s.obj for s in reflections[:2]], [s.support for s in reflections[:2]],
                        g_vectors=[s.g_vector for s in reflections[:2]], voxel_size=H)


def test_ramps_are_removed_and_frames_turned(reflections):
    """A different phase ramp on every reflection (their centring errors) is removed, and held
    in ramp_gradient; the tensor in the crystal's cubic axes is the same strain seen there."""
    idx = np.stack(np.meshgrid(*[np.arange(n) - n // 2 for n in SHAPE], indexing="ij"))
    rng = np.random.default_rng(0)
    ramps = rng.uniform(-0.05, 0.05, (4, 3))  # [rad/voxel]
    tilted = [s.obj * np.exp(1j * np.tensordot(r, idx, axes=1)) for s, r in zip(reflections, ramps)]
    plain, tilt = _tensor(reflections), _tensor(reflections, tilted)
    inside = plain.support
    np.testing.assert_allclose(tilt.gradient[:, :, inside], plain.gradient[:, :, inside], atol=2e-6)
    g = np.array([s.g_vector for s in reflections])
    np.testing.assert_allclose(tilt.ramp_gradient - plain.ramp_gradient, np.linalg.pinv(g) @ (ramps / H), atol=1e-7)
    crystal = plain.in_frame(ORIENTATION.T)
    for axis, direction in enumerate(np.eye(3)):
        np.testing.assert_allclose(crystal.along(direction)[inside], plain.along(ORIENTATION[:, axis])[inside],
                                   atol=1e-7)
    cubic_200 = bragg_vector((2, 0, 0), lattice_parameter=CRYSTAL.lattice_parameter)
    np.testing.assert_allclose(crystal.g_vectors[3], cubic_200, atol=1e-9)


def test_alignment_undoes_shifts_and_twins_of_a_centrosymmetric_crystal(reflections):
    """Reconstructions come back shifted and some as the twin ρ*(−r); the crystal's shape has a
    centre of symmetry, so only the displacement field can tell the twins: at the four {111},
    each of which the other three check, the combination with one displacement field is found,
    and the tensor is the true one (on the reference's grid). Of 111, -111, 1-11 and 200, the
    1-11 is checked by none (the others' dependency leaves it out) and is said to be chosen by
    its amplitude."""
    four = reflections[:3] + [simulate_sample(CRYSTAL, DEFECTS, shape=SHAPE, voxel_size=H, hkl=(1, 1, -1))]
    objects = [s.obj for s in four]
    roll = lambda a, shift: np.roll(a, shift, axis=(0, 1, 2))
    moved = [objects[0], roll(flip_twin(objects[1]), (2, -1, 0)), roll(objects[2], (0, 3, -2)),
             flip_twin(roll(objects[3], (-1, 0, 2)))]
    aligned, info = align_reflections(moved, g_vectors=[s.g_vector for s in four], voxel_size=H)
    assert [i["twin"] for i in info] == [False, True, False, True]
    assert [i["twin_rule"] for i in info] == ["amplitude", "misfit", "misfit", "misfit"]
    assert info[2]["shift"] == [0.0, -3.0, 2.0] and info[0]["misfit"] < 1e-5
    truth, t = _tensor(four), _tensor(four, aligned)
    ok = _away_from_core(four)
    assert _rms(t.gradient[:, :, ok] - truth.gradient[:, :, ok]) < 1e-5
    assert abs(info[2]["error"] - info[2]["twin_error"]) < 0.05  # the amplitude alone cannot tell them
    _, info = align_reflections(moved[:3] + [reflections[3].obj], g_vectors=[s.g_vector for s in reflections],
                                voxel_size=H)
    assert [i["twin_rule"] for i in info] == ["amplitude", "misfit", "amplitude", "misfit"]
    assert [i["twin_undecided"] for i in info] == [False, False, True, False]  # 1-11: nothing tells its twin


def test_orientation_from_two_or_more_reflections():
    """U comes back from the measured G of known hkl (Kabsch), to the angular noise put in; each
    reflection's lattice strain from its length."""
    u = Rotation.random(random_state=4).as_matrix()
    a = 0.3924
    hkls = np.array([(1, 1, 1), (2, 0, 0), (0, 2, 2), (-1, 1, 1)])
    strain = np.array([1e-3, -5e-4, 0.0, 2e-4])
    wobble = Rotation.from_rotvec(np.radians(0.01) * np.random.default_rng(1).normal(size=(4, 3))).as_matrix()
    g = np.stack([w @ bragg_vector(h, lattice_parameter=a, orientation=u) / (1 + e)
                  for w, h, e in zip(wobble, hkls, strain)])
    fit = orientation_from_reflections(hkls, g, lattice_parameter=a)
    angle = np.degrees(Rotation.from_matrix(fit.orientation @ u.T).magnitude())
    assert angle < 0.03 and fit.misfit_deg.max() < 0.05
    np.testing.assert_allclose(fit.lattice_strain, strain, atol=1e-9)
    two = orientation_from_reflections(hkls[:2], g[:2], lattice_parameter=a)
    assert np.degrees(Rotation.from_matrix(two.orientation @ u.T).magnitude()) < 0.05
    with pytest.raises(ConfigError, match="not parallel"):
        orientation_from_reflections([(1, 1, 1), (2, 2, 2)], g[:2], lattice_parameter=a)
    with pytest.raises(ShapeError):
        orientation_from_reflections(hkls, g[:3], lattice_parameter=a)


def test_bad_reflection_sets_are_refused(reflections):
    s = reflections
    coplanar = [bragg_vector(h, lattice_parameter=0.3924, orientation=ORIENTATION) for h in ((2, 0, 0), (0, 2, 0),
                                                                                            (2, 2, 0))]
    with pytest.raises(ConfigError, match="coplanar"):
        strain_tensor([x.obj for x in s[:3]], s[0].support, g_vectors=coplanar, voxel_size=H)
    with pytest.raises(ConfigError, match="at least 3"):
        strain_tensor([x.obj for x in s[:2]], s[0].support, g_vectors=[x.g_vector for x in s[:2]], voxel_size=H)
    with pytest.raises(ShapeError):
        strain_tensor([x.obj for x in s[:3]], s[0].support, g_vectors=[x.g_vector for x in s[:2]], voxel_size=H)
    with pytest.raises(ShapeError):
        strain_tensor([s[0].obj, s[1].obj, s[2].obj[:-1]], [x.support for x in s[:2]] + [s[2].support[:-1]],
                      g_vectors=[x.g_vector for x in s[:3]], voxel_size=H)


DETECTOR_DISLOCATION = dict(burgers=(0.5, -0.5, 0), line=(1, 1, -2), position=np.array([6.0, -4.0, 3.0]))


@pytest.fixture(scope="module")
def detector_scans():
    """The crystal with an edge dislocation measured at the four {111}, each in its own rocking
    scan (about x or y): the goniometer turns the crystal by R_j to bring G_j onto the scan's Q,
    and the object lives on that scan's skewed detector-frame grid (48³, voxels of about 4 nm)."""
    from braggscope.geometry import Geometry
    from braggscope.simulate.bcdi import align_to_geometry
    from braggscope.simulate.sample import object_at

    d = DETECTOR_DISLOCATION
    scans = []
    for hkl, axis in zip([(1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1)], "xyxy"):
        geo = Geometry.for_reflection(d_spacing=CRYSTAL.material.d_spacing(hkl), energy=9.0, detector_distance=0.25,
                                      pixel_size=172.0, rocking_step=0.07, rocking_axis=axis)
        rotation = align_to_geometry(CRYSTAL, hkl, geo).orientation @ CRYSTAL.orientation.T  # R_j: sample → lab
        turned = Crystal(truncated_octahedron(120.0, rotation @ ORIENTATION), "Pt", rotation @ ORIENTATION)  # shape too
        a = geo.object_voxel((48,) * 3)
        idx = np.stack(np.meshgrid(*[np.arange(48) - 24] * 3, indexing="ij")).reshape(3, -1)
        points = (a @ idx).reshape((3,) + (48,) * 3)
        obj = object_at(turned, [turned.dislocation(d["burgers"], d["line"], rotation @ d["position"])], points,
                        hkl=hkl, voxel_size=abs(np.linalg.det(a)) ** (1 / 3))
        scans.append({"obj": obj, "geometry": geo, "rotation": rotation, "voxel": a, "hkl": hkl})
    return scans


def _closed_form_on(shape, h):
    """(the dislocation of DETECTOR_DISLOCATION in the sample frame, its J on the sample grid)."""
    d = DETECTOR_DISLOCATION
    dislocation = CRYSTAL.dislocation(d["burgers"], d["line"], d["position"])
    return dislocation, displacement_gradient([dislocation], grid_points(shape, h),
                                              poisson_ratio=CRYSTAL.material.poisson_ratio)


def _far_from_line(tensor, dislocation, h):
    points = grid_points(tensor.support.shape, h)
    return tensor.support & ~surface_layers(tensor.support, 2) & (dislocation.distance(points) > 4 * h)


def test_detector_frame_reconstructions_meet_in_the_sample_frame(detector_scans):
    """Turned back by R_jᵀ onto one orthogonal sample-frame grid (to_orthogonal), with G_j turned
    the same way, the four scans give the closed-form gradient of the crystal as it sits in the
    sample: the frames, the turns and the signs all agree."""
    from braggscope.strain import to_orthogonal

    h, objects, supports, g = 4.0, [], [], []
    for scan in detector_scans:
        r = scan["rotation"]
        obj, support, _ = to_orthogonal(scan["obj"], np.abs(scan["obj"]) > 0.5, scan["voxel"], rotation=r.T,
                                        voxel_size=h, shape=SHAPE)
        objects.append(obj)
        supports.append(support)
        g.append(r.T @ scan["geometry"].q_bragg)
    np.testing.assert_allclose(g, [CRYSTAL.g_vector(s["hkl"]) for s in detector_scans], atol=1e-6 * np.linalg.norm(g[0]))
    t = strain_tensor(objects, supports, g_vectors=g, voxel_size=h, remove_ramp=False)
    dislocation, truth = _closed_form_on(SHAPE, h)
    far = _far_from_line(t, dislocation, h)
    assert far.sum() > 5000
    assert _rms(t.gradient[:, :, far] - truth[:, :, far]) < 0.03 * _rms(truth[:, :, far])  # trilinear resampling
    assert np.median(t.misfit[far]) < 0.01 * _rms(truth[:, :, far])


def test_cli_strain_tensor_from_beamline_result_files(tmp_path, detector_scans):
    """`braggscope strain R1 R2 R3 R4 --out T.h5` on result files that carry each scan's grid, hkl
    and sample rotation (as the beamline loaders write them): the tensor in the sample frame is
    the closed form's, the orientation is fitted from the four G, the crystal frame turns it;
    options of one reflection, a missing hkl, or a file's output in place of an input exit with 2
    and write nothing."""
    from braggscope.cli import main
    from braggscope.io import write_cxi_result
    from braggscope.strain import read_strain_tensor

    paths = []
    for k, scan in enumerate(detector_scans):
        geo = scan["geometry"]
        config = {"frame": "detector", "q_basis": geo.q_basis(), "g_vector": geo.q_bragg, "hkl": list(scan["hkl"]),
                  "material": "Pt", "sample_rotation": scan["rotation"]}
        obj = flip_twin(scan["obj"]) if k == 2 else scan["obj"]  # one run came out as the twin
        paths.append(write_cxi_result(tmp_path / f"r{k}.cxi", obj, np.abs(obj) > 0.5, config=config))
    out = tmp_path / "t.h5"
    assert main(["strain", *map(str, paths), "--out", str(out), "--keep-ramp", "-q"]) == 0
    t = read_strain_tensor(out)
    h = float(t.voxel[0, 0])
    dislocation, truth = _closed_form_on(t.support.shape, h)
    far = _far_from_line(t, dislocation, h)
    assert t.frame == "sample" and far.sum() > 5000
    assert _rms(t.gradient[:, :, far] - truth[:, :, far]) < 0.05 * _rms(truth[:, :, far])
    (found,) = t.metadata["dislocations"]  # the edge dislocation a/2[1 -1 0] of the crystal, whatever the turns
    assert found["nearest"] in ("a/2[1 -1 0]", "a/2[-1 1 0]") and found["nearest_distance"] < 0.05
    assert main(["strain", *map(str, paths), "--out", str(tmp_path / "c.h5"), "--frame", "crystal", "--keep-ramp",
                 "-q"]) == 0
    c = read_strain_tensor(tmp_path / "c.h5")
    inside = t.support & c.support
    turned = np.einsum("ai,ab...,bk->ik...", CRYSTAL.orientation, t.strain, CRYSTAL.orientation)  # Uᵀ ε U
    assert c.frame == "crystal"
    assert np.abs(c.strain[:, :, inside] - turned[:, :, inside]).max() < 1e-5  # the fitted U is the crystal's
    assert main(["strain", *map(str, paths), "--out", str(tmp_path / "h.h5"), "--keep-ramp", "--hkls",
                 "1 1 1,-1 1 1,1 -1 1,1 1 -1", "-q"]) == 0  # the files' own, given again
    np.testing.assert_allclose(read_strain_tensor(tmp_path / "h.h5").gradient[:, :, far], t.gradient[:, :, far])
    assert main(["strain", *map(str, paths), "--out", str(tmp_path / "p.h5"), "--png", "-q"]) == 0
    assert (tmp_path / "p.png").stat().st_size > 10_000
    bad = str(tmp_path / "bad.h5")
    assert main(["strain", *map(str, paths), "--out", bad, "--hkls", "1 1 1,2 0 0", "-q"]) == 2
    assert main(["strain", *map(str, paths), "--out", bad, "--vti", "-q"]) == 2
    assert main(["strain", *map(str, paths), "--out", bad, "--frame", "lab", "-q"]) == 2
    assert main(["strain", *map(str, paths), "--out", str(paths[0]), "-q"]) == 2
    np.savez(tmp_path / "x.npz", obj=detector_scans[0]["obj"], support=np.abs(detector_scans[0]["obj"]) > 0.5)
    assert main(["strain", *map(str, paths[:3]), str(tmp_path / "x.npz"), "--out", bad, "-q"]) == 2
    assert not (tmp_path / "bad.h5").exists()


def test_pipeline_combines_the_scans_of_a_crystal_into_its_tensor(tmp_path, detector_scans):
    """[tensor] crystals: after the scans, the result files of one crystal's scans (their grids and
    sample rotations as the pipeline writes them, each scan's reflection from [sample] reflections)
    become crystal_<scans>.h5 and a row of crystals.json; a crystal whose scan has no result yet
    waits, one that cannot be combined fails with the reason, and bad [tensor] or reflections
    entries are refused."""
    from braggscope.errors import ConfigError
    from braggscope.io import write_cxi_result
    from braggscope.pipeline import Pipeline, scan_folder
    from braggscope.strain import read_strain_tensor

    config = {"output": str(tmp_path / "out"), "data": {"path": str(tmp_path / "s{scan}.cxi"), "scans": [1, 2, 3, 4]},
              "sample": {"material": "Pt", "hkl": [1, 1, 1],
                         "reflections": {str(k + 1): list(s["hkl"]) for k, s in enumerate(detector_scans)}},
              "tensor": {"crystals": [[1, 2, 3, 4], [1, 2, 5]], "frame": "sample"}}
    pipeline = Pipeline(config)
    assert pipeline.config.sample.hkl_of(3) == (1, -1, 1) and pipeline.config.sample.hkl_of(9) == (1, 1, 1)
    for k, scan in enumerate(detector_scans):
        geo = scan["geometry"]
        folder = scan_folder(pipeline.config, k + 1)
        folder.mkdir(parents=True)
        write_cxi_result(folder / "result.cxi", scan["obj"], np.abs(scan["obj"]) > 0.5,
                         config={"frame": "detector", "q_basis": geo.q_basis(), "g_vector": geo.q_bragg,
                                 "sample_rotation": scan["rotation"]})
    pipeline.run(scans=[])
    done, waiting = pipeline.crystals
    assert waiting == {"crystal": "crystal_1_2_5", "scans": [1, 2, 5], "status": "waiting", "missing": [5]}
    assert done["status"] == "done" and done["hkls"] == [list(s["hkl"]) for s in detector_scans]
    t = read_strain_tensor(done["file"])
    h = float(t.voxel[0, 0])
    dislocation, truth = _closed_form_on(t.support.shape, h)
    far = _far_from_line(t, dislocation, h)
    ramp = t.ramp_gradient[:, :, None]
    assert _rms(t.gradient[:, :, far] + ramp - truth[:, :, far]) < 0.05 * _rms(truth[:, :, far])
    assert (tmp_path / "out" / "crystals.json").is_file() and Path(done["file"]).with_suffix(".png").is_file()
    page = (tmp_path / "out" / "summary.html").read_text()
    assert 'href="crystal_1_2_3_4.png"' in page and "waiting for scans 5" in page
    assert done["dislocations"][0]["burgers"] in ("a/2[1 -1 0]", "a/2[-1 1 0]") and "a/2[" in page
    unnamed = Pipeline(config | {"sample": {}, "tensor": {"crystals": [[1, 2, 3]]}})
    unnamed.run(scans=[])
    assert unnamed.crystals[0]["status"] == "failed" and "reflection and material" in unnamed.crystals[0]["error"]
    for bad in ({"tensor": {"crystals": [[1, 2]]}}, {"tensor": {"frame": "lab"}},
                {"sample": {"reflections": {"x": [1, 1, 1]}}}, {"sample": {"reflections": {"3": [0, 0, 0]}}}):
        with pytest.raises(ConfigError):
            Pipeline(config | bad)


def test_command_line_from_simulated_scans_to_the_tensor(tmp_path):
    """simulate (four {111} rocking scans of one crystal: the same seed, each turned into its Bragg
    condition) → reconstruct → strain of all four: the files carry each scan's turn, so the four
    meet in the sample frame, the fitted orientation is the crystal's (the seed's) to the
    G's precision (exact here: each file's G is its scan's), and the strain-free crystal comes out with a
    small strain."""
    from scipy.spatial.transform import Rotation

    from braggscope.cli import main
    from braggscope.simulate import random_orientation
    from braggscope.strain import read_strain_tensor

    results = []
    for k, hkl in enumerate(["1 1 1", "-1 1 1", "1 -1 1", "1 1 -1"]):
        data, result = tmp_path / f"d{k}.cxi", tmp_path / f"r{k}.cxi"
        assert main(["simulate", str(data), "--shape", "24", "--voxel-size", "4", "--size", "45", "--oversampling",
                     "2", "--detector-frame", "--pixel-size", "172", "--distance", "0.5", "--rocking-step", "0.05",
                     "--photons", "1e9", "--hkl", *hkl.split(), "--seed", "5", "-q"]) == 0
        assert main(["reconstruct", str(data), "--out", str(result), "--runs", "1", "--algorithm",
                     "ER**50 * (ShrinkWrap * RAAR**20)**10", "-q"]) == 0
        results.append(str(result))
    out = tmp_path / "t.h5"
    assert main(["strain", *results, "--out", str(out), "-q"]) == 0
    t = read_strain_tensor(out)
    fitted = np.asarray(t.metadata["orientation"])
    angle = np.degrees(Rotation.from_matrix(fitted @ random_orientation(5).T).magnitude())
    assert angle < 0.01 and np.max(t.metadata["orientation_misfit_deg"]) < 0.01
    assert t.frame == "sample" and np.sqrt(np.mean(t.strain[:, :, t.support] ** 2)) < 3e-3
