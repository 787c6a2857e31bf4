"""The guard of conftest.py: reads under runs/ count unless the test wrote the path first."""

import glob
import os

from runs_guard import RunsReadGuard


def test_reads_of_files_not_written_are_recorded(tmp_path):
    runs = tmp_path / "runs"
    (runs / "old").mkdir(parents=True)
    (runs / "old" / "last.ckpt").write_bytes(b"left by an earlier run")
    with RunsReadGuard(str(runs)) as guard:
        (runs / "new").mkdir()
        with open(runs / "new" / "last.ckpt", "wb") as handle:
            handle.write(b"written here")
        (runs / "new" / "last.ckpt").read_bytes()  # written by the test: fine
        glob.glob(str(runs / "new" / "*.ckpt"))
        (tmp_path / "elsewhere.txt").write_text("not under runs/")
        (tmp_path / "elsewhere.txt").read_text()
        assert guard.unwritten_reads == []
        (runs / "old" / "last.ckpt").read_bytes()
        glob.glob(str(runs / "old" / "version_*" / "*.ckpt"))
        os.listdir(runs)  # listing is not reading (a logger numbering its versions)
        try:
            open(runs / "never" / "x.ckpt", "rb")
        except FileNotFoundError:
            pass
    reads = set(guard.unwritten_reads)
    stale = [runs / "old" / "last.ckpt", runs / "old" / "version_*" / "*.ckpt", runs / "never" / "x.ckpt"]
    assert {str(path) for path in stale} <= reads
    assert not [r for r in reads if r.startswith(str(runs / "new")) or r == str(runs)]
    (runs / "old" / "last.ckpt").read_bytes()  # the guard is off
    assert set(guard.unwritten_reads) == reads
