"""Strain maps (braggscope.strain) against the simulator's closed-form fields and against
xrayutilities' angle-to-q conversion."""
import numpy as np
import pytest
from scipy import ndimage

from braggscope.errors import ConfigError, ShapeError
from braggscope.geometry import Geometry
from braggscope.physics import object_from_displacement
from braggscope.simulate import Crystal, random_orientation, simulate_sample, truncated_octahedron
from braggscope.simulate.bcdi import align_to_geometry
from braggscope.simulate.sample import displacement_and_strain, grid_points, support_fraction
from braggscope.strain import phase_gradient, resample, strain_field, surface_layers, to_orthogonal

H = 3.0  # [nm] voxel
ORIENTATION = random_orientation(3)
CRYSTAL = Crystal(truncated_octahedron(120.0, ORIENTATION), "Pt", ORIENTATION)


def _defects(kind, xtal=CRYSTAL):
    return {"smooth": [xtal.smooth_strain(0.02, 80.0, rng=0)],
            "screw": [xtal.dislocation((0, 0.5, 0.5), (0, 1, 1), (3.0, 2.0, 1.0))],
            "edge": [xtal.dislocation((0.5, -0.5, 0), (1, 1, -2), (3.0, 2.0, 1.0))],
            "mixed": [xtal.dislocation((0.5, 0, 0.5), (1, -1, 0), (3.0, 2.0, 1.0))],
            "loop": [xtal.loop((0.5, 0.5, 0), (1, 1, 1), radius=20.0, sides=8)],
            "fault": [xtal.stacking_fault((1, 1, 1), radius=25.0, sides=8)]}[kind]


def _outside_cores(sample):
    """The support without a 2-voxel tube around the dislocation cores (the simulator's 1.5-voxel
    core mask grown by two voxels)."""
    return sample.support & ~ndimage.binary_dilation(sample.dislocation_mask, iterations=2)


def _core_distance(defects, points):
    """[nm] Distance to the nearest dislocation line (inf without one)."""
    return np.min([np.full(points.shape[1:], np.inf)] + [d.distance(points) for d in defects if hasattr(d, "distance")],
                  axis=0)


def _rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.fixture(scope="module", params=["smooth", "screw", "edge", "mixed", "loop", "fault"])
def sample(request):
    return request.param, simulate_sample(CRYSTAL, _defects(request.param), shape=(56,) * 3, voxel_size=H,
                                          hkl=(1, 1, 1))


def test_strain_matches_closed_form(sample):
    kind, s = sample
    f = strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=H, remove_ramp=False)
    ok = _outside_cores(s)
    err = f.strain[ok] - s.strain[ok]
    assert not np.isnan(f.strain[s.support]).any() and np.isnan(f.strain[~s.support]).all()
    assert _rms(err) < 1e-5, (kind, _rms(err), _rms(s.strain[ok]))
    # the displacement is the unwrapped phase over |G|: its wrapped phase is the object's, up to the offset
    diff = np.exp(1j * (f.displacement * np.linalg.norm(s.g_vector) - s.phase))[s.support]
    assert np.allclose(np.angle(diff * np.conj(np.mean(diff))), 0, atol=1e-3)


