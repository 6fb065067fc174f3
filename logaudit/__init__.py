"""logaudit: audit Google Cloud Run deployments from their logs.

The public API, shared by the CLI and the notebooks:

>>> import logaudit
>>> store = logaudit.Store("logaudit-store")          # doctest: +SKIP
>>> report = store.ingest_paths(["data/sample"])      # doctest: +SKIP
>>> audit = logaudit.Audit(store)                     # doctest: +SKIP
>>> audit.revisions(since="6h")                       # doctest: +SKIP
"""

from logaudit.core import memory as _memory  # noqa: F401 - first: sets Arrow's allocator up before pyarrow loads
from logaudit.core.errors import (
    CatalogError,
    ExitCode,
    InputError,
    LockedError,
    LogauditError,
    SourceError,
    StoreError,
    UnknownFilterError,
    UsageError,
)
from logaudit.sources.severity import SEVERITY_NUM
from logaudit.store.normalize import normalize_entry, parse_timestamps
from logaudit.store.schema import ENTRY_COLUMNS, ENTRY_SCHEMA
from logaudit.store.store import IngestReport, Store, default_store_path


def __getattr__(name: str):
    """Heavier parts load on first use, so `import logaudit` and the CLI stay fast."""
    lazy = {
        "Audit": ("logaudit.analysis.audit", "Audit"),
        "Window": ("logaudit.analysis.window", "Window"),
        "Redactor": ("logaudit.core.redact", "Redactor"),
        "load_catalogs": ("logaudit.catalog.catalog", "load_catalogs"),
        "default_catalog_paths": ("logaudit.catalog.catalog", "default_catalog_paths"),
        "classify_store": ("logaudit.catalog.classify", "classify_store"),
        "SampleConfig": ("logaudit.sources.sample", "SampleConfig"),
        "SampleGenerator": ("logaudit.sources.sample", "SampleGenerator"),
        "sample_path": ("logaudit.sources.bundled", "sample_path"),
        "template": ("logaudit.analysis.templates", "template"),
        "group_templates": ("logaudit.analysis.templates", "group_templates"),
        "compare": ("logaudit.analysis.judge", "compare"),
        "load_gate": ("logaudit.analysis.gate", "load_gate"),
        "charts": ("logaudit.present.charts", None),
        "authoring": ("logaudit.analysis.authoring", None),
    }
    if name in lazy:
        import importlib

        module, attr = lazy[name]
        loaded = importlib.import_module(module)
        return loaded if attr is None else getattr(loaded, attr)
    raise AttributeError(f"module 'logaudit' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "Audit",
    "authoring",
    "charts",
    "compare",
    "load_gate",
    "Redactor",
    "SampleConfig",
    "SampleGenerator",
    "Window",
    "classify_store",
    "default_catalog_paths",
    "load_catalogs",
    "sample_path",
    "template",
    "group_templates",
    "ENTRY_COLUMNS",
    "ENTRY_SCHEMA",
    "SEVERITY_NUM",
    "CatalogError",
    "ExitCode",
    "IngestReport",
    "InputError",
    "LockedError",
    "LogauditError",
    "SourceError",
    "Store",
    "StoreError",
    "UnknownFilterError",
    "UsageError",
    "default_store_path",
    "normalize_entry",
    "parse_timestamps",
]
