"""Shared plumbing of ``python -m analysis``: tables, ``--out`` files, plots, user errors.

Each tool module registers one command with ``add_command(subparsers)``; its handler
returns a :class:`Report` (rows of a table, notes, an optional figure), and
:func:`emit` prints the table, writes ``--out`` (``.json`` or ``.csv`` by suffix) and
saves ``--plot`` (PNG).  A :class:`UsageError` (a :class:`core.errors.UserError`) becomes
``error: <message>`` and exit status 2, without a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from core.errors import UserError

__all__ = ["UsageError", "Report", "emit", "format_table", "command_parser", "add_output_arguments", "progress"]


class UsageError(UserError):
    """Bad input a user can fix (printed as ``error: ...``, exit status 2)."""


@dataclass
class Report:
    """What a command produced.

    Attributes:
        title: one line printed above the table.
        columns: column keys, in order (each row is a dict keyed by them).
        rows: the table.
        notes: lines printed under the table (settings used, caveats, sources).
        figure: a matplotlib Figure for ``--plot``, or a callable building one (so that
            matplotlib is imported only when a plot is asked for).
        extra: more JSON-serialisable results written to ``--out`` JSON beside the rows.
    """

    title: str
    columns: Sequence[str]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    figure: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e7):
            return f"{value:.4g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e3 else f"{value:.1f}"
    return str(value)


def format_table(columns: Sequence[str], rows: list[dict[str, Any]]) -> str:
    """A plain-text table: a header, a rule, one line per row; numbers right-aligned."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [
        all(row.get(c) is None or (isinstance(row.get(c), (int, float)) and not isinstance(row.get(c), bool)) for row in rows)
        for c in columns
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(list(columns)), line(["-" * w for w in widths])] + [line(r) for r in cells])


def command_parser(subparsers, name: str, help: str, description: Optional[str]) -> argparse.ArgumentParser:
    """The sub-parser of one command; its module docstring becomes the ``--help`` text."""
    return subparsers.add_parser(
        name, help=help, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_output_arguments(parser: argparse.ArgumentParser, plot: bool = True) -> None:
    """``--out FILE`` (JSON or CSV by suffix) and, where the paper draws one, ``--plot FILE.png``."""
    parser.add_argument("--out", metavar="FILE", help="also write the results to FILE (.json or .csv)")
    if plot:
        parser.add_argument("--plot", metavar="FILE.png", help="draw the paper's plot to FILE.png")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    return value


def _write_out(report: Report, path: str) -> None:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".json", ".csv"):
        raise UsageError(f"--out {path}: the file name must end in .json or .csv")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if suffix == ".json":
        payload = {"title": report.title, "rows": report.rows, "notes": report.notes, **report.extra}
        with open(path, "w") as f:
            json.dump(_jsonable(payload), f, indent=2)
    else:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(report.columns), extrasaction="ignore")
            writer.writeheader()
            # CSV keeps inf/nan as text (float() reads them back); JSON has no such values.
            writer.writerows([{k: v.tolist() if hasattr(v, "tolist") else v for k, v in r.items()} for r in report.rows])


def _save_plot(report: Report, path: str) -> None:
    if report.figure is None:
        raise UsageError("this command has no plot")
    if not path.lower().endswith(".png"):
        raise UsageError(f"--plot {path}: the file name must end in .png")
    import matplotlib

    matplotlib.use("Agg")
    figure = report.figure() if callable(report.figure) else report.figure
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=150, bbox_inches="tight")


def emit(report: Report, out: Optional[str] = None, plot: Optional[str] = None) -> None:
    """Print the report; write ``out`` and ``plot`` when given."""
    print(report.title)
    print(format_table(report.columns, report.rows))
    for note in report.notes:
        print(note)
    if out:
        _write_out(report, out)
        print(f"wrote {out}")
    if plot:
        _save_plot(report, plot)
        print(f"wrote {plot}")


def progress(iterable, total: Optional[int] = None, desc: str = "", disable: Optional[bool] = None):
    """A tqdm progress bar on stderr (hidden when stderr is not a terminal, unless asked)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=False)


Handler = Callable[[argparse.Namespace], Report]