def test_ramp_and_offset_do_not_change_the_strain(sample):
    """A linear phase ramp (a mis-centred peak) and a global phase are removed; the removed ramp
    comes back as ramp_strain."""
    kind, s = sample
    ramp = np.array([0.21, -0.37, 0.52])  # [rad/voxel]
    grids = np.stack(np.meshgrid(*[np.arange(n) - n // 2 for n in s.obj.shape], indexing="ij"))
    tilted = s.obj * np.exp(1j * (np.tensordot(ramp, grids, axes=1) + 2.4))
    plain = strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=H)
    f = strain_field(tilted, s.support, g_vector=s.g_vector, voxel_size=H)
    inside = s.support
    assert np.allclose(f.strain[inside], plain.strain[inside], atol=2e-6)
    assert np.allclose(f.phase_ramp, np.array(plain.phase_ramp) + ramp, atol=1e-5)
    g = s.g_vector / np.linalg.norm(s.g_vector)
    assert f.ramp_strain - plain.ramp_strain == pytest.approx(g @ ramp / H / np.linalg.norm(s.g_vector), abs=1e-9)
    ok = _outside_cores(s)
    assert _rms(plain.strain[ok] + plain.ramp_strain - s.strain[ok]) < 1e-5  # the ramp held the mean strain
    # the phase reference: circular mean 0, or 0 at the support's centre
    assert abs(np.angle(np.sum(s.amplitude[inside] * np.exp(1j * f.phase[inside])))) < 1e-4
    centred = strain_field(tilted, s.support, g_vector=s.g_vector, voxel_size=H, reference="centre")
    c = tuple(int(round(v)) for v in ndimage.center_of_mass(s.support))
    assert abs(centred.phase[c]) < 1e-5


def test_no_strain_wall_at_dislocation_cut_or_fault_plane():
    """A dislocation's 2π cut and a stacking fault's 2π/3 step leave no wall in the strain."""
    s = simulate_sample(CRYSTAL, _defects("screw") + _defects("fault"), shape=(56,) * 3, voxel_size=H,
                        hkl=(1, 1, 1))
    f = strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=H)
    ok = _outside_cores(s)
    err = np.abs(f.strain + f.ramp_strain - s.strain)[ok]
    assert err.max() < 1e-3 and _rms(err) < 1e-5  # a wall would be (2π/3)/(2h|G|) = 6e-3 on the fault plane
    # the wrapped phase does jump across both (it is not a smooth field)
    jumps = np.abs(np.diff(np.where(s.support, np.angle(s.obj), np.nan), axis=0))
    assert np.nanmax(jumps) > np.pi


def test_surface_stencils_and_order():
    """At the surface a one-sided second-order difference: exact for a quadratic phase; the
    fourth-order bulk stencil is exact for a quartic."""
    x = np.arange(12, dtype=float)
    inside = np.zeros((3, 3, 12), bool)
    inside[:, :, 2:10] = True
    for phase, derivative, order in ((0.03 * x**2, 0.06 * x, 2), (1e-4 * x**4, 4e-4 * x**3, 4)):
        obj = np.broadcast_to(np.exp(1j * phase), inside.shape)
        g = phase_gradient(obj, inside, order=order)[2, 1, 1]
        np.testing.assert_allclose(g[2:10] if order == 2 else g[4:8], (derivative[2:10] if order == 2 else
                                   derivative[4:8]), atol=1e-5)
        assert np.isnan(g[:2]).all() and np.isnan(g[10:]).all()


def test_detector_frame_grid_and_resampling():
    """The analytic crystal sampled on a rocking scan's skewed detector-frame grid: the strain
    there (no interpolation) matches the closed form, and resampled onto the orthogonal lab grid
    too."""
    geo = Geometry.for_reflection(d_spacing=CRYSTAL.material.d_spacing((1, 1, 1)), energy=9.0,
                                  detector_distance=0.25, pixel_size=172.0, rocking_step=0.07)
    xtal = align_to_geometry(CRYSTAL, (1, 1, 1), geo)
    shape = (48,) * 3
    a = geo.object_voxel(shape)
    assert 3.5 < np.linalg.norm(a, axis=0).min() and np.linalg.norm(a, axis=0).max() < 5
    assert abs(np.dot(a[:, 0], a[:, 1])) > 0.1 * np.linalg.norm(a[:, 0]) * np.linalg.norm(a[:, 1])  # skewed
    idx = np.stack(np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")).reshape(3, -1)
    points = (a @ idx).reshape((3,) + shape)
    g = xtal.g_vector((1, 1, 1))
    nu = xtal.material.poisson_ratio
    for kind in ("smooth", "edge"):
        defects = _defects(kind, xtal)
        occupancy = support_fraction(xtal.shape, points, abs(np.linalg.det(a)) ** (1 / 3))
        u, eps = displacement_and_strain(defects, points, g / np.linalg.norm(g), poisson_ratio=nu)
        obj, support = object_from_displacement(u, g, amplitude=occupancy), occupancy > 0.5
        far = support & (_core_distance(defects, points) > 3.5 * 4.1)
        native = strain_field(obj, support, g_vector=g, voxel_size=a, remove_ramp=False, frame="detector")
        assert _rms((native.strain - eps)[far]) < 1e-5, kind
        lab = resample(native)
        out = grid_points(lab.strain.shape, lab.voxel_size)
        _, truth = displacement_and_strain(defects, out, g / np.linalg.norm(g), poisson_ratio=nu)
        far_lab = lab.support & (_core_distance(defects, out) > 3.5 * lab.voxel_size)
        assert _rms((lab.strain - truth)[far_lab]) < (1e-5 if kind == "smooth" else 3e-5), kind
        assert abs(lab.support.sum() * lab.voxel_size**3 / (support.sum() * abs(np.linalg.det(a))) - 1) < 0.02


def test_detector_frame_voxel_sign_against_the_simulator():
    """The inverse FFT of the simulator's detector-frame diffraction, resampled with
    Geometry.object_voxel, is the crystal (not its mirror image)."""
    from braggscope.simulate import continuum_amplitude_on

    geo = Geometry.for_reflection(d_spacing=CRYSTAL.material.d_spacing((1, 1, 1)), energy=9.0,
                                  detector_distance=0.25, pixel_size=172.0, rocking_step=0.07)
    xtal = align_to_geometry(CRYSTAL, (1, 1, 1), geo)
    s = simulate_sample(xtal, [xtal.dislocation((0.5, -0.5, 0), (1, 1, -2), (10.0, 5.0, 0.0))], shape=(48,) * 3,
                        voxel_size=3.0, hkl=(1, 1, 1))
    amp = continuum_amplitude_on(s.obj, voxel_size=3.0, q_basis=-geo.q_basis(), shape=(64,) * 3)
    rho = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(amp)))
    support = np.abs(rho) > 0.3 * np.abs(rho).max()
    corr = {}
    for sign in (1, -1):
        lab, _, _ = to_orthogonal(rho, support, sign * geo.object_voxel((64,) * 3), voxel_size=3.0, shape=(48,) * 3)
        corr[sign] = abs(np.vdot(lab, s.obj)) / np.linalg.norm(lab) / np.linalg.norm(s.obj)
    assert corr[1] > 0.995 and corr[-1] < corr[1] - 0.02


