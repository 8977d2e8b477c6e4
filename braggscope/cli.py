"""The `braggscope` command line: a thin layer that parses, calls one public function and
writes files. User errors print one line and exit with status 2 (--debug shows the traceback)."""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from .errors import BraggscopeError, ConfigError, OptionalDependencyError

log = logging.getLogger("braggscope")

_SHAPES = ("sphere", "cube", "octahedron", "cuboctahedron", "truncated_octahedron", "random")
_DEFECTS = ("dislocation", "loop", "stacking_fault", "twin", "dilatation")


def _add_common(p):
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info lines")
    p.add_argument("--debug", action="store_true", help="show the traceback of errors")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="braggscope", description="Bragg CDI: from the detector to a defect list.")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="simulate a defective nanocrystal and its BCDI data into a CXI file",
                         description="Simulate a crystal with defects, its diffraction and the detector; write "
                                     "data, mask, geometry and ground truth (/entry_1/ground_truth) to one CXI file.")
    sim.add_argument("out", type=Path, help="output .cxi file")
    sim.add_argument("--shape", type=int, nargs="+", default=[64], help="real-space grid: N, or Z Y X, or Y X (2-D)")
    sim.add_argument("--voxel-size", type=float, default=4.0, help="[nm] voxel edge")
    sim.add_argument("--crystal", choices=_SHAPES, default="truncated_octahedron", help="crystal shape")
    sim.add_argument("--size", type=float, default=150.0, help="[nm] inscribed diameter of the crystal")
    sim.add_argument("--material", default="Pt", help="Pt, Au, Ni, Cu, Ag or Pd")
    sim.add_argument("--hkl", type=int, nargs=3, default=[1, 1, 1], metavar=("H", "K", "L"), help="reflection")
    sim.add_argument("--defects", default="", help=f"comma-separated kinds placed at random: {', '.join(_DEFECTS)}")
    sim.add_argument("--random-defects", type=int, default=0, metavar="N", help="N random defects of any kind")
    sim.add_argument("--elasticity", choices=("isotropic", "anisotropic"), default="isotropic",
                     help="field of straight dislocations and loops: isotropic (Voigt ν) or in the cubic C11, C12, "
                          "C44 (Stroh's for lines, Mura's eigenstrain by FFT for loops)")
    sim.add_argument("--model", choices=("continuum", "atomistic"), default="continuum")
    sim.add_argument("--oversampling", type=float, default=1.0, help="extra zero padding of the data array")
    sim.add_argument("--photons", type=float, default=1e8)
    sim.add_argument("--background", type=float, default=0.0, help="[photons/pixel]")
    sim.add_argument("--gaps", choices=("none", "maxipix", "eiger"), default="none")
    sim.add_argument("--hot-pixels", type=int, default=0)
    sim.add_argument("--aliens", type=int, default=0)
    sim.add_argument("--saturation", type=float, default=None, help="[photons] per pixel and frame")
    sim.add_argument("--psf-sigma", type=float, default=0.0, help="[pixels] partial-coherence blur")
    sim.add_argument("--detector-frame", action="store_true", help="data in the rocking scan's detector frame")
    sim.add_argument("--energy", type=float, default=9.0, help="[keV] (detector frame)")
    sim.add_argument("--distance", type=float, default=1.0, help="[m] detector distance (detector frame)")
    sim.add_argument("--pixel-size", type=float, default=55.0, help="[µm] (detector frame)")
    sim.add_argument("--rocking-step", type=float, default=0.01, help="[deg] (detector frame)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--png", type=Path, help="also write pictures of the truth and the data (PNG prefix)")
    _add_common(sim)

    rec = sub.add_parser("reconstruct", help="phase retrieval of a CXI/npz data file into a CXI result",
                         description="Reconstruct the complex object: N runs from the network's first guess "
                                     "(--seed-net) or from random starts, ranked by free LLK; the best K are combined (dominant mode or "
                                     "average), centred, phase ramp removed, and written in PyNX's result layout.")
    rec.add_argument("data", type=Path, help="data file (.cxi, .h5, .npz, .npy)")
    rec.add_argument("--out", type=Path, required=True, help="result .cxi file")
    rec.add_argument("--algorithm", default=None, help="recipe, e.g. 'ER**200 * (ShrinkWrap * RAAR**20)**30'")
    rec.add_argument("--runs", type=int, default=4, help="runs (starts)")
    rec.add_argument("--keep", type=int, default=None, help="best runs combined (default: half the runs)")
    rec.add_argument("--combine", choices=("mode", "average"), default="mode", help="how kept runs are combined")
    rec.add_argument("--prepare", action="store_true", help="mask hot pixels and aliens before phasing")
    rec.add_argument("--device", default="auto", help="auto, cpu or cuda")
    rec.add_argument("--backend", choices=("torch", "pynx"), default="torch", help="phase-retrieval engine")
    rec.add_argument("--seed-net", action=argparse.BooleanOptionalAction, default=None,
                     help="start every run from the neural first guess (object and support) instead of random "
                          "phases, with the 200-cycle seeded chain (its shrink-wrap blur starting at 1 voxel) "
                          "unless --algorithm says otherwise (default: on when "
                          "trained weights for the data's dimension are installed)")
    rec.add_argument("--psf", action="store_true",
                     help="model partial coherence (measured data): refine a point-spread function by "
                          "Richardson-Lucy over the second half of the default chain, as PyNX's --psf")
    rec.add_argument("--seed", type=int, default=0)
    _add_common(rec)

    st = sub.add_parser("strain", help="phase → displacement → strain of a reconstruction, as HDF5 (+ .vti, PNG); "
                                       "the full strain tensor from several reflections",
                        description="Remove the phase ramp and offset, take the wrap-free phase gradient on the "
                                    "reconstruction's own grid, and write amplitude, phase, displacement and strain "
                                    "along G on an orthogonal grid in the lab (or crystal) frame. Given the "
                                    "reconstructions of one crystal at three or more reflections (each file with its "
                                    "hkl, grid and, for a beamline scan, its sample rotation), turn them into the "
                                    "sample frame, align them (shift, twins) and write the displacement gradient and "
                                    "strain tensor.")
    st.add_argument("result", type=Path, nargs="+",
                    help="reconstruction (.cxi from braggscope or PyNX, .npz, .npy); several for the strain tensor")
    st.add_argument("--out", type=Path, required=True, help="output HDF5 file")
    st.add_argument("--hkl", type=int, nargs=3, metavar=("H", "K", "L"), help="reflection (default: from the file)")
    st.add_argument("--material", help="Pt, Au, Ni, Cu, Ag or Pd (default: from the file)")
    st.add_argument("--vti", action="store_true", help="also write OUT.vti for ParaView")
    st.add_argument("--png", action="store_true", help="also write the standard figure OUT.png")
    st.add_argument("--frame", choices=("lab", "crystal", "native", "sample"),
                    help="output grid: orthogonal lab frame (the default for one reflection), crystal frame (needs "
                         "--orientation, which several reflections fit themselves), the reconstruction's own grid, "
                         "or the sample frame (the default for several reflections, where they meet)")
    st.add_argument("--orientation", type=float, nargs=9, metavar="U", help="crystal orientation U (row by row; "
                    "columns = [100], [010], [001] in the lab frame) for --frame crystal")
    st.add_argument("--voxel-size", type=float, help="[nm] cubic voxel of an orthogonal reconstruction "
                    "(a file without braggscope's grid); with several reflections, the common grid's voxel")
    st.add_argument("--hkls", help="several reflections: each file's hkl in order, e.g. '1 1 1,-1 1 1,1 -1 1' "
                    "(default: the files'; a pipeline run with one [sample] hkl records that one for every scan)")
    st.add_argument("--g-direction", type=float, nargs=3, metavar=("Z", "Y", "X"),
                    help="direction of G in the lab frame (default: from the file or the geometry)")
    geo = st.add_argument_group("rocking-scan geometry (a detector-frame reconstruction without braggscope's grid)")
    geo.add_argument("--energy", type=float, help="[keV]")
    geo.add_argument("--distance", type=float, help="[m] detector distance")
    geo.add_argument("--pixel-size", type=float, help="[µm]")
    geo.add_argument("--rocking-step", type=float, help="[deg] per frame")
    geo.add_argument("--delta", type=float, help="[deg] detector elevation (default 0, or the file's)")
    geo.add_argument("--gamma", type=float, help="[deg] detector azimuth (default 0, or the file's)")
    geo.add_argument("--rocking-axis", choices=("x", "y"), default="x", help="lab axis of the rocking rotation")
    st.add_argument("--isosurface", type=float, help="support = amplitude above this fraction of the maximum "
                    "(default: the file's support)")
    st.add_argument("--apodize", choices=("blackman", "hann", "tukey"), help="window the object's spectrum first")
    st.add_argument("--twin", nargs="?", const="flip", choices=("flip", "auto"),
                    help="take the twin image ρ*(−r) of the reconstruction (same diffraction pattern; where the "
                         "crystal's orientation shows that the run came out as the other one); 'auto' with "
                         "--refraction: keep the one whose phase follows the refraction more (right for 21 of 24 "
                         "simulated crystals)")
    st.add_argument("--refraction", action="store_true",
                    help="remove the phase of refraction (and undo the absorption) of the incident and exit beams "
                         "in the crystal; needs the energy and the detector angles (from the file or --energy, "
                         "--delta, --gamma), and the physical one of the twin pair")
    st.add_argument("--order", type=int, choices=(2, 4), default=4, help="order of the bulk central difference")
    st.add_argument("--reference", choices=("mean", "centre"), default="mean", help="phase offset reference")
    st.add_argument("--keep-ramp", action="store_true", help="do not remove the linear phase ramp")
    _add_common(st)

    ide = sub.add_parser("identify", help="find dislocations, stacking faults and twins in a strain file",
                         description="Find the defects of a reconstructed crystal (a `braggscope strain` file) with "
                                     "the U-Net or the physics baseline (phase vortices, planar jumps); write the "
                                     "defect list as JSON, and optionally a 3-D picture and an HTML view.")
    ide.add_argument("strain", type=Path, help="strain HDF5 file from `braggscope strain`")
    ide.add_argument("--out", type=Path, required=True, help="output defect list (.json)")
    ide.add_argument("--png", type=Path, help="also write a 3-D picture (PNG, off screen)")
    ide.add_argument("--html", type=Path, help="also write an interactive HTML view (vtk.js)")
    ide.add_argument("--method", choices=("unet", "baseline"), default="unet")
    ide.add_argument("--weights", type=Path, help="U-Net weights (default: the shipped ones)")
    ide.add_argument("--device", default="auto", help="auto, cpu or cuda (U-Net)")
    _add_common(ide)

    cls = sub.add_parser("classify", help="tell the defect kind from the diffraction pattern, before phase retrieval",
                         description="Classify a measured BCDI pattern (CXI/npz/npy) with the shipped network: "
                                     "perfect crystal, dislocation(s), loop, stacking fault or twin, with calibrated "
                                     "probabilities, the defects the reflection cannot show (G·b = 0, G·R ∈ 2πℤ) "
                                     "and 'unknown' when the pattern is unlike the training data. The data are "
                                     "cropped around the peak to 64³ (64² for --2d) and binned per axis to the "
                                     "oversampling the network was trained at (about 3.3 pixels per fringe), "
                                     "estimated from the data unless --bin says otherwise.")
    cls.add_argument("data", type=Path, help="diffraction data (.cxi, .npz or .npy)")
    cls.add_argument("--json", type=Path, help="write the verdict as JSON")
    cls.add_argument("--2d", dest="two_d", action="store_true",
                     help="use the 2-D network on the frame at the top of the rocking curve")
    cls.add_argument("--bin", nargs="+", default=["auto"], metavar="N",
                     help="pixels summed per axis: 'auto' (from the estimated oversampling), one integer, "
                          "or one per axis of the data")
    cls.add_argument("--hkl", type=int, nargs=3, metavar=("H", "K", "L"),
                     help="reflection measured (default: from the file), to list the defects it cannot show")
    cls.add_argument("--weights", type=Path, help="classifier weights (default: the shipped ones)")
    cls.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _add_common(cls)

    plan = sub.add_parser("plan", help="suggest the next scan (rocking range, step, count time, distance, reflection)",
                          description="Suggest a rocking scan from the sampling conditions, and say which one binds; "
                                      "with --state, go on with a saved Bayesian session (ask); with --simulate N, "
                                      "run N scans of a simulated crystal in a closed loop and plot what was found.")
    plan.add_argument("--crystal-size", type=float, required=True, help="[nm] largest extent of the crystal")
    plan.add_argument("--material", default="Pt", help="Pt, Au, Ni, Cu, Ag or Pd")
    plan.add_argument("--hkl", type=int, nargs=3, default=[1, 1, 1], metavar=("H", "K", "L"),
                      help="the reflection the crystal is aligned on")
    plan.add_argument("--reflections", default="", help="other reflections the planner may pick, e.g. '2 0 0,2 2 0'")
    plan.add_argument("--burgers", default="", help="suspected Burgers vectors [a], e.g. '0.5 0.5 0': ranks the "
                                                     "reflections by the visibility rule G·b ≠ 0")
    plan.add_argument("--budget-minutes", type=float, default=None, help="most beam time for the scan")
    plan.add_argument("--volume", type=float, default=None, help="[nm³] crystal volume (default: the sphere)")
    plan.add_argument("--energy", type=float, default=9.0, help="[keV]")
    plan.add_argument("--pixel-size", type=float, default=55.0, help="[µm]")
    plan.add_argument("--flux-density", type=float, default=100.0, help="[photons/s/nm²] coherent flux density")
    plan.add_argument("--max-count-rate", type=float, default=2e5, help="[photons/s/pixel] detector saturation")
    plan.add_argument("--crop", type=int, default=48, help="[pixels] detector window reconstructed per axis")
    plan.add_argument("--objective", choices=("efficiency", "pareto"), default="efficiency")
    plan.add_argument("--state", type=Path, help="planner session (JSON): resumed if it exists, saved after each step")
    plan.add_argument("--batch", type=int, default=1, help="scans to suggest at once")
    plan.add_argument("--simulate", type=int, default=0, metavar="N", help="closed loop of N simulated scans")
    plan.add_argument("--out", type=Path, default=Path("plan_output"), help="folder of the --simulate plot and JSON")
    plan.add_argument("--seed", type=int, default=0)
    _add_common(plan)

    tem = sub.add_parser("tem", help="find, count and measure loops, precipitates and cavities in a TEM micrograph",
                         description="Segment a transmission electron micrograph (TIFF, PNG or .npy; counts or grey "
                                     "levels) with the shipped U-Net: every dislocation loop, coherent precipitate and "
                                     "cavity outlined, classified and measured (diameter; loop habit), with the "
                                     "number densities and size histograms. With --simulate SEED, IMAGE is first "
                                     "written as a synthetic two-beam micrograph (ground truth in IMAGE.truth.json).")
    tem.add_argument("image", type=Path, help="micrograph (.tif/.tiff, .png, .npy)")
    tem.add_argument("--pixel-size", type=float, help="[nm] pixel size of the micrograph (0.5 with --simulate)")
    tem.add_argument("--out", type=Path, help="write the object table and size histograms as JSON")
    tem.add_argument("--png", type=Path, help="write the micrograph with the outlines and classes")
    tem.add_argument("--simulate", type=int, metavar="SEED", help="write a synthetic micrograph to IMAGE first")
    tem.add_argument("--size", type=int, default=512, help="[pixels] side of the --simulate micrograph")
    tem.add_argument("--g", type=int, nargs=3, metavar=("H", "K", "L"),
                     help="the two-beam reflection (fcc): names the loops it shows only faintly (g·b = 0); "
                          "--simulate takes the micrograph's own")
    tem.add_argument("--weights", type=Path, help="U-Net weights (default: the shipped ones)")
    tem.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _add_common(tem)

    laue = sub.add_parser("laue", help="Laue microdiffraction: simulate a polycrystal's frame, or read strain and "
                                       "defect content from its grains",
                          description="'laue simulate OUT.h5' writes the Laue frame of a Voronoi polycrystal with "
                                      "defects (HDF5 with the calibration and the ground truth; --tiff, --png). "
                                      "'laue analyse FRAME.h5' reads each grain's deviatoric strain and defect "
                                      "content with the shipped network; the grains' orientations come from "
                                      "--orientation or, for a simulated frame, from its ground truth.")
    laue_sub = laue.add_subparsers(dest="laue_command", required=True)
    lsim = laue_sub.add_parser("simulate", help="simulate a polycrystal's Laue frame")
    lsim.add_argument("out", type=Path, help="output .h5 file")
    lsim.add_argument("--tiff", type=Path, help="also write the counts as a TIFF")
    lsim.add_argument("--png", type=Path, help="also write a picture of the frame with the spots' hkl")
    lsim.add_argument("--structure", default="Cu", help="Cu, Ni, Au, Pt, Ag, Pd, UO2, CeO2 or ZrO2")
    lsim.add_argument("--grains", type=int, default=6, help="number of Voronoi grains")
    lsim.add_argument("--grid", type=int, nargs=3, default=[20, 24, 24], metavar=("NZ", "NY", "NX"),
                      help="voxels (depth, across, along the beam's footprint)")
    lsim.add_argument("--voxel-size", type=float, default=100.0, help="[nm]")
    lsim.add_argument("--texture", type=float, nargs=4, metavar=("H", "K", "L", "SPREAD"),
                      help="fibre texture: crystal direction along the surface normal, spread [deg]")
    lsim.add_argument("--content", default="mixed", help="defects of every grain: perfect, dislocations, gnd, "
                                                         "twin, faults, or mixed (drawn per grain)")
    lsim.add_argument("--band", type=float, nargs=2, default=[5.0, 25.0], metavar=("EMIN", "EMAX"), help="[keV]")
    lsim.add_argument("--beam-fwhm", type=float, default=300.0, help="[nm] focal spot")
    lsim.add_argument("--calibration", type=float, nargs=5, default=[77.0, 1009.0, 1008.0, 0.0, 0.0],
                      metavar=("DD", "XCEN", "YCEN", "XBET", "XGAM"), help="detector: mm, pixels, degrees")
    lsim.add_argument("--pixel-size", type=float, default=0.0734, help="[mm]")
    lsim.add_argument("--detector-shape", type=int, nargs=2, default=[2016, 2018], metavar=("ROWS", "COLS"))
    lsim.add_argument("--peak-counts", type=float, default=20000.0, help="expected counts of the brightest pixel")
    lsim.add_argument("--seed", type=int, default=0)
    _add_common(lsim)
    lana = laue_sub.add_parser("analyse", help="deviatoric strain and defect content of each grain of a frame")
    lana.add_argument("frame", type=Path, help="Laue .h5 file (as 'laue simulate' writes), or a .tif frame with --det")
    lana.add_argument("--det", type=Path, help="LaueTools calibration file (.det) of a .tif frame")
    lana.add_argument("--structure", help="crystal structure of the grains (default: the ground truth's)")
    lana.add_argument("--orientation", type=float, nargs=9, metavar="U",
                      help="one grain's orientation matrix (crystal → lab, row by row), e.g. from LaueTools")
    lana.add_argument("--json", type=Path, help="write the estimates as JSON")
    lana.add_argument("--weights", type=Path, help="network weights (default: the shipped ones)")
    _add_common(lana)

    run = sub.add_parser("run", help="the whole chain over a beamtime's scans, from a TOML configuration",
                         description="Load → prepare → classify → reconstruct → strain → identify → report for every "
                                     "scan of the configuration, one folder per scan and a summary page; complete "
                                     "scans are skipped, a failed one is reported and the others go on. Exit status "
                                     "1 if a scan failed.")
    run.add_argument("config", type=Path, help="pipeline configuration (.toml; see the README)")
    run.add_argument("--scans", nargs="+", type=int, help="these scans instead of the configuration's")
    run.add_argument("--cluster", choices=("serial", "local", "slurm"), help="override [cluster] kind")
    run.add_argument("--workers", type=int, help="override [cluster] workers")
    run.add_argument("--force", action="store_true", help="redo scans whose outputs are complete")
    _add_common(run)

    demo = sub.add_parser("demo", help="run the whole chain on a built-in simulated crystal",
                          description="Simulate the built-in defective Pt crystal and write data, pictures and an "
                                      "HTML report into a folder.")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="auto", help="auto, cpu or cuda (phase retrieval)")
    _add_common(demo)

    bench = sub.add_parser("bench", help="run a benchmark from benchmarks/ (one JSON line)",
                           description="Run benchmarks/NAME.py of the source tree; its last line is a JSON object.")
    bench.add_argument("name", help="benchmark name, e.g. simulate")
    bench.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes on 2 cores)")
    _add_common(bench)
    return parser


