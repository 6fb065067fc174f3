"""logaudit: audit Google Cloud Run deployments from their logs.

The public API, shared by the CLI and the notebooks:

>>> import logaudit
>>> store = logaudit.Store("logaudit-store")          # doctest: +SKIP
>>> report = store.ingest_paths(["data/sample"])      # doctest: +SKIP
>>> audit = logaudit.Audit(store)                     # doctest: +SKIP
>>> audit.revisions(since="6h")                       # doctest: +SKIP
"""

from logaudit import heap as _heap  # noqa: F401 - first: sets Arrow's allocator up before pyarrow loads
from logaudit.errors import (
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
from logaudit.normalize import normalize_entry, parse_timestamps
from logaudit.schema import ENTRY_COLUMNS, ENTRY_SCHEMA, SEVERITY_NUM
from logaudit.store import IngestReport, Store, default_store_path


def __getattr__(name: str):
    """Heavier parts load on first use, so `import logaudit` and the CLI stay fast."""
    lazy = {
        "Audit": ("logaudit.query", "Audit"),
        "Window": ("logaudit.query", "Window"),
        "Redactor": ("logaudit.redact", "Redactor"),
        "load_catalogs": ("logaudit.catalog", "load_catalogs"),
        "default_catalog_paths": ("logaudit.catalog", "default_catalog_paths"),
        "classify_store": ("logaudit.classify", "classify_store"),
        "SampleConfig": ("logaudit.sample", "SampleConfig"),
        "SampleGenerator": ("logaudit.sample", "SampleGenerator"),
        "sample_path": ("logaudit.demo", "sample_path"),
        "template": ("logaudit.templates", "template"),
        "group_templates": ("logaudit.templates", "group_templates"),
        "compare": ("logaudit.compare", "compare"),
        "load_gate": ("logaudit.compare", "load_gate"),
        "charts": ("logaudit.charts", None),
        "authoring": ("logaudit.authoring", None),
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
