"""A tiny HTTP server on 127.0.0.1 that answers BigQuery's `jobs.insert` as the API does (a dry
run's `totalBytesProcessed` and schema; an error body with a reason) and records each request: the
official client against it shows what bqemulator cannot (its dry runs report 0 bytes)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCHEMA = {"fields": [{"name": "n", "type": "INTEGER", "mode": "NULLABLE"}]}


class FakeBigQuery(ThreadingHTTPServer):
    """Answers each jobs.insert with `answer(body) -> (status, json)`; keeps the request bodies."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.inserts: list[dict] = []
        self.answer = lambda body: (500, {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeBigQuery

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.inserts.append(body)
        status, reply = self.server.answer(body)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def dry_run_job(body: dict, scanned: int) -> dict:
    """The job resource BigQuery returns for a dry run: DONE at once, bytes and schema in statistics."""
    return {"kind": "bigquery#job", "jobReference": {"projectId": "p", "location": "US"},
            "configuration": body["configuration"], "status": {"state": "DONE"},
            "statistics": {"totalBytesProcessed": str(scanned),
                           "query": {"totalBytesProcessed": str(scanned), "totalBytesBilled": "0",
                                     "cacheHit": False, "statementType": "SELECT", "schema": SCHEMA}}}


def error(code: int, status: str, reason: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "status": status,
                      "errors": [{"message": message, "domain": "global", "reason": reason}]}}


@contextmanager
def serving() -> Iterator[FakeBigQuery]:
    """A `FakeBigQuery` answering on a thread until the block ends."""
    server = FakeBigQuery()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
