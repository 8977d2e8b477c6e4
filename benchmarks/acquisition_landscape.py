"""How much better than the formula design can any scan be? (issue: scan planning)

The planner starts from the formula design (`braggscope.acquisition.formula_design`); random search
draws from the same feasible space. Neither can beat the other by more than the space holds. On the
crystals of benchmarks/acquisition.py (same seeds, beamline and J = log10(error² [nm²] × beam time
[s])), this measures the expected J of the formula design (FORMULA_DRAWS fresh measurements) and of
the best scans of a wide screen: SCREEN feasible Sobol scans of the whole space, each measured
SCREEN_DRAWS times, and the TOP of lowest mean J measured FRESH_DRAWS times more on fresh noise (so
that the screen's luck does not count).

Prints one JSON object on its last line:
- formula_J, best_screened_J: median over seeds of the formula design's mean J and of the lowest
  fresh mean J among the TOP screened scans (a min over TOP noisy means: if anything biased low, in
  the screen's favour);
- gap_J: median over seeds of best_screened_J - formula_J (negative: some scan beats the formula
  design), with gap_J_min, the largest gain of any seed;
- formula_J_sd: median over seeds of the spread (standard deviation) of one measurement's J at the
  formula design;
- per_seed: every seed's figures and the screened scans' coordinates (the planner's unit box);
  seeds, screen sizes, seconds, device.
Run: python benchmarks/acquisition_landscape.py [--quick] [--seeds N] [--workers W]
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device, emit  # noqa: E402
from acquisition import BUDGET, CROP, CYCLES, _setup  # noqa: E402

SCREEN = 24  # Sobol scans of the whole feasible space
SCREEN_DRAWS = 4
TOP = 3
FRESH_DRAWS = 8
FORMULA_DRAWS = 8


def landscape(seed, quick=False):
    """The formula design's and the best screened scans' J on the crystal of `seed` (`quick`: a
    screen of 4 scans, 2 measurements each, and 4 of the best one and of the formula design)."""
    screen, screen_draws, top_n, fresh_draws, formula_draws = ((4, 2, 1, 4, 4) if quick else
                                                               (SCREEN, SCREEN_DRAWS, TOP, FRESH_DRAWS, FORMULA_DRAWS))
    beamline, planner = _setup(seed)
    space = planner.space
    measure = lambda scan, n: np.array([beamline(scan).efficiency for _ in range(n)])
    formula_scan = planner.formula_design().scan
    formula = measure(formula_scan, formula_draws)
    x, k = planner.candidates(n_sobol=256, n_local=0, sobol_seed=seed)
    pick = np.random.default_rng(seed).choice(len(x), size=min(screen, len(x)), replace=False)
    scans = [space.scan(x[i], k[i]) for i in pick]
    screened = np.array([measure(s, screen_draws).mean() for s in scans])
    top = np.argsort(screened)[:top_n]
    fresh = np.array([measure(scans[i], fresh_draws).mean() for i in top])
    line = {"seed": seed, "sizes": {"screen": screen, "screen_draws": screen_draws, "top": top_n,
                                    "fresh_draws": fresh_draws, "formula_draws": formula_draws},
            "formula_J": float(formula.mean()), "formula_J_sd": float(formula.std(ddof=1)),
            "best_screened_J": float(fresh.min()), "top_screened_J": screened[top].round(3).tolist(),
            "top_fresh_J": fresh.round(3).tolist(), "screened_J": screened.round(3).tolist(),
            "screened_x": [space.point(s)[0].round(3).tolist() for s in scans],
            "formula_x": space.point(formula_scan)[0].round(3).tolist()}
    print(f"seed {seed}: formula {line['formula_J']:.2f} ± {line['formula_J_sd']:.2f}, best screened "
          f"{line['best_screened_J']:.2f} (screen {screened[top[0]]:.2f})", file=sys.stderr, flush=True)
    return line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, a screen of 4 scans and fewer measurements")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 4)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        lines = list(pool.map(landscape, range(seeds), [args.quick] * seeds))
    col = lambda key: np.array([line[key] for line in lines], float)
    gap = col("best_screened_J") - col("formula_J")
    emit({"benchmark": "acquisition_landscape", "formula_J": float(np.median(col("formula_J"))),
          "best_screened_J": float(np.median(col("best_screened_J"))), "gap_J": float(np.median(gap)),
          "gap_J_min": float(gap.min()), "formula_J_sd": float(np.median(col("formula_J_sd"))),
          "per_seed": lines, "seeds": seeds, "sizes": lines[0]["sizes"], "window": [CROP, CROP], "cycles": CYCLES,
          "budget_s": BUDGET, "seconds": time.perf_counter() - start, "device": device()})


if __name__ == "__main__":
    main()
