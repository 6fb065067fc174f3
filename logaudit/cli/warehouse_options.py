"""The BigQuery options the reporting commands share (`--bigquery` and its companions), and the
`Audit` a command reads: the local store's, or a `WarehouseAudit` of a BigQuery log dataset."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import click

from logaudit.core.errors import UsageError

_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(i?)B?\s*", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """`100GB`, `1.5TiB`, `5000000` as a number of bytes (GB = 10^9, GiB = 2^30).

    >>> parse_bytes("10GB"), parse_bytes("1KiB"), parse_bytes("42")
    (10000000000, 1024, 42)
    """
    m = _SIZE_RE.fullmatch(text)
    if m is None:
        raise UsageError(f"--max-bytes {text!r}: not a size", hint="write it as 50GB, 1TiB or a number of bytes")
    number, unit, binary = float(m.group(1)), m.group(2).upper(), bool(m.group(3))
    power = "KMGTP".find(unit) + 1 if unit else 0
    return int(number * (1024 if binary else 1000) ** power)


@dataclass(frozen=True)
class WarehouseArgs:
    """What the BigQuery options of one command say; `ref` None: the command reads the store."""

    ref: str | None
    endpoint: str | None
    billing_project: str | None
    max_bytes_text: str | None
    dry_run: bool
    print_sql: bool
    dedupe: bool

    @property
    def max_bytes(self) -> int | None:
        """--max-bytes in bytes (UsageError for a size that is not one)."""
        return None if self.max_bytes_text is None else parse_bytes(self.max_bytes_text)

    def check(self) -> None:
        if self.ref is None:
            given = [name for name, on in (("--dry-run", self.dry_run), ("--print-sql", self.print_sql),
                                           ("--no-dedupe", not self.dedupe), ("--max-bytes", self.max_bytes_text),
                                           ("--billing-project", self.billing_project)) if on]
            if given:
                raise UsageError(f"{', '.join(given)} needs --bigquery", hint="add --bigquery PROJECT.DATASET._AllLogs")


_NAMES = ("bigquery", "bigquery_endpoint", "billing_project", "max_bytes", "dry_run", "print_sql", "no_dedupe")


def warehouse_options(fn: Callable) -> Callable:
    """Add the BigQuery options; the command receives them as one parameter, `warehouse`."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _NAMES}
        kwargs["warehouse"] = WarehouseArgs(
            values["bigquery"], values["bigquery_endpoint"], values["billing_project"], values["max_bytes"],
            values["dry_run"], values["print_sql"], not values["no_dedupe"])
        return fn(*args, **kwargs)

    options = [
        click.option("--bigquery", metavar="PROJECT.DATASET[._AllLogs]",
                     help="Read the logs where they sit in BigQuery, not the store: a Log Analytics linked dataset's "
                          "`_AllLogs` view or a classic log sink dataset. Only aggregates come back (docs/bigquery.md)."),
        click.option("--bigquery-endpoint", envvar="LOGAUDIT_BIGQUERY_ENDPOINT", metavar="URL",
                     help="BigQuery API endpoint, with anonymous credentials (an emulator). Default: "
                          "$LOGAUDIT_BIGQUERY_ENDPOINT, else Google's, with Application Default Credentials."),
        click.option("--billing-project", metavar="PROJECT",
                     help="Project the BigQuery jobs run and are billed in (needs BigQuery Job User). "
                          "Default: the dataset's project."),
        click.option("--max-bytes", metavar="SIZE",
                     help="Refuse a query that would process more (e.g. 50GB, 1TiB); passed to BigQuery as "
                          "maximum_bytes_billed. Default: 100 GiB."),
        click.option("--dry-run", is_flag=True,
                     help="Dry-run the analysis's queries: print the bytes each would process and an estimated "
                          "price, run nothing."),
        click.option("--print-sql", is_flag=True,
                     help="Print the analysis's queries (GoogleSQL, to paste into the Log Analytics page), run nothing."),
        click.option("--no-dedupe", is_flag=True,
                     help="Count an entry written twice twice (saves BigQuery a shuffle). Default: once."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def open_audit(store_dir: str | None, catalogs: Any, redactor: Any, warehouse: WarehouseArgs) -> Any:
    """The local store's `Audit`, or with --bigquery a `WarehouseAudit` (dry-run mode for --dry-run)."""
    warehouse.check()
    warehouse.max_bytes  # noqa: B018 - a size that is not one is refused before anything runs
    if warehouse.ref is None:
        from logaudit.analysis.audit import Audit

        return Audit(store_dir, catalogs, redactor=redactor)
    from logaudit.analysis.warehouse_audit import WarehouseAudit

    if warehouse.print_sql:  # nothing runs (a sink dataset's tables are listed first)
        from logaudit.warehouse.runner import PlanRunner
        from logaudit.warehouse.source import WarehouseSource

        if len(warehouse.ref.split(".")) == 3:
            source = WarehouseSource.all_logs(warehouse.ref, dedupe=warehouse.dedupe)
        else:
            opened = _bigquery_audit(warehouse, catalogs, redactor)
            source = opened.source
            opened.close()
        return WarehouseAudit(source, PlanRunner(), catalogs, redactor=redactor)
    return _bigquery_audit(warehouse, catalogs, redactor)


def _bigquery_audit(warehouse: WarehouseArgs, catalogs: Any, redactor: Any) -> Any:
    from logaudit.analysis.warehouse_audit import WarehouseAudit

    return WarehouseAudit.bigquery(
        warehouse.ref, catalog=catalogs, redactor=redactor, billing_project=warehouse.billing_project,
        endpoint=warehouse.endpoint, max_bytes=warehouse.max_bytes, dedupe=warehouse.dedupe,
        dry_run=warehouse.dry_run, progress=sys.stderr.isatty())


def show_plan(audit: Any, analysis: str, warehouse: WarehouseArgs, fmt: str, **window: Any) -> bool:
    """With --print-sql or --dry-run: print the analysis's queries (or their bytes and price) and
    return True; else False (the command goes on)."""
    if not (warehouse.print_sql or warehouse.dry_run):
        return False
    from logaudit.cli import echo_json

    plan = audit.plan(analysis, **window)
    if warehouse.print_sql:
        if fmt == "json":
            echo_json({"queries": [{"purpose": q.purpose, "sql": q.sql} for q in plan]})
        else:
            for q in plan:
                click.echo(f"-- logaudit {analysis}: {q.purpose}\n{q.sql};\n")
        return True
    from logaudit.warehouse.bigquery import PRICE_PER_TIB_USD, estimate_usd

    runner = audit.runner
    for q in plan:
        runner.query(q.sql, {}, purpose=q.purpose)
    rows = [(r.purpose, r.bytes_processed or 0) for r in runner.queries]
    total = sum(b for _, b in rows)
    limit = runner.max_bytes
    if fmt == "json":
        echo_json({"queries": [{"purpose": p, "bytes": b, "estimated_usd": estimate_usd(b), "over_max_bytes": b > limit}
                               for p, b in rows],
                   "total_bytes": total, "estimated_usd": estimate_usd(total), "max_bytes": limit})
    else:
        for purpose, b in rows:
            click.echo(f"{purpose:<24} {b:>16,} bytes" + ("  over --max-bytes: would be refused" if b > limit else ""))
        click.echo(f"{'total':<24} {total:>16,} bytes, about ${estimate_usd(total):.4f} on demand "
                   f"(estimate at ${PRICE_PER_TIB_USD} per TiB; each query is billed separately)")
    return True


__all__ = ["WarehouseArgs", "open_audit", "parse_bytes", "show_plan", "warehouse_options"]
