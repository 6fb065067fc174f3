"""logaudit: audit Google Cloud Run deployments from their logs.

The public API, shared by the command line and the notebooks (docs/architecture.md). Every name
loads on first use, so `import logaudit` is fast and changes nothing in the process:

>>> import logaudit
>>> report = logaudit.ingest(["data/sample"], "logaudit-store")     # doctest: +SKIP
>>> audit = logaudit.Audit("logaudit-store")                        # doctest: +SKIP
>>> audit.revisions(since="6h")                                     # doctest: +SKIP
>>> logaudit.compare(audit).verdict                                 # doctest: +SKIP
'NOT READY'

`logaudit.tune_memory()` keeps freed memory in the process, which makes repeated classification
and summaries faster; the command line calls it, a notebook may (docs/architecture.md, "Memory").
"""

from __future__ import annotations

import importlib
from typing import Any

from logaudit.core.version import __version__

#: Public name -> (module, attribute; None: the module itself).
_EXPORTS: dict[str, tuple[str, str | None]] = {
    # core
    **{name: ("logaudit.core.errors", name) for name in (
        "CatalogError", "ExitCode", "InputError", "LockedError", "LogauditError", "SourceError", "StoreError",
        "UnknownFilterError", "UsageError", "WarehouseError")},
    "Redactor": ("logaudit.core.redact", "Redactor"),
    "tune_memory": ("logaudit.core.memory", "tune_memory"),
    # sources
    "SEVERITY_NUM": ("logaudit.sources.severity", "SEVERITY_NUM"),
    "SampleConfig": ("logaudit.sources.sample", "SampleConfig"),
    "SampleGenerator": ("logaudit.sources.sample", "SampleGenerator"),
    "sample_path": ("logaudit.sources.bundled", "sample_path"),
    # store
    "ENTRY_COLUMNS": ("logaudit.store.schema", "ENTRY_COLUMNS"),
    "ENTRY_SCHEMA": ("logaudit.store.schema", "ENTRY_SCHEMA"),
    "normalize_entry": ("logaudit.store.normalize", "normalize_entry"),
    "parse_timestamps": ("logaudit.store.normalize", "parse_timestamps"),
    "IngestReport": ("logaudit.store.store", "IngestReport"),
    "Store": ("logaudit.store.store", "Store"),
    "default_store_path": ("logaudit.store.store", "default_store_path"),
    "ingest": ("logaudit.store.ingest", "ingest"),
    "pull": ("logaudit.store.pull", "pull"),
    # catalog
    "load_catalogs": ("logaudit.catalog.catalog", "load_catalogs"),
    "default_catalog_paths": ("logaudit.catalog.catalog", "default_catalog_paths"),
    "classify_store": ("logaudit.catalog.classify", "classify_store"),
    # analysis
    "Audit": ("logaudit.analysis.audit", "Audit"),
    "WarehouseAudit": ("logaudit.analysis.warehouse_audit", "WarehouseAudit"),
    "Window": ("logaudit.analysis.window", "Window"),
    "template": ("logaudit.analysis.templates", "template"),
    "group_templates": ("logaudit.analysis.templates", "group_templates"),
    "compare": ("logaudit.analysis.judge", "compare"),
    "load_gate": ("logaudit.analysis.gate", "load_gate"),
    "authoring": ("logaudit.analysis.authoring", None),
    # present
    "build_report": ("logaudit.present.report", "build_report"),
    "charts": ("logaudit.present.charts", None),
    # export
    "export": ("logaudit.period_export", "export"),
}


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562) and keep it."""
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'logaudit' has no attribute {name!r}") from None
    loaded = importlib.import_module(module)
    value = loaded if attr is None else getattr(loaded, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["__version__", *_EXPORTS]
