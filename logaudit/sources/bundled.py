"""The bundled sample: where it is, and the main job run on it (`logaudit demo`).

The sample is package data (`data/sample/` in the repository, `logaudit.shipped.sample` when
installed): `SampleConfig()` written as gzipped JSON Lines.

>>> from logaudit.sources.bundled import sample_path
>>> sample_path().name
'netra-staging.jsonl.gz'
"""

from __future__ import annotations

from pathlib import Path

from logaudit.core.errors import InputError
from logaudit.shipped import SAMPLE, shipped_dir

#: The file name of the bundled sample.
SAMPLE_NAME = "netra-staging.jsonl.gz"


def sample_path() -> Path:
    """The bundled sample file; `InputError` when the installation lacks it."""
    path = shipped_dir(SAMPLE) / SAMPLE_NAME
    if not path.is_file():
        raise InputError(f"this installation of logaudit has no bundled sample ({SAMPLE}/{SAMPLE_NAME})",
                         hint="reinstall logaudit: `pip install --force-reinstall logaudit`")
    return path
