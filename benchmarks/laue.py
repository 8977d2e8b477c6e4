"""Benchmark of Laue microdiffraction (issue: Laue): forward model, agreement with LaueTools, the
grain network.

Forward model: spots_per_s is the spots (positions and shapes) per second of laue_pattern on a
Voronoi Cu polycrystal (20 × 24 × 24 voxels of 100 nm, 6 grains with mixed defects: every lit
voxel sends every reflection of its grain through its own distortion, absorption, spectrum and
polarisation onto the 2016 × 2018 frame); positions_per_s is that of laue_spots (positions,
energies and intensities of a single crystal), against LaueTools' SimulateLaue_full_np (the peer)
on the same orientations and calibration. lauetools_max_px / lauetools_median_px: the distance
between the two codes' spots for Cu, Ni and Au single crystals in 5 random orientations each (a
tilted detector), and lauetools_set_mismatch the spots only one code puts on the frame in the
band (excluding those within 1 eV of the band's edges, where LaueTools' coarser h·c decides).

Network: the held-out grains from TEST_SEED on (simulate_grain: Cu, Ni, Au, Pt, UO₂; perfect,
stored dislocations, geometrically necessary ones, twin, stacking faults), never trained on.
strain_rmse_1e4 is the RMS error of the six deviatoric components (×10⁻⁴), beside the classical
peer measured on the same frames: the least-squares fit of strain and rotation to the spot
centroids (what LaueTools' strain refinement does), which needs eight spots with SNR ≥ 3 and so
reads only a share of the grains (centroid_fit_grains_fitted; its errors and the network's on
those grains, RMS and median). defect_accuracy is the five-class accuracy (defect_confusion:
rows true, columns found), with the expected calibration error, the RMS error of log₁₀ ρ on the
dislocated grains and the share of strain errors within the predicted 1σ (0.68 if calibrated).
inference_s_per_image is the network's reading of every illuminated grain of the forward-model
frame (6 grains), beside the time of laue_pattern itself.
poly_*: the same readings on the grains lit by ≥ 5 % of the largest lit volume in 12 polycrystal
frames (Cu, Ni, Au, Pt; contents in turn), whose neighbours' spots enter the patches, against the
mean strain each grain's spots see.
Run: python benchmarks/laue.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit  # noqa: E402

from braggscope.errors import ConfigError  # noqa: E402
from braggscope.identify.laue import (DEFECT_CLASSES, DEVIATORIC_BASIS, STEP, LaueAnalyser,  # noqa: E402
                                      fit_strain_from_centroids)
from braggscope.identify.laue_training import TEST_SEED, make_examples, raw_outputs  # noqa: E402
from braggscope.identify.classifier import expected_calibration_error  # noqa: E402
from braggscope.simulate.laue import Beam, LaueDetector, Spectrum, laue_pattern, laue_spots, record  # noqa: E402
from braggscope.simulate.polycrystal import (GRAIN_CONTENTS, Grain, Polycrystal, grain_defects,  # noqa: E402
                                             voronoi_polycrystal)
from braggscope.simulate.structure import get_structure  # noqa: E402

TILTED = LaueDetector(distance=78.3, xcen=1021.7, ycen=996.4, xbet=0.72, xgam=-0.41)


def _lauetools():
    np.linalg.linalg = np.linalg  # LaueTools 3.2 still names numpy < 2's private module
    try:
        from LaueTools import dict_LaueTools, lauecore
    except ImportError:
        return None, None
    return lauecore, dict_LaueTools


def compare_with_lauetools(orientations=5):
    """Position differences [pixel] and set mismatches against LaueTools, and both codes' speed."""
    lauecore, lt_dict = _lauetools()
    if lauecore is None:
        return {"lauetools": "not installed (make bench installs it)"}
    distances, energy_rel, mismatch, ours_t, theirs_t, n_spots = [], [], 0, 0.0, 0.0, 0
    calib = [TILTED.distance, TILTED.xcen, TILTED.ycen, TILTED.xbet, TILTED.xgam]
    for material in ("Cu", "Ni", "Au"):
        structure = get_structure(material)
        a = structure.lattice[0] * 10
        materials = dict(lt_dict.dict_Materials) | {"ours": ["ours", [a, a, a, 90, 90, 90], "fcc"]}
        for seed in range(orientations):
            u = Rotation.random(random_state=seed).as_matrix()
            t, ours = best_time(lambda: laue_spots(structure, u, TILTED, spectrum=Spectrum(5, 22)), 3)
            ours_t += t
            t, ref = best_time(lambda: lauecore.SimulateLaue_full_np(
                [None, "fcc", u, "ours"], 5, 22, calib, pixelsize=TILTED.pixel_size, detectordiameter=500,
                dictmaterials=materials, removeharmonics=0), 3)
            theirs_t += t
            _, _, hkl, x, y, energy = (np.asarray(v) for v in ref[:6])
            on = TILTED.on_frame(x, y)
            theirs = {tuple(h): (xx, yy, e) for h, xx, yy, e, o in zip(hkl.astype(int), x, y, energy, on) if o}
            mine = {tuple(h): (xx, yy, e) for h, xx, yy, e in zip(ours.hkl, ours.x, ours.y, ours.energy)}
            edge = {h for h, (_, _, e) in (theirs | mine).items() if min(abs(e - 5), abs(e - 22)) < 1e-3}
            mismatch += len((set(theirs) ^ set(mine)) - edge)
            distances += [np.hypot(mine[h][0] - theirs[h][0], mine[h][1] - theirs[h][1])
                          for h in set(mine) & set(theirs)]
            energy_rel += [abs(theirs[h][2] / mine[h][2] - 1) for h in set(mine) & set(theirs)]
            n_spots += len(mine)
    return {"lauetools_max_px": float(np.max(distances)), "lauetools_median_px": float(np.median(distances)),
            "lauetools_spots_compared": len(distances), "lauetools_set_mismatch": mismatch,
            "lauetools_energy_max_rel": float(np.max(energy_rel)),
            "positions_per_s": n_spots / ours_t, "lauetools_positions_per_s": n_spots / theirs_t,
            "positions_speedup_vs_lauetools": theirs_t / ours_t}


