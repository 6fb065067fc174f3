"""The pattern catalog: loading and validation, regex translation, the matching engine, the
per-file match cache and its DuckDB views (docs/architecture.md, docs/catalog.md)."""
