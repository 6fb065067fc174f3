"""The per-file aggregates and the hour slices are derived data whose shape holds every input
that shapes them: change any one and the cache is not reused (a new shape folder, new data
written) and the numbers equal those of a cold computation under the change.

Each test warms a copy of the bundled sample's store under the normal inputs, changes one
input, and compares what `summarize` and `compare` answer from the warm store with what they
answer from a store without derived data.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from logaudit.analysis import comparison, judge, observe, templates, window
from logaudit.analysis.audit import Audit
from logaudit.analysis.gate import Gate
from logaudit.analysis.judge import compare
from logaudit.core.redact import Redactor
from logaudit.sources.bundled import sample_path
from logaudit.store.store import Store

# cuts the hours 21:00 and 02:00 (slices) and holds whole hours between (aggregates)
WINDOW = {"since": "2025-09-09T21:13:07.25Z", "until": "2025-09-10T02:41:30.5Z"}
CATALOG = """catalog: t
version: 1
patterns:
  - id: lookup
    title: Thread lookup failed
    category: critical
    regex: '{regex}'
"""
KINDS = ("aggregates", "aggregates-cat", "slices")


@pytest.fixture(scope="module")
def base_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "store"
    assert Store(root).ingest_paths([sample_path()]).new_rows == 5000
    return root


def catalog(folder: Path, regex: str = "Thread lookup failed") -> Path:
    path = folder / f"cat-{abs(hash(regex))}.yaml"
    path.write_text(CATALOG.format(regex=regex), encoding="utf-8")
    return path


def rounded(value: object) -> object:
    """Floats to 12 significant digits: sums of floats aggregated in another order (cached parts,
    or rows) may differ in their last bits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return [rounded(v) for v in value] if isinstance(value, list | tuple) else value


def answers(root: Path, cat: Path, redactor: Redactor | None = None) -> dict:
    """What summarize and compare answer for WINDOW (and compare for the whole store)."""
    audit = Audit(root, [cat], redactor=redactor)
    summary = audit.summary(**WINDOW)
    templates = audit.engine.templates(audit.window(**WINDOW), min_severity=400)  # as cached, before grouping
    return rounded({
        "summary": {k: summary[k] for k in ("entries", "revisions", "patterns", "endpoints", "unclassified")},
        "templates": sorted((t.template, t.revision or "", t.count) for t in templates),
        "compare": compare(Audit(root, [cat], redactor=redactor), gate=Gate(), **WINDOW).to_dict(),
        "compare-all": compare(Audit(root, [cat], redactor=redactor), gate=Gate()).to_dict()})


def shapes(root: Path) -> dict[str, set[str]]:
    return {k: {p.name for p in (root / "derived" / k).iterdir()} if (root / "derived" / k).is_dir() else set()
            for k in KINDS}


def _bins(mp: pytest.MonkeyPatch) -> None:
    for module in (comparison, observe, judge):  # where the constant is read
        mp.setattr(module, "LATENCY_BINS_PER_E", 50)


CONSTANTS = {
    # (change, kinds whose shape it is part of)
    "latency bins": (_bins, {"aggregates", "slices"}),
    "path normalisation": (lambda mp: mp.setattr(window, "ID_SEGMENT_RE", re.compile(r"^[0-9]+$")),
                           {"aggregates", "slices"}),
    "template masks": (lambda mp: mp.setattr(templates, "MASKS", templates.MASKS[:-1]), {"aggregates-cat", "slices"}),
    "template cut": (lambda mp: mp.setattr(templates, "MAX_TEMPLATE_CHARS", 25), {"aggregates-cat", "slices"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONSTANTS))
def test_a_changed_constant_is_never_served_old_numbers(name, base_store, tmp_path, monkeypatch):
    change, kinds = CONSTANTS[name]
    warm = Path(shutil.copytree(base_store, tmp_path / "warm"))
    cat = catalog(tmp_path)
    before = answers(warm, cat)
    made = shapes(warm)
    change(monkeypatch)
    got = answers(warm, cat)
    cold = answers(Path(shutil.copytree(base_store, tmp_path / "cold")), cat)
    assert got == cold  # fails when the warm cache served numbers of the old constant
    assert got != before  # the constant matters for this data (else the test could not fail)
    assert all(len(v) == 1 for v in made.values()), made
    now = shapes(warm)
    assert {k for k in KINDS if now[k] != made[k]} == kinds  # a new shape folder: a miss, computed and kept
    assert all(now[k] - made[k] and made[k] <= now[k] for k in kinds)


@pytest.mark.slow
def test_a_changed_catalog_or_redaction_is_never_served_old_numbers(base_store, tmp_path):
    warm = Path(shutil.copytree(base_store, tmp_path / "warm"))
    cat, edited = catalog(tmp_path), catalog(tmp_path, "Rate limiter fallback")
    before = answers(warm, cat)
    made = shapes(warm)
    for other, redactor, kinds in ((edited, None, {"aggregates-cat", "slices"}),
                                   (cat, Redactor(extra=[("tenant", r"\btenant\b", "[T]")]), {"aggregates-cat", "slices"})):
        got = answers(warm, other, redactor)
        cold = answers(Path(shutil.copytree(base_store, tmp_path / f"cold-{len(made['slices'])}")), other, redactor)
        assert got == cold and got != before
        now = shapes(warm)
        assert {k for k in KINDS if now[k] != made[k]} == kinds
        made = now


@pytest.mark.slow
def test_the_shape_file_names_the_inputs(base_store, tmp_path):
    import orjson

    warm = Path(shutil.copytree(base_store, tmp_path / "warm"))
    answers(warm, catalog(tmp_path))
    (agg,) = (warm / "derived" / "aggregates").iterdir()
    doc = orjson.loads((agg / "shape.json").read_bytes())
    assert (doc["kind"], doc["digest"]) == ("aggregates", agg.name)
    assert doc["shape"]["latency_bins_per_e"] == 200 and doc["shape"]["path_ids"][0] == window._ID_SEGMENT
    (cat,) = (warm / "derived" / "aggregates-cat").iterdir()
    doc = orjson.loads((cat / "shape.json").read_bytes())
    assert doc["shape"]["max_template_chars"] == 500 and doc["shape"]["level"] == 400
    assert doc["shape"]["patterns"][0][0] == "lookup" and len(doc["shape"]["redaction"]) == len(Redactor().rules)
