"""The `braggscope` command line: a thin layer that parses, calls one public function and
writes files. User errors print one line and exit with status 2 (--debug shows the traceback)."""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from .errors import BraggscopeError, ConfigError

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
                         description="Reconstruct the complex object: N random starts (one batch with the torch "
                                     "engine), ranked by free LLK; the best K are combined (dominant mode or "
                                     "average), centred, phase ramp removed, and written in PyNX's result layout.")
    rec.add_argument("data", type=Path, help="data file (.cxi, .h5, .npz, .npy)")
    rec.add_argument("--out", type=Path, required=True, help="result .cxi file")
    rec.add_argument("--algorithm", default=None, help="recipe, e.g. 'ER**200 * (ShrinkWrap * RAAR**20)**30'")
    rec.add_argument("--runs", type=int, default=4, help="random starts")
    rec.add_argument("--keep", type=int, default=None, help="best runs combined (default: half the runs)")
    rec.add_argument("--combine", choices=("mode", "average"), default="mode", help="how kept runs are combined")
    rec.add_argument("--prepare", action="store_true", help="mask hot pixels and aliens before phasing")
    rec.add_argument("--device", default="auto", help="auto, cpu or cuda")
    rec.add_argument("--backend", choices=("torch", "pynx"), default="torch", help="phase-retrieval engine")
    rec.add_argument("--seed", type=int, default=0)
    _add_common(rec)

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
    defects = [d for k in kinds for d in random_defects(xtal, rng, kinds=(k,), count=(1, 1))]
    if args.random_defects:
        defects += random_defects(xtal, rng, count=(args.random_defects, args.random_defects))
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
    from .io import read_data, write_cxi_result
    from .retrieval import DEFAULT_RECIPE, combine_runs, prepare, reconstruct

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
    recipe = args.algorithm or DEFAULT_RECIPE
    bar, progress = _cycle_progress(args, recipe)
    try:
        result = reconstruct(intensity, recipe, mask=mask, n_runs=args.runs, rng=args.seed, device=args.device,
                             backend=args.backend, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    sol = combine_runs(result, intensity, mask, keep=keep, method=args.combine)
    write_cxi_result(args.out, sol.obj, sol.support, llk=sol.llk, free_llk=sol.free_llk, history=result.run_history(0),
                     config=result.config | {"seed": args.seed, "data": str(args.data), "keep": keep,
                                             "combine": args.combine, "prepare": report},
                     results={"run_llk_poisson": result.llk, "run_free_llk_poisson": result.free_llk,
                              "mode_fraction": sol.mode_fraction, "run_errors": sol.run_errors,
                              "twins_flipped": sol.twins_flipped, "phase_ramp": list(sol.phase_ramp),
                              "prtf_frequency": sol.prtf["frequency"], "prtf": sol.prtf["prtf"],
                              "prtf_resolution": sol.prtf["resolution"]})
    print(f"{args.out}: {result.recipe} on {args.backend}/{result.config['device']}, best {keep} of {args.runs} runs "
          f"({args.combine}, mode fraction {sol.mode_fraction:.3f}): LLK {sol.llk:.3f}, free LLK {sol.free_llk:.3f}, "
          f"support {int(sol.support.sum())} voxels, PRTF resolution {sol.prtf['resolution']:.2f} voxels")


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


def _cmd_demo(args):
    from .demo import run_demo

    bar, step = _progress(args, 5)
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


_COMMANDS = {"simulate": _cmd_simulate, "reconstruct": _cmd_reconstruct, "demo": _cmd_demo, "bench": _cmd_bench}


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