def _configure_logging(args):
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s")


def _progress(args, steps):
    """A callback that advances a tqdm bar by one step per call (silent with --quiet)."""
    if args.quiet or not sys.stderr.isatty():
        return None, (lambda name: log.debug("step: %s", name))
    from tqdm import tqdm

    bar = tqdm(total=steps, unit="step", leave=False)

    def advance(name):
        bar.set_description(name)
        bar.update(1)

    return bar, advance


def _crystal(args):
    from . import simulate as sim

    if args.crystal == "random":
        return sim.random_crystal(args.seed, size=(args.size, args.size), materials=(args.material,))
    orientation = sim.random_orientation(args.seed)
    if args.crystal == "sphere":
        shape = sim.sphere(args.size)
    else:
        shape = getattr(sim, args.crystal)(args.size, orientation)
    return sim.Crystal(shape, args.material, orientation)


def _cmd_simulate(args):
    import numpy as np

    from . import simulate as sim
    from .geometry import Geometry
    from .io import write_simulation
    from .simulate.random import random_defects

    shape = tuple(args.shape) * 3 if len(args.shape) == 1 else tuple(args.shape)
    xtal = _crystal(args)
    kinds = [k.strip() for k in args.defects.split(",") if k.strip()]
    rng = np.random.default_rng(args.seed)
    defects = [d for k in kinds for d in random_defects(xtal, rng, kinds=(k,), count=(1, 1),
                                                        elasticity=args.elasticity)]
    if args.random_defects:
        defects += random_defects(xtal, rng, count=(args.random_defects, args.random_defects),
                                  elasticity=args.elasticity)
    geometry = None
    if args.detector_frame:
        geometry = Geometry.for_reflection(d_spacing=xtal.material.d_spacing(args.hkl), energy=args.energy,
                                           detector_distance=args.distance, pixel_size=args.pixel_size,
                                           rocking_step=args.rocking_step)
    detector = sim.Detector(photons=args.photons, background=args.background, gaps=args.gaps,
                            hot_pixels=args.hot_pixels, aliens=args.aliens, saturation=args.saturation,
                            psf_sigma=args.psf_sigma)
    data_shape = tuple(int(round(n * args.oversampling)) for n in shape)
    data = sim.simulate_bcdi(xtal, defects, hkl=args.hkl, shape=shape, voxel_size=args.voxel_size,
                             data_shape=data_shape, model=args.model, geometry=geometry, detector=detector,
                             rng=args.seed)
    write_simulation(args.out, data, seed=args.seed)
    if args.png:
        from .viz import diffraction_figure, sample_figure, save_png

        save_png(sample_figure(data.sample), f"{args.png}_truth.png")
        save_png(diffraction_figure(data.intensity, data.mask), f"{args.png}_data.png")
    log.info("wrote %s: %s data %s, %d defects (%s), %.3g photons, %d masked pixels", args.out, data.model,
             data.intensity.shape, len(defects), ", ".join(d["type"] for d in data.sample.defects) or "none",
             float(data.intensity.sum()), int(data.mask.sum()))


