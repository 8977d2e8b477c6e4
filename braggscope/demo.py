"""The demonstration chain on a built-in simulated crystal: files, pictures and an HTML report.

What it runs today: the simulator (a Pt truncated octahedron with an edge dislocation, a Frank
loop and a stacking fault, measured at 111 on a Maxipix-like detector with Poisson noise), the
neural first guess (where its weights are installed) refined by the torch phase-retrieval engine
(runs ranked by free LLK; random starts without the weights), the comparison with the truth,
the CXI files, the pictures and the report. The strain of the reconstruction follows, then its
defects (the U-Net's list, beside the physics baseline's, and a 3-D picture), and the next scan:
the formula design for the crystal's measured size and the reflections that show the
dislocations the current one cannot (G·b = 0). Then a TEM micrograph and a Laue frame of the
same kinds of defects, and two more scans through the beamtime pipeline (batch/summary.html).
"""
from __future__ import annotations

import html
import json
import time
from pathlib import Path

import numpy as np

from ._backend import resolve_device
from .errors import ConfigError
from .io import write_simulation
from .io.cxi import atomic_path
from .pipeline.report import defect_rows, img_tag, ranked_classes
from .simulate import Crystal, Detector, simulate_bcdi, truncated_octahedron
from .viz import diffraction_figure, sample_figure, save_png, strain_figure

__all__ = ["run_demo", "demo_crystal"]


def demo_crystal():
    """The built-in crystal and defects: Pt, 120 nm truncated octahedron with [111] along z,
    an edge dislocation a/2[10-1] along [1-21] (invisible at 111: G·b = 0), a hexagonal Frank
    loop a/3[111] and a stacking fault on (1-11) (phase jump 4π/3 at 111)."""
    from .simulate import orientation_from_axes

    xtal = Crystal(truncated_octahedron(120.0, orientation_from_axes((1, 1, 1))), "Pt",
                   orientation_from_axes((1, 1, 1)))
    defects = [
        xtal.dislocation(burgers=(0.5, 0, -0.5), line=(1, -2, 1), position=(4.0, 12.0, -6.0)),
        xtal.loop(burgers=(1 / 3, 1 / 3, 1 / 3), plane=(1, 1, 1), center=(-22.0, -10.0, 16.0), radius=12.0, sides=6),
        xtal.stacking_fault(plane=(1, -1, 1), fault_vector=(1 / 6, 1 / 3, 1 / 6), center=(20.0, -14.0, 6.0),
                            radius=16.0),
    ]
    return xtal, defects


def _report(path, data, timings, files):
    s = data.sample
    rows = "".join(f"<tr><td>{html.escape(d['type'])}</td><td><code>{html.escape(json.dumps(d, default=float))}</code></td></tr>"
                   for d in s.defects)
    times = "".join(f"<tr><td>{k}</td><td>{v:.2f} s</td></tr>" for k, v in timings.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>braggscope demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}td{{padding:2px 8px;vertical-align:top}}
