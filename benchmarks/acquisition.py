"""Benchmark of scan planning (issue: scan planning): the Bayesian planner against random (Sobol)
search, a coarse grid, the formula design and a typical beamline default, on a simulated beamline.

Each seed is a random crystal (faceted Pt, inscribed diameter 150–250 nm, smooth strain, one dislocation in 30 % of
them) measured with the detector model in the detector frame (a 32-pixel window, Poisson noise,
count-rate saturation), reconstructed by the engine (400 cycles, 4 runs, the best by free LLK) and scored against the
truth. Every method gets the same crystal, the same feasible space and the same number of
simulator calls; the design each method recommends is then measured REMEASURES more times on fresh noise,
and the mean of those J is the one compared, so that no method profits from a lucky draw (and one unlucky
re-measurement, a reconstruction that lands in a wrong minimum, weighs less) (the planner recommends with
`Planner.recommend`: the told scan of lowest J by its Gaussian process's posterior mean; random search and
the grid their lowest J seen).

Prints one JSON object on its last line:
- median_J, random_median_J, grid_median_J: median over seeds of the re-measured J = log10(error²
  [nm²] × beam time [s]) of the planner's, random search's and the grid's recommendation (the grid:
  levels 1/4 and 3/4 of each of the four search coordinates, the 8 points of a 2⁴⁻¹ fractional
  factorial, those that keep to the constraints);
- formula_J, default_J: median J of the formula design and of the default (1° over 64 frames,
  1 s per frame, 0.5 m), each measured REMEASURES times like the recommendations (mean J);
- calls_to_formula_J: median number of planner calls until its best J is at or below the formula
  design's J (measured apart; the planner's own first call is the formula design); calls >
  CALLS count as CALLS + 1;
- time_fraction_to_match_default: median over seeds of the least beam time among the planner's
  scans whose error is at or below the default's, over the default's beam time (1 + if none);
- wilcoxon_p_vs_random: one-sided Wilcoxon signed-rank p that the planner's J is below random
  search's (paired by seed);
- violations: planner suggestions that break saturation or oversampling for the true crystal;
- suggest_s: mean seconds per Gaussian-process suggestion; pareto_front: the error–time front of
  the planner's scans of the first seed; per_seed: every seed's figures, the planner's best-so-far
  trace and its scans (frames, count time [s], distance [m], step [deg], J); seeds, calls, sizes,
  device.
Run: python benchmarks/acquisition.py [--quick] [--seeds N] [--workers W]
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device, emit  # noqa: E402

CROP = 32
CYCLES = 400
REMEASURES = 3  # fresh measurements of each method's recommended design
BUDGET = 600.0  # [s] per scan


def _setup(seed):
    import torch

    torch.set_num_threads(1)  # small GPs and 32-pixel FFTs: one thread per worker
    from braggscope.acquisition import Instrument, Planner, random_beamline

    beamline = random_beamline(seed, instrument=Instrument(crop=CROP), cycles=CYCLES, current_hkl=(1, 1, 1))
    size = float(np.ceil(beamline.true_size / 10) * 10)  # the experimenter's estimate, rounded up to 10 nm
    planner = Planner(size, "Pt", [(1, 1, 1)], instrument=beamline.instrument, budget=BUDGET, seed=seed)
    return beamline, planner


def _best(observations):
    return min(observations, key=lambda o: o[1].efficiency)


def _measured(beamline, scan):
    """`scan` measured REMEASURES times, as one ScanResult with the geometric mean error, so that its J
    (log10(error² × beam time), the beam time fixed by the scan) is the mean J."""
    results = [beamline(scan) for _ in range(REMEASURES)]
    error = float(np.exp(np.mean([np.log(r.displacement_error) for r in results])))
    return dataclasses.replace(results[0], displacement_error=error)


def _search(beamline, scans):
    """Measure every scan: [(scan, result)]."""
    return [(s, beamline(s)) for s in scans]


def run_seed(seed, calls):
    """Every method on the crystal of `seed`; a dict of per-seed figures."""
    from braggscope.acquisition import DEFAULT_SCAN

    beamline, planner = _setup(seed)
    space = planner.space
    formula = _measured(beamline, planner.formula_design().scan)
    default = _measured(beamline, DEFAULT_SCAN)
    # the planner
    planned, suggest_s, violations = [], [], 0
    for _ in range(calls):
        scan = planner.ask()[0]
        if len(planner.observations) >= planner.n_init:
            suggest_s.append(planner.last_suggest_seconds)
        violations += bool([v for v in beamline.check(scan) if "oversampling" in v or "count" in v])
        result = beamline(scan)
        planner.tell(scan, result)
        planned.append((scan, result))
    # random search: Sobol points of the same feasible space
    x, k = planner.candidates(n_sobol=256, n_local=0)
    pick = np.random.default_rng(seed).choice(len(x), size=min(calls, len(x)), replace=False)
    randoms = _search(beamline, [space.scan(x[i], k[i]) for i in pick])
    # coarse grid: two levels of each of the four parameters in a half fraction of the 2⁴ factorial
    # (the fourth level is the product of the other three: 8 points), the feasible ones
    full = np.array(list(itertools.product((-1, 1), repeat=3)))
    levels = 0.5 + 0.25 * np.column_stack([full, full.prod(axis=1)])
    ok = space.feasible(levels, np.zeros(len(levels), int), budget=BUDGET)
    grid = _search(beamline, [space.scan(p, 0) for p in levels[ok]])
    # the planner recommends by its model's posterior mean; random search and the grid by the best J seen
    recommended = {"planner": planner.recommend().scan, "random": _best(randoms)[0], "grid": _best(grid)[0]}
    again = {name: _measured(beamline, scan).efficiency for name, scan in recommended.items()}
    best_so_far = np.minimum.accumulate([r.efficiency for _, r in planned])
    reached = np.flatnonzero(best_so_far <= formula.efficiency)
    matching = [r.beam_time for _, r in planned if r.displacement_error <= default.displacement_error]
    line = {"seed": seed, "J": again["planner"], "random_J": again["random"], "grid_J": again["grid"],
            "formula_J": formula.efficiency, "default_J": default.efficiency,
            "calls_to_formula_J": int(reached[0] + 1) if reached.size else calls + 1,
            "time_fraction_to_match_default": (min(matching) / default.beam_time) if matching else
            1.0 + min(r.beam_time for _, r in planned) / default.beam_time,
            "violations": violations, "suggest_s": float(np.mean(suggest_s)) if suggest_s else float("nan"),
            "dislocation": len(beamline.defects) > 1,  # the smooth strain, then any dislocation
            "trace": [float(v) for v in best_so_far],
            "planner_scans": [[s.frames, round(s.count_time, 4), round(s.detector_distance, 3),
                               round(s.rocking_step, 5), round(r.efficiency, 3)] for s, r in planned],
            "front": [[o.beam_time, o.error] for o in planner.pareto_front()]}
    print(f"seed {seed}: J {line['J']:.2f} random {line['random_J']:.2f} grid {line['grid_J']:.2f} formula "
          f"{line['formula_J']:.2f} default {line['default_J']:.2f} calls→formula {line['calls_to_formula_J']} "
          f"time→default {line['time_fraction_to_match_default']:.2f}", file=sys.stderr, flush=True)
    return line


def main(argv=None):
    from scipy.stats import wilcoxon

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 8 calls (no Wilcoxon test)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 10)
    calls = args.calls or (8 if args.quick else 20)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        lines = list(pool.map(run_seed, range(seeds), [calls] * seeds))
    col = lambda key: np.array([line[key] for line in lines], float)
    p = float(wilcoxon(col("J"), col("random_J"), alternative="less").pvalue) if seeds >= 6 else float("nan")
    emit({"benchmark": "acquisition", "median_J": float(np.median(col("J"))),
          "random_median_J": float(np.median(col("random_J"))), "grid_median_J": float(np.median(col("grid_J"))),
          "formula_J": float(np.median(col("formula_J"))), "default_J": float(np.median(col("default_J"))),
          "calls_to_formula_J": float(np.median(col("calls_to_formula_J"))),
          "time_fraction_to_match_default": float(np.median(col("time_fraction_to_match_default"))),
          "wilcoxon_p_vs_random": p, "violations": int(col("violations").sum()),
          "suggest_s": float(np.nanmean(col("suggest_s"))), "seeds": seeds, "calls": calls,
          "pareto_front_seed0": lines[0]["front"], "per_seed": [{k: v for k, v in line.items() if k != "front"}
                                                               for line in lines],
          "window": [CROP, CROP], "cycles": CYCLES, "runs": 4, "budget_s": BUDGET, "remeasures": REMEASURES,
          "seconds": time.perf_counter() - start, "device": device()})


if __name__ == "__main__":
    main()
