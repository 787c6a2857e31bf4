"""Files: atomic writes, checkpoint paths that may be globs, and content hashes.

* :func:`atomic_path` / :func:`atomic_write` / :func:`atomic_write_bytes` -- write through a
  temporary file in the destination's folder, flushed to disk, then ``os.replace`` it onto
  the destination: a reader (another process, a run resumed after a crash) sees the old
  file or the whole new one, never half a file, and a failed write leaves no temporary
  file behind.
* :func:`resolve_checkpoint` -- a checkpoint given in a config as a path or a glob
  (``runs/vae/version_*/checkpoints/last.ckpt``): the newest match, or an error naming the
  config key and the command that writes such a checkpoint.
* :func:`file_sha256` -- the sha256 of a file's bytes, memoised within the process.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import uuid
from typing import Any, Callable, Iterator

__all__ = ["atomic_path", "atomic_write", "atomic_write_bytes", "file_sha256", "resolve_checkpoint"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block ends without an error, move it onto ``path``.

    The block writes the whole file to the yielded path (any writer that takes a path:
    ``open``, ``torch.save``, ...).  The file is then flushed to disk and renamed onto
    ``path`` with ``os.replace`` (atomic on POSIX and Windows within one file system), so
    readers never see half a file.  If the block raises, the temporary file is removed and
    ``path`` is left as it was.  The folder of ``path`` is created if missing.  The temporary
    name is ``<path>.tmp-<pid>-<random>``: concurrent writers of one path do not collide.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path: str, write: Callable[[str], Any]) -> None:
    """Write through a temporary file in the same folder and rename: readers never see half a file.

    ``write(tmp)`` writes the whole file to the path ``tmp`` (see :func:`atomic_path`).
    """
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------- checkpoints
def _global_rank() -> int:
    """This process's rank from the launcher's environment (0 outside distributed runs).

    The variables Lightning reads before a Trainer sets the rank itself: ``RANK``, then
    ``LOCAL_RANK``, ``SLURM_PROCID``, ``JSM_NAMESPACE_RANK``.
    """
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key)
        if value is not None:
            return int(value)
    return 0


def resolve_checkpoint(path: str, key: str, howto: str) -> str:
    """``path`` itself, or the newest file matching it when it is a glob; a clear error when none exists.

    When several files match, which one was taken is logged (a warning of the ``core.io``
    logger, on global rank 0 only).

    Args:
        path: a file path or a glob pattern (``*``, ``?``, ``[``).
        key: the config key the path comes from, named in the error.
        howto: the command that writes such a checkpoint, named in the error.
    """
    if any(ch in path for ch in "*?["):
        matches = [p for p in glob.glob(path) if os.path.isfile(p)]
        if matches:
            newest = max(matches, key=os.path.getmtime)
            if len(matches) > 1 and _global_rank() == 0:
                log.warning(f"{key}: {len(matches)} files match {path!r}; using the newest, {newest}")
            return newest
    elif os.path.isfile(path):
        return path
    raise FileNotFoundError(
        f"{key}: no checkpoint at {path!r} (working directory {os.getcwd()}).\n"
        f"  Write one with `{howto}` and set {key} to its checkpoints/last.ckpt (globs like version_* are allowed)."
    )


# ---------------------------------------------------------------------------------- hashing
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str:
    """sha256 hex digest of a file (memoised on path, size and mtime within the process)."""
    stat = os.stat(path)
    memo = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[memo] = digest.hexdigest()
    return _SHA_CACHE[memo]
