"""The shared base of every stage: typed errors, time parsing, DuckDB connections, redaction,
the file lock, progress display and allocator tuning. Imports no other logaudit package (docs/architecture.md)."""
