"""logaudit keeps the shape of its pipeline (docs/architecture.md): the import contracts of
pyproject.toml hold, and no module reaches into another module's private names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "logaudit"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p) for p in PACKAGE.rglob("*.py")}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, module: str) -> list[str]:
    """Where `source` (the code of logaudit module `module`) uses another logaudit module's
    private name: `from logaudit.x import _y`, or `_y` read off an imported module (`x._y`)."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    aliases: dict[str, str] = {}  # local name -> the logaudit module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "logaudit":
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                elif _private(alias.name) and node.module != module:
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "logaudit":
                    aliases[alias.asname or "logaudit"] = alias.name if alias.asname else "logaudit"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = ast.unparse(node.value)
            target = aliases.get(owner) or (owner if owner in MODULES else None)
            if target is not None and target != module:
                found.append((node.lineno, f"{owner}.{node.attr}"))
    return [f"{module}:{line}: {what}" for line, what in sorted(found)]


def test_the_import_contracts_hold():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {len(contracts)} kept, 0 broken." in done.stdout, done.stdout


def test_no_module_uses_another_modules_private_names():
    found = [use for p in sorted(PACKAGE.rglob("*.py")) for use in private_uses(p.read_text(), _module_name(p))]
    assert found == []


def test_the_private_name_scan_finds_both_forms():
    source = ("from logaudit.store import store\nfrom logaudit.store.layout import _x, atomic_write\n"
              "import logaudit.catalog.engine as engine\nfrom logaudit.analysis import window as w\n"
              "store._version()\nengine._plain\nw.iso\nlogaudit.core.db._SESSION\nself._own\n")
    assert private_uses(source, "logaudit.period_export") == [
        "logaudit.period_export:2: from logaudit.store.layout import _x",
        "logaudit.period_export:5: store._version",
        "logaudit.period_export:6: engine._plain",
        "logaudit.period_export:8: logaudit.core.db._SESSION",
    ]
    assert private_uses("from logaudit.store.store import _relative\n", "logaudit.store.store") == []


def test_no_module_imports_the_package_root():
    """`logaudit/__init__.py` is the public face: a stage that imported it would import every stage."""
    found = []
    for p in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "logaudit":
                found += [f"{_module_name(p)}: from logaudit import {a.name}" for a in node.names
                          if f"logaudit.{a.name}" not in MODULES]
            elif isinstance(node, ast.Import):
                found += [f"{_module_name(p)}: import logaudit" for a in node.names if a.name == "logaudit"]
    assert found == []


def test_importing_logaudit_changes_nothing_in_the_process():
    """No environment change, and no heavy library loaded: names load on first use."""
    code = ("import os, sys\nbefore = dict(os.environ)\nimport logaudit\nassert dict(os.environ) == before\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'duckdb', 'pandas', 'numpy')))\n"
            "print(logaudit.Store.__module__, logaudit.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "logaudit.store.store 0.1.0"]


@pytest.mark.slow
def test_every_public_name_loads_and_the_functions_stay_functions():
    """Each name of `logaudit.__all__` loads; importing the modules behind them first changes nothing."""
    code = ("import logaudit.period_export, logaudit.store.pull, logaudit.store.ingest\nimport logaudit\n"
            "missing = [n for n in logaudit.__all__ if getattr(logaudit, n, None) is None]\n"
            "print(missing, [getattr(logaudit, n).__module__ for n in ('export', 'pull', 'ingest', 'compare', 'build_report')])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("[] ['logaudit.period_export', 'logaudit.store.pull', 'logaudit.store.ingest', "
                                   "'logaudit.analysis.judge', 'logaudit.present.report']")
