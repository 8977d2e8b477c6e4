"""Shapes, materials and the sample's ground truth."""
import numpy as np
import pytest

from braggscope.errors import ConfigError, ShapeError
from braggscope.materials import MATERIALS, get_material
from braggscope.physics import bragg_vector
from braggscope.simulate import (Crystal, cube, cuboctahedron, grid_points, octahedron, orientation_from_axes,
                                 random_crystal, random_defects, random_orientation, simulate_sample, sphere,
                                 support_fraction, truncated_octahedron, wulff)
from conftest import hirth_lothe_edge_strain


@pytest.mark.parametrize("name, nu", [("Au", 0.416), ("Pt", 0.393), ("Ni", 0.277), ("Cu", 0.324)])
def test_voigt_poisson_ratios(name, nu):
    assert MATERIALS[name].poisson_ratio == pytest.approx(nu, abs=1.5e-3)


def test_unknown_material_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown material 'Fe'.*Pt"):
        get_material("Fe")


def test_bragg_vector_norm_is_2pi_over_d():
    pt = MATERIALS["Pt"]
    g = bragg_vector((1, 1, 1), lattice_parameter=pt.lattice_parameter, orientation=random_orientation(0))
    assert np.linalg.norm(g) == pytest.approx(2 * np.pi / pt.d_spacing((1, 1, 1)))
    with pytest.raises(ConfigError, match="0 0 0"):
        bragg_vector((0, 0, 0), lattice_parameter=0.4)


@pytest.mark.parametrize("make, exact", [
    (lambda: sphere(40.0), np.pi / 6 * 40.0**3),
    (lambda: cube(36.0, random_orientation(1)), 36.0**3),
    (lambda: octahedron(40.0, random_orientation(2)), 4 / 3 * (np.sqrt(3) * 20.0) ** 3),
    (lambda: truncated_octahedron(40.0, random_orientation(3)), None),
    (lambda: cuboctahedron(40.0), None),
])
def test_anti_aliased_volume_matches_the_exact_volume(make, exact):
    shape = make()
    exact = shape.volume if exact is None else exact
    if hasattr(shape, "normals"):
        assert shape.volume == pytest.approx(exact, rel=1e-9)
    h = 2.0
    occupancy = support_fraction(shape, grid_points((40, 40, 40), h), h)
    assert occupancy.sum() * h**3 == pytest.approx(exact, rel=0.01)


def test_wulff_shape_is_cut_by_the_cheapest_facets():
    shape = wulff(50.0, {(1, 1, 1): 1.0, (1, 0, 0): 1.15})
    assert shape.distances.min() == pytest.approx(25.0)
    # the {100} facets are at 1.15 × 25 nm
    along_100 = shape.radial_extent(np.array([[1.0], [0], [0]]))[0]
    assert along_100 == pytest.approx(25.0 * 1.15)


