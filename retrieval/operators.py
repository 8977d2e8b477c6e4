"""Phase-retrieval algorithms as composable operators, in PyNX's algebra without its global state.

``op * state`` applies an operator; ``a * b`` composes them (``b`` runs first); ``op ** n`` repeats.
``str(op)`` prints the recipe, leaving out fields at their defaults, and
``parse_recipe(str(op)) == op``. Operators are frozen dataclasses with no counters and no device;
everything that changes lives in :class:`RetrievalState`.

>>> recipe = ER() ** 100 * (ShrinkWrap(threshold=0.15) * HIO(beta=0.8) ** 20) ** 30
>>> str(recipe)
'ER**100 * (ShrinkWrap(threshold=0.15) * HIO(beta=0.8)**20)**30'
>>> parse_recipe(str(recipe)) == recipe
True
>>> recipe.cycles
700
"""
from __future__ import annotations

import ast
import dataclasses
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from braggscope.errors import ConfigError, SupportCollapsedError, SupportExplodedError

from . import functional as F

__all__ = ["RetrievalState", "Operator", "ER", "HIO", "RAAR", "ShrinkWrap", "PSF", "Sequence", "Power",
           "parse_recipe", "OPERATORS"]


@dataclass
class RetrievalState:
    """Everything that changes during a reconstruction (torch tensors on one device, FFT-ordered).

    Attributes
    ----------
    obj : (B, ...) complex tensor
        B runs of the object.
    support : (B, ...) bool tensor
    amplitude : (1, ...) float tensor
        √(measured intensity).
    intensity : (1, ...) float tensor
        [photons] Measured intensity.
    measured : (1, ...) bool tensor
        Pixels the Fourier constraint uses (not masked, not free).
    free : (1, ...) bool tensor
        Measured pixels held out of the constraint for the free LLK.
    cycle : int
        Projection cycles done so far.
    llk_every : int
        Record the LLKs every this many cycles.
    history : list of dict
        cycle, operator, llk (B,) and free_llk (B,) (Poisson), llk_gaussian (B,), support_fraction
        (B,), seconds.
    progress : callable, optional
        Called as progress(cycle, llk) at every LLK record (e.g. to move a progress bar).
    psf, otf : (B, ...) tensors, optional
        Point-spread function of partial coherence (FFT-ordered, sums to 1) and its real FFT;
        None until a :class:`PSF` operator runs.
    """

    obj: torch.Tensor
    support: torch.Tensor
    amplitude: torch.Tensor
    intensity: torch.Tensor
    measured: torch.Tensor
    free: torch.Tensor
    cycle: int = 0
    llk_every: int = 10
    history: list = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    progress: object = None
    psf: torch.Tensor | None = None
    otf: torch.Tensor | None = None

    def replace(self, **changes) -> "RetrievalState":
        """A copy with `changes` (tensors are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def record(self, name, calc):
        """Append the LLKs of the intensity `calc` computed from the current object."""
        self.history.append({
            "cycle": self.cycle, "operator": name,
            "llk": F.poisson_llk(calc, self.intensity, self.measured).cpu().numpy(),
            "free_llk": F.poisson_llk(calc, self.intensity, self.free).cpu().numpy(),
            "llk_gaussian": F.gaussian_llk(calc, self.intensity, self.measured).cpu().numpy(),
            "support_fraction": self.support.float().mean(dim=tuple(range(1, self.support.ndim))).cpu().numpy(),
            "seconds": time.perf_counter() - self.started,
        })
        if self.progress is not None:
            self.progress(self.cycle, self.history[-1]["llk"])


class Operator(ABC):
    """Base class: the algebra (``*``, ``**``), the recipe string and equality, written once."""

    @abstractmethod
    def apply(self, state: RetrievalState) -> RetrievalState:
        """Run this operator on `state`."""

    @property
    def cycles(self) -> int:
        """Projection cycles this operator runs (0 for a support or PSF update)."""
        return 0

    def __mul__(self, other):
        if isinstance(other, Operator):  # `other` runs first; nested sequences are flattened
            ops = lambda op: op.ops if isinstance(op, Sequence) else (op,)
            return Sequence(ops(other) + ops(self))
        if isinstance(other, RetrievalState):
            return self.apply(other)
        return NotImplemented

    def __pow__(self, n):
        if int(n) != n or n < 1:
            raise ConfigError(f"an operator power must be a positive integer, got {n!r}")
        return Power(self, int(n))

    def __str__(self):
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                   if getattr(self, f.name) != f.default]
        return type(self).__name__ + (f"({', '.join(changed)})" if changed else "")


class _Projection(Operator):
    """One cycle: Fourier-modulus projection, then the real-space update of the subclass."""

    cycles = 1

    def apply(self, state):
        projected, calc = F.project_modulus(state.obj, state.amplitude, state.measured, otf=state.otf)
        state.cycle += 1
        if state.cycle % state.llk_every == 0:
            state.record(str(self), calc)
        return state.replace(obj=self.update(state.obj, projected, state.support))

    @abstractmethod
    def update(self, obj, projected, support):
        """The real-space update from ρ and P_M ρ."""


@dataclass(frozen=True, eq=True)
class ER(_Projection):
    """Error reduction (Fienup 1982): ρ' = P_S P_M ρ."""

    def update(self, obj, projected, support):
        return F.project_support(projected, support)


