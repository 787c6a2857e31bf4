"""A guard that makes a test fail when it reads what an earlier run left under the repository's ``runs/``.

A test that reads ``runs/classifier/.../last.ckpt`` passes only on the machine that trained
it: every file a test reads must be one it wrote (in ``tmp_path``).  :class:`RunsReadGuard`
watches this process through an audit hook (``sys.addaudithook``): opening a file under the
folder for reading, or globbing there (``resolve_checkpoint``'s ``version_*``), counts as a
read unless the test wrote that file (or, for a glob, into that folder) first.  Listing a
folder does not count: a logger lists its run folder to number a new version.  ``conftest.py`` turns it on around every test.
Subprocesses are not watched; a run of the test suite from a fresh clone (no ``runs/``)
catches those.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["RunsReadGuard"]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND


class RunsReadGuard:
    """Records the reads of paths under ``folder`` that were not written while it was on."""

    _active: list["RunsReadGuard"] = []
    _installed = False

    def __init__(self, folder: str) -> None:
        self.folder = os.path.abspath(folder) + os.sep
        self.written: set[str] = set()
        self.unwritten_reads: list[str] = []

    def __enter__(self) -> "RunsReadGuard":
        if not RunsReadGuard._installed:  # an audit hook cannot be removed: one for the process
            sys.addaudithook(RunsReadGuard._hook)
            RunsReadGuard._installed = True
        RunsReadGuard._active.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        RunsReadGuard._active.remove(self)

    @staticmethod
    def _hook(event: str, args: tuple) -> None:
        if RunsReadGuard._active and event in ("open", "glob.glob"):
            for guard in RunsReadGuard._active:
                guard._see(event, args)

    def _see(self, event: str, args: tuple) -> None:
        path = args[0]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return  # a file descriptor
        path = os.path.abspath(os.fsdecode(path))
        if not (path + os.sep).startswith(self.folder):
            return
        if event == "open":
            mode, flags = args[1], args[2]
            if (mode and any(c in mode for c in "wax+")) or (flags & _WRITE_FLAGS):
                self.written.add(path)
                return
            if path in self.written:
                return
        elif any(w.startswith(path.split("*")[0].rstrip(os.sep) + os.sep) for w in self.written):
            return  # a glob in a folder the test wrote into
        self.unwritten_reads.append(path)
