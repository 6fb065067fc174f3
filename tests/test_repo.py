"""The repository keeps its promises: docs match the code, the bundled sample is what the generator makes, ruff is clean."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

from logaudit.sources.bundled import sample_path
from logaudit.sources.sample import SampleConfig, write_sample
from logaudit.store.schema import schema_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_entry_table_doc_matches_schema():
    doc = (ROOT / "docs" / "entry-table.md").read_text()
    assert schema_markdown() in doc


def test_bundled_sample_is_the_generators_output(tmp_path):
    fresh = tmp_path / sample_path().name
    write_sample(fresh, SampleConfig())
    assert gzip.decompress(fresh.read_bytes()) == gzip.decompress(sample_path().read_bytes())


def test_bundled_sample_is_small():
    assert sample_path().stat().st_size < 1_000_000


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "logaudit", "tests", "benchmarks", "notebooks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_cli_command_is_found_where_the_lazy_table_says():
    """`logaudit X` imports only X's module: the table must name every command and the right module."""
    import importlib

    from logaudit.cli import _COMMANDS, main

    for module in sorted(set(_COMMANDS.values())):
        importlib.import_module(f"logaudit.cli.{module}")
    assert sorted(main.commands) == sorted(_COMMANDS)
    for name, command in main.commands.items():
        assert command.callback.__module__ == f"logaudit.cli.{_COMMANDS[name]}", name
    assert "summarize" in subprocess.run([sys.executable, "-m", "logaudit", "--help"], capture_output=True,
                                         text=True, check=True).stdout
