"""The allocator setting: big temporaries are reused instead of faulted in again on every call."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from logaudit.core.memory import ARROW_PURGE_DELAY_MS, tune_allocator

ROUNDS = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from logaudit.core.memory import tune_allocator
    assert tune_allocator()
faults = []
for _ in range(5):  # eight 24 MB arrays alive at once, all freed, again: like a classification's temporaries
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    arrays = [np.ones(3_000_000) for _ in range(8)]
    del arrays
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[2:]))
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not tune_allocator(), reason="glibc's allocator thresholds are not available here")
def test_tuned_process_reuses_freed_blocks_instead_of_faulting_them_in():
    # untuned, glibc maps or trims most of the 192 MB of each round and faults it in again (13k
    # faults over the last three rounds on the reference machine); tuned, the heap keeps it (0)
    default, tuned = _faults("default"), _faults("tuned")
    assert tuned * 10 < default, (default, tuned)


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)


def test_tune_memory_keeps_arrows_freed_memory_unless_the_user_chose():
    show = ("import os, sys, logaudit\nassert 'pyarrow' not in sys.modules\n"
            "print(os.environ.get('MIMALLOC_PURGE_DELAY'))\nlogaudit.tune_memory()\n"
            "print(os.environ['MIMALLOC_PURGE_DELAY'])")
    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_PURGE_DELAY"}
    assert _run(show, env).stdout.split() == ["None", str(ARROW_PURGE_DELAY_MS)]
    assert _run(show, env | {"MIMALLOC_PURGE_DELAY": "25"}).stdout.split() == ["25", "25"]


def test_the_command_line_tunes_memory_before_pyarrow_loads():
    """`logaudit` (the console script's `run`) sets mimalloc up before a command's module imports pyarrow."""
    code = ("import os, sys\nfrom logaudit.cli import run\nassert 'pyarrow' not in sys.modules\n"
            "sys.argv = ['logaudit', 'ingest', '--help']\ntry:\n    run()\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('MIMALLOC_PURGE_DELAY'), 'pyarrow' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_PURGE_DELAY"}
    assert _run(code, env).stdout.splitlines()[-1] == f"{ARROW_PURGE_DELAY_MS} True"
