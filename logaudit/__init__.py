"""logaudit: audit Google Cloud Run deployments from their logs.

The public API, shared by the CLI and the notebooks:

>>> import logaudit
>>> store = logaudit.Store("logaudit-store")          # doctest: +SKIP
>>> report = store.ingest_paths(["data/sample"])      # doctest: +SKIP
"""

from logaudit.errors import (
    CatalogError,
    InputError,
    LockedError,
    LogauditError,
    SourceError,
    StoreError,
    UsageError,
)
from logaudit.normalize import normalize_entry, parse_timestamps
from logaudit.schema import ENTRY_COLUMNS, ENTRY_SCHEMA, SEVERITY_NUM
from logaudit.store import IngestReport, Store, default_store_path

__version__ = "0.1.0"

__all__ = [
    "ENTRY_COLUMNS",
    "ENTRY_SCHEMA",
    "SEVERITY_NUM",
    "CatalogError",
    "IngestReport",
    "InputError",
    "LockedError",
    "LogauditError",
    "SourceError",
    "Store",
    "StoreError",
    "UsageError",
    "default_store_path",
    "normalize_entry",
    "parse_timestamps",
]