def test_geometry_against_xrayutilities():
    """q of every pixel and frame of a rocking scan from xrayutilities' QConversion (sample
    circle about x, detector on gamma then delta) is Q + B k to second order."""
    xu = pytest.importorskip("xrayutilities")
    geo = Geometry(energy=9.0, detector_distance=0.8, pixel_size=55.0, rocking_step=0.01, delta=35.2, gamma=8.0)
    lam = geo.wavelength * 10  # [Å]
    # xrayutilities' (x, y, z) are our lab axes; the beam along z; rows down (y-), columns +x
    conv = xu.experiment.QConversion(["x+"], ["y+", "x-"], [0, 0, 1], wl=lam)
    n, c = 9, 4
    conv.init_area("y-", "x+", cch1=c, cch2=c, Nch1=n, Nch2=n, distance=geo.detector_distance * 1e3,
                   pwidth1=geo.pixel_size * 1e-3, pwidth2=geo.pixel_size * 1e-3)
    omega = (np.arange(n) - c) * geo.rocking_step
    qx, qy, qz = conv.area(omega, np.full(n, geo.gamma), np.full(n, geo.delta), wl=lam)
    q_xu = np.stack([qz, qy, qx]) * 10  # [1/nm], components (z, y, x)
    k = np.stack(np.meshgrid(*[np.arange(n) - c] * 3, indexing="ij"))
    q_ours = geo.q_bragg[:, None, None, None] + np.tensordot(geo.q_basis(), k, axes=1)
    np.testing.assert_allclose(q_xu[:, c, c, c], geo.q_bragg, rtol=1e-9)
    step = np.linalg.norm(geo.q_basis(), axis=0).max()
    assert np.abs(q_xu - q_ours).max() < 0.02 * step  # the linearisation's second-order residue


