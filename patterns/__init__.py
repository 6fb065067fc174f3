"""The pattern catalogs logaudit ships: installed as the package data of `logaudit.shipped.patterns` (pyproject.toml)."""