def polycrystal_frame(seed=0, structure="Cu"):
    """6 grains on 20 × 24 × 24 voxels of 100 nm, the defect contents in turn (perfect,
    dislocations, GNDs, twin, ...); returns the polycrystal and each grain's content."""
    poly = voronoi_polycrystal((20, 24, 24), 100.0, 6, structure=structure, seed=seed)
    rng = np.random.default_rng(seed + 1)
    box = np.array(poly.grain_map.shape) * poly.voxel_size
    contents = [GRAIN_CONTENTS[(i + seed) % len(GRAIN_CONTENTS)] for i in range(len(poly.grains))]
    grains = [Grain(g.orientation, g.structure, strain=g.strain,
                    defects=grain_defects(c, g.orientation, g.structure, box, rng,
                                          beam_axis=Beam().axis_in_sample))
              for c, g in zip(contents, poly.grains)]
    return Polycrystal(poly.grain_map, poly.voxel_size, tuple(grains)), contents


def polycrystal_scores(analyser, frames):
    """The network and the centroid fit on the lit grains of `frames` polycrystal frames (Cu, Ni,
    Au, Pt in turn, seeds 100…): the grains' neighbours' spots are in their patches."""
    from braggscope.identify.laue import (deviatoric_components, grain_features, patch_inputs, pooled_frame,
                                          spot_inputs)

    detector, beam = LaueDetector(), Beam()
    right, errors, fit_errors, read, lit_total = [], [], [], 0, 0
    for k in range(frames):
        poly, contents = polycrystal_frame(100 + k, ("Cu", "Ni", "Au", "Pt")[k % 4])
        pattern = laue_pattern(poly, detector, beam)
        counts = record(pattern, seed=k).counts
        pooled = pooled_frame(counts, detector)
        for g in pattern.grains:
            if g["illuminated_volume_nm3"] < 0.05 * max(t["illuminated_volume_nm3"] for t in pattern.grains):
                continue
            lit_total += 1
            try:
                raw, geometry, overview, twins = spot_inputs(counts, g["structure"],
                                                             beam.sample_to_lab @ np.array(g["orientation"]),
                                                             pooled=pooled)
            except ConfigError:
                continue
            read += 1
            patches, features = patch_inputs(raw, geometry)
            est = analyser.decode(analyser.raw(patches[None], features[None], overview[None],
                                               grain_features(features, twins)[None]))[0]
            truth = deviatoric_components(np.array(g["mean_strain"]))
            right.append(est.defect_class == contents[g["grain"]])
            errors.append(deviatoric_components(est.strain) - truth)
            fit = fit_strain_from_centroids(features)
            if np.isfinite(fit).all():
                fit_errors.append(fit - truth)
    errors, fit_errors = np.array(errors), np.array(fit_errors)
    return {"poly_frames": frames, "poly_grains_lit": lit_total, "poly_grains_read": read,
            "poly_defect_accuracy": float(np.mean(right)),
            "poly_strain_rmse_1e4": float(np.sqrt(np.mean(errors**2)) * 1e4),
            "poly_strain_median_abs_1e4": float(np.median(np.abs(errors)) * 1e4),
            "poly_centroid_fit_grains_fitted": len(fit_errors) / max(read, 1),
            "poly_centroid_fit_strain_rmse_1e4": float(np.sqrt(np.mean(fit_errors**2)) * 1e4) if len(fit_errors) else None}