code{{font-size:80%}}img{{max-width:100%}}</style></head><body>
<h1>braggscope demo: a simulated defective Pt nanocrystal</h1>
<p>{s.material}, reflection {s.hkl}, |G| = {np.linalg.norm(s.g_vector):.3f} nm⁻¹, grid {s.obj.shape} of
{s.voxel_size} nm voxels, {int(s.support.sum())} voxels in the crystal; data {data.intensity.shape}
({data.frame} frame, {data.model} model), {data.intensity.sum():.3g} photons, {int(data.mask.sum())} masked pixels.</p>
<h2>Ground truth</h2>{img_tag(files['sample_png'], 'ground truth')}
<h2>Diffraction pattern</h2>{img_tag(files['diffraction_png'], 'diffraction pattern')}
<h2>Pattern classifier</h2>{_verdict_text(files['pattern_verdict'])}
<h2>Phase retrieval</h2><p>{html.escape(files['recipe'])}, {files['runs']} runs from {html.escape(files['start'])}; best run
(lowest free LLK): LLK {files['llk']:.3f}, free LLK {files['free_llk']:.3f}; against the truth after removing the twin,
shift and global phase: normalised error {files['error']:.3f}, phase RMS {files['phase_rms']:.3f} rad
(inner {files['phase_rms_inner']:.3f} rad), support {files['support_ratio']:.2f}× the true one.</p>
{img_tag(files['reconstruction_png'], 'reconstruction')}
<h2>Strain</h2><p>Strain along G of the reconstruction (ramp and offset removed, wrap-free gradient): RMS error
{files['strain_rms_error']:.2e} against the closed-form truth (whose RMS is {files['strain_rms_truth']:.2e}) inside
the crystal without its outer voxel layer.</p>
{img_tag(files['strain_png'], 'strain')}
<h2>Defects</h2><p>The simulator's defects:</p><table>{rows}</table>
<p>Found in the reconstruction by the U-Net ({files['unet_counts']}) and by the physics baseline
({files['baseline_counts']}); the U-Net's list is <code>defects.json</code>:</p>
<table>{defect_rows(files['found'])}</table>
{img_tag(files['defects_png'], 'defects') if files.get('defects_png') else ''}
<h2>TEM micrograph of the same kind of defects</h2>{_tem_text(files['tem'])}
{img_tag(files['tem_png'], 'TEM micrograph')}
<h2>Laue microdiffraction of a polycrystal</h2>{_laue_text(files['laue'])}{img_tag(files['laue_png'], 'Laue frame')}
<h2>A beamtime batch</h2>{_batch_text(files['batch'])}
<h2>Timings</h2><table>{times}</table>
<h2>Next scan</h2><p>For the crystal's measured largest extent ({files['plan']['size']:.0f} nm), the sampling
formulas give (at {html.escape(str(files['plan']['hkl']))}, {html.escape(files['plan']['instrument'])}):</p>
<table>{_plan_rows(files['plan'])}</table>
<p>{html.escape(files['plan']['visibility'])} <code>braggscope plan --crystal-size {files['plan']['size']:.0f}
--simulate 20</code> runs the Bayesian planner on a simulated beamline.</p>
<p>Files: {', '.join(html.escape(Path(p).name) for k, p in files.items() if k.endswith(('png', 'data', 'result', 'strain', 'defects')))}</p>
</body></html>"""
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")


def _plan_rows(plan):
    scan = plan["scan"]
    rows = [("detector distance", f"{scan['detector_distance']:.3f} m", "detector_distance"),
            ("rocking step", f"{scan['rocking_step']:.4f}°", "rocking_step"),
            ("rocking range", f"{scan['rocking_range']:.3f}° ({scan['frames']} frames)", "rocking_range"),
            ("count time", f"{scan['count_time']:.3g} s per frame", "count_time")]
    return "".join(f"<tr><td>{name}</td><td>{value}</td><td>{html.escape(plan['reasons'][key])}</td></tr>"
                   for name, value, key in rows) + f"<tr><td>beam time</td><td>{plan['beam_time']:.0f} s</td></tr>"


def _plan(files, field, sample):
    """The next scan: the formula design for the reconstructed crystal's largest extent, and the
    reflections that show the a/2<110> dislocations the sample's reflection cannot."""
    from .acquisition import Instrument, beam_time, formula_design, rank_reflections
    from .identify.patterns import format_vector, invisible_defects
    from .strain import crystal_size

    hkl, instrument = sample.hkl, Instrument()
    size = crystal_size(field)
    design = formula_design(size, sample.material, hkl, instrument)
    hidden = invisible_defects(hkl)["dislocations"]
    best = rank_reflections([(2, 0, 0), (0, 2, 0), (0, 0, 2), (1, 1, -1), (1, -1, 1), (-1, 1, 1)], burgers=hidden,
                            material=sample.material, energy=instrument.energy)[0]
    names = ", ".join(format_vector(b) for b in hidden)
    files["plan"] = {"size": size, "hkl": tuple(hkl), "scan": design.scan.as_dict(), "reasons": design.reasons,
                     "beam_time": beam_time(design.scan, instrument),
                     "instrument": f"{instrument.energy:g} keV, {instrument.pixel_size:g} µm pixels, a "
                                   f"{instrument.crop}-pixel window",
                     "visibility": f"At {tuple(hkl)} the dislocations with b = {names} are invisible (G·b = 0); "
                                   f"{best['hkl']} shows {best['shows']} of those {len(hidden)}."}


