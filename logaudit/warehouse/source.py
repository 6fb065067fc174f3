"""A BigQuery log dataset as the audit reads it: a Log Analytics `_AllLogs` view or a classic
sink's log tables, and the GoogleSQL of its canonical entries for a time range.

>>> src = WarehouseSource.all_logs("my-project.my_dataset._AllLogs")
>>> "FROM `my-project.my_dataset._AllLogs`" in src.entries_sql()
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from logaudit.warehouse.entry_view import SinkTable, all_logs_view, sink_view


@dataclass(frozen=True)
class WarehouseSource:
    """`ref` as the user wrote it (`PROJECT.DATASET._AllLogs` or `PROJECT.DATASET`); `table` the
    `_AllLogs` view, or `tables` the sink's log tables; `dedupe`: count each (log_name,
    insert_id, timestamp) once."""

    ref: str
    table: str | None = None
    tables: tuple[SinkTable, ...] = ()
    dedupe: bool = True

    @classmethod
    def all_logs(cls, table: str, *, dedupe: bool = True) -> WarehouseSource:
        return cls(table, table=table, dedupe=dedupe)

    @classmethod
    def sink(cls, dataset: str, tables: tuple[SinkTable, ...] | list[SinkTable], *, dedupe: bool = True
             ) -> WarehouseSource:
        return cls(dataset, tables=tuple(tables), dedupe=dedupe)

    @property
    def kind(self) -> str:
        """``all_logs`` or ``sink``."""
        return "all_logs" if self.table is not None else "sink"

    def entries_sql(self, since: datetime | None = None, until: datetime | None = None) -> str:
        """The SELECT of the canonical entries with `since <= timestamp < until` (None: unbounded)."""
        if self.table is not None:
            return all_logs_view(self.table, dedupe=self.dedupe, since=since, until=until)
        return sink_view(self.tables, dedupe=self.dedupe, since=since, until=until)

    def describe(self) -> str:
        """One line for reports: what was read."""
        if self.table is not None:
            return f"BigQuery Log Analytics view {self.table}"
        return f"BigQuery log sink dataset {self.ref} ({len(self.tables)} log tables)"


__all__ = ["WarehouseSource"]
