"""A regular install works: the wheel holds the catalogs and the sample, the core installs no
Jupyter, and the installed package runs the demo outside the checkout exactly as the checkout does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.slow  # builds and installs the wheel

REPO = Path(__file__).resolve().parents[1]
#: Distributions that are Jupyter (or only there for it): none may be in the core install.
JUPYTER = re.compile(r"^(jupyter.*|notebook.*|ipykernel|ipython|ipywidgets|nbclient|nbconvert|nbformat)$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel` builds from the checkout's files (copied, so the checkout gets no build/)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    for name in ("logaudit", "patterns", "data"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
                           "-q", "-w", str(root / "out"), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = (root / "out").glob("logaudit-*.whl")
    return built


def test_the_wheel_holds_the_catalogs_the_sample_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    catalogs = sorted(p.name for p in (REPO / "patterns").glob("*.yaml"))
    assert catalogs == ["cloud_run.yaml", "netra_backend.yaml"]
    for name in catalogs:
        assert f"logaudit/shipped/patterns/{name}" in names
    assert "logaudit/shipped/sample/netra-staging.jsonl.gz" in names
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "logaudit").rglob("*.py")}
    assert modules - names == set()  # a new subpackage must be listed in pyproject.toml
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "patterns/", "data/"))]


def _wheel_metadata(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as zf:
        [meta] = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        msg = Parser().parsestr(zf.read(meta).decode())
    return {"Requires-Dist": msg.get_all("Requires-Dist") or [], "Provides-Extra": msg.get_all("Provides-Extra") or []}


def test_the_core_requires_no_jupyter_and_the_extras_bring_it(wheel):
    meta = _wheel_metadata(wheel)
    reqs = [Requirement(r) for r in meta["Requires-Dist"]]
    core = {_canonical(r.name) for r in reqs if r.marker is None}
    assert "duckdb" in core and "click" in core
    assert sorted(n for n in core if JUPYTER.match(n)) == []

    def extra(name: str) -> set[str]:
        return {_canonical(r.name) for r in reqs if r.marker is not None and r.marker.evaluate({"extra": name})}

    assert {"notebooks", "test"} <= set(meta["Provides-Extra"])
    assert "jupyter" in extra("notebooks")
    assert {"nbclient", "nbformat", "ipykernel"} <= extra("test")  # what tests/test_notebooks.py executes them with


def test_what_the_core_installs_holds_no_jupyter():
    """Every distribution the core requirements pull in, transitively, as installed here."""
    seen: set[str] = set()
    todo = ["logaudit"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for raw in distribution(name).requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_canonical(req.name))
    assert len(seen) > 20
    assert sorted(n for n in seen if JUPYTER.match(n)) == []


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOGAUDIT_")}
    return subprocess.run([sys.executable, *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=300)


def test_the_installed_wheel_runs_the_demo_outside_the_checkout(wheel, tmp_path):
    """Installed (here: into a folder put first on the path), run from a folder that is not the
    checkout and holds a `patterns/` of its own: the demo prints what the checkout prints."""
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(site), str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "patterns").mkdir(parents=True)
    (elsewhere / "patterns" / "mine.yaml").write_text(
        "catalog: mine\nversion: 1\npatterns:\n  - {id: mine, title: Mine, category: info, regex: 'x'}\n")
    env = {"PYTHONPATH": str(site)}
    where = _run(["-c", "import logaudit; print(logaudit.__file__)"], elsewhere, env)
    assert where.stdout.strip() == str(site / "logaudit" / "__init__.py")

    installed = _run(["-m", "logaudit", "demo", "--store", str(tmp_path / "s1")], elsewhere, env)
    assert installed.returncode == 0, installed.stderr
    checkout = _run(["-m", "logaudit", "demo", "--store", str(tmp_path / "s2")], REPO)
    assert checkout.returncode == 0, checkout.stderr
    assert installed.stdout == checkout.stdout
    assert "catalogs: cloud-run (shipped, 60 patterns), netra-backend (shipped, 24 patterns)\n" in installed.stdout
    assert "5,000 entries from 2 service(s)" in installed.stdout

    tested = _run(["-m", "logaudit", "catalog", "test"], elsewhere, env)
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.splitlines() == [
        "catalogs: cloud-run (shipped, 60 patterns), netra-backend (shipped, 24 patterns)",
        "ok: 84 patterns, 215 examples, 107 counter-examples, 0 failure(s)"]
    assert list(elsewhere.iterdir()) == [elsewhere / "patterns"]  # nothing written into the working directory
