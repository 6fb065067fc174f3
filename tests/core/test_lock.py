"""logaudit.core.lock.FileLock: the one flock of the store, the cache, the checks and local exports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from logaudit.core.lock import FileLock


def test_a_second_holder_is_refused_and_reads_who_holds_it(tmp_path):
    path = tmp_path / ".lock"
    with FileLock(path) as first:
        assert first.acquire(wait=False) is True
        first.write(b'{"pid": 1}')
        first.write(b'{"pid": 42}')  # replaces, not appends
        with FileLock(path) as second:
            assert second.acquire(wait=False) is False
            assert second.read() == b'{"pid": 42}'
        with FileLock(path, create=False, shared=True) as probe:
            assert probe.acquire(wait=False) is False
    with FileLock(path) as again:  # released on leaving the block
        assert again.acquire(wait=False) is True


def test_shared_probes_do_not_block_each_other_but_block_a_writer(tmp_path):
    path = tmp_path / ".lock"
    path.touch()
    with FileLock(path, create=False, shared=True) as a, FileLock(path, create=False, shared=True) as b:
        assert (a.acquire(wait=False), b.acquire(wait=False)) == (True, True)
        with FileLock(path) as writer:
            assert writer.acquire(wait=False) is False


def test_missing_file_without_create_and_use_after_close(tmp_path):
    with pytest.raises(FileNotFoundError):
        FileLock(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()
    lock = FileLock(tmp_path / ".lock")
    lock.close()
    lock.close()  # twice is fine
    with pytest.raises(ValueError, match=r"\.lock: lock file already closed"):
        lock.acquire()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    path = tmp_path / ".lock"
    code = ("import sys, time; from logaudit.core.lock import FileLock; lock = FileLock(sys.argv[1]); "
            "assert lock.acquire(wait=False); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with FileLock(path) as lock:
            assert lock.acquire(wait=False) is False
        holder.kill()
        holder.wait(timeout=30)
        with FileLock(path) as lock:
            assert lock.acquire(wait=False) is True
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
