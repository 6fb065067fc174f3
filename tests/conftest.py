"""Shared fixtures: reference LogEntry samples, temporary stores, CLI runner, private mounts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def reference_entries() -> list[dict]:
    """The checked real-shape LogEntry samples, without their `_comment` keys."""
    entries = json.loads((FIXTURES / "logentry-samples.json").read_text())
    return [{k: v for k, v in e.items() if k != "_comment"} for e in entries]


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def cli():
    """Invoke the `logaudit` CLI in-process: cli("ingest", path, ...) -> click Result."""
    from logaudit.cli import main

    runner = CliRunner()

    def invoke(*args: str, env: dict | None = None):
        return runner.invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)

    return invoke


def ingest_bundled_sample(folder: Path):
    """A store holding the bundled sample, and the generator's truth for it (counts, planted secrets)."""
    from logaudit.sources.bundled import sample_path
    from logaudit.sources.sample import SampleConfig, SampleGenerator
    from logaudit.store.store import Store

    gen = SampleGenerator(SampleConfig())
    for _ in gen:
        pass
    store = Store(folder / "store")
    assert store.ingest_paths([sample_path()]).new_rows == gen.truth.entries
    return store, gen.truth


# Real file-system faults (a read-only mount, a full disk) are made in a private mount namespace:
# as root, or as any user in a user namespace; nothing outside the namespace sees the mounts.
def _namespace_prefix() -> list[str] | None:
    """A command prefix giving a private mount namespace in which this user may mount, or None."""
    if shutil.which("unshare") is None:
        return None
    options = [["unshare", "--mount", "--propagation", "private"]] if os.geteuid() == 0 else []
    options.append(["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"])
    for prefix in options:
        probe = subprocess.run([*prefix, "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d"],
                               capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


NAMESPACE = _namespace_prefix()
needs_mounts = pytest.mark.skipif(NAMESPACE is None, reason="cannot mount in a private mount namespace here")


def in_namespace(script: str, out: Path) -> dict[str, subprocess.CompletedProcess]:
    """Run a shell script in a private mount namespace. Its `run NAME ARGS...` runs `logaudit
    ARGS` and records the result; returns {NAME: result}."""
    out.mkdir(parents=True, exist_ok=True)
    prelude = f"""
set -e
run() {{ name=$1; shift; rc=0; "{sys.executable}" -m logaudit "$@" >"{out}/$name.out" 2>"{out}/$name.err" || rc=$?;
        echo $rc >"{out}/$name.rc"; }}
"""
    done = subprocess.run([*NAMESPACE, "sh", "-c", prelude + script], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return {p.stem: subprocess.CompletedProcess([p.stem], int(p.read_text()), (out / f"{p.stem}.out").read_text(),
                                                (out / f"{p.stem}.err").read_text())
            for p in out.glob("*.rc")}


# Hypothesis profiles: "ci" (the default) keeps each property test's own max_examples; "long"
# (`pytest --hypothesis-profile long`) raises them, and tests/test_fuzz.py scales its example
# counts by the loaded profile's max_examples (docs/testing.md).
settings.register_profile("ci", deadline=None)
settings.register_profile("long", deadline=None, max_examples=4000)
settings.load_profile("ci")
