"""The audit inside BigQuery: entry views over Log Analytics and log sink datasets, written once in
GoogleSQL and transpiled to DuckDB so tests prove the warehouse path equals the local one."""
