"""DuckDB views over a classified store: ``entries``, ``matches``, ``patterns``, ``unclassified``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from logaudit.catalog.cache import CHUNK_SCHEMA, cache_key, chunk_files
from logaudit.catalog.catalog import Catalog
from logaudit.catalog.classify import ClassifyReport, classify_store
from logaudit.catalog.engine import DEFAULT_MAX_CHARS, Progress
from logaudit.catalog.translate import plan_pattern
from logaudit.core.db import sql_list, time_filter
from logaudit.store.schema import ENTRY_SCHEMA


# =============================================================================== DuckDB views
def patterns_table(catalog: Catalog, max_chars: int = DEFAULT_MAX_CHARS) -> pa.Table:
    """The loaded patterns as an Arrow table (the `patterns` view)."""
    pats = list(catalog)
    plans = [plan_pattern(p, verify=False) for p in pats]
    return pa.table({
        "pattern_id": pa.array([p.id for p in pats], pa.string()),
        "category": pa.array([p.category for p in pats], pa.string()),
        "title": pa.array([p.title for p in pats], pa.string()),
        "catalog": pa.array([p.catalog for p in pats], pa.string()),
        "field": pa.array([p.field for p in pats], pa.string()),
        "regex": pa.array([p.regex for p in pats], pa.string()),
        "tags": pa.array([list(p.tags) for p in pats], pa.list_(pa.string())),
        "description": pa.array([p.description for p in pats], pa.string()),
        "engine_mode": pa.array([pl.mode for pl in plans], pa.string()),
        "fingerprint": pa.array([cache_key(p, max_chars) for p in pats], pa.string()),
        "file": pa.array([p.file for p in pats], pa.string()),
        "line": pa.array([p.line for p in pats], pa.int32()),
    })


def register_views(con: duckdb.DuckDBPyConnection, store: Any, catalog: Catalog, *,
                   since: datetime | None = None, until: datetime | None = None, classify: bool = True,
                   workers: int | None = None, max_chars: int = DEFAULT_MAX_CHARS,
                   progress: Progress | None = None, files: list[Path] | None = None) -> ClassifyReport | None:
    """Create temp views `entries`, `matches`, `patterns`, `unclassified` on `con`, over `files`
    (default: the store's entry files of the window, listed once here).

    With `classify` (the default) those files are first brought up to date with the catalog
    (cheap when cached), so queries always reflect the catalog as it is now. One listing serves
    both: a file that an ingest adds meanwhile is in neither (never in the views unclassified).
    """
    report = None
    files = store.entry_files(since, until) if files is None else list(files)
    if classify:
        report = classify_store(store, catalog, since, until, progress, workers=workers, max_chars=max_chars,
                                summarize=False, files=files)
    root = Path(store.root)
    ptable = patterns_table(catalog, max_chars)
    con.register("logaudit_patterns_table", ptable)
    con.execute("CREATE OR REPLACE TEMP VIEW patterns AS SELECT * FROM logaudit_patterns_table")
    where = time_filter("timestamp", since, until)
    if files:
        con.execute(f"CREATE OR REPLACE TEMP VIEW entries AS SELECT * FROM "
                    f"read_parquet({sql_list([str(f) for f in files])}, hive_partitioning=false) WHERE {where}")
    else:
        con.register("logaudit_empty_entries", ENTRY_SCHEMA.empty_table())
        con.execute("CREATE OR REPLACE TEMP VIEW entries AS SELECT * FROM logaudit_empty_entries")
    live = set(ptable["fingerprint"].to_pylist())
    chunks = chunk_files(root, files, None, live)
    if chunks:
        src = f"read_parquet({sql_list(chunks)}, hive_partitioning=false)"
    else:
        con.register("logaudit_empty_matches", CHUNK_SCHEMA.empty_table())
        src = "logaudit_empty_matches"
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW matches AS
        SELECT m.log_name, m.insert_id, m.timestamp, m.service, m.revision,
               p.pattern_id, p.category, p.title, m.fields_json,
               p.catalog, m.entry_file, m.entry_row, m.fingerprint
        FROM {src} m JOIN logaudit_patterns_table p ON m.fingerprint = p.fingerprint
        WHERE {time_filter('m.timestamp', since, until)}
    """)
    con.execute("""
        CREATE OR REPLACE TEMP VIEW unclassified AS
        SELECT e.* FROM entries e
        WHERE NOT EXISTS (
            SELECT 1 FROM matches m
            WHERE m.log_name IS NOT DISTINCT FROM e.log_name
              AND m.insert_id IS NOT DISTINCT FROM e.insert_id
              AND m.timestamp = e.timestamp)
    """)
    return report


__all__ = ["patterns_table", "register_views"]
