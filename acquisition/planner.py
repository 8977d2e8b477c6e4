"""Bayesian scan planning with BoTorch: an ask/tell loop a beamline control system (Bluesky, BLISS)
calls between scans, with its state in a JSON file so that a session can stop and resume.

The planner searches the scans a crystal of the given size allows, written in the quantities
that the sampling conditions are about: the oversampling of the detector plane (which sets the
detector distance) and of the rocking curve (the rocking step), the rocking direction's
resolution relative to the detector window's (the number of frames), the count time, and the
reflection. Oversampling ≥ 2 holds by construction; the count-rate limit, the counter depth, the
photons at the window's edge and the beam-time budget are checked on every candidate. A Gaussian
process learns the quality, -log10(error²), from the scans told so far; the beam time is known
exactly. The suggestion maximises the expected improvement of the efficiency J = log10(error² ×
beam time) (``objective='efficiency'``) or the expected hypervolume improvement of the
error–time Pareto front (``objective='pareto'``) among feasible candidates in a trust region
around the model's best scan. The first scan is the formula design, the next few are Sobol
points around it, then the Gaussian process leads; every few scans its best scan is measured
again, and the recommendation is the told scan of lowest J by the model's posterior mean.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time as _time

import numpy as np

from braggscope._validate import check_choice, check_positive
from braggscope.errors import ConfigError, FileFormatError
from braggscope.materials import get_material

from .sampling import (MIN_EDGE_PHOTONS, MIN_OVERSAMPLING, Instrument, Scan, beam_time, distance_for_oversampling,
                       edge_count_rate, efficiency, formula_design, peak_count_rate, reference_scan,
                       reflection_problem, sphere_volume, step_for_oversampling, violations)

__all__ = ["Planner", "Observation", "SearchSpace"]

OVERSAMPLING_RANGE = (MIN_OVERSAMPLING, 8.0)
COUNT_TIME_RANGE = (0.01, 10.0)  # [s]
FRAME_RATIO_RANGE = (0.5, 2.0)  # rocking resolution relative to the detector window's
# half width of the trust region (in the unit search coordinates) around the formula design for the first
# scans, then around the recommendation: a local search, as TuRBO's (Eriksson et al. 2019) at a fixed size,
# because the formula design is already close and 20 noisy scans cannot map all of the space
TRUST_REGION = 0.2


@dataclasses.dataclass(frozen=True)
class Observation:
    """A scan and what it gave: the displacement error [nm] and the beam time [s]."""

    scan: Scan
    error: float
    beam_time: float
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def efficiency(self) -> float:
        """J = log10(error² × beam time)."""
        return efficiency(self.error, self.beam_time)


class SearchSpace:
    """Scans as points x ∈ [0, 1]⁴ and a reflection index, and back.

    x0: detector-plane oversampling, log-spaced in OVERSAMPLING_RANGE (→ distance);
    x1: rocking oversampling, same (→ step); x2: frames relative to those that match the
    detector window's resolution, log-spaced in FRAME_RATIO_RANGE; x3: count time, log-spaced
    in COUNT_TIME_RANGE."""

    def __init__(self, size, material, reflections, instrument: Instrument, volume=None):
        self.size = check_positive(size, "crystal size", "nm")
        self.material = get_material(material)
        self.reflections = [tuple(int(v) for v in h) for h in reflections]
        self.instrument = instrument
        self.volume = sphere_volume(size) if volume is None else check_positive(volume, "volume", "nm³")
        # per reflection: distance and step at oversampling 1, and the shortest unsaturated distance
        self.unit_distance = np.array([distance_for_oversampling(1.0, instrument, self.material, h, size)
                                       for h in self.reflections])
        self.unit_step = np.array([step_for_oversampling(1.0, instrument, self.material, h, size)
                                   for h in self.reflections])
        # [photons/s] at 1 m: the peak's rate falls as 1/distance², the mean rate at the window's edge
        # grows as distance² (Porod: 1/d² × (q_edge ∝ 1/d)⁻⁴)
        self.peak_rate_at_1m = np.array([peak_count_rate(reference_scan(h), instrument, self.material, self.volume)
                                         for h in self.reflections])
        self.edge_rate_at_1m = np.array([edge_count_rate(reference_scan(h), instrument, self.material, size,
                                                         self.volume) for h in self.reflections])
        self.min_distance = np.sqrt(self.peak_rate_at_1m / instrument.max_count_rate)  # [m] unsaturated

    @staticmethod
    def _log_map(x, lo, hi):
        return lo * (hi / lo) ** np.asarray(x, float)

    @staticmethod
    def _log_unmap(v, lo, hi):
        return float(np.clip(np.log(v / lo) / np.log(hi / lo), 0.0, 1.0))

    def parameters(self, x, k):
        """(distance [m], step [deg], frames, count time [s]) of points `x` (..., 4) at
        reflection indices `k` (...), vectorised."""
        x, k = np.asarray(x, float), np.asarray(k, int)
        s_det, s_rock = (self._log_map(x[..., i], *OVERSAMPLING_RANGE) for i in (0, 1))
        distance = self.unit_distance[k] * s_det
        step = self.unit_step[k] / s_rock
        frames = self.instrument.crop * s_rock / s_det * self._log_map(x[..., 2], *FRAME_RATIO_RANGE)
        frames = np.clip(2 * np.round(frames / 2), 8, 2 * self.instrument.crop)
        return distance, step, frames, self._log_map(x[..., 3], *COUNT_TIME_RANGE)

    def scan(self, x, k) -> Scan:
        distance, step, frames, t = (float(v) for v in self.parameters(x, k))
        return Scan(rocking_range=frames * step, rocking_step=step, count_time=t, detector_distance=distance,
                    hkl=self.reflections[int(k)])

    def point(self, scan: Scan):
        """(x, k) of `scan` (clipped into the box)."""
        if scan.hkl not in self.reflections:
            raise ConfigError(f"reflection {scan.hkl} is not among the planner's {self.reflections}")
        k = self.reflections.index(scan.hkl)
        s_det = scan.detector_distance / self.unit_distance[k]
        s_rock = self.unit_step[k] / scan.rocking_step
        ratio = scan.frames / (self.instrument.crop * s_rock / s_det)
        x = [self._log_unmap(s_det, *OVERSAMPLING_RANGE), self._log_unmap(s_rock, *OVERSAMPLING_RANGE),
             self._log_unmap(ratio, *FRAME_RATIO_RANGE), self._log_unmap(scan.count_time, *COUNT_TIME_RANGE)]
        return np.array(x), k

    def beam_time(self, x, k, current_hkl=None):
        """[s] Beam time of points `x` at reflections `k`, vectorised."""
        _, _, frames, t = self.parameters(x, k)
        ins = self.instrument
        change = np.array([current_hkl is not None and self.reflections[i] != tuple(current_hkl)
                           for i in np.ravel(k)]).reshape(np.shape(k))
        return frames * (t + ins.frame_overhead) + ins.scan_overhead + change * ins.reflection_change

    def feasible(self, x, k, *, budget=None, current_hkl=None):
        """Points that keep the peak under the count-rate limit (and the counter depth), put at
        least MIN_EDGE_PHOTONS per pixel at the window's edge, and keep the beam time within
        `budget` [s]."""
        distance, _, _, t = self.parameters(x, k)
        ok = (distance >= self.min_distance[k]) & (self.edge_rate_at_1m[k] * distance**2 * t >= MIN_EDGE_PHOTONS)
        if self.instrument.counter_depth is not None:
            ok &= self.peak_rate_at_1m[k] / distance**2 * t <= self.instrument.counter_depth
        if budget is not None:
            ok &= self.beam_time(x, k, current_hkl) <= budget
        return ok


class Planner:
    """Ask/tell Bayesian optimiser of the next scan of one crystal.

    Parameters
    ----------
    size : float
        [nm] Largest extent of the crystal (from SEM, or a pre-scan).
    material : str
    reflections : sequence of hkl
        Reflections the planner may choose; the first is the one the crystal is aligned on.
    instrument : Instrument
    budget : float, optional
        [s] Most beam time one scan may take.
    volume : float, optional
        [nm³] Crystal volume (default: the sphere of diameter `size`, an upper bound, so the
        saturation check errs on the safe side).
    objective : {'efficiency', 'pareto'}
        Minimise J = log10(error² × time), or grow the error–time Pareto front.
    n_init : int
        Scans before the Gaussian process leads: the formula design, then Sobol points.
    replicate_every : int
        Every this many scans, measure the model's best scan again if it was measured once (0:
        never): a reconstruction's outcome is noisy, and the best J seen is biased low by the
        luckiest draw; a repeat tells a reliable design from a lucky one.
    seed : int
    state_path : str, optional
        JSON file written after every ask and tell (``Planner.load`` resumes from it).

    Examples
    --------
    >>> planner = Planner(size=300, material="Pt", reflections=[(1, 1, 1)], budget=600)
    >>> scan = planner.ask()[0]            # the formula design first
    >>> planner.tell(scan, error=0.004, beam_time=60.0)
    >>> len(planner.observations)
    1
    """

    def __init__(self, size, material="Pt", reflections=((1, 1, 1),), *, instrument: Instrument = Instrument(),
                 budget=None, volume=None, objective="efficiency", n_init=4, replicate_every=4, seed=0,
                 state_path=None):
        check_choice(objective, "objective", {"efficiency", "pareto"})
        if not reflections:
            raise ConfigError("give the planner at least one reflection")
        self.space = SearchSpace(size, material, reflections, instrument, volume)
        self.budget = None if budget is None else check_positive(budget, "budget", "s")
        self.objective, self.n_init, self.seed = objective, int(n_init), int(seed)
        self.replicate_every = int(replicate_every)
        self.current_hkl = self.space.reflections[0]
        self.observations: list[Observation] = []
        self.pending: list[Scan] = []
        self.state_path = state_path
        self.last_suggest_seconds = 0.0
        problems = [p for p in (reflection_problem(material, h, instrument) for h in self.space.reflections) if p]
        if problems:
            raise ConfigError("; ".join(problems))
        self._fitted = None  # (observations it was fitted on, model, inputs)

    # ---- the loop -------------------------------------------------------------------------
    def ask(self, n=1) -> list[Scan]:
        """The next `n` scans to measure (a batch: each one knows the others are pending)."""
        start = _time.perf_counter()
        out = []
        for _ in range(int(n)):
            told = len(self.observations) + len(self.pending)
            if told == 0:
                scan = self.formula_design().scan
            elif len(self.observations) < self.n_init:
                scan = self._sobol(told)
            elif self.replicate_every and (told + 1) % self.replicate_every == 0 and self._worth_repeating():
                scan = self.recommend().scan
            else:
                scan = self._suggest()
            self.pending.append(scan)
            out.append(scan)
        self.last_suggest_seconds = (_time.perf_counter() - start) / max(int(n), 1)
        self._autosave()
        return out

    def _worth_repeating(self) -> bool:
        """The model's best scan has been measured once only and is not pending."""
        scan = self.recommend().scan
        return scan not in self.pending and sum(o.scan == scan for o in self.observations) < 2

    def tell(self, scan: Scan, result=None, *, error=None, beam_time=None, **extra):
        """Report what `scan` gave: a :class:`~braggscope.acquisition.beamline.ScanResult` (or a
        dict with 'displacement_error' and 'beam_time'), or `error` [nm] and `beam_time` [s]."""
        if result is not None:
            d = result.as_dict() if hasattr(result, "as_dict") else dict(result)
            error, beam_time = d.pop("displacement_error"), d.pop("beam_time")
            extra = {**d, **extra}
        if error is None or not np.isfinite(error) or error <= 0:
            raise ConfigError(f"`error` must be a positive number of nm, got {error!r}")
        if beam_time is None:
            beam_time = self.beam_time(scan)
        self.space.point(scan)  # the reflection must be one of the planner's
        self.observations.append(Observation(scan, float(error), float(beam_time), _jsonable(extra)))
        if scan in self.pending:
            self.pending.remove(scan)  # one of them: a repeated scan may be pending twice
        self._autosave()

    def beam_time(self, scan: Scan) -> float:
        """[s] What `scan` costs from the crystal's current reflection."""
        return beam_time(scan, self.space.instrument, current_hkl=self.current_hkl)

    def formula_design(self):
        """The design from the sampling formulas (:func:`~braggscope.acquisition.sampling.formula_design`)."""
        return formula_design(self.space.size, self.space.material, self.current_hkl, self.space.instrument,
                              volume=self.space.volume, budget=self.budget, current_hkl=self.current_hkl)

    def best(self) -> Observation:
        """The told scan with the lowest J (efficiency) or the lowest error (Pareto mode)."""
        if not self.observations:
            raise ConfigError("nothing told yet")
        key = (lambda o: o.efficiency) if self.objective == "efficiency" else (lambda o: o.error)
        return min(self.observations, key=key)

    def recommend(self) -> Observation:
        """The told scan to measure from now on: the one of lowest J by the Gaussian process's
        posterior mean, which pools a scan's repeats and its neighbours' results (the lowest J
        seen is biased low by the luckiest draw of a noisy reconstruction). Before the model
        leads, and in Pareto mode, :meth:`best`."""
        import torch

        if len(self.observations) < max(self.n_init, 2) or self.objective != "efficiency":
            return self.best()
        model, train_x = self._fit()
        with torch.no_grad():
            quality = model.posterior(train_x).mean[:, 0].numpy()
        j = np.log10([o.beam_time for o in self.observations]) - quality
        return self.observations[int(np.argmin(j))]

    def pareto_front(self) -> list[Observation]:
        """The told scans that no other beats in both error and beam time, fastest first."""
        obs = sorted(self.observations, key=lambda o: (o.beam_time, o.error))
        front, best_error = [], np.inf
        for o in obs:
            if o.error < best_error:
                front.append(o)
                best_error = o.error
        return front

    def explain(self, scan: Scan) -> dict:
        """Per parameter, the constraint that binds it (or 'free'), and the broken ones."""
        space, ins = self.space, self.space.instrument
        x, k = space.point(scan)
        near = lambda a, b: abs(a - b) <= 0.02 * abs(b)
        why = {"detector_distance": "free", "rocking_step": "free", "count_time": "free", "rocking_range": "free"}
        if near(scan.detector_distance, space.min_distance[k]):
            why["detector_distance"] = f"saturation ({ins.max_count_rate:.3g} ph/s at the peak)"
        elif x[0] <= 0.01:
            why["detector_distance"] = "oversampling 2 of the detector plane"
        if x[1] <= 0.01:
            why["rocking_step"] = "oversampling 2 of the rocking curve"
        if self.budget is not None and self.beam_time(scan) >= 0.98 * self.budget:
            why["count_time"] = f"the budget of {self.budget:.0f} s"
        elif x[3] >= 0.99 or x[3] <= 0.01:
            why["count_time"] = "the count-time limits"
        if x[2] >= 0.99 or x[2] <= 0.01:
            why["rocking_range"] = "the frame-count limits"
        why["violations"] = violations(scan, ins, space.material, space.size, volume=space.volume,
                                       budget=self.budget, current_hkl=self.current_hkl)
        return why

    # ---- state ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        s = self.space
        return {"size": s.size, "material": s.material.name, "reflections": [list(h) for h in s.reflections],
                "instrument": dataclasses.asdict(s.instrument), "budget": self.budget, "volume": s.volume,
                "objective": self.objective, "n_init": self.n_init,
                "replicate_every": self.replicate_every, "seed": self.seed,
                "observations": [{"scan": o.scan.as_dict(), "error": o.error, "beam_time": o.beam_time,
                                  "extra": o.extra} for o in self.observations],
                "pending": [p.as_dict() for p in self.pending]}

    def save(self, path):
        """Write the state as JSON (atomically: a crash leaves the previous file whole)."""
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=1)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path, *, state_path=None) -> "Planner":
        """The planner saved in `path` (it goes on writing there unless `state_path` says otherwise)."""
        try:
            with open(path) as f:
                d = json.load(f)
            return cls._from_dict(d, path if state_path is None else state_path)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise FileFormatError(f"{path} is not a planner session: {err}") from None

    @classmethod
    def _from_dict(cls, d, state_path) -> "Planner":
        planner = cls(d["size"], d["material"], [tuple(h) for h in d["reflections"]],
                      instrument=Instrument(**d["instrument"]), budget=d["budget"], volume=d["volume"],
                      objective=d["objective"], n_init=d["n_init"], replicate_every=d["replicate_every"],
                      seed=d["seed"], state_path=state_path)
        planner.observations = [Observation(_scan(o["scan"]), o["error"], o["beam_time"], o.get("extra", {}))
                                for o in d["observations"]]
        planner.pending = [_scan(p) for p in d["pending"]]
        return planner

    def _autosave(self):
        if self.state_path is not None:
            self.save(self.state_path)

    # ---- suggestions ----------------------------------------------------------------------
    def candidates(self, n_sobol=1024, n_local=128, *, centre=None, half_width=TRUST_REGION, sobol_seed=None):
        """Feasible candidates (x, k): `n_sobol` Sobol points (a power of 2) at every reflection —
        in the box of `half_width` around the point `centre` (x in [0, 1]⁴), or in the whole
        space if `centre` is None — and `n_local` Gaussian steps around each of the three best
        scans told so far. The Sobol points are scrambled by `sobol_seed` (default: a draw that
        changes with every scan told or pending)."""
        from scipy.stats import qmc

        rng = np.random.default_rng((self.seed, len(self.observations), len(self.pending)))
        sobol = qmc.Sobol(4, seed=rng if sobol_seed is None else sobol_seed).random(n_sobol)
        if centre is not None:
            sobol = np.clip(np.asarray(centre) + (2 * sobol - 1) * half_width, 0, 1)
        xs = [np.repeat(sobol, len(self.space.reflections), axis=0)]
        ks = [np.tile(np.arange(len(self.space.reflections)), n_sobol)]
        for o in sorted(self.observations, key=lambda o: o.efficiency)[:3 if n_local else 0]:
            x, k = self.space.point(o.scan)
            xs.append(np.clip(x + rng.normal(scale=0.05, size=(n_local, 4)), 0, 1))
            ks.append(np.full(n_local, k))
        x, k = np.concatenate(xs), np.concatenate(ks)
        ok = self.space.feasible(x, k, budget=self.budget, current_hkl=self.current_hkl)
        if not ok.any():
            raise ConfigError("no scan meets the constraints: the budget is too small for the crystal, "
                              "or the peak saturates the detector at every distance in range")
        return x[ok], k[ok]

    def _sobol(self, index) -> Scan:
        """The `index`-th feasible point of the planner's own Sobol sequence in the trust region
        around the formula design."""
        centre, _ = self.space.point(self.formula_design().scan)
        x, k = self.candidates(256, 0, centre=centre, sobol_seed=self.seed)
        return self.space.scan(x[index % len(x)], k[index % len(x)])

    def _training_data(self):
        import torch

        pts = [self.space.point(o.scan) for o in self.observations]
        x = np.array([np.append(p[0], p[1]) for p in pts])
        quality = np.array([[-2 * np.log10(max(o.error, 1e-12))] for o in self.observations])
        return torch.tensor(x, dtype=torch.float64), torch.tensor(quality, dtype=torch.float64)

    def _fit(self):
        """The Gaussian process fitted on the scans told so far, and its inputs (the reflection
        index is an input only if it varies); fitted once per number of scans told."""
        if self._fitted is None or self._fitted[0] != len(self.observations):
            train_x, train_y = self._training_data()
            train_x = train_x[:, :4] if len(self.space.reflections) == 1 else train_x
            with self._own_random_state(len(self.observations)):
                self._fitted = (len(self.observations), self._model(train_x, train_y), train_x)
        return self._fitted[1:]

    @contextlib.contextmanager
    def _own_random_state(self, count):
        """torch's random draws (the acquisition's quasi-Monte Carlo samples, the fit's restarts)
        seeded by the planner's seed and `count` (the scans told, for a fit; told or pending, for a
        suggestion), so that a session gives the same suggestions whatever the caller drew before
        and a fit does not depend on what was pending; the caller's random state is kept."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([self.seed, count]).generate_state(1)[0]))
            yield

    def _model(self, train_x, train_y):
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import MixedSingleTaskGP, SingleTaskGP
        from botorch.models.transforms import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        if train_x.shape[-1] == 5:  # the reflection index is categorical
            model = MixedSingleTaskGP(train_x, train_y, cat_dims=[4], outcome_transform=Standardize(m=1))
        else:
            model = SingleTaskGP(train_x, train_y, outcome_transform=Standardize(m=1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        return model

    def _log_time(self, z):
        """log10 beam time [s] of torch points z (..., 4) at the first reflection or (..., 5) with
        the reflection index last: exact, and not differentiated (the candidates are discrete)."""
        import torch

        flat = z.detach().reshape(-1, z.shape[-1]).numpy()
        k = flat[:, 4].round().astype(int) if z.shape[-1] == 5 else np.zeros(len(flat), int)
        t = self.space.beam_time(flat[:, :4], k, self.current_hkl)
        return torch.as_tensor(np.log10(t), dtype=z.dtype).reshape(z.shape[:-1])

    def _suggest(self) -> Scan:
        """The feasible candidate of highest expected improvement of J (or of the hypervolume)."""
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.optim import optimize_acqf_discrete

        model, train_x = self._fit()
        dims = train_x.shape[-1]
        centre, _ = self.space.point(self.recommend().scan)
        x, k = self.candidates(centre=centre)
        choices = torch.tensor(np.column_stack([x, k]), dtype=torch.float64)[:, :dims]
        pending = None
        if self.pending:
            pending = torch.tensor(np.array([np.append(*self.space.point(p)) for p in self.pending]),
                                   dtype=torch.float64)[:, :dims]
        with self._own_random_state(len(self.observations) + len(self.pending)):
            if self.objective == "efficiency":  # maximise quality - log10 time = -J
                objective = GenericMCObjective(lambda samples, X: samples[..., 0] - self._log_time(X))
                acq = qLogNoisyExpectedImprovement(model, train_x, objective=objective, X_pending=pending,
                                                   cache_root=False)
            else:
                acq = self._hypervolume_acquisition(model, train_x, pending)
            best, _ = optimize_acqf_discrete(acq, q=1, choices=choices, max_batch_size=512, unique=True)
        z = best[0].numpy()
        return self.space.scan(z[:4], int(round(z[4])) if dims == 5 else 0)

    def _hypervolume_acquisition(self, model, train_x, pending):
        import torch
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.models.deterministic import GenericDeterministicModel
        from botorch.models.model import ModelList

        speed = GenericDeterministicModel(lambda z: -self._log_time(z).unsqueeze(-1), num_outputs=1)
        quality = np.array([-2 * np.log10(o.error) for o in self.observations])
        slowest = np.log10(self.budget) if self.budget is not None else \
            np.log10(max(o.beam_time for o in self.observations)) + 0.1
        ref = torch.tensor([quality.min() - 0.1 * np.ptp(quality) - 0.1, -slowest], dtype=torch.float64)
        return qLogNoisyExpectedHypervolumeImprovement(ModelList(model, speed), ref_point=ref, X_baseline=train_x,
                                                       X_pending=pending, prune_baseline=True, cache_root=False)


def _scan(d) -> Scan:
    return Scan(rocking_range=d["rocking_range"], rocking_step=d["rocking_step"], count_time=d["count_time"],
                detector_distance=d["detector_distance"], hkl=tuple(d["hkl"]))


def _jsonable(d: dict) -> dict:
    """`d` with numpy scalars and tuples turned into JSON types."""
    return json.loads(json.dumps(d, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
