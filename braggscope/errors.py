"""The exceptions braggscope raises on purpose.

Every error a user can cause (bad shape, bad value, missing file key, unknown option)
derives from :class:`BraggscopeError` and from the matching builtin, so ``except ValueError``
keeps working. The command line prints them in one line and exits with status 2.
"""


class BraggscopeError(Exception):
    """Base class of every error braggscope raises on purpose."""


class ConfigError(BraggscopeError, ValueError):
    """An option or parameter has a value that cannot work."""


class ShapeError(BraggscopeError, ValueError):
    """An array has the wrong number of dimensions or the wrong shape."""

    def __init__(self, msg, *, expected=None, actual=None):
        super().__init__(msg)
        self.expected, self.actual = expected, actual

    def __reduce__(self):  # keyword-only fields survive pickling (worker processes)
        return _rebuild, (type(self), self.args, {"expected": self.expected, "actual": self.actual})


class FileFormatError(BraggscopeError, ValueError):
    """A file is missing, unreadable, or lacks a key braggscope needs."""


class OptionalDependencyError(BraggscopeError, ImportError):
    """An optional package is needed for this feature but is not installed."""

    def __init__(self, package, extra=None, *, hint=None):
        super().__init__(f"this feature needs the package '{package}': " +
                         (hint or f"pip install 'braggscope[{extra}]' (or pip install {package})"))
        self.package, self.extra = package, extra

    def __reduce__(self):
        return _rebuild, (type(self), (self.package, self.extra), {"hint": str(self).split(": ", 1)[1]})


class DeviceError(BraggscopeError, RuntimeError):
    """The requested compute device is not available."""


class SupportError(BraggscopeError, RuntimeError):
    """Shrink-wrap drove the support out of its allowed range."""

    def __init__(self, msg, *, fraction, threshold):
        super().__init__(msg)
        self.fraction, self.threshold = fraction, threshold

    def __reduce__(self):  # keyword-only fields survive pickling (worker processes)
        return _rebuild, (type(self), self.args, {"fraction": self.fraction, "threshold": self.threshold})


class SupportCollapsedError(SupportError):
    """The support shrank below its minimum fraction of the array."""


class SupportExplodedError(SupportError):
    """The support grew above its maximum fraction of the array."""


def _rebuild(cls, args, fields):
    return cls(*args, **fields)