def _cmd_reconstruct(args):
    from .io import read_data
    from .retrieval import combine_runs, network_start, prepare, reconstruct, write_solution

    if args.out.resolve() == args.data.resolve():
        raise ConfigError("--out must not be the input file (an input is never overwritten)")
    keep = args.keep if args.keep is not None else max(1, args.runs // 2)
    if args.runs < 1 or not 1 <= keep <= args.runs:
        raise ConfigError(f"--keep must be between 1 and --runs ({args.runs}), got {keep}")
    data = read_data(args.data)
    intensity, mask, report = data.intensity, data.mask, None
    if args.prepare:
        prepared = prepare(intensity, mask)
        intensity, mask, report = prepared.intensity, prepared.mask, prepared.report
        log.info("prepare: masked %s", ", ".join(f"{n} {k}" for k, n in report["masked_voxels"].items()))
    if args.psf and args.algorithm:
        raise ConfigError("--psf shapes the default chain; with --algorithm put PSF into the recipe, "
                          "e.g. 'ER**200 * (PSF * ShrinkWrap * RAAR**20)**30'")
    start, guess = network_start(intensity, mask, n_runs=args.runs, seed_net=args.seed_net, psf=args.psf,
                                 rng=args.seed, device=args.device)
    seeded = guess is not None
    if seeded:
        log.info("seed-net: the network's guess (window binned %s, %d voxels in its support) starts every run, in "
                 "%.2f s", "×".join(map(str, guess.frame.bins)), int(guess.support.sum()), guess.seconds)
    if args.algorithm:
        start["recipe"] = args.algorithm
    bar, progress = _cycle_progress(args, start["recipe"])
    try:
        result = reconstruct(intensity, mask=mask, n_runs=args.runs, rng=args.seed, device=args.device,
                             backend=args.backend, progress=progress, **start)
    finally:
        if bar is not None:
            bar.close()
    sol = combine_runs(result, intensity, mask, keep=keep, method=args.combine)
    write_solution(args.out, sol, result, config=_grid_config(data) | {"seed": args.seed, "data": str(args.data),
                                                                        "keep": keep, "combine": args.combine,
                                                                        "prepare": report, "seed_net": seeded})
    start = "the network's guess" if seeded else "random"
    psf = "" if sol.psf_fwhm is None else f", PSF FWHM {' × '.join(f'{w:.2f}' for w in sol.psf_fwhm)} pixels"
    print(f"{args.out}: {result.recipe} on {args.backend}/{result.config['device']} from {start} starts, best {keep} "
          f"of {args.runs} runs "
          f"({args.combine}, mode fraction {sol.mode_fraction:.3f}): LLK {sol.llk:.3f}, free LLK {sol.free_llk:.3f}, "
          f"support {int(sol.support.sum())} voxels, PRTF resolution {sol.prtf['resolution']:.2f} voxels{psf}")


def _strain_grid(args, shape, config):
    """(voxel edges [nm], G direction or None, frame name) of a reconstruction, from the options
    or the file's configuration."""
    import numpy as np

    from .geometry import Geometry, object_voxel_from_q_basis

    scan = (args.energy, args.distance, args.pixel_size, args.rocking_step)
    if args.voxel_size is not None:
        return args.voxel_size, None, "lab"
    if any(v is not None for v in scan):
        if any(v is None for v in scan):
            raise ConfigError("a rocking-scan geometry needs all of --energy, --distance, --pixel-size and "
                              "--rocking-step (and --delta/--gamma)")
        geo = Geometry(energy=args.energy, detector_distance=args.distance, pixel_size=args.pixel_size,
                       rocking_step=args.rocking_step, delta=args.delta or 0.0, gamma=args.gamma or 0.0,
                       rocking_axis=args.rocking_axis)
        return geo.object_voxel(shape), geo.q_bragg, "detector"
    if "q_basis" in config and config.get("frame") in ("orthogonal", "detector"):
        frame = "detector" if config["frame"] == "detector" else "lab"
        return object_voxel_from_q_basis(config["q_basis"], shape, frame=config["frame"]), \
            np.asarray(config["g_vector"]) if "g_vector" in config else None, frame
    raise ConfigError(f"{args.result} carries no grid: give --voxel-size for an orthogonal reconstruction, or the "
                      "scan geometry (--energy --distance --pixel-size --rocking-step --delta --gamma)")


def _refraction_corrected(args, config, obj, support, voxel, material):
    """(object, support) with the beams' refraction and absorption in the crystal undone
    (:func:`braggscope.strain.correct_refraction`), the energy and detector angles from the
    options or the file; with ``--twin auto`` on the one of the twin pair whose phase follows the
    refraction more (:func:`braggscope.strain.twin_by_refraction`)."""
    from . import strain as st
    from .geometry import scattered_direction

    energy = args.energy if args.energy is not None else config.get("energy")
    delta = args.delta if args.delta is not None else config.get("delta")
    gamma = args.gamma if args.gamma is not None else config.get("gamma")
    if energy is None or (delta is None and gamma is None):
        raise ConfigError("--refraction needs the photon energy and the detector angles: the file does not hold "
                          "them, give --energy and --delta/--gamma")
    n_delta, n_beta = st.refractive_index(material, energy)
    scattered = scattered_direction(delta or 0.0, gamma or 0.0)
    if args.twin == "auto":
        obj, support, flipped, share, other = st.twin_by_refraction(obj, support, voxel=voxel, energy=energy,
                                                                    delta=n_delta, scattered=scattered)
        if not args.quiet:
            print(f"twin: {'flipped' if flipped else 'kept'} (refraction share {share:.2f} against {other:.2f})")
    return st.correct_refraction(obj, support, voxel=voxel, energy=energy, delta=n_delta, beta=n_beta,
                                 scattered=scattered), support


def _cmd_strain(args):
    import numpy as np

    from .io import read_result
    from .physics import bragg_vector
    from .materials import get_material
    from . import strain as st

    if len(args.result) > 1:
        return _cmd_strain_tensor(args)
    args.result = args.result[0]
    args.frame = args.frame or "lab"
    if args.hkls is not None:
        raise ConfigError("--hkls names the reflections of several files; one file takes --hkl")
    if args.frame == "sample":
        raise ConfigError("--frame sample is where several reflections meet; one reconstruction is written in the "
                          "lab frame, the crystal frame or its own grid")
    outputs = [args.out] + [args.out.with_suffix(s) for s, on in ((".vti", args.vti), (".png", args.png)) if on]
    if any(p.resolve() == args.result.resolve() for p in outputs):
        raise ConfigError("an output would overwrite the input file; choose another --out")
    if args.frame == "crystal" and args.orientation is None:
        raise ConfigError("--frame crystal needs the crystal's orientation: --orientation with 9 numbers")
    if args.vti:
        try:
            import pyvista  # noqa: F401  (checked before any file is written)
        except ImportError:
            raise OptionalDependencyError("pyvista", "viz") from None
    obj, support, _, config = read_result(args.result)
    if args.twin == "auto" and not args.refraction:
        raise ConfigError("--twin auto chooses the twin by the refraction's phase: give --refraction too")
    if args.twin == "flip":
        from .retrieval import flip_twin

        obj, support = flip_twin(obj), None if support is None else flip_twin(np.asarray(support, bool))
    if args.isosurface is not None:
        support = st.support_from_amplitude(obj, args.isosurface)
    hkl = args.hkl if args.hkl is not None else config.get("hkl")
    material = args.material or config.get("material")
    if hkl is None or material is None:
        raise ConfigError("give the reflection and the material (--hkl H K L --material Pt); the file does not say")
    voxel, g_dir, frame = _strain_grid(args, np.shape(obj), config)
    g_dir = np.asarray(args.g_direction, float) if args.g_direction is not None else g_dir
    if g_dir is None or not np.any(g_dir):
        raise ConfigError("the direction of G is unknown: give --g-direction Z Y X (lab frame)")
    g_norm = np.linalg.norm(bragg_vector(hkl, lattice_parameter=get_material(material).lattice_parameter))
    g_vector = g_norm * g_dir / np.linalg.norm(g_dir)
    if args.apodize:
        obj = st.apodize(obj, args.apodize)
    if args.refraction:
        obj, support = _refraction_corrected(args, config, obj, support, voxel, material)
    field = st.strain_field(obj, support, g_vector=g_vector, voxel_size=voxel, remove_ramp=not args.keep_ramp,
                            reference=args.reference, order=args.order, frame=frame)
    if args.frame == "crystal":
        field = st.resample(field, rotation=st.crystal_rotation(np.reshape(args.orientation, (3, 3))), frame="crystal")
    elif args.frame == "lab" and frame == "detector":
        field = st.resample(field)
    st.write_strain(args.out, field, config={"input": str(args.result), "hkl": list(hkl), "material": material,
                                             "order": args.order, "reference": args.reference,
                                             "apodize": args.apodize or "none", "isosurface": args.isosurface,
                                             "refraction": args.refraction, "twin": args.twin or "none"})
    if args.vti:
        st.write_vti(args.out.with_suffix(".vti"), field)
    if args.png:
        from .viz import save_png, strain_figure

        save_png(strain_figure(field, title=f"{args.result.name}: {material} {' '.join(map(str, hkl))}"),
                 args.out.with_suffix(".png"))
    stats = field.summary()
    print(f"{args.out}: {stats['voxels']} voxels ({field.frame} frame), strain mean {stats['strain_mean']:.2e}, "
          f"RMS {stats['strain_rms']:.2e} (bulk {stats['bulk_strain_rms']:.2e}, surface {stats['surface_strain_rms']:.2e}), "
          f"removed ramp strain {field.ramp_strain:.2e}")


_ONE_REFLECTION_OPTIONS = ("hkl", "g_direction", "energy", "distance", "pixel_size", "rocking_step", "delta", "gamma",
                           "refraction", "twin", "apodize", "vti")


def _cmd_strain_tensor(args):
    """`braggscope strain R1 R2 R3 ... --out T.h5`: the strain tensor of one crystal from its
    reconstructions at several reflections (:func:`braggscope.strain.tensor_from_results`)."""
    import numpy as np

    from . import strain as st

    given = [f"--{k.replace('_', '-')}" for k in _ONE_REFLECTION_OPTIONS if getattr(args, k) not in (None, False)]
    if given:
        raise ConfigError(f"{', '.join(given)} apply to one reflection; several take each one's hkl and grid from "
                          "its file")
    if any(args.out.resolve() == p.resolve() for p in args.result):
        raise ConfigError("the output would overwrite an input file; choose another --out")
    hkls = None if args.hkls is None else _hkl_list(args.hkls, len(args.result))
    found = st.tensor_from_results(args.result, hkls=hkls, material=args.material, voxel_size=args.voxel_size,
                                   isosurface=args.isosurface,
                                   remove_ramp=not args.keep_ramp, order=args.order, frame=args.frame or "sample",
                                   orientation=args.orientation)
    tensor = found.tensor
    st.write_strain_tensor(args.out, tensor, config=found.config)
    if args.png:
        from .viz import save_png, strain_tensor_figure

        save_png(strain_tensor_figure(tensor, title=f"{len(args.result)} reflections"), args.out.with_suffix(".png"))
    eps = tensor.strain[:, :, tensor.support]
    misfit = "" if tensor.misfit is None else f", misfit median {np.median(tensor.misfit[tensor.support]):.1e}"
    print(f"{args.out}: {len(args.result)} reflections, {int(tensor.support.sum())} voxels ({tensor.frame} frame), "
          f"strain RMS {np.sqrt(np.mean(eps ** 2)):.2e}, dilatation mean {np.mean(np.trace(eps)):.2e}{misfit}; "
          f"orientation fit misfit ≤ {max(found.config['orientation_misfit_deg']):.3f}°; twins taken: "
          f"{sum(i['twin'] for i in found.config['alignment'])}")
    undecided = [str(p) for p, i in zip(args.result, found.config["alignment"]) if i["twin_undecided"]]
    if undecided:
        print(f"  twin undecided for {', '.join(undecided)}: the crystal's shape does not tell it and no other "
              "reflection checks it (a fourth reflection whose G the others span would)")
    for k, d in enumerate(found.dislocations):
        line, centre = np.round(d["direction"], 2).tolist(), np.round(d["centre_nm"], 1).tolist()
        print(f"  dislocation {k}: b = {d['nearest']} ({d['nearest_distance']:.2f} a off), line {line} (sample frame, "
              f"z y x), centre {centre} nm, windings {d['windings']}, {d['circuits']} circuits "
              f"({d['agreement']:.0%} agree)")


def _hkl_list(text, n):
    """[(h, k, l), ...] from '1 1 1,-1 1 1,...', one per input file."""
    try:
        hkls = [tuple(int(v) for v in part.split()) for part in text.split(",")]
    except ValueError:
        hkls = []
    if len(hkls) != n or any(len(h) != 3 or not any(h) for h in hkls):
        raise ConfigError(f"--hkls needs {n} reflections of three integers (not 0 0 0), comma-separated, one per "
                          f"file; got {text!r}")
    return hkls


def _grid_config(data):
    """The data's grid and geometry, carried into a result file for `braggscope strain`."""
    keys = ("frame", "q_basis", "g_vector", "hkl", "material", "rocking_step", "delta", "gamma", "rocking_axis",
            "sample_rotation")
    grid = {k: data.config[k] for k in keys if k in data.config}
    scan = {"energy": data.energy, "detector_distance": data.detector_distance, "pixel_size": data.pixel_size}
    return grid | {k: v for k, v in scan.items() if v is not None}


def _cycle_progress(args, recipe):
    """A tqdm bar over the recipe's cycles (none with --quiet or without a terminal)."""
    from .retrieval import parse_recipe

    if args.quiet or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=parse_recipe(recipe).cycles, unit="cycle", leave=False)

    def advance(cycle, llk):
        bar.set_postfix(llk=f"{float(min(llk)):.3f}")
        bar.update(cycle - bar.n)

    return bar, advance


