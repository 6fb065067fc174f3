"""The catalog options every command that classifies shares: `--catalog` and `--no-shipped-catalogs`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from logaudit.catalog.catalog import CATALOG_ENV, NO_SHIPPED_ENV, default_catalog_paths
from logaudit.cli import ExpandedPath


def catalog_options(*aliases: str) -> Callable:
    """`--catalog PATH` (repeatable, also `aliases`) and `--no-shipped-catalogs`, as the
    parameters `catalogs` and `no_shipped_catalogs`."""
    catalog = click.option(
        "--catalog", *aliases, "catalogs", multiple=True, type=ExpandedPath(exists=True), envvar=CATALOG_ENV,
        help="A local pattern catalog file or directory, added to the shipped catalogs (repeatable; a pattern "
             f"replacing a shipped one says `override: true`). Default: ${CATALOG_ENV} (paths separated by ':').")
    no_shipped = click.option(
        "--no-shipped-catalogs", is_flag=True, envvar=NO_SHIPPED_ENV,
        help=f"Use only the --catalog catalogs, not the ones shipped with logaudit (also ${NO_SHIPPED_ENV}=1).")

    def decorate(fn: Callable) -> Callable:
        return catalog(no_shipped(fn))

    return decorate


def catalog_paths(catalogs: tuple[str, ...], no_shipped_catalogs: bool) -> list[Path]:
    """The catalog files of a run with these options (`catalog.default_catalog_paths`)."""
    return default_catalog_paths(list(catalogs) or None, shipped=not no_shipped_catalogs)
