"""Shared fixtures: reference LogEntry samples, temporary stores, CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

FIXTURES = Path(__file__).parent / "fixtures"


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
    from logaudit.demo import sample_path
    from logaudit.sample import SampleConfig, SampleGenerator
    from logaudit.store import Store

    gen = SampleGenerator(SampleConfig())
    for _ in gen:
        pass
    store = Store(folder / "store")
    assert store.ingest_paths([sample_path()]).new_rows == gen.truth.entries
    return store, gen.truth
