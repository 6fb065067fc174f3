"""Analysis over a classified store: windows and `Audit`, templates, statistics, and the
canary comparison (docs/architecture.md, docs/compare.md)."""
