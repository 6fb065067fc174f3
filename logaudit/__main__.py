"""`python -m logaudit` runs the CLI."""

from logaudit.cli import run

run()
