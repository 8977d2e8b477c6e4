"""Benchmark of the full strain tensor from several reflections (braggscope.strain.strain_tensor).

Inputs: the strain benchmark's crystal (a 120 nm Pt truncated octahedron filling half of a 128³
grid, 2 nm voxels) with a smooth strain field (0.03 nm RMS, wavelengths ≥ 100 nm) and a mixed
dislocation a/2[101] along [1-10], at the four {111} reflections; the truth is the closed-form
displacement gradient (each field's own derivative: simulate.sample.displacement_gradient).

Figures (one JSON line):
- exact objects (ρ_j = |ρ| exp(iG_j·u) from the simulator): the RMS error of the six strain
  components and of the three rotations against the closed form, in the bulk (support less the
  outer two layers, outside a 2-voxel tube around the 1.5-voxel core) and around the
  dislocation (the next 4 voxels out from that tube), the median misfit, and the time of
  strain_tensor at 128³ (four reflections, ramps removed) against one FFT pair of the 128³
  complex object (the physical limit's scale);
- the peers' route, cdiutils' multibcdi.compute_3D_phase_V2 (PyPI cdiutils; the only peer code
  that combines reflections: u = Q⁻¹φ voxel by voxel from three unwrapped phases; its module
  imports a `utils` that is not in the package, given here as cdiutils' own preprocess module
  holding `are_coplanar`), on scikit-image's unwrapped phases of 111, -111 and 1-11, then the
  tensor by numpy.gradient of u (cdiutils has no tensor step): its errors in the same regions,
  the route's time (unwrapping, compute_3D_phase_V2, gradient) and its function's alone, and ours
  on the same three reflections (speedup_vs_cdiutils_route);
- burgers_*: Burgers vectors of 24 random a/2<110> dislocations (random character, glide plane,
  position and crystal orientation; 90 nm Pt, 48³) from the exact objects at the four {111}, bare
  and with complex Gaussian noise of 0.3, 0.5 and 0.8 of the largest amplitude (per component):
  the share named right, the share where exactly one line was found, the circuits' median agreement;
- a round trip: the four {111} patterns of a 60 nm Pt crystal (3 nm voxels, 32³ object on a 64³
  pattern, 10⁹ photons, Poisson) with smooth strain (0.01 nm RMS) and a dislocation, each
  reconstructed by the engine's default chain (4 runs, the best 2 by free LLK combined, as the
  pipeline does), aligned by
  align_reflections (twins by the misfit), and the tensor's RMS error against the band-limited
  truth's tensor on the same grid (support less two layers, outside the core tube), with the
  RMS of the true strain beside it, whether every twin came out right, and the retrieval's time;
- rocking_scans_*: the same crystal measured in four rocking scans (each turned into its Bragg
  condition by the simulator, 64³ detector frames with Maxipix gaps, 10⁹ photons), reconstructed
  (4 runs, best 2 combined), written as result files with their grids and turns, and combined by
  tensor_from_results (the command line's and pipeline's path: each turned back into the sample
  frame and resampled); its RMS error against the closed-form gradient at its voxels (the crystal's
  centre of mass at the grid's centre; the better of the twin pair), the orientation fit's misfit,
  and the Burgers vectors found (identify.burgers_vectors: the fcc vector nearest each line's, its
  distance [a], the share of circuits agreeing; right: one line, ±a/2[101]).
Run: python benchmarks/strain_tensor.py [--quick]  (64³ exact objects, 2 runs per reflection)
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.fft
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit  # noqa: E402

from braggscope.metrics import align_to, band_limited, register  # noqa: E402
from braggscope.retrieval import combine_runs, reconstruct  # noqa: E402
from braggscope.retrieval.postprocess import flip_twin  # noqa: E402
from braggscope.simulate import (Crystal, continuum_intensity, random_orientation, simulate_sample,  # noqa: E402
                                 truncated_octahedron)
from braggscope.simulate.sample import displacement_gradient, grid_points  # noqa: E402
from braggscope.strain import (align_reflections, strain_tensor, support_from_amplitude, surface_layers,  # noqa: E402
                               unwrap_phase)

HKLS = [(1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1)]
UPPER = np.triu_indices(3)


def crystal(size):
    u = random_orientation(3)
    return Crystal(truncated_octahedron(size, u), "Pt", u)


def defects(xtal, smooth, position):
    return [xtal.dislocation((0.5, 0, 0.5), (1, -1, 0), position), xtal.smooth_strain(smooth, 100.0, rng=0)]


def split(j):
    """(the six strain components, the three rotations) of a gradient (3, 3, ...)."""
    eps, omega = 0.5 * (j + np.swapaxes(j, 0, 1)), 0.5 * (j - np.swapaxes(j, 0, 1))
    return eps[UPPER], omega[np.triu_indices(3, 1)]


def errors(j, truth, regions, prefix):
    """RMS errors of strain and rotation components in each region (mean offsets removed: a
    phase ramp cannot be told from a homogeneous gradient)."""
    out = {}
    for name, where in regions.items():
        for part, mine, theirs in zip(("strain", "rotation"), split(j), split(truth)):
            err = mine[:, where] - theirs[:, where]
            err = err - np.nanmean(err, axis=1, keepdims=True)
            out[f"{prefix}{part}_rms_error_{name}"] = float(np.sqrt(np.nanmean(err ** 2)))
    return out


def exact_case(n):
    xtal = crystal(120.0)
    h = 2 * 120.0 / n * 1.07
    fields = defects(xtal, 0.03, (2.1, -1.3, 0.7))
    samples = [simulate_sample(xtal, fields, shape=(n,) * 3, voxel_size=h, hkl=k) for k in HKLS]
    truth = displacement_gradient(fields, grid_points((n,) * 3, h), poisson_ratio=xtal.material.poisson_ratio)
    support = np.logical_and.reduce([s.support for s in samples])
    tube = ndimage.binary_dilation(samples[0].dislocation_mask, iterations=2)
    near = ndimage.binary_dilation(tube, iterations=4) & ~tube
    inner = support & ~surface_layers(support, 2)
    regions = {"bulk": inner & ~tube & ~near, "dislocation": inner & near}
    objs, g = [s.obj for s in samples], [s.g_vector for s in samples]
    t, tensor = best_time(lambda: strain_tensor(objs, support, g_vectors=g, voxel_size=h), 3)
    obj = samples[0].obj.astype(np.complex64)
    fft_pair, _ = best_time(lambda: scipy.fft.ifftn(scipy.fft.fftn(obj, workers=-1), workers=-1), 3)
    out = {"n": n, "voxel_nm": h, "support_voxels": int(support.sum()), "time_s": t, "fft_pair_s": fft_pair,
           "ratio_to_fft_pair": t / fft_pair, "misfit_median": float(np.median(tensor.misfit[regions["bulk"]])),
           "true_strain_rms_bulk": float(np.sqrt(np.mean(split(truth)[0][:, regions["bulk"]] ** 2)))}
    out.update(errors(tensor.gradient + tensor.ramp_gradient[:, :, None, None, None], truth, regions, ""))
    t3, three = best_time(lambda: strain_tensor(objs[:3], support, g_vectors=g[:3], voxel_size=h), 3)
    out.update(errors(three.gradient, truth, regions, "three_"))
    out["three_time_s"] = t3
    out.update(cdiutils_case(samples[:3], support, h, truth, regions))
    return out


def _cdiutils_3d_phase():
    """cdiutils' multibcdi.compute_3D_phase_V2, or None where cdiutils is missing."""
    try:
        import cdiutils.multibcdi.preprocess as preprocess
    except ImportError:
        return None
    path = Path(preprocess.__file__).with_name("3D_phase.py")
    sys.modules.setdefault("utils", preprocess)  # its `from utils import are_coplanar`
    spec = importlib.util.spec_from_file_location("cdiutils_3d_phase", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compute_3D_phase_V2


def cdiutils_case(samples, support, h, truth, regions):
    compute = _cdiutils_3d_phase()
    if compute is None:
        return {"cdiutils_missing": "pip install cdiutils to measure it"}
    q = {k: s.g_vector for k, s in enumerate(samples)}
    h_vec = (h,) * 3

    def route():
        phases = {k: np.nan_to_num(unwrap_phase(np.angle(s.obj).astype(np.float32), support))
                  for k, s in enumerate(samples)}
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            u = compute(phases, q, support)
        alone = time.perf_counter() - t
        return np.stack([np.stack(np.gradient(u[..., i], *h_vec)) for i in range(3)]), alone  # J_ik = ∂u_i/∂r_k

    t, (j, alone) = best_time(route, 1)
    j[:, :, ~support] = np.nan
    import cdiutils
    return {"cdiutils_version": cdiutils.__version__, "cdiutils_route_s": t, "cdiutils_3d_phase_s": alone,
            **errors(j, truth, regions, "cdiutils_")}


def round_trip(runs):
    """The four {111} patterns reconstructed, aligned and combined into the tensor."""
    xtal = crystal(60.0)
    h, n = 3.0, 32
    fields = defects(xtal, 0.01, (2.0, 1.0, -1.0))
    samples = [simulate_sample(xtal, fields, shape=(n,) * 3, voxel_size=h, hkl=k) for k in HKLS]
    rng = np.random.default_rng(0)
    objects, seconds, errors_each = [], 0.0, []
    for s in samples:
        intensity = continuum_intensity(s.obj, shape=(2 * n,) * 3)
        counts = rng.poisson(intensity / intensity.sum() * 1e9).astype(np.float32)
        t = time.perf_counter()
        solution = combine_runs(reconstruct(counts, n_runs=runs, rng=1), counts, keep=max(1, runs // 2))
        seconds += time.perf_counter() - t
        objects.append(solution.obj)
        errors_each.append(align_to(solution.obj, band_limited(s.obj, (2 * n,) * 3))[1])
    g = [s.g_vector for s in samples]
    aligned, info = align_reflections(objects, g_vectors=g, voxel_size=h)
    tensor = strain_tensor(aligned, [support_from_amplitude(o, 0.3) for o in aligned], g_vectors=g, voxel_size=h)
    flip = flip_twin if errors_each[0]["twin"] else (lambda a: a)  # the truth as the reference came out
    moved = [register(flip(band_limited(s.obj, (2 * n,) * 3)), aligned[0]) for s in samples]
    truths = [m[0] for m in moved]
    true = strain_tensor(truths, [support_from_amplitude(t, 0.3) for t in truths], g_vectors=g, voxel_size=h)
    core = flip(band_limited(samples[0].dislocation_mask.astype(np.complex64), (2 * n,) * 3).real > 0.5)
    core = np.roll(core, tuple(np.round(moved[0][1]).astype(int)), axis=(0, 1, 2))
    both = tensor.support & true.support
    ok = both & ~surface_layers(both, 2) & ~ndimage.binary_dilation(core, iterations=2)
    err = errors(tensor.gradient, true.gradient, {"bulk": ok}, "round_trip_")
    twins_right = all((e["twin"] != errors_each[0]["twin"]) == i["twin"] for e, i in zip(errors_each, info))
    return {"round_trip_runs": runs, "round_trip_retrieval_s": seconds,
            "round_trip_reconstruction_errors": [round(e["error"], 4) for e in errors_each],
            "round_trip_twins_right": bool(twins_right), "round_trip_voxels": int(ok.sum()),
            "round_trip_true_strain_rms": float(np.sqrt(np.mean(split(true.gradient)[0][:, ok] ** 2))),
            "round_trip_misfit_median": float(np.median(tensor.misfit[ok])), **err}


def burgers_sweep(count, noise):
    """Burgers vectors of `count` random dislocations (a/2<110> of random character in random
    {111} glide planes, within 0.6 of the way to the surface) in 90 nm Pt crystals of random
    orientation, from the exact objects at the four {111} (48³, 3 nm voxels) with complex
    Gaussian noise of `noise` × the largest amplitude added to each: the share named right (the
    simulated vector up to the line's sign), and of those found, the share of circuits agreeing."""
    from braggscope.identify import burgers_vectors
    from braggscope.simulate import random_defects

    right, agreement, found = 0, [], 0
    rng = np.random.default_rng(11)
    for k in range(count):
        u = random_orientation(200 + k)
        xtal = Crystal(truncated_octahedron(90.0, u), "Pt", u)
        (line,) = random_defects(xtal, 300 + k, kinds=("dislocation",), count=(1, 1))
        samples = [simulate_sample(xtal, [line], shape=(48,) * 3, voxel_size=3.0, hkl=h) for h in HKLS]
        noisy = [s.obj + noise * (rng.normal(size=s.obj.shape) + 1j * rng.normal(size=s.obj.shape)) for s in samples]
        lines = burgers_vectors(noisy, [s.support for s in samples], g_vectors=[s.g_vector for s in samples],
                                voxel_size=3.0, orientation=u, lattice_parameter=xtal.lattice_parameter)
        if len(lines) == 1:
            found += 1
            agreement.append(lines[0]["agreement"])
            along = np.sign(lines[0]["direction"] @ line.line)
            right += bool(np.allclose(along * lines[0]["burgers_nm"], line.burgers, atol=0.02))
    return {f"burgers_{noise:g}_right": right / count, f"burgers_{noise:g}_one_line_found": found / count,
            f"burgers_{noise:g}_circuit_agreement_median": float(np.median(agreement)) if agreement else None}


def rocking_scans(runs, folder):
    """The same crystal measured in four rocking scans (the four {111}, each turned into its Bragg
    condition, 64³ detector frames, 10⁹ photons, Maxipix gaps), each reconstructed and written as
    a result file with its grid and turn, combined by tensor_from_results and compared with the
    closed-form gradient at the tensor's voxels (the crystal's centre of mass at the grid's
    centre, as the reconstructions are centred; the better of the twin pair, which one crystal's
    data cannot tell apart)."""
    from braggscope.geometry import Geometry
    from braggscope.io import write_cxi_result
    from braggscope.simulate import Detector, simulate_bcdi
    from braggscope.strain import tensor_from_results

    xtal = crystal(60.0)
    fields = defects(xtal, 0.01, (2.0, 1.0, -1.0))
    d111 = xtal.material.d_spacing((1, 1, 1))
    paths, seconds = [], 0.0
    for k, (hkl, axis) in enumerate(zip(HKLS, "xyxy")):
        geo = Geometry.for_reflection(d_spacing=d111, energy=9.0, detector_distance=0.24, pixel_size=172.0,
                                      rocking_step=0.068, rocking_axis=axis)
        data = simulate_bcdi(xtal, fields, hkl=hkl, shape=(32,) * 3, voxel_size=3.0, data_shape=(64,) * 3,
                             geometry=geo, detector=Detector(photons=1e9, gaps="maxipix"), rng=k)
        t = time.perf_counter()
        solution = combine_runs(reconstruct(data.intensity, mask=data.mask, n_runs=runs, rng=1), data.intensity,
                                data.mask, keep=max(1, runs // 2))
        seconds += time.perf_counter() - t
        paths.append(write_cxi_result(Path(folder) / f"r{k}.cxi", solution.obj, solution.support, config={
            "frame": "detector", "q_basis": geo.q_basis(), "g_vector": data.sample.g_vector, "hkl": list(hkl),
            "material": "Pt", "sample_rotation": data.sample.metadata["sample_rotation"]}))
    found = tensor_from_results(paths)
    t = found.tensor
    h = abs(np.linalg.det(t.voxel)) ** (1 / 3)
    truth_sample = simulate_sample(xtal, fields, shape=(32,) * 3, voxel_size=3.0, hkl=(1, 1, 1))
    com = np.array(ndimage.center_of_mass(truth_sample.support)) - 16
    grid = grid_points(t.support.shape, h)
    inner = t.support & ~surface_layers(t.support, 2)
    best = None
    for sign in (1, -1):  # the crystal, or its twin (r → −r)
        points = sign * grid + (com * 3.0).reshape(3, 1, 1, 1)
        truth = displacement_gradient(fields, points, poisson_ratio=xtal.material.poisson_ratio)
        ok = inner & (fields[0].distance(points) > 3.5 * h)
        err = errors(t.gradient, truth, {"bulk": ok}, "rocking_scans_")
        if best is None or err["rocking_scans_strain_rms_error_bulk"] < best[1]["rocking_scans_strain_rms_error_bulk"]:
            best = (sign, err, ok, truth)
    sign, err, ok, truth = best
    burgers = [(d["nearest"], round(d["nearest_distance"], 3), round(d["agreement"], 2)) for d in found.dislocations]
    return {"rocking_scans_burgers": burgers,
            "rocking_scans_burgers_right": [b[0] for b in burgers] in (["a/2[1 0 1]"], ["a/2[-1 0 -1]"]),
            "rocking_scans_runs": runs, "rocking_scans_retrieval_s": seconds, "rocking_scans_voxel_nm": h,
            "rocking_scans_voxels": int(ok.sum()), "rocking_scans_twin_of_truth": sign < 0,
            "rocking_scans_true_strain_rms": float(np.sqrt(np.mean(split(truth)[0][:, ok] ** 2))),
            "rocking_scans_misfit_median": float(np.median(t.misfit[ok])),
            "rocking_scans_orientation_misfit_deg": max(found.config["orientation_misfit_deg"]), **err}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64³ exact objects and 2 runs per reflection")
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = {"benchmark": "strain_tensor", "quick": args.quick, "reflections": [list(k) for k in HKLS]}
    result.update(exact_case(64 if args.quick else 128))
    if "cdiutils_route_s" in result:
        result["speedup_vs_cdiutils_route"] = result["cdiutils_route_s"] / result["three_time_s"]
    for noise in (0.0, 0.3, 0.5, 0.8):
        result.update(burgers_sweep(8 if args.quick else 24, noise))
    result.update(round_trip(2 if args.quick else 4))
    with tempfile.TemporaryDirectory() as folder:
        result.update(rocking_scans(2 if args.quick else 4, folder))
    result.update({"device": device(), "wall_s": time.perf_counter() - t0})
    emit(result)


if __name__ == "__main__":
    main()
