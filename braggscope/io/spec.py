"""SPEC data files, as the diffractometers of ID01 (before BLISS) and APS 34-ID-C write them.

A SPEC file is text: file headers (``#F``, ``#E``, ``#D``, ``#O0..`` the motor names), then one
block per scan starting with ``#S number command``, with ``#P0..`` the motor positions at the
start, ``#L`` the column names and one line of numbers per point. Only what a rocking scan needs
is read: the motor positions, the scanned columns and the comments.

>>> text = "#O0 delta gamma\\n\\n#S 3 ascan theta 0 1 2 1\\n#P0 32.1 12.6\\n#L theta Seconds\\n0 1\\n0.5 1\\n1 1\\n"
>>> scan = parse_spec(text)[3]
>>> scan.positions["delta"], scan.column("theta").tolist()
(32.1, [0.0, 0.5, 1.0])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FileFormatError

__all__ = ["SpecScan", "parse_spec", "read_spec_scan"]


@dataclass(frozen=True)
class SpecScan:
    """One scan of a SPEC file.

    Attributes
    ----------
    number : int
    command : str
        The scan command (``ascan theta -0.5 0.5 200 1``).
    positions : dict
        Motor name → position at the start of the scan (SPEC's units, degrees for angles).
    columns : dict
        Column name → (points,) array.
    comments : list of str
        ``#C`` lines and unrecognised header lines of the scan.
    """

    number: int
    command: str
    positions: dict
    columns: dict
    comments: list = field(default_factory=list)

    def column(self, name) -> np.ndarray:
        """The scanned values of `name`; a clear error naming the columns there are."""
        if name not in self.columns:
            raise FileFormatError(f"SPEC scan {self.number} has no column '{name}' (columns: "
                                  f"{', '.join(self.columns) or 'none'})")
        return self.columns[name]

    def motor(self, name) -> float:
        """The position of motor `name` at the start of the scan."""
        if name not in self.positions:
            raise FileFormatError(f"SPEC scan {self.number} records no motor '{name}' (motors: "
                                  f"{', '.join(self.positions) or 'none'})")
        return self.positions[name]


def _motor_names(lines):
    names = {}
    for line in lines:
        if line.startswith("#O") and line[2:3].isdigit():
            key, _, rest = line.partition(" ")
            names[int(key[2:])] = rest.split("  ") if "  " in rest else rest.split()
    return names


def _scan(header, body, motor_names):
    number, _, command = header[3:].strip().partition(" ")
    positions, labels, comments, rows = {}, [], [], []
    for line in body:
        if line.startswith("#P") and line[2:3].isdigit():
            key, _, rest = line.partition(" ")
            names = [n.strip() for n in motor_names.get(int(key[2:]), []) if n.strip()]
            positions.update(zip(names, map(float, rest.split())))
        elif line.startswith("#L"):
            labels = line[2:].strip().split("  ") if "  " in line[2:].strip() else line[2:].split()
            labels = [n.strip() for n in labels if n.strip()]
        elif line.startswith("#"):
            comments.append(line)
        elif line.strip():
            rows.append([float(v) for v in line.split()])
    data = np.array(rows, float).reshape(len(rows), -1) if rows else np.zeros((0, len(labels)))
    if data.shape[1] not in (0, len(labels)):
        raise FileFormatError(f"SPEC scan {number}: {data.shape[1]} numbers per line but {len(labels)} column names")
    columns = {name: data[:, i] for i, name in enumerate(labels)} if data.size else {n: np.zeros(0) for n in labels}
    return SpecScan(int(number), command.strip(), positions, columns, comments)


def parse_spec(text) -> dict:
    """{scan number: :class:`SpecScan`} of a SPEC file's text (a later scan of the same number wins)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("#S ")]
    motor_names = _motor_names(lines[:starts[0]] if starts else lines)
    scans = {}
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(lines)
        try:
            scan = _scan(lines[start], lines[start + 1:end], motor_names)
        except ValueError as err:
            raise FileFormatError(f"SPEC scan at line {start + 1} is malformed: {err}") from None
        scans[scan.number] = scan
    return scans


def read_spec_scan(path, scan) -> SpecScan:
    """Scan number `scan` of the SPEC file `path`."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such SPEC file: {path}")
    scans = parse_spec(path.read_text(errors="replace"))
    if int(scan) not in scans:
        listed = sorted(scans)
        raise FileFormatError(f"{path} has no scan {scan} (it has {len(listed)} scans"
                              + (f": {listed[0]}…{listed[-1]})" if listed else ")"))
    return scans[int(scan)]
