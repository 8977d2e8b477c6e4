"""FIO files, the scan logs that PETRA III's online software writes (P10): one file per scan.

Sections start with ``%c`` (comments: the scan command first), ``%p`` (parameters, one
``name = value`` per line: the motor positions at the start of the scan, ``fmbenergy`` [eV]) and
``%d`` (data: `` Col N name TYPE`` lines naming the columns, then one line of numbers per point);
lines starting with ``!`` are remarks.

>>> text = "%c\\ndscan om -0.5 0.5 2 1\\n!\\n%p\\ndel = 30.0\\nfmbenergy = 9000.0\\n%d\\n Col 1 om DOUBLE\\n" \\
...        " Col 2 e4m DOUBLE\\n 11.5 3\\n 12.0 5\\n 12.5 2\\n"
>>> scan = parse_fio(text)
>>> scan.parameters["del"], scan.columns["om"].tolist(), scan.command
(30.0, [11.5, 12.0, 12.5], 'dscan om -0.5 0.5 2 1')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FileFormatError

__all__ = ["FioScan", "parse_fio", "read_fio"]


@dataclass(frozen=True)
class FioScan:
    """One FIO file: `command` (the first comment line), `parameters` (name → float, or str where
    not a number), `columns` (name → (points,) array) and the other `comments`."""

    command: str
    parameters: dict
    columns: dict
    comments: list = field(default_factory=list)

    def values(self, name, default=None):
        """Motor `name` during the scan: its column where it was scanned, else its parameter
        (the position at the start); `default` where neither is recorded."""
        if name in self.columns:
            return self.columns[name]
        value = self.parameters.get(name, default)
        return value if isinstance(value, float) or value is default else default


def _number(text):
    try:
        return float(text)
    except ValueError:
        return text


def parse_fio(text) -> FioScan:
    """A :class:`FioScan` from the text of a FIO file."""
    section, comments, parameters, names, rows = None, [], {}, [], []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("!"):
            continue
        if stripped in ("%c", "%p", "%d"):
            section = stripped
        elif section == "%c":
            comments.append(stripped)
        elif section == "%p" and "=" in stripped:
            name, _, value = stripped.partition("=")
            parameters[name.strip()] = _number(value.strip())
        elif section == "%d" and stripped.startswith("Col "):
            names.append(stripped.split()[2])
        elif section == "%d":
            try:
                rows.append([float(v) for v in stripped.split()])
            except ValueError:
                raise FileFormatError(f"FIO data line is not numbers: {stripped[:60]!r}") from None
    if any(len(r) != len(names) for r in rows):
        raise FileFormatError(f"FIO data lines do not all hold {len(names)} numbers, one per column")
    data = np.array(rows, float).reshape(len(rows), len(names))
    return FioScan(comments[0] if comments else "", parameters, {n: data[:, i] for i, n in enumerate(names)},
                   comments[1:])


def read_fio(path) -> FioScan:
    """The :class:`FioScan` of the FIO file `path`."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such FIO file: {path}")
    return parse_fio(path.read_text(errors="replace"))
