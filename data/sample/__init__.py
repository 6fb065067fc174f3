"""The bundled sample: installed as the package data of `logaudit.shipped.sample` (pyproject.toml)."""
