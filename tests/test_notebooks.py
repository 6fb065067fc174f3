"""The notebooks run top to bottom on the bundled sample (their own asserts check the numbers),
say so plainly on an empty store, leave nothing in the temporary directory, and are committed
without outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
ENV_KEYS = ("LOGAUDIT_STORE", "LOGAUDIT_PROJECT", "LOGAUDIT_SERVICE", "LOGAUDIT_SINCE", "LOGAUDIT_UNTIL",
            "LOGAUDIT_NEW_CATALOG")


def run(path: Path, env: dict[str, str], tmp_path: Path) -> nbformat.NotebookNode:
    """Execute the notebook in a kernel working in `tmp_path/work`, whose temporary directory
    is `tmp_path/tmp` (checked by `leftovers` once the kernel has stopped)."""
    book = nbformat.read(path, as_version=4)
    (tmp_path / "work").mkdir()
    (tmp_path / "tmp").mkdir()
    keys = (*ENV_KEYS, "TMPDIR", "MPLBACKEND")
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for k in ENV_KEYS:
            os.environ.pop(k, None)
        os.environ.update(env)
        os.environ["TMPDIR"] = str(tmp_path / "tmp")
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # what Jupyter uses
        NotebookClient(book, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path / "work")}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return book


def leftovers(tmp_path: Path) -> list[str]:
    """What the notebook's kernel left in its temporary directory."""
    return sorted(p.name for p in (tmp_path / "tmp").iterdir())


def tracebacks(book: nbformat.NotebookNode) -> list[str]:
    """Error outputs and tracebacks printed to stderr (a message's own text may quote one)."""
    found = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" or (out.get("name") == "stderr" and "Traceback" in out.get("text", "")):
                found.append(out.get("ename") or out.get("text", "")[:200])
    return found


def outputs_text(book: nbformat.NotebookNode) -> str:
    parts = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") or json.dumps(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_there_are_three_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_deployment_audit.ipynb", "02_revision_compare.ipynb",
                                           "03_catalog_authoring.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_bundled_sample(path, tmp_path):
    book = run(path, {"LOGAUDIT_NEW_CATALOG": str(tmp_path / "team.yaml")}, tmp_path)
    text = outputs_text(book)
    assert "sample checks passed" in text
    assert tracebacks(book) == []
    # every cell that draws a chart shows it (a figure inside an `if` is not shown by itself)
    drawing = [c for c in book.cells if c.cell_type == "code" and "logaudit.charts." in c.source]
    for cell in drawing:
        assert any("image/png" in out.get("data", {}) for out in cell.outputs), cell.source[:80]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_on_an_empty_store_says_so(path, tmp_path):
    from logaudit.store.store import Store

    Store(tmp_path / "empty")
    book = run(path, {"LOGAUDIT_STORE": str(tmp_path / "empty"), "LOGAUDIT_NEW_CATALOG": str(tmp_path / "t.yaml")}, tmp_path)
    text = outputs_text(book)
    assert "No log entries in" in text and "the cells below will skip" in text
    assert tracebacks(book) == []
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_use_only_the_public_api(path):
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert "._" not in source.replace("._repr", "")  # no private attributes or modules
    assert "SELECT" not in source.upper().replace("SELECTED", "")  # no SQL the library already has


def test_the_library_works_in_a_kernel_without_ipywidgets(tmp_path):
    """The core install has no Jupyter: a plain ipykernel (an editor's notebooks) has no
    ipywidgets, and DuckDB refuses progress-bar settings there."""
    from logaudit.sources.bundled import sample_path

    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys\n"
        "sys.modules['ipywidgets'] = None  # not installed, as with the core install and ipykernel alone\n"
        "import logaudit\n"
        f"store = logaudit.Store({str(tmp_path / 'store')!r})\n"
        f"store.ingest_paths([{str(sample_path())!r}])\n"
        "print(logaudit.Audit(store).entries_count(), 'entries')")])
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert [out.get("text") for out in book.cells[0].outputs if out.get("name") == "stdout"] == ["5000 entries\n"]
