"""Files logaudit ships with: the pattern catalogs and the bundled sample, as package data.

The repository keeps them at its top level (`patterns/`, `data/sample/`); pyproject.toml maps
the packages `logaudit.shipped.patterns` and `logaudit.shipped.sample` to those folders, so a
wheel holds them inside the package and an editable install reads the repository's own files.
Either way they are found through `importlib.resources`, never through the working directory.

>>> sorted(p.name for p in shipped_dir(PATTERNS).glob("*.yaml"))
['cloud_run.yaml', 'netra_backend.yaml']
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from logaudit.core.errors import InputError, LogauditError

#: The shipped pattern catalogs (`patterns/` in the repository).
PATTERNS = "logaudit.shipped.patterns"
#: The bundled sample (`data/sample/` in the repository).
SAMPLE = "logaudit.shipped.sample"


def shipped_dir(package: str, error: type[LogauditError] = InputError) -> Path:
    """The folder holding a shipped package's files; `error` when the installation lacks it."""
    try:
        folder = files(package)
    except ModuleNotFoundError:
        raise error(f"this installation of logaudit has no {package} (its package data is missing)",
                            hint="reinstall logaudit: `pip install --force-reinstall logaudit`") from None
    if not isinstance(folder, Path):  # e.g. imported from a zip file: catalogs are read as plain files
        raise error(f"{package} is not a folder on disk ({folder})",
                            hint="install logaudit with pip (unpacked), not as a zip file")
    return folder


def resource_name(package: str, name: str) -> str:
    """How a shipped file is named in outputs: the same on every machine, e.g.
    `logaudit.shipped.patterns/cloud_run.yaml`."""
    return f"{package}/{name}"


__all__ = ["PATTERNS", "SAMPLE", "resource_name", "shipped_dir"]
