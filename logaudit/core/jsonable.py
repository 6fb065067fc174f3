"""Plain JSON values from what pandas, numpy and DuckDB hand back.

NaN, NaT, ``pd.NA`` and infinities become ``None``; numpy scalars their Python value; arrays,
tuples and sets lists. Summaries are built through `plain` and `logaudit.present.display.to_json`
emits through it with ``allow_nan=False``, so no output holds ``NaN`` or ``Infinity``.

>>> plain({"service": float("nan"), "n": 3})
{'service': None, 'n': 3}
"""

from __future__ import annotations

import math
import sys
from typing import Any


# ============================================================================ values
def plain(value: Any) -> Any:
    """`value` as plain JSON-able Python: dicts, lists, str, int, float, bool, None.

    NaN, infinities, NaT and ``pd.NA`` become None; numpy scalars their Python value; arrays,
    tuples and sets lists. Other objects (datetimes, paths) are left for the serializer.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=lambda v: (v is None, str(v)))
    return _foreign(value)


def _foreign(value: Any) -> Any:
    """numpy / pandas values (only possible when those are loaded)."""
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return [plain(v) for v in value.tolist()]
        if isinstance(value, np.generic):
            return plain(value.item())
    pd = sys.modules.get("pandas")
    if pd is not None and (value is pd.NaT or value is pd.NA):
        return None
    if pd is not None and isinstance(value, pd.Timestamp):  # a NaT of another unit is still NaT
        return None if pd.isna(value) else value
    try:
        if value != value:  # Decimal('NaN') and friends
            return None
    except Exception:  # noqa: BLE001 - an object that cannot compare is not missing
        pass
    return value


__all__ = ["plain"]
