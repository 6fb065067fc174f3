"""An offline BigQuery for tests: bqemulator (DuckDB underneath) as a subprocess, reached through
the official `google-cloud-bigquery` client.

bqemulator lives in its own virtualenv (its pins clash with ours); `LOGAUDIT_BQEMULATOR_PYTHON`
names that virtualenv's python (docs/testing.md says how to make one). Unset, the tests that need
it skip, saying so; set (CI always sets it), the emulator must start or they fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PYTHON_VARIABLE = "LOGAUDIT_BQEMULATOR_PYTHON"
INSTALL_HINT = (f"set {PYTHON_VARIABLE} to the python of a virtualenv holding bqemulator: python3 -m venv "
                ".bqemulator-venv && .bqemulator-venv/bin/pip install -r tests/bqemulator-requirements.txt, "
                f"then {PYTHON_VARIABLE}=$PWD/.bqemulator-venv/bin/python (docs/testing.md)")
#: Seconds the emulator may take to answer /readyz, and any one client call.
START_TIMEOUT = 60.0
CALL_TIMEOUT = 60.0

# The spatial extension comes from its wheel (INSTALL from the file; a plain INSTALL downloads),
# then bqemulator's own command line runs with the arguments given.
_LAUNCH = ("from duckdb_extensions import import_extension; import_extension('spatial'); "
           "from bqemulator.cli import main; main()")


@dataclass(frozen=True)
class Emulator:
    url: str
    project: str


def emulator_python() -> str:
    """The bqemulator virtualenv's python; skips the test when the variable is unset."""
    python = os.environ.get(PYTHON_VARIABLE, "")
    if not python:
        pytest.skip(f"no BigQuery emulator: {INSTALL_HINT}")
    if not os.access(python, os.X_OK):
        pytest.fail(f"{PYTHON_VARIABLE}={python} is not an executable python; {INSTALL_HINT}")
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@contextmanager
def running_emulator(python: str, workdir: Path, project: str = "p") -> Iterator[Emulator]:
    """bqemulator in memory on a free 127.0.0.1 port, stopped on exit. Its HOME is `workdir`, so
    the DuckDB extension it installs stays there."""
    rest, grpc = _free_port(), _free_port()
    url = f"http://127.0.0.1:{rest}"
    log = workdir / "bqemulator.log"
    env = {**os.environ, "HOME": str(workdir)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [python, "-c", _LAUNCH, "start", "--rest-host", "127.0.0.1", "--rest-port", str(rest),
             "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc), "--ephemeral", "--project", project,
             "--log-level", "warning", "--log-format", "console"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                what = (f"exited with code {proc.returncode}" if proc.poll() is not None
                        else f"was not ready within {START_TIMEOUT:.0f} s")
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"bqemulator ({python}) on {url} {what}; its log ends:\n{tail}\n{INSTALL_HINT}")
            time.sleep(0.2)
        yield Emulator(url, project)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(emulator: Emulator):
    """The official client pointed at the emulator, anonymous."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=emulator.project, credentials=AnonymousCredentials(),
                           client_options={"api_endpoint": emulator.url})


def retry():
    """The client's retry with a deadline: its default retries server errors for 600 s."""
    from google.cloud.bigquery import DEFAULT_RETRY

    return DEFAULT_RETRY.with_deadline(CALL_TIMEOUT)