def _cmd_identify(args):
    from .identify import find_defects, load_unet
    from .strain import read_strain
    from ._backend import resolve_device

    outputs = [p for p in (args.out, args.png, args.html) if p is not None]
    if any(p.resolve() == args.strain.resolve() for p in outputs):
        raise ConfigError("an output would overwrite the input file; choose other output names")
    if args.png or args.html:
        try:
            import pyvista  # noqa: F401  (checked before any file is written)
        except ImportError:
            raise OptionalDependencyError("pyvista", "viz") from None
    field = read_strain(args.strain)
    device = str(resolve_device(args.device))
    model = load_unet(args.weights, device=device) if args.method == "unet" else None
    report = find_defects(field, method=args.method, model=model, device=device)
    report.metadata["input"] = str(args.strain)
    report.to_json(args.out)
    if args.png:
        from .identify.render import render_png

        render_png(args.png, field, report.defects)
    if args.html:
        from .identify.render import export_html

        export_html(args.html, field, report.defects)
    counts = ", ".join(f"{n} {kind}" for kind, n in report.counts().items()) or "no defect"
    print(f"{args.out}: {counts} ({args.method})")


def _cmd_classify(args):
    import json

    from ._backend import resolve_device
    from .identify.classifier import PatternClassifier
    from .identify.patterns import invisible_text
    from .io import read_data
    from .io.cxi import atomic_path

    if args.json is not None and args.json.resolve() == args.data.resolve():
        raise ConfigError("--json would overwrite the input file; choose another name")
    bins = _bin_argument(args.bin)
    data = read_data(args.data)
    clf = PatternClassifier.load(args.weights, dims=2 if args.two_d else 3, device=str(resolve_device(args.device)))
    hkl = args.hkl if args.hkl is not None else data.config.get("hkl")
    verdict = clf.classify(data.intensity, data.mask, bin=bins, hkl=hkl)
    ranked = sorted(verdict.probabilities.items(), key=lambda kv: -kv[1])
    print(f"{args.data}: {verdict.label}" + ("" if verdict.known else
          f" (out of the training distribution: score {verdict.ood_score:.0f} > {verdict.ood_threshold:.0f})")
          + f"  [binned {'×'.join(map(str, verdict.bins))}]")
    for name, p in ranked:
        print(f"  {name:15s} {p:6.3f}")
    print("  " + invisible_text(verdict.hkl, verdict.invisible))
    if verdict.position:
        print("  dislocation position: " + ", ".join(f"{k} {v:.2f}" for k, v in verdict.position.items()))
    if args.json is not None:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(verdict.to_dict() | {"input": str(args.data), "dims": clf.dims}, indent=2))