@dataclass(frozen=True, eq=True)
class HIO(_Projection):
    """Hybrid input-output (Fienup 1982) with feedback `beta`."""

    beta: float = 0.9

    def update(self, obj, projected, support):
        return F.hio_update(obj, projected, support, self.beta)


@dataclass(frozen=True, eq=True)
class RAAR(_Projection):
    """Relaxed averaged alternating reflections (Luke 2005) with relaxation `beta`."""

    beta: float = 0.9

    def update(self, obj, projected, support):
        return F.raar_update(obj, projected, support, self.beta)


@dataclass(frozen=True, eq=True)
class ShrinkWrap(Operator):
    """Shrink-wrap support update (Marchesini 2003): blurred |ρ| above `threshold` × max.

    Attributes
    ----------
    threshold : float
        Relative threshold (0..1).
    sigma : float
        [voxels] Gaussian blur at cycle 0.
    sigma_end : float
        [voxels] Blur reached after `sigma_cycles` cycles (linear in the cycle number, so the
        operator keeps no counter of its own).
    sigma_cycles : int
        Cycles over which the blur goes from `sigma` to `sigma_end`: the chain's RAAR or HIO cycles
        (600 in the default recipe; :func:`~braggscope.retrieval.default_chain` sets it for other
        lengths). A chain shorter than `sigma_cycles` ends on a blurred, loose support.
    min_fraction, max_fraction : float
        Allowed support fraction of the array; outside it raises SupportCollapsedError or
        SupportExplodedError. A support above half the array leaves an oversampling ratio under 2,
        too little to phase.
    keep_when_exploded : bool
        A run whose new support would pass `max_fraction` keeps the support it had instead of
        raising. HIO's feedback outside the crystal can spread the support for one update (seen on
        simulated detector frames and small 2-D crystals); the default chain's HIO blocks set it.
    """

    threshold: float = 0.2
    sigma: float = 2.0
    sigma_end: float = 0.7
    sigma_cycles: int = 600
    min_fraction: float = 1e-4
    max_fraction: float = 0.5
    keep_when_exploded: bool = False

    def sigma_at(self, cycle) -> float:
        """[voxels] The blur used at `cycle`."""
        t = min(cycle / max(self.sigma_cycles, 1), 1.0)
        return self.sigma + (self.sigma_end - self.sigma) * t

    def apply(self, state):
        support = F.shrink_wrap_support(state.obj, threshold=self.threshold, sigma=self.sigma_at(state.cycle))
        fraction = support.float().mean(dim=tuple(range(1, support.ndim)))
        low, high = float(fraction.min()), float(fraction.max())
        if low < self.min_fraction:
            raise SupportCollapsedError(
                f"shrink-wrap kept {low:.3%} of voxels at cycle {state.cycle} (threshold={self.threshold}); "
                "lower `threshold`, raise `sigma`, or start from a looser support", fraction=low,
                threshold=self.threshold)
        if high > self.max_fraction and self.keep_when_exploded:
            exploded = (fraction > self.max_fraction).view(-1, *([1] * (support.ndim - 1)))
            return state.replace(support=torch.where(exploded, state.support, support))
        if high > self.max_fraction:
            raise SupportExplodedError(
                f"shrink-wrap grew the support to {high:.3%} of voxels at cycle {state.cycle} "
                f"(threshold={self.threshold}); raise `threshold` or check the data's oversampling",
                fraction=high, threshold=self.threshold)
        return state.replace(support=support)


