"""SPEC data files, as the diffractometers of ID01 (before BLISS) and APS 34-ID-C write them.

A SPEC file is text: file headers (``#F``, ``#E``, ``#D``, ``#O0..`` the motor names, ``#o0..``
their mnemonics), then one block per scan starting with ``#S number command``, with ``#P0..`` the
motor positions at the start, ``#L`` the column names and one line of numbers per point. Only
what a rocking scan needs is read: the motor positions, the scanned columns and the comments.
A motor or column is found by its name, by its mnemonic (``th`` for ``Theta``, as scan commands
write it) or by either in another case: 34-ID-C's files say ``Delta``, ``Gamma`` and ``Theta``.

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

_REQUIRED = object()  # SpecScan.motor without a default: a missing motor is an error


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
    mnemonics : dict
        Motor mnemonic → motor name, from the file's ``#o`` lines (empty where it has none).
    """

    number: int
    command: str
    positions: dict
    columns: dict
    comments: list = field(default_factory=list)
    mnemonics: dict = field(default_factory=dict)

    def _key(self, names, table):
        """The first of `names` found in `table` as written, through the mnemonics, or in another case."""
        candidates = [c for n in names for c in (n, self.mnemonics.get(n)) if c]
        folded = {k.casefold(): k for k in table}
        for key in candidates:
            if key in table:
                return key
        return next((folded[c.casefold()] for c in candidates if c.casefold() in folded), None)

    def header(self, tag, default=None):
        """The text after the scan's first ``#tag`` header line (``header("UIMDET")`` → the area
        detector 34-ID-C names), or `default` where there is none."""
        prefix = f"#{tag} "
        return next((line[len(prefix):].strip() for line in self.comments if line.startswith(prefix)), default)

    def column(self, *names) -> np.ndarray:
        """The scanned values of the first of `names` there is; a clear error naming the columns there are."""
        key = self._key(names, self.columns)
        if key is None:
            wanted = "' or '".join(names)
            raise FileFormatError(f"SPEC scan {self.number} has no column '{wanted}' (columns: "
                                  f"{', '.join(self.columns) or 'none'})")
        return self.columns[key]

    def values(self, name, default=_REQUIRED):
        """Motor `name` during the scan: its column (points,) where it was scanned, else its start
        position; `default` where neither is recorded, or, without one, a clear error."""
        key = self._key((name,), self.columns)
        return self.columns[key] if key is not None else self.motor(name, default)

    def motor(self, name, default=_REQUIRED) -> float:
        """The position of motor `name` at the start of the scan; `default` where it is not recorded,
        or, without one, a clear error naming the motors there are."""
        key = self._key((name,), self.positions)
        if key is not None:
            return self.positions[key]
        if default is not _REQUIRED:
            return default
        raise FileFormatError(f"SPEC scan {self.number} records no motor '{name}' (motors: "
                              f"{', '.join(self.positions) or 'none'})")


def _motor_names(lines, tag="#O"):
    """{line number: [motor names]} of the header's `tag` lines (names may hold single spaces)."""
    names = {}
    for line in lines:
        if line.startswith(tag) and line[2:3].isdigit():
            key, _, rest = line.partition(" ")
            names[int(key[2:])] = [n.strip() for n in (rest.split("  ") if "  " in rest else rest.split()) if n.strip()]
    return names


def _scan(header, body, motor_names, mnemonics):
    number, _, command = header[3:].strip().partition(" ")
    positions, labels, comments, rows = {}, [], [], []
    for line in body:
        if line.startswith("#P") and line[2:3].isdigit():
            key, _, rest = line.partition(" ")
            positions.update(zip(motor_names.get(int(key[2:]), []), map(float, rest.split())))
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
    return SpecScan(int(number), command.strip(), positions, columns, comments, mnemonics)


def parse_spec(text) -> dict:
    """{scan number: :class:`SpecScan`} of a SPEC file's text (a later scan of the same number wins).
    Each scan takes the motor names of the last ``#O``/``#o`` header before it (SPEC writes a new
    header when it restarts with other motors)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("#S ")]
    names, short, scans = {}, {}, {}
    for i, start in enumerate(starts):
        before = lines[starts[i - 1] if i else 0:start]
        names |= _motor_names(before)
        short |= _motor_names(before, "#o")
        mnemonics = {m: n for k in short for m, n in zip(short[k], names.get(k, []))}
        end = starts[i + 1] if i + 1 < len(starts) else len(lines)
        try:
            scan = _scan(lines[start], lines[start + 1:end], names, mnemonics)
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