def _bin_argument(values):
    """--bin's words: 'auto', or integers ≥ 1 (one, or one per axis of the data)."""
    if values == ["auto"]:
        return "auto"
    try:
        bins = [int(v) for v in values]
    except ValueError:
        raise ConfigError(f"--bin takes 'auto' or integers ≥ 1, got {' '.join(values)}") from None
    if any(b < 1 for b in bins):
        raise ConfigError(f"--bin must be ≥ 1, got {' '.join(values)}")
    return bins


def _read_micrograph(path):
    """A 2-D float32 image from TIFF, PNG/JPEG or .npy (RGB is averaged to grey)."""
    import numpy as np

    if not path.is_file():
        raise ConfigError(f"no micrograph at {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            image = tifffile.imread(path)
        elif suffix == ".npy":
            image = np.load(path, allow_pickle=False)
        elif suffix in (".png", ".jpg", ".jpeg"):
            import imageio.v3 as iio

            image = iio.imread(path)
        else:
            raise ConfigError(f"{path}: unknown micrograph format {suffix!r}; use .tif, .png or .npy")
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the micrograph ({err})") from None
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(axis=-1)
    if image.ndim != 2:
        raise ConfigError(f"{path}: a micrograph must be one 2-D image, got shape {image.shape}")
    return image.astype(np.float32)


_PLURAL = {"cavity": "cavities"}


def _cmd_tem(args):
    import json

    import numpy as np

    from ._backend import resolve_device
    from .identify.tem import TEMSegmenter, invisible_loops, invisible_loops_text, overlay_png
    from .io.cxi import atomic_path

    outputs = [p for p in (args.out, args.png) if p is not None]
    if any(p.resolve() == args.image.resolve() for p in outputs):
        raise ConfigError("--out/--png would overwrite the micrograph; choose other names")
    if args.pixel_size is not None and not args.pixel_size > 0:
        raise ConfigError(f"--pixel-size must be a positive number of nm, got {args.pixel_size}")
    if args.simulate is not None:
        import tifffile

        from .simulate.tem import random_micrograph

        if args.image.exists():
            raise ConfigError(f"{args.image} exists; --simulate writes a new micrograph and never overwrites a file")
        if args.size < 64:
            raise ConfigError(f"--size must be ≥ 64 pixels, got {args.size}")
        m = random_micrograph(args.simulate, shape=(args.size, args.size))
        if args.pixel_size not in (None, m.pixel_nm):
            raise ConfigError(f"--simulate makes a micrograph at {m.pixel_nm} nm per pixel; leave --pixel-size out")
        truth = {"pixel_nm": m.pixel_nm, "conditions": m.conditions, "objects": m.objects}
        with atomic_path(args.image) as tmp:
            tifffile.imwrite(tmp, m.image, resolution=(1 / m.pixel_nm, 1 / m.pixel_nm))
        with atomic_path(args.image.with_suffix(".truth.json")) as tmp:
            tmp.write_text(json.dumps(truth, indent=1))
        args.pixel_size = m.pixel_nm
        args.g = args.g or m.conditions["g"]
    hidden = None if args.g is None else invisible_loops(args.g)
    if args.pixel_size is None:
        raise ConfigError("give the pixel size of the micrograph with --pixel-size [nm]")
    image = _read_micrograph(args.image)
    result = TEMSegmenter.load(args.weights, device=str(resolve_device(args.device))).detect(image, args.pixel_size)
    counts, dens = result.counts(), result.densities()
    print(f"{args.image}: {result.field_um2:.4g} µm², " + ", ".join(
        f"{counts[c]} {c if counts[c] == 1 else _PLURAL.get(c, c + 's')} ({dens[c]:.3g} µm⁻²)" for c in counts))
    for c in counts:
        d = [o["diameter_nm"] for o in result.objects if o["class"] == c]
        if d:
            print(f"  {c:12s} diameter median {np.median(d):.1f} nm (range {min(d):.1f}–{max(d):.1f})")
    if hidden is not None:
        print("  " + invisible_loops_text(args.g))
    if args.out is not None:
        extra = {"input": str(args.image)}
        if hidden is not None:
            extra |= {"g": list(args.g), "g_dot_b_zero_loops": {k: [list(b) for b in v] for k, v in hidden.items()}}
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(result.to_dict() | extra, indent=1))
    if args.png is not None:
        overlay_png(args.png, image, result)