def _identify(files, field, device):
    """Defects of the reconstruction's strain field: U-Net list (JSON, 3-D picture) and baseline."""
    from .identify import find_defects

    report = find_defects(field, method="unet", device=device)
    report.to_json(files["defects"])
    baseline = find_defects(field, method="baseline")
    files["found"] = report.defects
    counts = lambda r: ", ".join(f"{n} {k}" for k, n in r.counts().items()) or "nothing"
    files["unet_counts"], files["baseline_counts"] = counts(report), counts(baseline)
    try:
        from .identify.render import render_png

        render_png(files["defects_png"], field, report.defects)
    except ImportError:
        files.pop("defects_png")


def _classify(files, data, device):
    """The pattern classifier's verdict on the measured pattern, before any phase retrieval."""
    from .identify.classifier import PatternClassifier

    verdict = PatternClassifier.load(dims=3, device=device).classify(data.intensity, data.mask,
                                                                     hkl=data.sample.hkl)
    files["pattern_verdict"] = verdict.to_dict()


def _verdict_text(v):
    from .identify.patterns import invisible_text

    ranked = ranked_classes(v)
    unknown = "" if v["known"] else (f" The pattern lies outside the training distribution (score {v['ood_score']:.0f} "
                                     f"above {v['ood_threshold']:.0f}), so the verdict is <b>unknown</b>.")
    binned = "×".join(map(str, v.get("bins") or (1, 1, 1)))
    return (f"<p>From the diffraction pattern alone (the 3-D network on the 64³ crop around the peak, binned "
            f"{binned}): {ranked}; "
            f"{html.escape(invisible_text(v['hkl'], v['invisible']))}.{unknown}</p>")


def _tem(files, seed, device):
    """A synthetic two-beam micrograph (loops, precipitates, cavities) and what the TEM U-Net finds in it."""
    import tifffile

    from .identify.tem import TEMSegmenter, invisible_loops_text, match_objects, overlay_png
    from .simulate.tem import random_micrograph

    m = random_micrograph(seed + 3, shape=(512, 512))
    with atomic_path(files["tem_micrograph"]) as tmp:
        tifffile.imwrite(tmp, m.image, resolution=(1 / m.pixel_nm, 1 / m.pixel_nm))
    result = TEMSegmenter.load(device=device).detect(m.image, m.pixel_nm)
    overlay_png(files["tem_png"], m.image, result)
    truth = {c: sum(o["class"] == c and o["visible"] for o in m.objects) for c in result.counts()}
    faint = sum(o["class"] == "loop" and o["visible"] and o["g_dot_b"] == 0 for o in m.objects)
    files["tem"] = {"conditions": m.conditions, "truth": truth, "found": result.counts(),
                    "matched": len(match_objects(result.labels, m.labels)), "field_um2": result.field_um2,
                    "g_note": f"{invisible_loops_text(m.conditions['g'])} (true loops with g·b = 0 here: "
                              f"{faint} of {truth['loop']})"}


def _tem_text(t):
    c = t["conditions"]
    rows = "".join(f"<tr><td>{k}</td><td>{t['truth'][k]}</td><td>{t['found'][k]}</td></tr>" for k in t["truth"])
    return (f"<p>A simulated bright-field micrograph (Howie–Whelan two-beam contrast, {c['material']} foil, "
            f"g = {' '.join(map(str, c['g']))}, zone [{' '.join(map(str, c['zone']))}], defocus "
            f"{c['defocus_nm']:.0f} nm, {c['dose_e_per_px']:.0f} electrons per pixel, {t['field_um2']:.3f} µm²) "
            f"and the objects the TEM U-Net outlines ({t['matched']} overlap a true object with IoU ≥ 0.5); "
            f"<code>braggscope tem IMAGE.tif --pixel-size NM</code> does the same for a measured one.</p>"
            f"<table><tr><th>class</th><th>true (visible)</th><th>found</th></tr>{rows}</table>"
            f"<p>{t['g_note']}.</p>")