def network_scores(analyser, data):
    """Scores of the shipped network and of the centroid fit on held-out examples."""
    out = raw_outputs(analyser.model, data)
    estimates = analyser.decode(out)
    truth = np.einsum("nk,kij->nij", data["strain"] * STEP, DEVIATORIC_BASIS)
    predicted = np.stack([e.strain for e in estimates])
    sigma = np.stack([e.strain_sigma for e in estimates])
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
    err = np.stack([predicted[:, i, j] - truth[:, i, j] for i, j in pairs], axis=1)
    sig = np.stack([sigma[:, i, j] for i, j in pairs], axis=1)
    fitted = np.stack([fit_strain_from_centroids(f) for f in data["features"]])
    true6 = np.stack([truth[:, i, j] for i, j in pairs], axis=1)
    fit_ok = np.isfinite(fitted).all(axis=1)
    probs = np.array([[e.probabilities[c] for c in DEFECT_CLASSES] for e in estimates])
    labels = data["label"]
    ece, _ = expected_calibration_error(probs, labels)
    dislocated = np.isin(labels, [1, 2])
    log_rho = np.array([e.log_density for e in estimates])
    per_class = {c: float((probs.argmax(1) == labels)[labels == k].mean()) for k, c in enumerate(DEFECT_CLASSES)
                 if (labels == k).any()}
    confusion = np.zeros((len(DEFECT_CLASSES),) * 2, dtype=int)
    np.add.at(confusion, (labels, probs.argmax(1)), 1)
    by_structure = {s: float(np.sqrt(np.mean(err[data["structure"] == s] ** 2)) * 1e4)
                    for s in np.unique(data["structure"])}
    return {"strain_rmse_1e4": float(np.sqrt(np.mean(err**2)) * 1e4),
            "centroid_fit_strain_rmse_1e4": float(np.sqrt(np.mean((fitted[fit_ok] - true6[fit_ok]) ** 2)) * 1e4),
            "centroid_fit_grains_fitted": float(np.mean(fit_ok)),
            "strain_rmse_1e4_on_those": float(np.sqrt(np.mean(err[fit_ok] ** 2)) * 1e4),
            "strain_median_abs_1e4": float(np.median(np.abs(err)) * 1e4),
            "centroid_fit_median_abs_1e4": float(np.median(np.abs(fitted[fit_ok] - true6[fit_ok])) * 1e4),
            "true_strain_rms_1e4": float(np.sqrt(np.mean(true6**2)) * 1e4),
            "strain_rmse_1e4_by_structure": by_structure,
            "strain_within_1sigma": float(np.mean(np.abs(err) < sig)),
            "defect_accuracy": float(np.mean(probs.argmax(1) == labels)), "defect_accuracy_by_class": per_class,
            "defect_confusion": {"classes": list(DEFECT_CLASSES), "true_by_found": confusion.tolist()},
            "defect_ece": ece,
            "log_density_rmse": float(np.sqrt(np.mean((log_rho - data["log_density"])[dislocated] ** 2))),
            "test_grains": int(len(labels))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = {"benchmark": "laue", "device": device()}
    result |= compare_with_lauetools(orientations=2 if args.quick else 5)

    detector, beam = LaueDetector(), Beam()
    poly, _ = polycrystal_frame()
    pattern_s, pattern = best_time(lambda: laue_pattern(poly, detector, beam), 1 if args.quick else 3)
    result |= {"spots_per_s": len(pattern.spots) / pattern_s, "pattern_s": pattern_s,
               "pattern_spots": len(pattern.spots),
               "pattern_lit_grains": sum(g["illuminated_volume_nm3"] > 0 for g in pattern.grains)}
    frame = record(pattern, seed=0)

    analyser = LaueAnalyser.load()
    to_lab = beam.sample_to_lab
    lit = [g for g in pattern.grains if g["illuminated_volume_nm3"] > 0]

    grains = [(g["structure"], to_lab @ np.array(g["orientation"])) for g in lit]
    t, read = best_time(lambda: analyser.analyse_grains(frame.counts, grains, detector=detector, beam=beam),
                        1 if args.quick else 3)
    result |= {"inference_s_per_image": t,
               "inference_grains_read": sum(not isinstance(e, ConfigError) for e in read)}

    n = 24 if args.quick else 200
    start = time.perf_counter()
    data = make_examples(range(TEST_SEED, TEST_SEED + n), workers=2)
    result["test_simulation_s"] = time.perf_counter() - start
    result |= network_scores(analyser, data)
    result |= polycrystal_scores(analyser, 2 if args.quick else 12)
    result["training_s"] = analyser.meta.get("training_s")
    result["training_examples"] = analyser.meta.get("examples")
    emit(result)


if __name__ == "__main__":
    main()
