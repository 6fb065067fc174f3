"""BigQuery through the official client (being built)."""