def _laue(files, seed):
    """A Laue frame of a Cu polycrystal (the defect contents in turn over its six grains) and what
    the Laue network reads from each illuminated grain, against the truth."""
    from .identify.laue import LaueAnalyser, deviatoric_components
    from .io.laue import write_laue
    from .simulate.laue import Beam, LaueDetector, laue_pattern, record
    from .simulate.polycrystal import GRAIN_CONTENTS, Grain, Polycrystal, grain_defects, voronoi_polycrystal
    from .viz import laue_png

    detector, beam = LaueDetector(), Beam()
    poly = voronoi_polycrystal((20, 24, 24), 100.0, 6, structure="Cu", seed=seed)
    rng = np.random.default_rng(seed)
    box = np.array(poly.grain_map.shape) * poly.voxel_size
    contents = [GRAIN_CONTENTS[i % len(GRAIN_CONTENTS)] for i in range(len(poly.grains))]
    grains = [Grain(g.orientation, g.structure, strain=g.strain,
                    defects=grain_defects(c, g.orientation, g.structure, box, rng, beam_axis=beam.axis_in_sample))
              for g, c in zip(poly.grains, contents)]
    poly = Polycrystal(poly.grain_map, poly.voxel_size, tuple(grains))
    pattern = laue_pattern(poly, detector, beam)
    frame = record(pattern, seed=seed)
    write_laue(files["laue_frame"], frame, detector, beam, pattern=pattern, grain_map=poly.grain_map,
               voxel_size=poly.voxel_size)
    laue_png(files["laue_png"], frame.counts, pattern.spots, title="simulated Laue frame of a Cu polycrystal")
    lit = [(g, truth) for g, truth in zip(poly.grains, pattern.grains) if truth["illuminated_volume_nm3"] > 0]
    estimates = LaueAnalyser.load().analyse_grains(frame.counts, [("Cu", beam.sample_to_lab @ g.orientation)
                                                                  for g, _ in lit], detector=detector, beam=beam)
    rows = []
    for (g, truth), est in zip(lit, estimates):
        if isinstance(est, ConfigError):
            continue
        error = deviatoric_components(est.strain) - deviatoric_components(np.array(truth["mean_strain"]))
        rows.append({"grain": truth["grain"], "content": contents[truth["grain"]], "found": est.defect_class,
                     "p": est.probabilities[est.defect_class], "strain_error_1e4": float(np.abs(error).max() * 1e4),
                     "sigma_1e4": float(est.strain_sigma.max() * 1e4)})
    files["laue"] = {"spots": len(pattern.spots), "grains": rows}


def _laue_text(t):
    rows = "".join(f"<tr><td>{r['grain']}</td><td>{r['content']}</td><td>{r['found']} ({r['p']:.2f})</td>"
                   f"<td>{r['strain_error_1e4']:.1f}</td><td>{r['sigma_1e4']:.1f}</td></tr>" for r in t["grains"])
    return (f"<p>Laue microdiffraction of a Cu polycrystal (Voronoi grains, 5–25 keV bending-magnet beam of "
            f"300 nm, BM32-like detector; {t['spots']} spots): every illuminated voxel diffracts with its own "
            f"distortion from the simulated defects. The network reads each grain's defect content and deviatoric "
            f"strain from the spots at its indexed orientation (<code>braggscope laue analyse</code>):</p>"
            f"<table><tr><th>grain</th><th>true content</th><th>found (p)</th><th>largest deviatoric strain error "
            f"×10⁻⁴ (against the mean strain its spots see)</th><th>largest σ ×10⁻⁴</th></tr>{rows}</table>")


def _batch(files, out, seed, device):
    """Two small simulated scans (a perfect Pt crystal and one with an edge dislocation visible at
    111) through `braggscope run`'s pipeline: batch/summary.html and a folder per scan."""
    from .pipeline import Pipeline
    from .simulate import random_orientation

    folder = out / "batch"
    for scan in (1, 2):
        u = random_orientation(seed + scan)
        xtal = Crystal(truncated_octahedron(60.0, u), "Pt", u)
        defects = [xtal.dislocation(burgers=(0.5, 0.5, 0), line=(1, -1, 1), position=(0, 0, 0))] if scan == 2 else []
        data = simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=(32,) * 3, voxel_size=3.0, data_shape=(64,) * 3,
                             detector=Detector(photons=1e9), rng=seed + scan)
        write_simulation(folder / f"scan_{scan}.cxi", data, seed=seed + scan)
    rows = Pipeline({"output": str(folder), "data": {"path": str(folder / "scan_{scan}.cxi"), "scans": [1, 2]},
                     "prepare": {"shape": [64, 64, 64]}, "reconstruct": {"runs": 2, "seed": seed, "device": device},
                     "identify": {"render": False}}).run()
    files["batch"] = [{k: r.get(k) for k in ("scan", "status", "size_nm", "strain_rms", "defect_counts", "pattern",
                                             "flags", "error")} for r in rows]


