"""Presenting results: terminal and Markdown rendering, charts and reports (docs/architecture.md)."""