def _cmd_laue(args):
    return _laue_simulate(args) if args.laue_command == "simulate" else _laue_analyse(args)


def _laue_simulate(args):
    import numpy as np

    from .io.laue import write_laue
    from .simulate.laue import Beam, LaueDetector, Spectrum, laue_pattern, record
    from .simulate.polycrystal import GRAIN_CONTENTS, Grain, Polycrystal, grain_defects, voronoi_polycrystal

    if args.out.exists():
        raise ConfigError(f"{args.out} exists; choose a new name (inputs are never overwritten)")
    if args.content not in GRAIN_CONTENTS + ("mixed",):
        raise ConfigError(f"--content must be one of {', '.join(GRAIN_CONTENTS)} or mixed, got {args.content!r}")
    detector = LaueDetector(distance=args.calibration[0], xcen=args.calibration[1], ycen=args.calibration[2],
                            xbet=args.calibration[3], xgam=args.calibration[4], pixel_size=args.pixel_size,
                            shape=tuple(args.detector_shape))
    beam = Beam(fwhm=args.beam_fwhm, spectrum=Spectrum(*args.band))
    texture = None if args.texture is None else (args.texture[:3], args.texture[3])
    poly = voronoi_polycrystal(args.grid, args.voxel_size, args.grains, structure=args.structure, texture=texture,
                               seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    box = np.array(args.grid) * args.voxel_size
    grains = []
    for g in poly.grains:
        content = GRAIN_CONTENTS[rng.integers(len(GRAIN_CONTENTS))] if args.content == "mixed" else args.content
        grains.append(Grain(g.orientation, g.structure, strain=g.strain,
                            defects=grain_defects(content, g.orientation, g.structure, box, rng,
                                                 beam_axis=beam.axis_in_sample)))
    poly = Polycrystal(poly.grain_map, poly.voxel_size, tuple(grains))
    pattern = laue_pattern(poly, detector, beam)
    frame = record(pattern, peak_counts=args.peak_counts, seed=args.seed)
    write_laue(args.out, frame, detector, beam, pattern=pattern, grain_map=poly.grain_map, voxel_size=poly.voxel_size,
               tiff=args.tiff)
    lit = [g for g in pattern.grains if g["illuminated_volume_nm3"] > 0]
    print(f"{args.out}: {len(pattern.spots)} spots from {len(lit)} illuminated grains of {len(poly.grains)}; "
          f"{int(frame.saturated.sum())} saturated pixels")
    if args.png is not None:
        from .viz import laue_png

        laue_png(args.png, frame.counts, pattern.spots)


def _laue_analyse(args):
    import json

    import numpy as np

    from .identify.laue import LaueAnalyser
    from .io.cxi import atomic_path
    from .io.laue import read_det, read_frame, read_laue
    from .simulate.laue import Beam
    from .simulate.structure import get_structure

    if args.json is not None and args.json.resolve() == args.frame.resolve():
        raise ConfigError("--json would overwrite the frame; choose another name")
    if args.frame.suffix.lower() in (".tif", ".tiff"):
        if args.det is None:
            raise ConfigError("a .tif frame needs its calibration: --det CALIB.det (LaueTools' file)")
        data = {"counts": read_frame(args.frame), "detector": read_det(args.det), "beam": Beam()}
        if data["counts"].shape != data["detector"].shape:
            raise ConfigError(f"the frame is {data['counts'].shape} but {args.det} describes "
                              f"{data['detector'].shape} pixels")
    else:
        data = read_laue(args.frame)
    if args.structure is not None:
        get_structure(args.structure)  # an unknown name is a user error before anything is read
    if args.orientation is not None:
        if args.structure is None:
            raise ConfigError("give the grain's --structure with --orientation")
        grains = [{"grain": 0, "structure": args.structure, "orientation_lab": _rotation(args.orientation)}]
    elif "grains" in data:
        to_lab = data["beam"].sample_to_lab
        grains = [{"grain": g["grain"], "structure": args.structure or g["structure"],
                   "orientation_lab": to_lab @ np.array(g["orientation"])}
                  for g in data["grains"] if g["illuminated_volume_nm3"] > 0]
    else:
        raise ConfigError(f"{args.frame} holds no ground truth; give a grain's --orientation and --structure")
    analyser = LaueAnalyser.load(args.weights)
    estimates = analyser.analyse_grains(data["counts"], [(g["structure"], g["orientation_lab"]) for g in grains],
                                        detector=data["detector"], beam=data["beam"])
    results = []
    for g, estimate in zip(grains, estimates):
        if isinstance(estimate, ConfigError):
            print(f"  grain {g['grain']}: skipped ({estimate})")
            continue
        d = estimate.to_dict()
        results.append({"grain": g["grain"], "structure": g["structure"]} | d)
        strain = np.array(d["deviatoric_strain"]) * 1e4
        print(f"  grain {g['grain']} ({g['structure']}): {estimate.defect_class} "
              f"(p = {estimate.probabilities[estimate.defect_class]:.2f}); deviatoric strain ×10⁻⁴ "
              f"zz {strain[0, 0]:+.1f} yy {strain[1, 1]:+.1f} xx {strain[2, 2]:+.1f} "
              f"zy {strain[0, 1]:+.1f} zx {strain[0, 2]:+.1f} yx {strain[1, 2]:+.1f}")
    if args.json is not None:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"input": str(args.frame), "grains": results}, indent=1))


