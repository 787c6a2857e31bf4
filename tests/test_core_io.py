"""core.io: atomic writes, checkpoint paths that may be globs, file hashes."""

import hashlib
import logging
import os

import pytest

from core.io import atomic_path, atomic_write, atomic_write_bytes, file_sha256, resolve_checkpoint


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.bin"  # the folder is created
    atomic_write_bytes(str(target), b"first")
    atomic_write(str(target), lambda tmp: open(tmp, "wb").write(b"second"))
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    seen = []
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(str(target)) as tmp:
            seen.append(tmp)
            with open(tmp, "w") as handle:
                handle.write("half a fi")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.path.dirname(seen[0]) == str(tmp_path) and not os.path.exists(seen[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_concurrent_writers_get_distinct_temporaries(tmp_path):
    target = str(tmp_path / "x")
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        for tmp, text in ((a, "a"), (b, "b")):
            with open(tmp, "w") as handle:
                handle.write(text)
    assert open(target).read() == "a"  # the outer block ends last


def test_resolve_checkpoint_takes_a_path_or_the_newest_glob_match(tmp_path, caplog):
    old, new = tmp_path / "version_0.ckpt", tmp_path / "version_1.ckpt"
    old.write_bytes(b"0")
    new.write_bytes(b"1")
    os.utime(old, (1, 1))
    assert resolve_checkpoint(str(old), "key", "howto") == str(old)
    with caplog.at_level(logging.INFO, logger="core.io"):
        assert resolve_checkpoint(str(tmp_path / "version_*.ckpt"), "model.ckpt", "howto") == str(new)
    assert "model.ckpt: 2 files match" in caplog.text and str(new) in caplog.text
    expected = r"(?s)model\.ckpt: no checkpoint.*Write one with `python train\.py`"
    for missing in (tmp_path / "nope.ckpt", tmp_path / "nope_*.ckpt"):
        with pytest.raises(FileNotFoundError, match=expected):
            resolve_checkpoint(str(missing), "model.ckpt", "python train.py")


def test_file_sha256_follows_the_content(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    assert file_sha256(str(path)) == hashlib.sha256(b"abc").hexdigest()
    path.write_bytes(b"abcd")
    os.utime(path, ns=(10**9, 10**9))  # a new mtime invalidates the memo
    assert file_sha256(str(path)) == hashlib.sha256(b"abcd").hexdigest()
