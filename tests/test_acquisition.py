"""Scan planning: the sampling physics against closed forms and the simulated beamline, the
simulated beamline's counts, the Bayesian planner's loop and state, the pre-scan ranking and
`braggscope plan`."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from braggscope.acquisition import (DEFAULT_SCAN, Instrument, Planner, Scan, SimulatedBeamline, beam_time,
                                    edge_count_rate, formula_design, oversampling, peak_count_rate,
                                    rank_reflections, violations, visible)
from braggscope.acquisition.prescan import assess, coarse_scan, friedel_asymmetry, rank_crystals
from braggscope.acquisition.sampling import (R_E, debye_waller, distance_for_oversampling,
                                             step_for_oversampling, structure_factor)
from braggscope.cli import main
from braggscope.errors import ConfigError, SupportCollapsedError
from braggscope.simulate import Crystal, sphere, truncated_octahedron

SMALL = Instrument(crop=24)


def _sphere_beamline(diameter=120.0, defects=(), **kw):
    crystal = Crystal(sphere(diameter), "Pt")
    return SimulatedBeamline(crystal, [f(crystal) for f in defects], instrument=kw.pop("instrument", SMALL),
                             **kw)


# ---- sampling physics ------------------------------------------------------------------------
def _bragg_angle(hkl=(1, 1, 1), energy=9.0):
    return np.arcsin(1.239841984 / energy / (2 * 0.39242 / np.sqrt(np.dot(hkl, hkl))))


def test_detector_oversampling_is_lambda_distance_over_pixel_size():
    """The detector columns (normal to the scattering plane) are oversampled λ d / (p D) times;
    the rows, which the rocking direction shears by the Bragg angle, 1/cos θ times more."""
    ins = Instrument(energy=9.0, pixel_size=55.0)
    scan = dataclasses.replace(DEFAULT_SCAN, detector_distance=0.8)
    wavelength = 1.239841984 / 9.0  # [nm]
    expected = wavelength * 0.8 / (55e-6 * 200.0)
    sigma = oversampling(scan, ins, "Pt", 200.0)
    assert sigma[2] == pytest.approx(expected, rel=1e-3)
    assert sigma[1] == pytest.approx(expected / np.cos(_bragg_angle()), rel=1e-3)
    assert distance_for_oversampling(3.0, ins, "Pt", (1, 1, 1), 200.0) == pytest.approx(3.0 * 0.8 / expected, rel=1e-3)


def test_rocking_oversampling_is_two_pi_over_q_step_and_size():
    """A rocking step Δω moves q by |Q| Δω normal to Q (rocking axis ⊥ Q), at the Bragg angle θ to
    the detector plane: σ = 2π / (|Q| Δω D cos θ)."""
    ins = Instrument()
    q = 2 * np.pi / (0.39242 / np.sqrt(3))
    step = step_for_oversampling(3.0, ins, "Pt", (1, 1, 1), 250.0)
    assert 2 * np.pi / (q * np.radians(step) * 250.0 * np.cos(_bragg_angle())) == pytest.approx(3.0, rel=1e-3)


def test_structure_factor_and_debye_waller():
    assert structure_factor("Pt", (1, 0, 0), 9.0) == 0  # mixed indices: forbidden in fcc
    f111 = structure_factor("Pt", (1, 1, 1), 9.0)
    assert 200 < abs(f111) < 4 * 78  # 4 atoms, f below Z at sin θ/λ = 0.22 1/Å
    assert abs(structure_factor("Pt", (2, 2, 0), 9.0)) < abs(f111)  # the form factor falls with q
    # Cu at room temperature: B ≈ 0.5 Å² (Debye model, Θ = 343 K); exp(-2 B s²) at 111
    s = 1 / (2 * 0.36149 / np.sqrt(3)) / 10  # [1/Å]
    b = -np.log(debye_waller("Cu", (1, 1, 1))) / (2 * s**2)
    assert 0.4 < b < 0.6
    # the classical limit T ≫ Θ: B ∝ T
    ratio = np.log(debye_waller("Cu", (1, 1, 1), 3000.0)) / np.log(debye_waller("Cu", (1, 1, 1), 1500.0))
    assert ratio == pytest.approx(2.0, rel=0.02)


def test_peak_count_rate_matches_the_simulated_beamline():
    """The beamline's noiseless centre pixel (the DFT of a finely sampled sphere) equals
    Φ r_e² |F|² e^{-2M} V² ΔΩ / V_cell² × t with V the sphere's volume."""
    bl = _sphere_beamline(120.0)
    scan = formula_design(120.0, "Pt", (1, 1, 1), SMALL).scan
    counts = bl.expected_counts(scan)
    centre = counts[tuple(n // 2 for n in counts.shape)]
    volume = np.pi / 6 * 120.0**3
    assert centre / scan.count_time == pytest.approx(peak_count_rate(scan, SMALL, "Pt", volume), rel=0.03)
    # by hand: flux, r_e², |F|², Debye–Waller, cell volume, pixel solid angle
    by_hand = SMALL.flux_density * R_E**2 * abs(structure_factor("Pt", (1, 1, 1), 9.0)) ** 2 * \
        debye_waller("Pt", (1, 1, 1)) * volume**2 / 0.39242**6 * (55e-6 / scan.detector_distance) ** 2
    assert peak_count_rate(scan, SMALL, "Pt", volume) == pytest.approx(by_hand, rel=1e-6)


def test_object_at_points_is_the_sample_object():
    """object_at on the voxel centres of a cubic grid gives simulate_sample's object."""
    from braggscope.simulate import grid_points, object_at, simulate_sample

    crystal = Crystal(truncated_octahedron(60.0), "Pt")
    defects = [crystal.dislocation((0.5, 0.0, 0.5), (1, -2, 1), (3.0, 2.0, -1.0))]
    sample = simulate_sample(crystal, defects, shape=(24, 24, 24), voxel_size=4.0, hkl=(2, 0, 0))
    obj = object_at(crystal, defects, grid_points((24, 24, 24), 4.0), hkl=(2, 0, 0), voxel_size=4.0)
    assert np.allclose(obj, sample.obj, atol=1e-5)


def test_porod_envelope_at_the_window_edge():
    """The mean simulated counts on the detector window's edge (frame of the peak) agree with
    Porod's q⁻⁴ envelope of a sphere to within a factor 1.5."""
    ins = Instrument(crop=48)
    bl = _sphere_beamline(120.0, instrument=ins)
    scan = formula_design(120.0, "Pt", (1, 1, 1), ins).scan
    counts = bl.expected_counts(scan)[scan.frames // 2]
    ring = np.hypot(*np.meshgrid(*(np.arange(48) - 24,) * 2, indexing="ij"))
    edge = counts[(ring > 22.5) & (ring < 24)].mean() / scan.count_time
    assert edge == pytest.approx(edge_count_rate(scan, ins, "Pt", 120.0, np.pi / 6 * 120.0**3), rel=0.5)


def test_counts_scale_with_count_time_and_solid_angle():
    bl = _sphere_beamline(100.0)
    scan = formula_design(100.0, "Pt", (1, 1, 1), SMALL).scan
    base = bl.expected_counts(scan).max()
    assert bl.expected_counts(dataclasses.replace(scan, count_time=2 * scan.count_time)).max() == \
        pytest.approx(2 * base, rel=1e-4)
    # twice the distance: a pixel subtends a quarter of the solid angle (the peak pixel holds q = G
    # still); each grid's own discretised volume, Σ occupancy × voxel volume, enters squared
    far = dataclasses.replace(scan, detector_distance=2 * scan.detector_distance)

    def volume(s):
        truth = bl.truth(s, fine=True)
        return np.abs(truth.obj).sum() * abs(np.linalg.det(truth.voxel / bl.refine))

    per_volume = lambda s: bl.expected_counts(s).max() / volume(s) ** 2
    assert per_volume(far) == pytest.approx(per_volume(scan) / 4, rel=2e-3)


def test_visibility_rule():
    b = (0.5, -0.5, 0.0)  # a/2[1-10]
    assert not visible((1, 1, 1), burgers=b)  # G·b = 0
    assert visible((2, 0, 0), burgers=b)
    assert not visible((2, 2, 0), burgers=b)
    shockley = (1 / 6, 1 / 6, -2 / 6)  # a/6[11-2] on (111)
    assert not visible((1, 1, 1), fault=shockley)  # h·R = 0
    assert visible((2, 0, 0), fault=shockley)  # h·R = 1/3
    assert not visible((3, 3, -3), fault=shockley)  # h·R = 2: a whole lattice vector, no phase jump
    ranked = rank_reflections([(1, 1, 1), (2, 0, 0), (2, 2, 0)], burgers=[b])
    assert ranked[0]["hkl"] == (2, 0, 0) and ranked[0]["shows"] == 1


def test_beam_time_and_violations():
    ins = Instrument()
    scan = Scan(rocking_range=0.64, rocking_step=0.02, count_time=0.5, detector_distance=0.5)
    assert scan.frames == 32
    assert beam_time(scan, ins) == pytest.approx(32 * (0.5 + ins.frame_overhead) + ins.scan_overhead)
    assert beam_time(scan, ins, current_hkl=(2, 0, 0)) == pytest.approx(beam_time(scan, ins) + ins.reflection_change)
    assert violations(scan, ins, "Pt", 200.0) == []
    close = dataclasses.replace(scan, detector_distance=0.1)
    assert any("oversampling" in v and "detector" in v for v in violations(close, ins, "Pt", 200.0))
    coarse = dataclasses.replace(scan, rocking_step=0.2, rocking_range=3.2)
    assert any("rocking" in v for v in violations(coarse, ins, "Pt", 200.0))
    bright = Instrument(flux_density=1e5)
    assert any("count rate" in v for v in violations(scan, bright, "Pt", 200.0))
    assert any("budget" in v for v in violations(scan, ins, "Pt", 200.0, budget=10.0))
    dim = dataclasses.replace(scan, count_time=1e-3)
    assert any("window's edge" in v for v in violations(dim, ins, "Pt", 200.0))
    assert "forbidden" in violations(dataclasses.replace(scan, hkl=(1, 0, 0)), ins, "Pt", 200.0)[0]


def test_formula_design_meets_the_constraints_and_says_what_binds():
    ins = Instrument()
    design = formula_design(200.0, "Pt", (1, 1, 1), ins)
    assert violations(design.scan, ins, "Pt", 200.0) == []
    assert oversampling(design.scan, ins, "Pt", 200.0) == pytest.approx([3.0, 3.0, 3.0], rel=0.05)
    assert "oversampling" in design.reasons["detector_distance"]
    bright = Instrument(flux_density=3e4)
    hot = formula_design(200.0, "Pt", (1, 1, 1), bright)
    assert "saturation" in hot.reasons["detector_distance"]
    assert violations(hot.scan, bright, "Pt", 200.0) == []
    tight = formula_design(200.0, "Pt", (1, 1, 1), ins, budget=20.0)
    assert "budget" in tight.reasons["count_time"] and beam_time(tight.scan, ins) == pytest.approx(20.0)
    with pytest.raises(ConfigError, match="budget"):
        formula_design(200.0, "Pt", (1, 1, 1), ins, budget=5.0)


# ---- the simulated beamline ------------------------------------------------------------------------
def test_beamline_reconstructs_a_perfect_crystal():
    bl = _sphere_beamline(100.0, cycles=200, runs=2)
    scan = formula_design(100.0, "Pt", (1, 1, 1), SMALL).scan
    result = bl(scan)
    assert not result.failed and result.saturated_pixels == 0
    assert result.displacement_error < 0.005  # [nm]: a perfect sphere, well sampled
    assert min(result.oversampling) >= 2.0
    assert result.dislocation_recall is None
    assert np.isfinite(result.efficiency) and result.beam_time == pytest.approx(beam_time(scan, SMALL))
    assert bl.check(scan) == []


def test_beamline_sees_a_dislocation_only_where_g_dot_b_is_not_zero():
    def edge(c):
        return c.dislocation((0.5, -0.5, 0.0), (1, 1, 1))

    crystal = Crystal(truncated_octahedron(110.0), "Pt")
    bl = SimulatedBeamline(crystal, [edge(crystal)], instrument=SMALL, cycles=300, runs=2)
    hidden = formula_design(140.0, "Pt", (1, 1, 1), SMALL).scan
    shown = formula_design(140.0, "Pt", (2, 0, 0), SMALL).scan
    assert bl(hidden).dislocation_recall is None  # G·b = 0 at 111
    assert bl(shown).dislocation_recall is not None


def test_beamline_failure_is_a_result(monkeypatch):
    import braggscope.acquisition.beamline as module

    def collapse(*args, **kwargs):
        raise SupportCollapsedError("collapsed", fraction=0.0, threshold=0.01)

    monkeypatch.setattr(module, "reconstruct", collapse)
    bl = _sphere_beamline(100.0)
    scan = formula_design(100.0, "Pt", (1, 1, 1), SMALL).scan
    result = bl(scan)
    g = 2 * np.pi * np.sqrt(3) / 0.39242
    assert result.failed and result.displacement_error == pytest.approx(np.pi / np.sqrt(3) / g)


# ---- the planner -------------------------------------------------------------------------------
def _toy_error(scan, planner):
    """A known error landscape: best near detector-plane oversampling 3 and frames that match the
    window; shot noise ∝ 1/√(frames × count time)."""
    x, _ = planner.space.point(scan)
    shot = 1.0 / np.sqrt(scan.frames * scan.count_time)
    return 1e-3 * (1 + 8 * (x[0] - 0.3) ** 2 + 4 * (x[2] - 0.5) ** 2) * np.sqrt(1 + shot**2)


def _run(planner, calls):
    for _ in range(calls):
        scan = planner.ask()[0]
        planner.tell(scan, error=_toy_error(scan, planner))
    return planner.best().efficiency


def test_planner_starts_from_the_formula_design_and_keeps_to_the_constraints():
    planner = Planner(200.0, "Pt", [(1, 1, 1)], budget=300.0, seed=0)
    first = planner.ask()[0]
    assert first == planner.formula_design().scan
    planner.tell(first, error=_toy_error(first, planner))
    asked = [first]
    for _ in range(7):
        scan = planner.ask()[0]
        assert planner.explain(scan)["violations"] == []
        planner.tell(scan, error=_toy_error(scan, planner))
        asked.append(scan)
    assert len(planner.observations) == 8 and not planner.pending
    assert asked.count(asked[7]) == 2  # call 8 measures the model's best scan again


def test_planner_beats_random_search_on_a_known_landscape():
    space = Planner(200.0, "Pt", [(1, 1, 1)], budget=300.0).space
    x, k = Planner(200.0, "Pt", [(1, 1, 1)], budget=300.0).candidates(n_sobol=4096, n_local=0)
    toy = Planner(200.0, "Pt", [(1, 1, 1)], budget=300.0)
    landscape = np.array([np.log10(_toy_error(space.scan(p, 0), toy) ** 2 * space.beam_time(p, 0)) for p in x])
    random_best = [np.min(np.random.default_rng(s).choice(landscape, 14, replace=False)) for s in range(20)]
    planned = _run(Planner(200.0, "Pt", [(1, 1, 1)], budget=300.0, seed=1), 14)
    assert planned < np.median(random_best)
    assert planned - landscape.min() < 0.15


def test_planner_suggestions_do_not_depend_on_the_callers_random_draws():
    """The same seed and the same results give the same scans, whatever torch drew in between, and
    the caller's random state is left as it was."""
    import torch

    sessions = []
    for caller_seed in (0, 1):
        torch.manual_seed(caller_seed)
        planner = Planner(200.0, "Pt", [(1, 1, 1)], budget=300.0, seed=2)
        asked = []
        for _ in range(7):
            torch.rand(caller_seed + 3)
            state = torch.get_rng_state()
            scan = planner.ask()[0]
            assert torch.equal(torch.get_rng_state(), state)
            planner.tell(scan, error=_toy_error(scan, planner))
            asked.append(scan)
        sessions.append(asked)
    assert sessions[0] == sessions[1]


def test_planner_state_survives_a_restart(tmp_path):
    path = tmp_path / "session.json"
    a = Planner(200.0, "Pt", [(1, 1, 1), (2, 0, 0)], budget=600.0, seed=3, state_path=path)
    for _ in range(5):
        scan = a.ask()[0]
        a.tell(scan, error=_toy_error(scan, a))
    pending = a.ask(2)
    b = Planner.load(path)
    assert b.pending == pending and [o.scan for o in b.observations] == [o.scan for o in a.observations]
    for scan in pending:  # both tell the same results and ask again: the same suggestion
        a.tell(scan, error=_toy_error(scan, a))
        b.tell(scan, error=_toy_error(scan, b))
    assert a.ask()[0] == b.ask()[0]
    assert json.loads(path.read_text())["observations"][0]["scan"]["hkl"] == [1, 1, 1]


def test_planner_batch_pareto_and_bad_input():
    planner = Planner(200.0, "Pt", [(1, 1, 1), (2, 0, 0)], budget=600.0, objective="pareto", seed=2)
    for scan in planner.ask(4):
        planner.tell(scan, error=_toy_error(scan, planner))
    batch = planner.ask(3)
    assert len(set(batch)) == 3 and all(planner.explain(s)["violations"] == [] for s in batch)
    for scan in batch:
        planner.tell(scan, error=_toy_error(scan, planner))
    front = planner.pareto_front()
    assert all(b.beam_time >= a.beam_time and b.error < a.error for a, b in zip(front, front[1:]))
    with pytest.raises(ConfigError):
        planner.tell(batch[0], error=-1.0)
    with pytest.raises(ConfigError):
        planner.tell(dataclasses.replace(batch[0], hkl=(2, 2, 0)), error=1e-3)
    with pytest.raises(ConfigError, match="forbidden"):
        Planner(200.0, "Pt", [(1, 0, 0)])


# ---- pre-scan ------------------------------------------------------------------------------------
def test_friedel_asymmetry_and_ranking():
    perfect = _sphere_beamline(110.0)
    strained_crystal = Crystal(sphere(110.0), "Pt")
    strained = SimulatedBeamline(strained_crystal, [strained_crystal.smooth_strain(0.03, 60.0, rng=1)],
                                 instrument=SMALL)
    scan = coarse_scan(140.0, "Pt", (1, 1, 1), SMALL, count_time=0.5)
    reports = []
    for name, bl in (("perfect", perfect), ("strained", strained)):
        counts, mask = bl.measure(scan, rng=0)
        reports.append(assess(counts, mask, scan, "Pt", instrument=SMALL, name=name))
    # Friedel asymmetry beyond Poisson noise: near 0 for the perfect sphere, clearly above it when strained
    assert reports[0]["asymmetry"] < 0.01 and reports[1]["asymmetry"] > max(0.02, 5 * reports[0]["asymmetry"])
    assert reports[0]["size"] == pytest.approx(110.0, rel=0.4)  # the crystal spans 5 pre-scan voxels
    ranked = rank_crystals(reports + [{**reports[0], "name": "faint", "peak_rate": 1.0}])
    assert [r["name"] for r in ranked] == ["strained", "perfect", "faint"]
    assert ranked[-1]["rank"] == 0 and "weak" in ranked[-1]["reasons"][0]
    r2 = np.sum(np.stack(np.meshgrid(*(np.arange(9) - 4,) * 3, indexing="ij")) ** 2, axis=0)
    assert friedel_asymmetry(1e3 * np.exp(-r2 / 4.0)) == 0.0  # centrosymmetric, noise-free


# ---- command line ----------------------------------------------------------------------------------
def test_cli_plan_prints_the_design_and_why(capsys, tmp_path):
    assert main(["plan", "--crystal-size", "200", "--material", "Pt", "--hkl", "1", "1", "1",
                 "--budget-minutes", "10", "--burgers", "0.5 -0.5 0", "--reflections", "2 0 0"]) == 0
    out = capsys.readouterr().out
    assert "oversampling 3 of the detector plane" in out and "shows 1 of 1" in out
    state = tmp_path / "s.json"
    assert main(["plan", "--crystal-size", "200", "--state", str(state), "--batch", "2"]) == 0
    assert len(json.loads(state.read_text())["pending"]) == 2
    assert main(["plan", "--crystal-size", "200", "--state", str(state)]) == 0  # resumed
    assert len(json.loads(state.read_text())["pending"]) == 3


def test_cli_plan_refuses_a_broken_session(tmp_path, capsys):
    state = tmp_path / "broken.json"
    state.write_text("{not json")
    assert main(["plan", "--crystal-size", "200", "--state", str(state)]) == 2
    assert "not a planner session" in capsys.readouterr().err and state.read_text() == "{not json"


@pytest.mark.parametrize("argv", [["--crystal-size", "-5"], ["--crystal-size", "200", "--reflections", "1 2"],
                                  ["--crystal-size", "200", "--hkl", "1", "0", "0"],
                                  ["--crystal-size", "200", "--budget-minutes", "0.01"]])
def test_cli_plan_bad_input_exits_2(argv, capsys):
    assert main(["plan", *argv]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_plan_simulate_writes_the_plot(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", "--crystal-size", "160", "--simulate", "3", "--crop", "24", "--out", str(out),
                 "--budget-minutes", "5"]) == 0
    assert (out / "planning.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["recommended"]["J"])
    assert len(json.loads((out / "plan.json").read_text())["observations"]) == 3