def _counts(counts):
    return html.escape(", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none")


def _batch_text(rows):
    cell = lambda r: (f"<td>{r['scan']}</td><td>{r['status']}</td><td>{r['size_nm']:.0f} nm</td>"
                      f"<td>{r['strain_rms']:.1e}</td><td>{_counts(r['defect_counts'])}</td>"
                      f"<td>{html.escape(str((r['pattern'] or {}).get('label')))}</td>"
                      f"<td>{html.escape(', '.join(r['flags']))}</td>") if r["status"] != "failed" else (
        f"<td>{r['scan']}</td><td>failed</td><td colspan=5>{html.escape(r['error'])}</td>")
    rows_html = "".join(f"<tr>{cell(r)}</tr>" for r in rows)
    return ("<p>Two more simulated scans, a perfect Pt crystal (scan 1) and one with an edge dislocation through its "
            "centre (scan 2), through the beamtime pipeline (<code>braggscope run CONFIG.toml</code>: load, "
            "prepare, classify, reconstruct, strain, identify, pages); its sortable summary is "
            '<a href="batch/summary.html">batch/summary.html</a>, each scan\'s page <code>batch/scan_000N/'
            "report.html</code>.</p><table><tr><th>scan</th><th>status</th><th>size</th><th>RMS strain</th>"
            f"<th>defects</th><th>pattern classifier</th><th>flags</th></tr>{rows_html}</table>")


def _network_start(data, files, n_runs, seed, device, truth):
    """The recipe, starting objects and support from the neural first guess when its weights are
    installed (its error alone goes into `files`); random starts and the default chain otherwise."""
    from .metrics import reconstruction_error
    from .retrieval.neural import network_start

    start, guess = network_start(data.intensity, data.mask, n_runs=n_runs, rng=seed, device=device)
    if guess is None:
        files["start"] = "random starts"
        return start
    files["net_error"] = reconstruction_error(guess.obj, truth)["error"]
    files["start"] = (f"the network's first guess (error {files['net_error']:.3f} alone, {guess.seconds:.2f} s), "
                      "spread by small random phases")
    return start


def _reconstruct(data, files, n_runs, seed, device):
    from .metrics import band_limited, compare
    from .retrieval.engine import reconstruct
    from .io import write_cxi_result
    from .viz import reconstruction_figure

    truth = band_limited(data.sample.obj, data.intensity.shape)
    start = _network_start(data, files, n_runs, seed, device, truth)
    result = reconstruct(data.intensity, mask=data.mask, n_runs=n_runs, rng=seed, device=device, **start)
    write_cxi_result(files["result"], result.obj[0], result.support[0], llk=result.llk[0],
                     free_llk=result.free_llk[0], config=result.config | {"seed": seed})
    files |= {"recipe": result.recipe, "runs": n_runs, "llk": float(result.llk[0]),
              "free_llk": float(result.free_llk[0])}
    aligned, errors = compare(result.obj[0], truth, support=result.support[0])
    files |= errors
    save_png(reconstruction_figure(aligned, truth, voxel_size=data.sample.voxel_size,
                                   title="reconstruction (aligned) against the truth"), files["reconstruction_png"])
    return aligned


def _strain(data, files, aligned):
    """Strain of the aligned reconstruction (on the simulation's orthogonal grid) and its error
    against the closed-form truth inside the crystal, without its outer voxel layer."""
    from .simulate.diffraction import _pad_centred
    from .strain import strain_field, support_from_amplitude, surface_layers, write_strain

    s = data.sample
    field = strain_field(aligned, support_from_amplitude(aligned, 0.3), g_vector=s.g_vector, voxel_size=s.voxel_size)
    write_strain(files["strain"], field, config={"hkl": list(s.hkl), "material": s.material})
    save_png(strain_figure(field, title="strain of the reconstruction along G"), files["strain_png"])
    truth = _pad_centred(s.strain, aligned.shape).real
    inner = (_pad_centred(s.support, aligned.shape).real > 0) & field.support & ~surface_layers(field.support, 1)
    files["strain_rms_error"] = float(np.sqrt(np.mean((field.strain + field.ramp_strain - truth)[inner] ** 2)))
    files["strain_rms_truth"] = float(np.sqrt(np.mean(truth[inner] ** 2)))
    return field


