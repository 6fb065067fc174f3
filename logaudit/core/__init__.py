"""The shared base of every stage: typed errors, time parsing, DuckDB connections, redaction,
progress display and allocator tuning. Imports no other logaudit package (docs/architecture.md)."""