def test_orientation_from_axes_brings_hkl_onto_z():
    u = orientation_from_axes((1, 1, 1))
    np.testing.assert_allclose(u @ np.ones(3) / np.sqrt(3), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(u @ u.T, np.eye(3), atol=1e-12)


def test_edge_dislocation_ground_truth_strain_is_the_analytic_one():
    """simulate_sample's strain along G against Hirth & Lothe's closed form, in the bulk."""
    xtal = Crystal(sphere(120.0), "Pt", orientation_from_axes((1, 1, 1)))  # G_111 along z
    disl = xtal.dislocation((0.5, 0, -0.5), (1, -2, 1), position=(0.0, 0.0, 0.0))  # edge, b ⊥ G
    s = simulate_sample(xtal, [disl], shape=(40, 40, 40), voxel_size=3.0, hkl=(1, 1, 1))
    e1, e2, t = disl.local_frame()
    g_hat = s.g_vector / np.linalg.norm(s.g_vector)
    pts = grid_points(s.obj.shape, 3.0)
    x, y = np.tensordot(e1, pts, 1), np.tensordot(e2, pts, 1) + 1e-9
    exx, eyy, exy = hirth_lothe_edge_strain(x, y, burgers=np.linalg.norm(disl.burgers),
                                            poisson_ratio=xtal.material.poisson_ratio)
    gx, gy = g_hat @ e1, g_hat @ e2
    analytic = gx * gx * exx + gy * gy * eyy + 2 * gx * gy * exy
    bulk = s.support & (np.hypot(x, y) > 6.0)
    assert bulk.sum() > 5000
    np.testing.assert_allclose(s.strain[bulk], analytic[bulk], atol=2e-7)
    assert s.dislocation_mask.sum() > 0 and not s.dislocation_mask[~s.support].any()


def test_ground_truth_strain_equals_finite_difference_of_the_phase():
    """The strain stored in the sample agrees with an independent central difference of the
    wrapped phase along G (G along z here), away from cores."""
    xtal = Crystal(truncated_octahedron(110.0, orientation_from_axes((0, 0, 2))), "Au", orientation_from_axes((0, 0, 2)))
    defects = [xtal.dislocation((0.5, 0.5, 0), (1, -1, 1), position=(5.0, -3.0, 2.0)),
               xtal.loop((0, 0.5, 0.5), (1, 1, 1), center=(-20.0, 10.0, 5.0), radius=12.0),
               xtal.dilatation((15.0, 15.0, -10.0), 3.0, 2.0), xtal.smooth_strain(0.01, 80.0, rng=1)]
    s = simulate_sample(xtal, defects, shape=(48, 48, 48), voxel_size=2.5, hkl=(0, 0, 2))
    g = np.linalg.norm(s.g_vector)
    dphi = np.angle(s.obj[2:] * np.conj(s.obj[:-2])) / (2 * 2.5 * g)
    far = s.support[2:] & s.support[:-2] & s.support[1:-1] & ~s.dislocation_mask[1:-1]
    far &= np.abs(s.strain[1:-1]) < 3e-3  # central differences need a smooth field
    assert far.mean() > 0.1
    err = np.abs(dphi - s.strain[1:-1])[far]
    assert np.median(err) < 2e-6 and np.percentile(err, 95) < 1e-4  # O(h²) of the central difference


def test_two_dimensional_section():
    xtal = Crystal(truncated_octahedron(80.0), "Cu")
    s = simulate_sample(xtal, [xtal.dislocation((0.5, 0.5, 0), (0, 0, 1))], shape=(48, 40), voxel_size=2.5,
                        hkl=(2, 0, 0))
    assert s.obj.shape == (48, 40) and s.displacement.shape == (3, 48, 40)
    # the z = 0 section is an octagon: |y|, |x| ≤ d100 = 40·2/√3 nm and |y| + |x| ≤ √3·40 nm
    d100, d111 = 40 * 2 / np.sqrt(3), 40 * np.sqrt(3)
    area = (2 * d100) ** 2 - 2 * (2 * d100 - d111) ** 2
    assert s.support.sum() * 2.5**2 == pytest.approx(area, rel=0.01)


@pytest.mark.parametrize("kwargs, match", [
    (dict(voxel_size=-1.0), "voxel_size"),
    (dict(voxel_size=500.0), "voxel is about as large"),
    (dict(hkl=(0, 0, 0)), "0 0 0"),
    (dict(hkl=(1, np.nan, 1)), "NaN"),
    (dict(shape=(4,)), "2 or 3"),
])
def test_bad_sample_inputs_are_clear_errors(kwargs, match):
    args = dict(shape=(16, 16, 16), voxel_size=4.0, hkl=(1, 1, 1)) | kwargs
    with pytest.raises((ConfigError, ShapeError), match=match):
        simulate_sample(Crystal(sphere(40.0), "Pt"), [], **args)
    with pytest.raises(ConfigError, match="diameter"):
        sphere(-3)


def test_random_sets_are_reproducible():
    a = random_crystal(5)
    b = random_crystal(5)
    np.testing.assert_array_equal(a.orientation, b.orientation)
    da = [d.describe() for d in random_defects(a, 7, count=(3, 3))]
    db = [d.describe() for d in random_defects(b, 7, count=(3, 3))]
    assert da == db and len(da) == 3
