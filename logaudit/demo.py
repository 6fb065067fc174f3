"""The bundled sample: where it is, and the main job run on it (`logaudit demo`).

>>> from logaudit.demo import sample_path
>>> sample_path().name
'netra-staging.jsonl.gz'
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from logaudit.sample import SampleConfig, write_sample

#: The committed sample: SampleConfig() written as gzipped JSON Lines.
BUNDLED = Path(__file__).resolve().parent.parent / "data" / "sample" / "netra-staging.jsonl.gz"


def sample_path() -> Path:
    """The bundled sample file; regenerated (byte-identical) when logaudit is installed without the repo."""
    if BUNDLED.exists():
        return BUNDLED
    target = Path(tempfile.gettempdir()) / "logaudit-sample" / BUNDLED.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_sample(target, SampleConfig())
    return target
