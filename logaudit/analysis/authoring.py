"""Writing a new catalog pattern: draft it, test it on its examples and on real entries, save it.

The loop the catalog-authoring notebook walks through:

>>> draft = draft_patterns('''
... - id: redis-retry
...   title: Redis connection retried
...   category: warning
...   regex: 'Retrying Redis connection to (?P<host>[\\d.]+):\\d+'
...   examples: ["Retrying Redis connection to 10.0.0.7:6379 (attempt 2)"]
... ''')
>>> test_draft(draft).ok
True

`try_on_store` shows what the draft matches in a window of the store and the near misses
(lines that share its words but do not match); `save_patterns` appends the draft to a catalog
file after validating the result together with the other catalogs, atomically.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from logaudit.analysis.templates import template
from logaudit.catalog.catalog import (
    Catalog,
    CatalogLoadError,
    default_catalog_paths,
    expand_paths,
    load_catalogs,
)
from logaudit.catalog.engine import SLOW_PATTERNS_KEY, classify_table
from logaudit.catalog.selftest import SelfTestReport, run_self_test
from logaudit.core.errors import CatalogError

DRAFT_NAME = "<draft>"


def draft_patterns(yaml_text: str, catalog: str = "draft") -> Catalog:
    """Parse and validate patterns written as a YAML list (the items of a catalog's `patterns:`).

    Raises `CatalogLoadError` whose problems say `<draft>:LINE: ID: ...` with a hint.
    """
    body = textwrap.dedent(yaml_text).strip("\n")
    text = f"catalog: {catalog}\nversion: 1\npatterns:\n" + textwrap.indent(body, "  ") + "\n"
    with tempfile.TemporaryDirectory(prefix="logaudit-draft-") as tmp:
        path = Path(tmp) / "draft.yaml"
        path.write_text(text)
        try:
            cat = load_catalogs([path], collect=True)
        except CatalogLoadError as err:
            # report lines of the draft as written, not of the wrapper file
            raise CatalogLoadError([replace(p, file=DRAFT_NAME, line=max(1, p.line - 3)) for p in err.problems]) from None
    return cat


def test_draft(draft: Catalog) -> SelfTestReport:
    """Run the draft's examples and counter-examples through the real engine."""
    return run_self_test(draft)


test_draft.__test__ = False  # a library function, not a pytest test


@dataclass
class TryResult:
    """What a draft matches in a window: `matches` (pattern_id, timestamp, revision, message,
    fields), `near_misses` (templates of unmatched lines sharing the draft's words) and
    `slow_patterns` (patterns whose searches timed out or were skipped: counts, why, the fix)."""

    matches: Any
    near_misses: Any
    slow_patterns: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return self.matches["pattern_id"].value_counts().to_dict() if len(self.matches) else {}


def _anchor_words(regex_src: str) -> list[str]:
    """Literal words (4+ letters) of a regex, used to find lines that look related (near misses)."""
    plain = re.sub(r"\\[a-zA-Z]|\(\?P<[^>]+>|\[[^\]]*\]|[{}()*+?|^$.\\]", " ", regex_src)
    return sorted({w for w in re.findall(r"[A-Za-z_]{4,}", plain)}, key=len, reverse=True)[:5]


def try_on_store(audit: Any, draft: Catalog, *, limit: int = 20, **window: Any) -> TryResult:
    """Classify the window's entries with the draft only (nothing is cached or written)."""
    import pandas as pd
    import pyarrow as pa

    w = audit.window(**window)
    table = audit.store.read_entries(w.since, w.until)
    if w.service is not None or w.revision is not None:
        import pyarrow.compute as pc

        mask = pa.array([True] * table.num_rows)
        if w.service is not None:
            mask = pc.and_(mask, pc.equal(table["service"], w.service))
        if w.revision is not None:
            mask = pc.and_(mask, pc.equal(table["revision"], w.revision))
        table = table.filter(mask)
    hits = classify_table(table, draft)
    rows = hits["entry_row"].to_pylist()
    matched = table.take(pa.array(rows, pa.int64())) if rows else table.slice(0, 0)
    matches = pd.DataFrame({
        "pattern_id": hits["pattern_id"].to_pylist(),
        "timestamp": matched["timestamp"].to_pandas() if rows else [],
        "revision": matched["revision"].to_pylist(),
        "message": audit.redactor.redact_all(matched["message"].to_pylist()),
        # extracted values are log text too (JSON text: the rules keep it valid JSON)
        "fields": audit.redactor.redact_all(hits["fields_json"].to_pylist()) if "fields_json" in hits.column_names
        else [None] * len(rows),
    })
    words = {w_ for p in draft for w_ in _anchor_words(p.regex)}
    need = 1 if len(words) < 2 else max(2, (len(words) + 1) // 2)  # "looks related": shares most of its words
    hit_rows = set(rows)
    counts: dict[str, list] = {}
    messages = table["message"].to_pylist()
    for i, msg in enumerate(messages):
        if msg is None or i in hit_rows or sum(word in msg for word in words) < need:
            continue
        key = template(msg) or ""
        slot = counts.setdefault(key, [0, msg])
        slot[0] += 1
    near = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    near_misses = pd.DataFrame({"template": audit.redactor.redact_all(k for k, _ in near),
                                "count": [v[0] for _, v in near],
                                "example": audit.redactor.redact_all(v[1] for _, v in near)})
    slow = json.loads((hits.schema.metadata or {}).get(SLOW_PATTERNS_KEY, b"[]"))
    return TryResult(matches.head(limit * 50), near_misses, slow)


def save_patterns(catalog_file: str | os.PathLike, yaml_text: str, *,
                  other_catalogs: list[str | os.PathLike] | None = None) -> Catalog:
    """Append the drafted patterns to `catalog_file` (created if missing) and return the catalogs.

    The new file is validated together with `other_catalogs` (default: the catalogs a run uses,
    `default_catalog_paths()`: the shipped ones plus $LOGAUDIT_CATALOG, whatever the working
    directory) before it replaces the old one, so a duplicate id or a broken regex never
    reaches the file. The returned catalog is the other catalogs followed by the file.
    """
    path = Path(catalog_file)
    draft_patterns(yaml_text)  # the draft alone must be valid first: clearer errors
    body = textwrap.indent(textwrap.dedent(yaml_text).strip("\n"), "  ") + "\n"
    if path.exists():
        old = path.read_text()
        loaded = yaml.safe_load(old) or {}
        if not isinstance(loaded, dict) or "patterns" not in loaded:
            raise CatalogError(f"{path}: not a catalog file (no top-level `patterns:`)")
        new = old.rstrip("\n") + "\n\n" + body
    else:
        name = re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-") or "catalog"
        new = f"catalog: {name}\nversion: 1\npatterns:\n" + body
    others = expand_paths(other_catalogs) if other_catalogs is not None else default_catalog_paths()
    others = [p for p in others if p.resolve() != path.resolve()]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(new)
        catalog = load_catalogs([*others, tmp])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return catalog


__all__ = ["TryResult", "draft_patterns", "save_patterns", "test_draft", "try_on_store"]