@dataclass(frozen=True, eq=True)
class PSF(Operator):
    """Partial coherence: from now on the modelled intensity is |FFT(ρ)|² convolved with a
    point-spread function, which each application refines from the current object.

    The first application starts a Gaussian of `fwhm` pixels; every later one runs `iterations`
    Richardson-Lucy steps (per run, on the constrained pixels). Placed as
    ``(PSF * ShrinkWrap * RAAR**20)**30`` it is refined every 20 cycles.
    """

    fwhm: float = 1.0
    iterations: int = 3

    def apply(self, state):
        if state.psf is None:
            psf = F.gaussian_psf(state.obj.shape[1:], self.fwhm, device=state.obj.device).expand(
                state.obj.shape[0], *state.obj.shape[1:]).clone()
        else:
            psf = F.update_psf(state.obj, state.intensity, state.measured, state.psf, iterations=self.iterations)
        return state.replace(psf=psf, otf=torch.fft.rfftn(psf.double(), dim=tuple(range(1, psf.ndim))))


@dataclass(frozen=True, eq=True)
class Sequence(Operator):
    """Operators run in order (``a * b`` is Sequence((b, a)))."""

    ops: tuple

    def apply(self, state):
        for op in self.ops:
            state = op.apply(state)
        return state

    @property
    def cycles(self):
        return sum(op.cycles for op in self.ops)

    def __str__(self):
        return " * ".join(str(op) for op in reversed(self.ops))


@dataclass(frozen=True, eq=True)
class Power(Operator):
    """An operator repeated `n` times."""

    op: Operator
    n: int

    def apply(self, state):
        for _ in range(self.n):
            state = self.op.apply(state)
        return state

    @property
    def cycles(self):
        return self.n * self.op.cycles

    def __str__(self):
        inner = f"({self.op})" if isinstance(self.op, (Sequence, Power)) else str(self.op)
        return f"{inner}**{self.n}"


OPERATORS = {cls.__name__: cls for cls in (ER, HIO, RAAR, ShrinkWrap, PSF)}


def _build(node):
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _build(node.left) * _build(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        if not isinstance(node.right, ast.Constant) or not isinstance(node.right.value, int):
            raise ConfigError("an operator power must be a whole number, e.g. HIO**20")
        return _build(node.left) ** node.right.value
    if isinstance(node, ast.Name) and node.id in OPERATORS:
        return OPERATORS[node.id]()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in OPERATORS and not node.args:
        cls = OPERATORS[node.func.id]
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for kw in node.keywords:
            if kw.arg not in names or not isinstance(kw.value, (ast.Constant, ast.UnaryOp)):
                raise ConfigError(f"{cls.__name__} takes {', '.join(sorted(names)) or 'no options'}, "
                                  f"got {kw.arg}")
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        return cls(**kwargs)
    name = getattr(node, "id", None) or getattr(getattr(node, "func", None), "id", None) or ast.dump(node)[:40]
    raise ConfigError(f"unknown operator {name!r} in the recipe; use {', '.join(OPERATORS)} with * and **")


def parse_recipe(text: str) -> Operator:
    """Parse a recipe such as ``'ER**200 * (ShrinkWrap(threshold=0.2) * RAAR**20)**30'``."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ConfigError(f"cannot read the recipe {text!r}; write it like 'ER**200 * (ShrinkWrap * RAAR**20)**30'") \
            from None
    return _build(tree.body)