@pytest.mark.parametrize("bad, error", [
    (dict(support=None), ConfigError),
    (dict(support=np.zeros((8, 8, 8), bool)), ConfigError),
    (dict(support=np.ones((8, 8, 7), bool)), ShapeError),
    (dict(g_vector=(0.0, 0.0, 0.0)), ConfigError),
    (dict(voxel_size=-1.0), ConfigError),
    (dict(obj=np.ones((8, 8, 8))), ShapeError),
])
def test_bad_input_is_refused(bad, error):
    args = dict(obj=np.ones((8, 8, 8), np.complex64), support=np.ones((8, 8, 8), bool), g_vector=(0, 27.0, 0),
                voxel_size=3.0) | bad
    with pytest.raises(error):
        strain_field(args.pop("obj"), args.pop("support"), **args)


def test_surface_layers():
    s = np.zeros((9, 9, 9), bool)
    s[1:8, 1:8, 1:8] = True
    assert surface_layers(s, 2).sum() == 7**3 - 3**3


def test_average_gives_mean_and_spread():
    """Two noisy copies of a crystal, one shifted by a voxel and with another global phase:
    averaging aligns them, the mean is closer to the truth than either, and the spread maps
    their difference."""
    from braggscope.strain import average_strain

    s = simulate_sample(CRYSTAL, _defects("smooth"), shape=(48,) * 3, voxel_size=H, hkl=(1, 1, 1))
    rng = np.random.default_rng(1)
    noisy = [s.obj * np.exp(1j * rng.normal(0, 0.05, s.obj.shape)) for _ in range(3)]
    noisy[1] = np.roll(noisy[1], 1, axis=0) * np.exp(0.7j)
    supports = [s.support, np.roll(s.support, 1, axis=0), s.support]
    avg = average_strain(noisy, supports, g_vector=s.g_vector, voxel_size=H)
    single = strain_field(noisy[0], s.support, g_vector=s.g_vector, voxel_size=H)
    inner = s.support & ~surface_layers(s.support, 2)
    err = lambda f: _rms((f.strain + f.ramp_strain - s.strain)[inner])
    assert err(avg) < 0.75 * err(single)
    assert avg.metadata["runs"] == 3
    assert 0.3 * err(single) < np.nanmedian(avg.strain_spread[inner]) < 2 * err(single)


def test_apodize_damps_high_q_noise_and_keeps_the_field():
    from braggscope.strain import apodize

    s = simulate_sample(CRYSTAL, _defects("smooth"), shape=(48,) * 3, voxel_size=H, hkl=(1, 1, 1))
    noisy = s.obj + 0.05 * np.random.default_rng(2).normal(size=s.obj.shape)
    inner = ndimage.binary_erosion(s.support, iterations=3)
    errors = {}
    for name, obj in (("raw", noisy), ("blackman", apodize(noisy, "blackman"))):
        f = strain_field(obj, s.support, g_vector=s.g_vector, voxel_size=H, remove_ramp=False)
        errors[name] = _rms((f.strain - s.strain)[inner])
    assert errors["blackman"] < 0.5 * errors["raw"]
    with pytest.raises(ConfigError):
        apodize(noisy, "boxcar")