def _rotation(values):
    """The rotation nearest to the 3 × 3 matrix `values` (row by row), e.g. an indexing's orientation
    matrix carrying a little strain; a user error if it is not within 1 % of a proper rotation."""
    import numpy as np
    from scipy.linalg import polar

    m = np.reshape(np.asarray(values, dtype=float), (3, 3))
    if not np.all(np.isfinite(m)) or np.linalg.det(m) <= 0 or np.abs(m @ m.T - np.eye(3)).max() > 0.01:
        raise ConfigError("--orientation must be a proper rotation matrix (crystal → lab frame, row by row), "
                          "within 1 % of orthonormal")
    return polar(m)[0]


def _hkl_list(text, name):
    """'h k l,h k l' → [(h, k, l), ...]."""
    try:
        out = [tuple(float(v) for v in part.split()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--{name}: expected 'h k l,h k l', got {text!r}") from None
    if any(len(v) != 3 for v in out):
        raise ConfigError(f"--{name}: every entry needs three numbers, got {text!r}")
    return out


def _print_scan(scan, planner, reasons=None):
    from .acquisition import oversampling, peak_count_rate
    from .acquisition.sampling import dose

    space = planner.space
    sigma = oversampling(scan, space.instrument, space.material, space.size)
    rate = peak_count_rate(scan, space.instrument, space.material, space.volume)
    explained = planner.explain(scan)
    why = reasons or explained
    rows = [("reflection", f"{' '.join(map(str, scan.hkl))}", ""),
            ("detector distance", f"{scan.detector_distance:.3f} m", why.get("detector_distance", "")),
            ("rocking step", f"{scan.rocking_step:.4f}°", why.get("rocking_step", "")),
            ("rocking range", f"{scan.rocking_range:.3f}° ({scan.frames} frames)", why.get("rocking_range", "")),
            ("count time", f"{scan.count_time:.3g} s per frame", why.get("count_time", ""))]
    for name, value, reason in rows:
        print(f"  {name:18s} {value:28s} {reason}")
    print(f"  oversampling {sigma[0]:.2f} (rocking) × {sigma[1]:.2f} × {sigma[2]:.2f} (detector); peak {rate:.3g} "
          f"ph/s (limit {space.instrument.max_count_rate:.3g}); beam time {planner.beam_time(scan):.0f} s; "
          f"dose {dose(scan, space.instrument, space.material) / 1e6:.3g} MGy")
    if explained["violations"]:
        print("  breaks: " + "; ".join(explained["violations"]))


def _cmd_plan(args):
    from .acquisition import Instrument, Planner, rank_reflections

    budget = None if args.budget_minutes is None else args.budget_minutes * 60
    hkl = tuple(args.hkl)
    others = [tuple(int(v) for v in h) for h in _hkl_list(args.reflections, "reflections")]
    reflections = list(dict.fromkeys([hkl] + others))  # the aligned one first, no repeats
    instrument = Instrument(energy=args.energy, pixel_size=args.pixel_size, flux_density=args.flux_density,
                            max_count_rate=args.max_count_rate, crop=args.crop)
    burgers = _hkl_list(args.burgers, "burgers")
    if burgers:
        print("reflections by the visibility rule (G·b = 0 hides a dislocation):")
        for r in rank_reflections(reflections, burgers=burgers, material=args.material, energy=args.energy):
            print(f"  {r['hkl']}: shows {r['shows']} of {len(burgers)}, |G| {r['g_norm']:.1f} 1/nm, "
                  f"relative strength {r['strength']:.2f}" +
                  ("; hides " + ", ".join(f"{kind} = {list(v)}" for kind, v in r["hidden"]) if r["hidden"] else ""))
    if args.simulate:
        return _plan_simulate(args, reflections, instrument, budget)
    if args.state is not None and args.state.exists():
        planner = Planner.load(args.state)
    else:
        planner = Planner(args.crystal_size, args.material, reflections, instrument=instrument, budget=budget,
                          volume=args.volume, objective=args.objective, seed=args.seed, state_path=args.state)
    if not planner.observations and not planner.pending:
        design = planner.formula_design()
        print(f"formula design for a {planner.space.size:g} nm {planner.space.material.name} crystal at "
              f"{' '.join(map(str, planner.current_hkl))}:")
        _print_scan(design.scan, planner, design.reasons)
    if args.state is not None:
        for scan in planner.ask(args.batch):
            print(f"suggestion {len(planner.observations) + planner.pending.index(scan) + 1} "
                  f"(told {len(planner.observations)}; {planner.last_suggest_seconds:.2f} s to suggest):")
            _print_scan(scan, planner)
        print(f"session saved to {args.state}: tell results with braggscope.acquisition.Planner.load(...).tell(...)")


def _plan_simulate(args, reflections, instrument, budget):
    import json

    from .acquisition import DEFAULT_SCAN, Planner, random_beamline
    from .viz import planning_figure, save_png

    inscribed = args.crystal_size / 1.3  # a faceted crystal's largest extent is about 1.3 inscribed diameters
    beamline = random_beamline(args.seed, size=(inscribed, inscribed), material=args.material, instrument=instrument,
                               current_hkl=reflections[0])
    planner = Planner(args.crystal_size, args.material, reflections, instrument=instrument, budget=budget,
                      volume=args.volume, objective=args.objective, seed=args.seed)
    print(f"simulated {args.material} crystal: largest extent {beamline.true_size:.0f} nm "
          f"({len(beamline.defects) - 1} dislocation(s) in a smooth strain field); the planner believes "
          f"{args.crystal_size:g} nm")
    formula = beamline(planner.formula_design().scan)
    default = beamline(DEFAULT_SCAN) if DEFAULT_SCAN.hkl in reflections else None
    for call in range(args.simulate):
        scan = planner.ask()[0]
        result = beamline(scan)
        planner.tell(scan, result)
        print(f"  {call + 1:3d}: J {result.efficiency:6.2f}  error {result.displacement_error * 1e3:6.2f} pm  "
              f"time {result.beam_time:6.0f} s  {scan.frames} frames × {scan.count_time:.3g} s at "
              f"{scan.detector_distance:.2f} m, {' '.join(map(str, scan.hkl))}")
    best = planner.recommend()
    print(f"recommended: J {best.efficiency:.2f} as measured (formula design {formula.efficiency:.2f}"
          + (f", beamline default {default.efficiency:.2f})" if default else ")"))
    _print_scan(best.scan, planner)
    args.out.mkdir(parents=True, exist_ok=True)
    planner.save(args.out / "plan.json")
    references = {"formula design": formula.efficiency}
    if default is not None:
        references["beamline default"] = default.efficiency
    save_png(planning_figure(planner.observations, references=references,
                             title=f"{args.material}, {args.crystal_size:g} nm"), args.out / "planning.png")
    summary = {"recommended": {**best.scan.as_dict(), "error_nm": best.error, "beam_time_s": best.beam_time,
                               "J": best.efficiency}, "formula_J": formula.efficiency,
               "default_J": None if default is None else default.efficiency}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"written: {args.out / 'plan.json'}, {args.out / 'planning.png'}, {args.out / 'summary.json'}")


def _cmd_run(args):
    from dataclasses import replace

    from .pipeline import Pipeline, load_config

    config = load_config(args.config)
    changes = {k: v for k, v in (("kind", args.cluster), ("workers", args.workers)) if v is not None}
    if changes:
        config = replace(config, cluster=replace(config.cluster, **changes))

    def report(row):
        detail = row.get("error") or ", ".join(row.get("flags", [])) or "no flag"
        log.info("scan %s: %s (%s)", row["scan"], row["status"], detail)

    rows = Pipeline(config).run(args.scans, force=args.force, progress=report)
    failed = [r for r in rows if r["status"] == "failed"]
    print(f"{config.output}: {len(rows) - len(failed)} of {len(rows)} scans done "
          f"({sum(r['status'] == 'skipped' for r in rows)} were complete already), {len(failed)} failed; "
          f"summary.html lists them")
    return 1 if failed else 0


def _cmd_demo(args):
    from .demo import run_demo

    bar, step = _progress(args, 12)
    files = run_demo(args.out, seed=args.seed, device=args.device, progress=step)
    if bar is not None:
        bar.close()
    log.info("demo written to %s: reconstruction error %.3f against the truth (LLK %.2f); files: %s", args.out,
             files["error"], files["llk"], ", ".join(Path(p).name for k, p in files.items()
                                                      if k in ("data", "result", "report") or k.endswith("png")))


def _cmd_bench(args):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{args.name}.py"
    if not script.is_file():
        available = sorted(p.stem for p in script.parent.glob("*.py")) if script.parent.is_dir() else []
        raise ConfigError(f"no benchmark '{args.name}' in {script.parent} (available: {', '.join(available) or 'none'}; "
                          "benchmarks run from a source checkout)")
    cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
    return subprocess.call(cmd)


_COMMANDS = {"simulate": _cmd_simulate, "reconstruct": _cmd_reconstruct, "strain": _cmd_strain,
             "identify": _cmd_identify, "classify": _cmd_classify, "tem": _cmd_tem, "laue": _cmd_laue,
             "plan": _cmd_plan, "run": _cmd_run, "demo": _cmd_demo, "bench": _cmd_bench}


def main(argv=None) -> int:
    """Entry point of the `braggscope` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    try:
        status = _COMMANDS[args.command](args)
    except BraggscopeError as err:
        if args.debug:
            raise
        print(f"braggscope {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
