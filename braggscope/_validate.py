"""Checks of user input at public boundaries (never ``assert``)."""
from __future__ import annotations

import numpy as np

from .errors import ConfigError, ShapeError


def check_positive(value, name, unit=""):
    """Return `value` as float if it is finite and > 0, else raise ConfigError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be a number{unit and f' [{unit}]'}, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ConfigError(f"`{name}` must be a finite positive number{unit and f' [{unit}]'}, got {value!r}")
    return v


def check_finite(array, name):
    """Raise ConfigError if `array` holds NaN or inf."""
    a = np.asarray(array)
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"`{name}` contains NaN or inf; clean or mask those values first")
    return a


def check_vector(value, name, length=3, nonzero=False):
    """Return `value` as a float64 vector of `length` components."""
    v = np.asarray(value, dtype=float)
    if v.shape != (length,):
        raise ShapeError(f"`{name}` must have {length} components, got {value!r}",
                         expected=(length,), actual=v.shape)
    check_finite(v, name)
    if nonzero and not np.any(v):
        raise ConfigError(f"`{name}` must not be the zero vector, got {value!r}")
    return v


def check_grid_shape(shape, name="shape"):
    """Return `shape` as a tuple of 2 or 3 positive ints."""
    try:
        s = tuple(int(n) for n in shape)
    except TypeError:
        raise ShapeError(f"`{name}` must be a tuple of 2 or 3 sizes, got {shape!r}") from None
    if len(s) not in (2, 3) or min(s) < 1 or any(int(n) != n for n in shape):
        raise ShapeError(f"`{name}` must be 2 or 3 positive sizes (Y, X) or (Z, Y, X), got {shape!r}",
                         expected="(Z, Y, X)", actual=s)
    return s


def check_choice(value, name, choices):
    """Raise ConfigError naming the valid choices if `value` is not one of them."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, sorted(choices)))}")
    return value