def test_files_and_figure(tmp_path):
    """HDF5 round trip, a .vti ParaView reads back (pyvista), and the standard figure."""
    from braggscope.strain import read_strain, write_strain, write_vti
    from braggscope.viz import save_png, strain_figure

    s = simulate_sample(CRYSTAL, _defects("edge"), shape=(32,) * 3, voxel_size=5.0, hkl=(1, 1, 1))
    f = strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=5.0)
    back = read_strain(write_strain(tmp_path / "s.h5", f, config={"hkl": [1, 1, 1]}))
    for name in ("amplitude", "phase", "displacement", "strain", "support"):
        np.testing.assert_array_equal(getattr(back, name), getattr(f, name))
    assert back.voxel_size == 5.0 and back.frame == "lab" and back.ramp_strain == f.ramp_strain
    pyvista = pytest.importorskip("pyvista")
    grid = pyvista.read(write_vti(tmp_path / "s.vti", f))
    assert grid.dimensions == (32, 32, 32) and grid.spacing == (5.0, 5.0, 5.0)
    np.testing.assert_array_equal(grid.point_data["strain"].reshape(32, 32, 32), f.strain)
    assert grid.origin[0] == -16 * 5.0
    save_png(strain_figure(f), tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 20_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5", "s.png", "s.vti"]  # no temporary left
    stats = f.summary()
    assert stats["voxels"] == stats["bulk_voxels"] + stats["surface_voxels"] and sum(stats["histogram_counts"]) == \
        stats["voxels"]


def test_cli_strain_from_detector_frame_reconstruction(tmp_path):
    """simulate (detector frame) → reconstruct → strain: the result file carries the grid, the
    strain lands on the lab grid, bad input exits with status 2 and writes nothing."""
    from braggscope.cli import main
    from braggscope.strain import read_strain

    data, result, out = tmp_path / "d.cxi", tmp_path / "r.cxi", tmp_path / "s.h5"
    assert main(["simulate", str(data), "--shape", "24", "--voxel-size", "4", "--size", "45", "--oversampling", "2",
                 "--detector-frame", "--pixel-size", "172", "--distance", "0.5", "--rocking-step", "0.05",
                 "--photons", "1e9", "-q"]) == 0
    assert main(["reconstruct", str(data), "--out", str(result), "--runs", "1", "--algorithm",
                 "ER**50 * (ShrinkWrap * RAAR**20)**10", "-q"]) == 0
    assert main(["strain", str(result), "--out", str(out), "--png", "--vti", "-q"]) == 0
    f = read_strain(out)
    assert f.frame == "lab" and f.voxel_size is not None and f.support.sum() > 100
    assert np.nanmax(np.abs(f.strain)) < 5e-3  # a strain-free crystal but for the noise
    assert {p.name for p in tmp_path.iterdir()} == {"d.cxi", "r.cxi", "s.h5", "s.png", "s.vti"}
    # refraction: the energy and detector angles come from the file; a 45 nm Pt crystal's paths
    # change the phase by at most kδ·2·45 nm ≈ 0.3 rad, so the strain moves, by little
    assert main(["strain", str(result), "--out", str(tmp_path / "r.h5"), "--refraction", "-q"]) == 0
    moved = np.abs(read_strain(tmp_path / "r.h5").strain - f.strain)[f.support]
    assert 1e-7 < np.nanmax(moved) < 5e-4
    # the twin ρ*(−r) on the reconstruction's own grid: the same strain, inverted through the centre
    for name, extra in (("n.h5", []), ("t.h5", ["--twin"])):
        assert main(["strain", str(result), "--out", str(tmp_path / name), "--frame", "native", "-q"] + extra) == 0
    native, twin = read_strain(tmp_path / "n.h5"), read_strain(tmp_path / "t.h5")
    inverted = np.roll(np.flip(native.strain), [1 - n % 2 for n in native.strain.shape], axis=(0, 1, 2))
    np.testing.assert_allclose(twin.strain[twin.support], inverted[twin.support], atol=1e-6)
    (tmp_path / "n.h5").unlink(), (tmp_path / "t.h5").unlink()
    assert main(["strain", str(result), "--out", str(tmp_path / "a.h5"), "--refraction", "--twin", "auto", "-q"]) == 0
    assert read_strain(tmp_path / "a.h5").support.sum() == f.support.sum()  # one of the pair, either way round
    assert main(["strain", str(result), "--out", str(tmp_path / "bad.h5"), "--twin", "auto", "-q"]) == 2
    (tmp_path / "a.h5").unlink()
    assert main(["strain", str(result), "--out", str(tmp_path / "bad.h5"), "--hkl", "0", "0", "0", "-q"]) == 2
    assert main(["strain", str(result), "--out", str(tmp_path / "bad.h5"), "--frame", "crystal", "-q"]) == 2
    np.save(tmp_path / "obj.npy", np.ones((8, 8, 8), np.complex64))
    assert main(["strain", str(tmp_path / "obj.npy"), "--out", str(tmp_path / "bad.h5"), "--hkl", "1", "1", "1",
                 "--material", "Pt", "--voxel-size", "3", "-q"]) == 2  # no support in an .npy
    np.savez(tmp_path / "obj.npz", obj=np.ones((8, 8, 8), np.complex64), support=np.ones((8, 8, 8), bool))
    assert main(["strain", str(tmp_path / "obj.npz"), "--out", str(tmp_path / "bad.h5"), "--hkl", "1", "1", "1",
                 "--material", "Pt", "--voxel-size", "3", "--g-direction", "0", "1", "0", "--refraction",
                 "-q"]) == 2  # no energy, no detector angles
    assert not (tmp_path / "bad.h5").exists()


AU_111 = Geometry.for_reflection(d_spacing=0.40782 / np.sqrt(3), energy=9.0, detector_distance=1.0, pixel_size=55.0,
                                 rocking_step=0.004)


def _sphere_on(voxel, radius, n=64):
    """Lab positions r = A (index - n // 2) of an n³ grid, and the ball |r| < radius on it."""
    r = (np.indices((n, n, n)).reshape(3, -1).T - n // 2) @ np.asarray(voxel).T
    return r, (np.linalg.norm(r, axis=1) < radius).reshape(n, n, n)


def _chord(r, direction, radius, n=64):
    """[nm] Exact distance from each point r to the sphere |r| = radius along `direction`."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    rd = r @ d
    return (-rd + np.sqrt(np.maximum(rd ** 2 - (r ** 2).sum(axis=1) + radius ** 2, 0))).reshape(n, n, n)


@pytest.mark.parametrize("grid", ["cubic", "detector"])
def test_beam_path_length_in_a_ball_matches_the_chord(grid):
    """The crystal ahead of each voxel of a ball along the exit beam, on a cubic grid and on a
    rocking scan's sheared detector-frame grid, against the exact chord; the error is that of
    the voxelised surface (a fraction of a voxel)."""
    from braggscope.geometry import scattered_direction
    from braggscope.strain import beam_path_length

    voxel = 20.0 * np.eye(3) if grid == "cubic" else AU_111.object_voxel((64, 64, 64))
    r, ball = _sphere_on(voxel, 400.0)
    kf = scattered_direction(AU_111.delta, AU_111.gamma)
    error = (beam_path_length(ball, voxel, kf) - _chord(r, kf, 400.0))[ball]
    edge = np.linalg.norm(voxel, axis=0).min()
    assert np.sqrt(np.mean(error ** 2)) < 0.4 * edge
    assert np.percentile(np.abs(error), 95) < 0.8 * edge
    assert np.all(beam_path_length(ball, voxel, kf)[~ball] == 0)


def test_refraction_correction_restores_the_strain_of_a_gold_ball():
    """A 600 nm Au ball at 9 keV (111): refraction and absorption of both beams, put on the
    object with the exact chords, bias its bulk strain by about 7e-5 RMS; the correction, with
    the paths taken through the voxelised support, takes that below a third and restores the
    amplitude."""
    from braggscope.geometry import INCIDENT_DIRECTION, scattered_direction
    from braggscope.strain import correct_refraction, refractive_index

    voxel, radius = 15.0 * np.eye(3), 300.0
    r, ball = _sphere_on(voxel, radius)
    kf = scattered_direction(AU_111.delta, AU_111.gamma)
    path = _chord(r, -INCIDENT_DIRECTION, radius) + _chord(r, kf, radius)
    g = AU_111.q_bragg
    phase = (3.0 * ((r @ g) / np.linalg.norm(g) / radius) ** 2 + (r[:, 2] / radius) ** 3).reshape(ball.shape)
    truth = np.where(ball, np.exp(1j * phase), 0).astype(np.complex64)
    delta, beta = refractive_index("Au", 9.0)
    measured = truth * np.exp((1j * delta - beta) * AU_111.k * path)
    corrected = correct_refraction(measured, ball, voxel=voxel, energy=9.0, delta=delta, beta=beta, scattered=kf)
    strain = lambda obj: strain_field(obj, ball, g_vector=g, voxel_size=voxel).strain
    bulk = ball & ~surface_layers(ball, 2)
    rms = lambda e: float(np.sqrt(np.mean(e[bulk] ** 2)))
    biased, left = rms(strain(measured) - strain(truth)), rms(strain(corrected) - strain(truth))
    assert 5e-5 < biased < 1e-4 and left < biased / 3
    assert np.abs(np.abs(corrected[bulk]) - 1).max() < 0.01 < np.abs(np.abs(measured[bulk]) - 1).max()
    with pytest.raises(ConfigError):
        correct_refraction(measured, ball, voxel=voxel, energy=9.0, delta=-1e-5, scattered=kf)
    with pytest.raises(ShapeError):
        correct_refraction(measured, ball[1:], voxel=voxel, energy=9.0, delta=delta, scattered=kf)


def test_refraction_enters_the_object_with_the_displacement_sign():
    """From the scattering sum itself: each voxel of a 150 nm Au ball (111, 9 keV) scatters the wave
    that crossed L_in of crystal on the way in and L_out on the way out, each beam carrying the phase
    exp(i(n − 1)kL) of the medium (n = 1 − δ), with its atoms displaced by u. Summed directly at
    q = G − Δq, that intensity is |FFT(ρ)|² of ρ = |ρ| exp(i(G·u + kδL)), the object that
    correct_refraction undoes, and not of exp(i(G·u − kδL)), the sign a correction that adds kδL to
    the G·u-signed phase assumes (README: bcdi's)."""
    from braggscope.geometry import INCIDENT_DIRECTION, scattered_direction
    from braggscope.strain import beam_path_length, correct_refraction, refractive_index

    n, voxel = 12, 15.0
    r, ball = _sphere_on(voxel * np.eye(3), 75.0, n)
    kf = scattered_direction(AU_111.delta, AU_111.gamma)
    l_in = beam_path_length(ball, voxel, -np.asarray(INCIDENT_DIRECTION, float))
    l_out = beam_path_length(ball, voxel, kf)
    delta, _ = refractive_index("Au", 9.0)
    gu = (1.5 * (r[:, 2] / 75.0) ** 3 + 0.5 * r[:, 1] / 75.0).reshape(ball.shape)  # G·u [rad]
    medium = np.exp(1j * (-delta) * AU_111.k * (l_in + l_out))  # exp(i(n − 1)kL), both beams
    wave = np.where(ball, np.exp(-1j * gu) * medium, 0).ravel()
    dq = 2 * np.pi * np.stack(np.meshgrid(*[np.fft.fftfreq(n, voxel)] * 3, indexing="ij")).reshape(3, -1).T
    direct = np.abs(np.exp(1j * dq @ r.T) @ wave) ** 2  # Σ_r exp(-i(G - Δq)·r) …, exp(-iG·r) = 1 on the lattice
    model = lambda phase: np.abs(np.fft.fftn(np.where(ball, np.exp(1j * phase), 0))).ravel() ** 2
    kdl = delta * AU_111.k * (l_in + l_out)
    scale = direct.max()
    assert np.abs(model(gu + kdl) - direct).max() < 1e-4 * scale
    assert np.abs(model(gu - kdl) - direct).max() > 1e-2 * scale
    restored = correct_refraction(np.where(ball, np.exp(1j * (gu + kdl)), 0), ball, voxel=voxel, energy=9.0,
                                  delta=delta, scattered=kf)
    np.testing.assert_allclose(restored[ball], np.exp(1j * gu[ball]), atol=1e-5)


def test_twin_by_refraction_keeps_the_orientation_whose_phase_follows_the_paths():
    """A 600 nm Au ball at 9 keV whose phase is a mild cubic field plus the refraction kδL: the
    phase's share along kδL is 1 on it and −1 on its twin (a ball is centrosymmetric), so the
    physical one is kept, and its twin is turned back."""
    from braggscope.geometry import INCIDENT_DIRECTION, scattered_direction
    from braggscope.retrieval import flip_twin
    from braggscope.strain import refractive_index, twin_by_refraction

    voxel, radius = 15.0 * np.eye(3), 300.0
    r, ball = _sphere_on(voxel, radius)
    kf = scattered_direction(AU_111.delta, AU_111.gamma)
    delta, beta = refractive_index("Au", 9.0)
    path = _chord(r, -INCIDENT_DIRECTION, radius) + _chord(r, kf, radius)
    obj = (np.where(ball, np.exp(1j * (r[:, 2] / radius) ** 3).reshape(ball.shape), 0)
           * np.exp((1j * delta - beta) * AU_111.k * path)).astype(np.complex64)
    keys = dict(voxel=voxel, energy=9.0, delta=delta, scattered=kf)
    kept, support, flipped, share, other = twin_by_refraction(obj, ball, **keys)
    assert not flipped and share == pytest.approx(1.0, abs=0.15) and other == pytest.approx(-share)
    np.testing.assert_array_equal(kept, obj)
    back, back_support, flipped, _, _ = twin_by_refraction(flip_twin(obj), flip_twin(ball.astype(np.float32)) > 0.5,
                                                           **keys)
    assert flipped
    np.testing.assert_allclose(back, obj, atol=1e-6)
    np.testing.assert_array_equal(back_support, ball)


def test_refractive_index_against_the_scattering_factor_and_the_attenuation():
    """δ = r_e λ² n (Z + f′) / 2π from Chantler's f′ and the lattice's atom density, and β = μλ/4π
    from Elam's attenuation coefficient (another table), for the four metals at 9 keV; and Pt's δ
    and β at four energies as another BCDI code lists them for its refraction correction."""
    import xraydb

    from braggscope.geometry import wavelength_nm
    from braggscope.materials import get_material
    from braggscope.strain import refractive_index

    lam = wavelength_nm(9.0) * 1e-9  # [m]
    for name in ("Pt", "Au", "Ni", "Cu"):
        m = get_material(name)
        atoms = 4 / (m.lattice_parameter * 1e-9) ** 3  # [1/m³]
        density = atoms * xraydb.atomic_mass(name) / 6.02214076e23 * 1e-3  # [kg/m³]
        delta, beta = refractive_index(name, 9.0)
        f1 = m.atomic_number + xraydb.f1_chantler(name, 9000.0)
        assert delta == pytest.approx(2.8179403e-15 * lam ** 2 * atoms * f1 / (2 * np.pi), rel=1e-3)
        mu = xraydb.mu_elam(name, 9000.0, kind="total") * density * 0.1  # [1/m] (cm²/g · kg/m³ · 0.1)
        assert beta == pytest.approx(mu * lam / (4 * np.pi), rel=0.05)
    # Pt as bcdi's example strain configuration lists it (δ, β at 7994, 8500, 8994 and 9994 eV)
    listed = {7.994: (5.2647e-5, 5.2245e-6), 8.5: (4.6353e-5, 4.1969e-6), 8.994: (4.1184e-5, 3.4298e-6),
              9.994: (3.2880e-5, 2.3486e-6)}
    for energy, (delta, beta) in listed.items():
        assert refractive_index("Pt", energy) == pytest.approx((delta, beta), rel=0.03)
        assert refractive_index("Pt", energy)[0] == pytest.approx(delta, rel=0.01)