def run_demo(out_dir, *, shape=(48, 48, 48), data_shape=(96, 96, 96), voxel_size=3.0, photons=1e9, n_runs=4,
             seed=0, device="auto", progress=None) -> dict:
    """Run the demonstration chain and write its files into `out_dir`.

    Parameters
    ----------
    out_dir : str or Path
    shape : tuple of int
        Real-space grid of the simulation.
    data_shape : tuple of int
        Size of the diffraction array (twice `shape`: oversampling above 2 for phase retrieval).
    voxel_size : float
        [nm]
    photons : float
        Photon budget of the measurement.
    n_runs : int
        Runs of the phase retrieval (from the network's guess, or random).
    seed : int
    device : str
        Torch device of the phase retrieval ('auto', 'cpu', 'cuda').
    progress : callable, optional
        Called with the name of each step as it starts.

    Returns
    -------
    dict
        Paths of the written files (data.cxi, result.cxi, sample.png, diffraction.png,
        reconstruction.png, strain.h5, strain.png, defects.json, defects.png, tem_micrograph.tif,
        tem_objects.png, laue_frame.h5, laue_frame.png, report.html; the pipeline's batch/ folder with
        summary.html), the figures of the reconstruction and its strain, the defects found, and the
        batch's rows.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    step = progress or (lambda name: None)
    timings = {}
    t = time.perf_counter()
    step("simulate")
    xtal, defects = demo_crystal()
    data = simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=shape, voxel_size=voxel_size, data_shape=data_shape,
                         detector=Detector(photons=photons, gaps="maxipix"), rng=seed)
    timings["simulate"] = time.perf_counter() - t
    files = {"data": out / "data.cxi", "result": out / "result.cxi", "sample_png": out / "sample.png",
             "diffraction_png": out / "diffraction.png", "reconstruction_png": out / "reconstruction.png",
             "strain": out / "strain.h5", "strain_png": out / "strain.png", "defects": out / "defects.json",
             "defects_png": out / "defects.png"}
    t = time.perf_counter()
    step("write")
    write_simulation(files["data"], data, seed=seed)
    step("pictures")
    save_png(sample_figure(data.sample, title="simulated Pt crystal: ground truth"), files["sample_png"])
    save_png(diffraction_figure(data.intensity, data.mask, title="simulated 111 Bragg peak"), files["diffraction_png"])
    timings["files and pictures"] = time.perf_counter() - t
    t = time.perf_counter()
    step("classify")
    _classify(files, data, str(resolve_device(device)))
    timings["pattern classifier"] = time.perf_counter() - t
    t = time.perf_counter()
    step("reconstruct")
    aligned = _reconstruct(data, files, n_runs, seed, device)
    timings["phase retrieval"] = time.perf_counter() - t
    t = time.perf_counter()
    step("strain")
    field = _strain(data, files, aligned)
    timings["strain"] = time.perf_counter() - t
    t = time.perf_counter()
    step("identify")
    _identify(files, field, str(resolve_device(device)))
    timings["defect identification"] = time.perf_counter() - t
    step("plan")
    _plan(files, field, data.sample)
    t = time.perf_counter()
    step("tem")
    files.update(tem_micrograph=out / "tem_micrograph.tif", tem_png=out / "tem_objects.png")
    _tem(files, seed, str(resolve_device(device)))
    timings["TEM micrograph (simulate + detect)"] = time.perf_counter() - t
    t = time.perf_counter()
    step("laue")
    files.update(laue_frame=out / "laue_frame.h5", laue_png=out / "laue_frame.png")
    _laue(files, seed)
    timings["Laue frame (simulate + read the grains)"] = time.perf_counter() - t
    t = time.perf_counter()
    step("batch")
    _batch(files, out, seed, device)
    timings["beamtime batch (2 scans through the pipeline)"] = time.perf_counter() - t
    files["report"] = out / "report.html"
    step("report")
    _report(files["report"], data, timings, files)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in files.items()}
