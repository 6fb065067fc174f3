"""The local Parquet store: the entry schema, normalisation, ingest and pull, and store checks
(docs/architecture.md, docs/store.md)."""
