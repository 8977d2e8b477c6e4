"""Projections and likelihoods of iterative phase retrieval, as plain torch functions.

Arrays are FFT-ordered (origin at index 0) and batched: (B, Z, Y, X) or (B, Y, X) complex64 for
objects; the measured amplitude and the masks broadcast over the batch. Every function follows
the device and dtype of its input. The FFT is torch.fft.fftn over the non-batch axes with numpy's
sign, as in :mod:`braggscope.physics`.

References
----------
J. R. Fienup, Appl. Opt. 21, 2758 (1982), doi:10.1364/AO.21.002758 (ER, HIO);
D. R. Luke, Inverse Problems 21, 37 (2005), doi:10.1088/0266-5611/21/1/004 (RAAR);
S. Marchesini et al., Phys. Rev. B 68, 140101 (2003), doi:10.1103/PhysRevB.68.140101 (shrink-wrap);
P. Thibault and M. Guizar-Sicairos, New J. Phys. 14, 063004 (2012),
doi:10.1088/1367-2630/14/6/063004 (Poisson likelihood).
"""
from __future__ import annotations

import math

import torch

__all__ = ["fft", "ifft", "project_modulus", "project_support", "hio_update", "raar_update",
           "poisson_llk", "gaussian_blur_abs", "shrink_wrap_support"]


def _dims(x, batched=True):
    return tuple(range(1 if batched else 0, x.ndim))


def fft(obj):
    """Forward FFT over the non-batch axes (numpy sign, unnormalised)."""
    return torch.fft.fftn(obj, dim=_dims(obj))


def ifft(psi):
    """Inverse FFT over the non-batch axes (1/N normalised)."""
    return torch.fft.ifftn(psi, dim=_dims(psi))


def project_modulus(obj, amplitude, measured, *, eps=1e-12):
    """Fourier-modulus projection P_M: replace |FFT(ρ)| by the measured amplitude where
    `measured` is True, keep the calculated value elsewhere (gaps, saturated, free pixels).

    Returns (P_M ρ, |FFT(ρ)|²) — the calculated intensity before projection, for the LLK.
    Works in place on its own temporaries: at 256³ every extra array costs a page-faulted 128 MB."""
    psi = fft(obj)
    calc = torch.abs(psi).square_()
    scale = torch.add(calc, eps).rsqrt_().mul_(amplitude).masked_fill_(~measured, 1.0)
    return ifft(psi.mul_(scale)), calc


def project_support(obj, support):
    """Support projection P_S: zero outside the support (error reduction is P_S P_M ρ)."""
    return obj * support


def _outside_update(outside_minus_projected, projected, support):
    """ρ' = P inside the support, P + d outside, computed in place on `d` (one allocation)."""
    return outside_minus_projected.mul_(~support).add_(projected)


def hio_update(obj, projected, support, beta):
    """Hybrid input-output: ρ' = P_M ρ inside S, ρ - β P_M ρ outside."""
    return _outside_update(obj.sub(projected, alpha=1 + beta), projected, support)


def raar_update(obj, projected, support, beta):
    """Relaxed averaged alternating reflections: ρ' = P_M ρ inside S, β ρ + (1 - 2β) P_M ρ outside."""
    return _outside_update(obj.sub(projected, alpha=2).mul_(beta), projected, support)


def poisson_llk(calc, intensity, pixels):
    """Normalised Poisson log-likelihood over `pixels` (bool): the mean Poisson deviance
    (2/N) Σ [I_c - I_o + I_o ln(I_o/I_c)], which is close to 1 for a model that fits counts
    ≫ 1 to their noise. Returns one value per batch member, shape (B,)."""
    ic = calc.clamp_min(1e-12)
    io = intensity.expand_as(ic)
    term = ic - io + torch.where(io > 0, io * torch.log(io.clamp_min(1e-12) / ic), torch.zeros_like(io))
    w = pixels.expand_as(ic)
    n = w.sum(dim=_dims(ic)).clamp_min(1)
    return 2 * (term * w).sum(dim=_dims(ic)) / n


def _gaussian_transfer(shape, sigma, device, dtype):
    """Fourier transfer function of a Gaussian of `sigma` voxels on an FFT-ordered grid."""
    axes = [torch.fft.fftfreq(n, device=device, dtype=dtype) for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    r2 = sum(g * g for g in grids)
    return torch.exp(-2 * (math.pi * sigma) ** 2 * r2)


def gaussian_blur_abs(obj, sigma):
    """|ρ| smoothed by a Gaussian of `sigma` voxels (periodic, by FFT)."""
    a = obj.abs()
    h = _gaussian_transfer(a.shape[1:], sigma, a.device, a.dtype)
    return torch.fft.ifftn(torch.fft.fftn(a, dim=_dims(a)) * h, dim=_dims(a)).real


def shrink_wrap_support(obj, *, threshold, sigma):
    """Shrink-wrap: voxels where the blurred |ρ| exceeds `threshold` × its maximum (per batch
    member). Returns a bool tensor shaped like `obj`."""
    blurred = gaussian_blur_abs(obj, sigma)
    peak = blurred.amax(dim=_dims(blurred), keepdim=True)
    return blurred > threshold * peak
