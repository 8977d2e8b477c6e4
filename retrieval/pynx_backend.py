"""ESRF's PyNX as a back end: the same data, mask, free pixels, starts and recipe handed to PyNX's
CDI operators, the result returned in our types.

PyNX is not on PyPI; Debian packages it as ``python3-pynx`` (`.ci/get-pynx` unpacks it into
``.deps/pynx`` and the Makefile puts it on ``PYTHONPATH``). PyNX picks its own processing unit
(CUDA, OpenCL, else CPU; the environment variable ``PYNX_PU`` forces one). It runs one start at a
time: it has no batch of runs.

Conventions bridged here: PyNX's FFT is unitary (ρ_PyNX = √N ρ_ours), its arrays are FFT-ordered,
its mask is 0 for a measured pixel, and free pixels are stored in the data as -I-1. Our
ShrinkWrap becomes PyNX's SupportUpdate with ``method='max'`` (PyNX narrows its blur
exponentially over the cycles, ours linearly).

Reference: V. Favre-Nicolin et al., J. Appl. Cryst. 53, 1404 (2020), doi:10.1107/S1600576720010985.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

from braggscope.errors import ConfigError, OptionalDependencyError, SupportCollapsedError, SupportExplodedError

from .operators import ER, HIO, RAAR, Power, Sequence, ShrinkWrap

__all__ = ["pynx_available", "run_pynx"]


def pynx_available() -> bool:
    """True if PyNX's CDI module imports here."""
    try:
        import pynx.cdi  # noqa: F401
    except Exception:  # PyNX raises more than ImportError when a processing unit is missing
        return False
    return True


def _import_pynx():
    try:
        import pynx.cdi as cdi
    except Exception as err:
        raise OptionalDependencyError("pynx", "pynx", hint=(
            f"ESRF's PyNX does not import ({err}); it is not on PyPI: run .ci/get-pynx (Debian's python3-pynx) and "
            "put .deps/pynx on PYTHONPATH, or use the torch backend")) from None
    return cdi


def _translate(op, cdi, llk_every):
    """Our operator tree as a PyNX operator."""
    if isinstance(op, Sequence):
        out = _translate(op.ops[0], cdi, llk_every)
        for inner in op.ops[1:]:
            out = _translate(inner, cdi, llk_every) * out
        return out
    if isinstance(op, Power):
        return _translate(op.op, cdi, llk_every) ** op.n
    if isinstance(op, ER):
        return cdi.ER(calc_llk=llk_every)
    if isinstance(op, (HIO, RAAR)):
        return getattr(cdi, type(op).__name__)(beta=op.beta, calc_llk=llk_every)
    if isinstance(op, ShrinkWrap):
        return cdi.SupportUpdate(threshold_relative=op.threshold, smooth_width=(op.sigma, op.sigma_end, op.sigma_cycles),
                                 method="max", min_fraction=op.min_fraction, max_fraction=op.max_fraction)
    raise ConfigError(f"the PyNX backend cannot run {type(op).__name__}; use ER, HIO, RAAR and ShrinkWrap")


def run_pynx(op, intensity, mask, free, support, starts, *, llk_every=10):
    """Run recipe `op` with PyNX once per start.

    Parameters
    ----------
    op : Operator
    intensity, mask, free, support : ndarray
        FFT-ordered data, mask (True = not measured), free pixels and initial support.
    starts : (B, ...) ndarray
        FFT-ordered initial objects (our scale).

    Returns
    -------
    obj, support : (B, ...) ndarrays (FFT-ordered, our scale)
    history : list of dict per start
        PyNX's cycle, llk_poisson, llk_poisson_free, llk_gaussian, support_size records.
    """
    cdi_mod = _import_pynx()
    iobs = np.where(free, -intensity - 1, intensity).astype(np.float32)
    scale = np.sqrt(intensity.size)
    objs, supports, histories = [], [], []
    for start in starts:
        cdi = cdi_mod.CDI(iobs.copy(), support=support.astype(np.int8), obj=(start * scale).astype(np.complex64),
                          mask=mask.astype(np.int8))
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # PyNX prints every LLK record
                cdi = _translate(op, cdi_mod, llk_every) * cdi
        except cdi_mod.SupportTooSmall as err:
            raise SupportCollapsedError(f"PyNX: {err}", fraction=0.0, threshold=None) from None
        except cdi_mod.SupportTooLarge as err:
            raise SupportExplodedError(f"PyNX: {err}", fraction=1.0, threshold=None) from None
        objs.append(cdi.get_obj() / scale)
        supports.append(cdi.get_support() > 0)
        histories.append(_history(cdi))
    return np.asarray(objs, np.complex64), np.asarray(supports), histories


def _history(cdi):
    """PyNX's recorded LLKs as plain lists."""
    h = cdi.history
    keys = [k for k in ("llk_poisson", "llk_poisson_free", "llk_gaussian", "support_size") if k in h]
    return {k: [(int(c), float(v)) for c, v in h[k].items()] for k in keys}
