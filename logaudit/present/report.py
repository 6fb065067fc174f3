"""Deployment reports: Markdown and one self-contained HTML file, with charts, from the analytics.

`build_report` turns one window of the store into the structure of a human deployment
validation report:

1. executive summary (the compare verdict when `Audit.summary` carries one, key findings),
2. error pattern analysis (critical findings, warnings, positive indicators: counts, first and
   last seen, revisions, a redacted example; unclassified WARNING+ messages),
3. per-revision health, 4. endpoint status, 5. new issues vs pre-existing ones,
6. a readiness checklist, and 7. the window and where the data came from (ingests and pulls,
   pull filters, entries, rejects, when the report was generated).

Every number comes from `Audit.summary` (written next to the report as `summary.json`) or
from the DataFrames the charts are drawn from, so the report, `summarize --format json` and
the notebooks agree. Messages are redacted by the audit's `Redactor` before they get here.

Output (in `out_dir`)::

    report.md          Markdown; charts referenced as charts/*.png
    report.html        one file: inline CSS (screen and print), PNGs embedded as data: URIs,
                       no script, no external URL; a Content-Security-Policy forbids any fetch
    summary.json       the exact summary the report was built from
    charts/*.png       300 dpi charts (see logaudit.present.charts)

>>> from logaudit.analysis.audit import Audit
>>> from logaudit.present.report import build_report
>>> result = build_report(Audit("logaudit-store"), since="6h", out_dir="report")   # doctest: +SKIP
>>> result.html                                                                  # doctest: +SKIP
PosixPath('report/report.html')
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from logaudit.analysis.audit import CATEGORIES, Audit
from logaudit.analysis.window import Window
from logaudit.catalog.catalog import describe_catalogs
from logaudit.core.errors import UsageError
from logaudit.core.redact import redact_frame, redact_tree
from logaudit.core.timeparse import format_rfc3339, parse_duration
from logaudit.core.version import __version__
from logaudit.present import charts
from logaudit.present.display import (
    label,
    md_code,
    md_inline,
    md_lead,
    ms,
    one_line,
    pct,
    service_label,
    short_time,
    visible,
)
from logaudit.present.summary import (
    CATEGORY_TITLES,
    empty_message,
    endpoint_rank,
    new_in_newest,
    news_notes,
    shown_first,
)

FORMATS = ("md", "html")
#: Most manifest records listed in the provenance section (the newest ones).
MAX_SOURCES = 40
#: Most endpoint rows in the endpoint table (the rest are in summary.json).
MAX_ENDPOINTS = 60

VERDICT_CLASS = {"READY": "ok", "MARGINAL": "warn", "NOT READY": "bad"}


# ============================================================================ the document model
Run = str | tuple[str, str]  # plain text, or (style, text) with style in b, code, em, ok, bad, warn, na
Runs = Run | list[Run]


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    runs: Runs


@dataclass
class Fields:
    """Label: value lines (report metadata)."""

    items: list[tuple[str, Runs]]


@dataclass
class Bullets:
    items: list[Runs]


@dataclass
class Checklist:
    items: list[tuple[bool | None, Runs]]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Runs]]
    align: str = ""  # one letter per column: l or r (default l)
    row_class: list[str] = field(default_factory=list)  # "", "bad", "warn" per row


@dataclass
class Image:
    path: Path
    alt: str
    caption: str


@dataclass
class Rule:
    pass


Block = Heading | Para | Fields | Bullets | Checklist | Table | Image | Rule


def _runs(value: Runs) -> list[Run]:
    if isinstance(value, str | tuple):
        return [value]
    if isinstance(value, list):
        return value
    return [label(value)]  # a stray number or missing value is shown, never iterated


def _badge(state: bool | None, text: str | None = None) -> tuple[str, str]:
    if state is None:
        return ("na", text or "N/A")
    return ("ok", text or "PASS") if state else ("bad", text or "FAIL")


# ---------------------------------------------------------------------------- Markdown
def _md_runs(value: Runs, *, table: bool = False) -> str:
    out: list[str] = []
    for run in _runs(value):
        if isinstance(run, str):
            out.append(md_inline(run) if out or table else md_lead(md_inline(run)))  # cells hold no blocks
            continue
        style, text = run
        if style == "code":
            out.append(md_code(text, table=table))
        elif style in ("b", "em"):
            mark = "**" if style == "b" else "*"
            body = text.strip()
            lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()):]
            out.append(f"{lead}{mark}{md_inline(body)}{mark}{trail}" if body else text)
        else:  # badges
            out.append(f"**{md_inline(text)}**")
    return "".join(out)


def _md_piece(text: str) -> str:
    """Text after a block's own marker (heading, label, cell, caption): escaped, on one line."""
    return md_inline(one_line(text))


def to_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += [f"{'#' * block.level} {_md_piece(block.text)}", ""]
        elif isinstance(block, Para):
            lines += [_md_runs(block.runs), ""]
        elif isinstance(block, Fields):
            lines += [f"**{_md_piece(name)}:** {_md_runs(value)}  " for name, value in block.items] + [""]
        elif isinstance(block, Bullets):
            lines += [f"- {_md_runs(item)}" for item in block.items] + [""]
        elif isinstance(block, Checklist):
            lines += [f"- [{'x' if state else ' '}] {_md_runs(_badge(state))} {_md_runs(item)}"
                      for state, item in block.items] + [""]
        elif isinstance(block, Table):
            align = (block.align or "").ljust(len(block.headers), "l")
            lines.append("| " + " | ".join(_md_piece(h) for h in block.headers) + " |")
            lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
            for row in block.rows:
                lines.append("| " + " | ".join(_md_runs(c, table=True) for c in row) + " |")
            lines.append("")
        elif isinstance(block, Image):
            lines += [f"![{_md_piece(block.alt)}](charts/{block.path.name})", "", f"*{_md_piece(block.caption)}*", ""]
        elif isinstance(block, Rule):
            lines += ["---", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------- HTML
CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 14px/1.45 "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "DejaVu Sans", sans-serif;
       color: #1a1a1a; background: #fff; max-width: 1040px; margin: 24px auto; padding: 0 20px; }
h1 { font-size: 24px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 3px solid #0072B2; }
h2 { font-size: 19px; margin: 30px 0 10px; padding-bottom: 3px; border-bottom: 1px solid #c8c8c8; }
h3 { font-size: 15px; margin: 20px 0 6px; }
p { margin: 6px 0 10px; }
ul { margin: 6px 0 12px; padding-left: 22px; }
li { margin: 2px 0; }
ul.check { list-style: none; padding-left: 0; }
ul.check li { margin: 4px 0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0 14px; }
dl.meta dt { font-weight: 700; }
dl.meta dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 12.5px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 6px; vertical-align: top; text-align: left; }
th { background: #eef2f6; font-weight: 700; }
th.r, td.r { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fbebe2; }
tr.warn td { background: #fdf5e2; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.9em;
       background: #f3f3f3; padding: 0 3px; border-radius: 2px; overflow-wrap: anywhere; word-break: break-word; }
.badge { display: inline-block; min-width: 3.2em; text-align: center; padding: 0 6px; border: 1px solid;
         border-radius: 3px; font-weight: 700; font-size: 0.85em; line-height: 1.5; }
.ok { color: #00603f; border-color: #009E73; background: #e4f5ef; }
.bad { color: #9c3a00; border-color: #D55E00; background: #fbe6da; }
.warn { color: #6e4a00; border-color: #E69F00; background: #fdf2d9; }
.na { color: #4a4a4a; border-color: #9a9a9a; background: #f0f0f0; }
.verdict { font-size: 1.15em; }
figure { margin: 10px 0 22px; break-inside: avoid; page-break-inside: avoid; }
figure img { display: block; width: 100%; height: auto; border: 1px solid #e4e4e4; }
figcaption { font-size: 12px; color: #444; margin-top: 4px; }
hr { border: 0; border-top: 1px solid #c8c8c8; margin: 22px 0; }
footer { margin-top: 28px; font-size: 12px; color: #555; }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body { max-width: none; margin: 0; padding: 0; font-size: 9.5pt; }
  h1 { font-size: 17pt; } h2 { font-size: 13pt; } h3 { font-size: 11pt; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  table { font-size: 7.5pt; }
  thead { display: table-header-group; }
  tr, figure, img, li { break-inside: avoid; page-break-inside: avoid; }
  figure img { border: 0; max-height: 245mm; width: auto; max-width: 100%; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _html_runs(value: Runs) -> str:
    out = []
    for run in _runs(value):
        if isinstance(run, str):
            out.append(_html_text(run))
            continue
        style, text = run
        t = _html_text(text)
        if style == "code":
            out.append(f"<code>{t}</code>" if text else "")
        elif style == "b":
            out.append(f"<strong>{t}</strong>")
        elif style == "em":
            out.append(f"<em>{t}</em>")
        else:
            out.append(f'<span class="badge {style}">{t}</span>')
    return "".join(out)


def _html_text(text: str) -> str:
    """Text as HTML text: tags and entities escaped, control and bidi-override characters shown escaped."""
    return html.escape(visible(text))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _file_slug(name: str) -> str:
    """A chart file name part for a service name taken from the logs: the name itself when it is
    lower-case letters, digits and single hyphens (every Cloud Run service name), else a slug of
    at most 60 characters plus a hash of the name, so that it is short enough for any file
    system and two services never share a chart."""
    slug = _slug(name)
    if slug == name and len(slug) <= 60:
        return slug
    return f"{slug[:60].strip('-')}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def to_html(blocks: Sequence[Block], title: str, *, footer: str = "") -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<meta name="generator" content="logaudit">',
             f"<title>{_html_text(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>"]
    used: set[str] = set()
    for block in blocks:
        if isinstance(block, Heading):
            anchor = _slug(block.text)
            while anchor in used:
                anchor += "-x"
            used.add(anchor)
            parts.append(f'<h{block.level} id="{anchor}">{_html_text(block.text)}</h{block.level}>')
        elif isinstance(block, Para):
            parts.append(f"<p>{_html_runs(block.runs)}</p>")
        elif isinstance(block, Fields):
            parts.append('<dl class="meta">' + "".join(f"<dt>{_html_text(name)}</dt><dd>{_html_runs(value)}</dd>"
                                                        for name, value in block.items) + "</dl>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_html_runs(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Checklist):
            parts.append('<ul class="check">' + "".join(f"<li>{_html_runs(_badge(state))} {_html_runs(item)}</li>"
                                                        for state, item in block.items) + "</ul>")
        elif isinstance(block, Table):
            align = (block.align or "").ljust(len(block.headers), "l")
            head = "".join(f'<th{" class=r" if a == "r" else ""}>{_html_text(h)}</th>'
                           for h, a in zip(block.headers, align, strict=False))
            body = []
            for i, row in enumerate(block.rows):
                cls = block.row_class[i] if i < len(block.row_class) else ""
                cells = "".join(f'<td{" class=r" if a == "r" else ""}>{_html_runs(c)}</td>'
                                for c, a in zip(row, align, strict=False))
                body.append(f'<tr{f" class={cls}" if cls else ""}>{cells}</tr>')
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_html_text(block.alt)}">'
                         f"<figcaption>{_html_text(block.caption)}</figcaption></figure>")
        elif isinstance(block, Rule):
            parts.append("<hr>")
    if footer:
        parts.append(f"<footer>{html.escape(footer)}</footer>")
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


# ============================================================================ the data
@dataclass
class ReportResult:
    """What `build_report` wrote: paths, the summary it used, the checklist."""

    out_dir: Path
    summary: dict[str, Any]
    summary_path: Path
    markdown: Path | None
    html: Path | None
    charts: dict[str, Path]
    checklist: list[dict[str, Any]]
    generated_at: str
    bucket: str

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.summary_path, self.markdown, self.html, *self.charts.values()) if p is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "summary": str(self.summary_path),
                "markdown": str(self.markdown) if self.markdown else None,
                "html": str(self.html) if self.html else None,
                "charts": {k: str(v) for k, v in self.charts.items()},
                "checklist": self.checklist, "generated_at": self.generated_at, "bucket": self.bucket,
                "entries": self.summary["entries"], "verdict": (self.summary.get("verdict") or {}).get("verdict"),
                "window": self.summary["window"], "services": self.summary["services"],
                "catalogs": self.summary.get("catalogs", [])}


def parse_formats(formats: str | Iterable[str], *, option: str = "--report-format") -> tuple[str, ...]:
    """"md,html" / ["md"] -> ("md", "html"); UsageError (naming `option`) for anything else."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for item in items:
        name = item.strip().lower()
        name = {"markdown": "md", "htm": "html"}.get(name, name)
        if name not in FORMATS:
            raise UsageError(f"{option} {item!r}: not a report format", hint="md, html or md,html")
        if name not in out:
            out.append(name)
    if not out:
        raise UsageError(f"{option}: give at least one of md, html")
    return tuple(out)


def status_timeline(audit: Audit, window: Window, bucket: str, *, service: str | None = None) -> pd.DataFrame:
    """Requests per time bucket and status class (`2xx`, ...): columns bucket, status_class, requests,
    for the window (and `service`, else the window's service filter, if any); from
    `Engine.status_series` (`aggregates.STATUS_SERIES_SCHEMA`).

    Buckets line up with `Audit.timeline(bucket)` (multiples of the bucket since the epoch).
    """
    scope = Window(window.since, window.until, service if service is not None else window.service, window.revision)
    df = audit.engine.status_series(scope, parse_duration(bucket, name="bucket")).to_pandas()
    df["bucket"] = pd.to_datetime(df["bucket"], utc=True)
    df["requests"] = df["requests"].astype("int64")
    return df


def _span(window: Window, summary: dict[str, Any]) -> timedelta | None:
    firsts = [r["first_seen"] for r in summary["revisions"] if r.get("first_seen")]
    lasts = [r["last_seen"] for r in summary["revisions"] if r.get("last_seen")]
    lo = window.since or (pd.Timestamp(min(firsts)).to_pydatetime(warn=False) if firsts else None)
    hi = window.until or (pd.Timestamp(max(lasts)).to_pydatetime(warn=False) if lasts else None)
    if lo is None or hi is None:
        return None
    return hi - lo


def _newest_by_service(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per service, its revisions oldest first (deploy time, else first seen) - as `new_in_newest` orders them."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in summary["revisions"]:
        out.setdefault(r["service"], []).append(r)
    return {s: sorted(revs, key=lambda r: (r["deploy_time"] or r["first_seen"] or "", r["revision"]))
            for s, revs in out.items()}


#: Checklist items read from the verdict's metric judgements: (check, metric, label).
CHECKLIST_METRICS = (("5xx-rate", "request_error_rate", "HTTP 5xx rate"),
                     ("error-rate", "entry_error_rate", "ERROR+ entry rate"),
                     ("latency", "latency", "latency distribution"),
                     ("p50-latency", "latency_p50", "p50 latency"),
                     ("p95-latency", "latency_p95", "p95 latency"),
                     ("p99-latency", "latency_p99", "p99 latency"))
_JUDGEMENT_OK = {"Pass": True, "High": False, "Low": False, "Inconclusive": None}


def readiness_checklist(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks of the newest revision of each service against its baseline, from the summary.

    The metric checks are the judgements of the summary's verdict (`compare`'s, with the rule
    that decided each): Pass passes, High or Low fails, Inconclusive is not applicable. Services
    the verdict is not about get them as not applicable (compare judges one service at a time).
    Each item: {"service", "check", "ok": True | False | None (not applicable), "text"}; metric
    checks add "metric", "judgement" and "rule".
    """
    items: list[dict[str, Any]] = []
    news = {n["service"]: n for n in new_in_newest(summary)}
    verdict = summary.get("verdict") or {}
    judged = {j["name"]: j for j in verdict.get("judgements") or []}
    for service, revs in _newest_by_service(summary).items():
        if len(revs) < 2:
            items.append({"service": service, "check": "comparison", "ok": None,
                          "text": f"{service_label(service)}: only one revision ({revs[0]['revision']}) in the window; "
                                  "nothing to compare it with"})
            continue
        n = news[service]
        new, base = n["revision"], n["baseline"]
        crit = [p["title"] for p in n["new_patterns"] if p["category"] == "critical"]
        items.append({"service": service, "check": "no-new-critical", "ok": not crit,
                      "text": f"No critical pattern new in {new} (vs {base})" if not crit else
                              f"{len(crit)} critical pattern(s) new in {new} (vs {base}): " + "; ".join(crit)})
        templates = n["new_templates"]
        items.append({"service": service, "check": "no-new-unclassified", "ok": not templates,
                      "text": f"No new unclassified WARNING+ message in {new} (vs {base})" if not templates else
                              f"{len(templates)} unclassified WARNING+ message template(s) new in {new} (vs {base})"})
        mine = verdict.get("service") == service
        for check, metric, label_ in CHECKLIST_METRICS:
            j = judged.get(metric) if mine else None
            if j is None:
                why = (f"the gate leaves {metric} out" if mine else
                       f"the verdict is about {verdict.get('service')}" if verdict.get("service") else "no verdict")
                items.append({"service": service, "check": check, "ok": None, "metric": metric, "judgement": None,
                              "rule": None, "text": f"{label_} of {new} vs {base}: not judged ({why})"})
                continue
            items.append({"service": service, "check": check, "ok": _JUDGEMENT_OK.get(j["judgement"]),
                          "metric": metric, "judgement": j["judgement"], "rule": j["rule"],
                          "text": f"{label_} of {new} vs {base}: {j['judgement']} ({j['rule']})"})
    if verdict.get("verdict"):
        items.append({"service": verdict.get("service"), "check": "verdict", "ok": verdict["verdict"] == "READY",
                      "text": f"Compare verdict for {verdict.get('canary')} vs {verdict.get('baseline')}: "
                              f"{verdict['verdict']}"})
    return items


# ============================================================================ the report
def build_report(audit: Audit, *, since: Any = None, until: Any = None, service: str | None = None,
                 out_dir: str | os.PathLike = "logaudit-report", formats: str | Iterable[str] = FORMATS,
                 bucket: str | None = None, now: datetime | None = None, title: str | None = None,
                 with_charts: bool = True, comparison: Any = None) -> ReportResult:
    """Write the report for one window (`since` inclusive, `until` exclusive; durations count back
    from `now`) of `audit`'s store, optionally one service, into `out_dir`. `with_charts=False` draws
    none (the documents without figures, in a fraction of the time). `comparison`: the window's
    `Comparison` when the caller judged it already (its verdict is the report's)."""
    fmts = parse_formats(formats)
    generated = (now or datetime.now(UTC)).astimezone(UTC)
    window = audit.window(since, until, service, now=generated)
    out = Path(out_dir)
    (out / "charts").mkdir(parents=True, exist_ok=True)
    for old in (out / "charts").glob("*.png"):
        old.unlink()
    # the summary is redacted where it is built; a second pass is a no-op on redacted text and
    # catches any field that was not (e.g. text an `Audit` subclass adds)
    summary = audit.redactor.redact_tree(audit.summary(since=window, comparison=comparison))
    span = _span(window, summary)
    bucket = bucket or charts.bucket_for(span)
    chart_files = _draw_charts(audit, window, summary, bucket, out / "charts") if with_charts else {}
    generated_at = format_rfc3339(generated)
    checklist = readiness_checklist(summary) if summary["entries"] else []
    doc_title = audit.redactor.redact(
        title or ("Deployment log audit: " + (", ".join(summary["services"]) or service or "no entries")))
    blocks = redact_document(_document(audit, window, summary, checklist, chart_files, generated_at, bucket,
                                       doc_title), audit.redactor)

    summary_path = _write(out / "summary.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str))
    md_path = html_path = None
    if "md" in fmts:
        md_path = _write(out / "report.md", to_markdown(blocks).encode())
    if "html" in fmts:
        footer = f"Generated by logaudit {__version__} at {generated_at}. Messages are redacted."
        html_path = _write(out / "report.html", to_html(blocks, doc_title, footer=footer).encode())
    return ReportResult(out_dir=out, summary=summary, summary_path=summary_path, markdown=md_path, html=html_path,
                        charts=chart_files, checklist=checklist, generated_at=generated_at, bucket=bucket)


def _draw_charts(audit: Audit, window: Window, summary: dict[str, Any], bucket: str, folder: Path) -> dict[str, Path]:
    if not summary["entries"]:
        return {}
    # labels (services, revisions, pattern titles) come from the data too: redacted like the rest
    revisions = redact_frame(audit.revisions(since=window), audit.redactor)
    out: dict[str, Path] = {}
    timeline = redact_frame(audit.timeline(bucket, since=window), audit.redactor)
    for service in summary["services"]:
        if not (revisions["service"] == service).any():
            continue
        slug = _file_slug(service)
        out[f"error-rate-{slug}"] = charts.save_png(
            charts.error_rate_timeline(timeline, revisions, service=service), folder / f"error-rate-{slug}.png")
        status = status_timeline(audit, window, bucket, service=service)
        out[f"status-codes-{slug}"] = charts.save_png(
            charts.status_codes_over_time(status, revisions, service=service), folder / f"status-codes-{slug}.png")
    out["patterns-by-revision"] = charts.save_png(
        charts.pattern_heatmap(redact_frame(audit.patterns(since=window), audit.redactor), revisions),
        folder / "patterns-by-revision.png")
    out["latency"] = charts.save_png(charts.latency_by_revision(revisions), folder / "latency.png")
    return out


def redact_document(blocks: Sequence[Block], redactor: Any) -> list[Block]:
    """Every text of the document (headings, cells, captions, ...) through `redactor`, in one pass.

    The summary is redacted already; this also covers what the report adds itself (source paths,
    pull filters, titles), whatever a later section quotes.
    """
    found: list[str] = []
    _map_text(blocks, lambda t: found.append(t) or t)
    done = iter(redactor.redact_all(found))
    return _map_text(list(blocks), lambda _t: next(done))


def _map_text(value: Any, fn: Any) -> Any:
    """`value` with `fn` applied to every string inside (blocks, lists, tuples), containers kept."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_text(v, fn) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_text(v, fn) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _map_text(getattr(value, f.name), fn) for f in fields(value)})
    return value


def _write(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path



def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _revs_cell(by_revision: dict[str, int]) -> str:
    return ", ".join(f"{r} ({n:,})" for r, n in by_revision.items())


# ---------------------------------------------------------------------------- sections
def _document(audit: Audit, window: Window, summary: dict[str, Any], checklist: list[dict[str, Any]],
              chart_files: dict[str, Path], generated_at: str, bucket: str, title: str) -> list[Block]:
    w = summary["window"]
    span_text = f"{short_time(w['since']) if w['since'] else 'start of store'} to {short_time(w['until']) if w['until'] else 'now'}"
    revs_by_service = _newest_by_service(summary)
    blocks: list[Block] = [Heading(1, title)]
    meta: list[tuple[str, Runs]] = [
        ("Report generated", f"{short_time(generated_at)} (UTC)"),
        ("Window", f"{span_text} (UTC; since inclusive, until exclusive)"),
        ("Services", ", ".join(summary["services"]) or "-"),
    ]
    for service, revs in revs_by_service.items():
        newest = revs[-1]
        deployed = f", deployed {short_time(newest['deploy_time'])}" if newest.get("deploy_time") else ""
        meta.append((f"Newest revision ({service_label(service)})" if len(revs_by_service) > 1 else "Newest revision",
                     [("code", newest["revision"]), deployed]))
    meta.append(("Entries analysed", f"{summary['entries']:,}"))
    blocks += [Fields(meta), Rule()]

    figures = _FigureCounter()
    blocks += _executive_summary(summary, checklist)
    if summary["entries"]:
        blocks += _patterns_section(summary, chart_files, figures, span_text)
        blocks += _revisions_section(summary, chart_files, figures)
        blocks += _endpoints_section(summary, chart_files, figures)
        blocks += _new_issues_section(summary)
        blocks += _checklist_section(summary, checklist)
    blocks += _provenance_section(audit, window, summary, generated_at, bucket, chart_files,
                                  number=6 if summary["entries"] else 1)
    return blocks


class _FigureCounter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, path: Path, alt: str, caption: str) -> Image:
        self.n += 1
        return Image(path, alt, f"Figure {self.n}. {caption}")


def _executive_summary(summary: dict[str, Any], checklist: list[dict[str, Any]]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Executive summary")]
    if not summary["entries"]:
        return [*blocks, Para(empty_message(summary))]
    verdict = summary.get("verdict")
    if verdict and verdict.get("verdict"):
        v = verdict["verdict"]
        score = verdict.get("score")
        blocks.append(Para([("b", "Verdict: "), (VERDICT_CLASS.get(v, "na"), v), " ",
                            f"{verdict.get('canary')} vs baseline {verdict.get('baseline')}"
                            + (f", score {score:.0f}" if isinstance(score, int | float) else "")]))
        counts = verdict.get("metrics")
        if isinstance(counts, dict) and "judged" in counts:
            blocks.append(Para([("b", "Metrics: "),
                                f"{counts.get('judged', 0)} judged: {counts.get('pass', 0)} pass, "
                                f"{counts.get('high', 0)} high, {counts.get('low', 0)} low; "
                                f"{counts.get('inconclusive', 0)} inconclusive"]))
        if verdict.get("reasons"):
            blocks.append(Bullets([str(r) for r in verdict["reasons"]]))
    elif summary.get("verdict_note"):
        blocks.append(Para([("b", "No verdict: "), summary["verdict_note"]]))
    news = {n["service"]: n for n in new_in_newest(summary)}
    findings: list[Runs] = []
    for cat in ("critical", "warning", "positive"):
        pats = [p for p in summary["patterns"] if p["category"] == cat]
        total = sum(p["count"] for p in pats)
        new = [p for n in news.values() for p in n["new_patterns"] if p["category"] == cat]
        text = f"{len(pats)} pattern(s), {total:,} entries"
        if cat != "positive" and news:
            text += f"; {len(new)} new in the newest revision"
        top = ", ".join(f"{p['title']} ({p['count']:,})" for p in pats[:3])
        findings.append([("b", f"{CATEGORY_TITLES[cat]}: "), text + (f". Most frequent: {top}" if top else "")])
    for service, revs in _newest_by_service(summary).items():
        r = revs[-1]
        lat = r["latency_ms"]["p95"]
        findings.append([("b", f"{service_label(service)}: "),
                         "newest revision ", ("code", r["revision"]),
                         f" served {r['requests']:,} requests ({pct(r['traffic_share'])} of the service's), "
                         f"5xx rate {pct(r['request_error_rate'])}, ERROR+ entries {pct(r['error_rate'])}, "
                         f"p95 latency {ms(lat)}"])
    unclassified = summary["unclassified"]
    findings.append([("b", "Unclassified WARNING+ messages: "),
                     f"{len(unclassified)} template(s), {sum(u['count'] for u in unclassified):,} entries"])
    applicable = [c for c in checklist if c["ok"] is not None]
    findings.append([("b", "Readiness checklist: "),
                     f"{sum(1 for c in applicable if c['ok'])} of {len(applicable)} applicable checks pass"])
    blocks += [Heading(3, "Key findings"), Bullets(findings)]
    return blocks


def _pattern_table(pats: list[dict[str, Any]]) -> Table:
    rows = [[p["title"], _count(p["count"]), short_time(p["first_seen"]), short_time(p["last_seen"]),
             _revs_cell(p["by_revision"]), ("code", one_line(p["example"], 160))] for p in pats]
    return Table(["pattern", "count", "first seen", "last seen", "revisions (count)", "example (redacted)"], rows,
                 align="lrllll")


def _patterns_section(summary: dict[str, Any], chart_files: dict[str, Path], figures: _FigureCounter,
                      span_text: str) -> list[Block]:
    blocks: list[Block] = [Heading(2, "1. Error pattern analysis"),
                           Para([("b", "Timeframe: "), f"{span_text}, {summary['entries']:,} entries"])]
    numbering = {"critical": "1.1", "warning": "1.2", "positive": "1.3", "info": "1.4"}
    for cat in CATEGORIES:
        pats = [p for p in summary["patterns"] if p["category"] == cat]
        if cat == "info" and not pats:
            continue
        total = sum(p["count"] for p in pats)
        blocks.append(Heading(3, f"{numbering[cat]} {CATEGORY_TITLES[cat]} ({len(pats)} patterns, {total:,} entries)"))
        blocks.append(_pattern_table(pats) if pats else Para("None in this window."))
    blocks.append(Heading(3, "1.5 Unclassified messages (WARNING and above)"))
    if not summary["unclassified"]:
        blocks.append(Para("None: every WARNING+ message matched a catalog pattern."))
    else:
        blocks.append(Table(["count", "message template (redacted)", "first seen", "last seen", "revisions"],
                            [[_count(u["count"]), ("code", one_line(u["template"], 160)), short_time(u["first_seen"]),
                              short_time(u["last_seen"]), ", ".join(u["revisions"])] for u in summary["unclassified"]],
                            align="rllll"))
    if "patterns-by-revision" in chart_files:
        blocks.append(figures(chart_files["patterns-by-revision"], "Heatmap of pattern matches by revision",
                              "Matching entries per pattern and revision (critical, warning, positive groups)."))
    return blocks


def _revisions_section(summary: dict[str, Any], chart_files: dict[str, Path], figures: _FigureCounter) -> list[Block]:
    blocks: list[Block] = [Heading(2, "2. Per-revision health"), Heading(3, "2.1 Traffic and request errors")]
    rows, classes = [], []
    for r in summary["revisions"]:
        rows.append([service_label(r["service"]), ("code", r["revision"]), short_time(r["deploy_time"]) if r["deploy_time"] else "-",
                     short_time(r["first_seen"]), short_time(r["last_seen"]), pct(r["traffic_share"]), _count(r["requests"]),
                     _count(r["status_4xx"]), _count(r["status_5xx"]), pct(r["request_error_rate"])])
        classes.append("bad" if (r["request_error_rate"] or 0) >= 0.05 else "warn" if r["status_5xx"] else "")
    blocks.append(Table(["service", "revision", "deployed", "first seen", "last seen", "traffic", "requests", "4xx",
                         "5xx", "5xx rate"], rows, align="lllllrrrrr", row_class=classes))
    blocks.append(Heading(3, "2.2 Log errors and latency"))
    blocks.append(Table(["revision", "entries", "ERROR+ entries", "error rate", "p50", "p95", "p99"],
                        [[("code", r["revision"]), _count(r["entries"]), _count(r["errors"]), pct(r["error_rate"]),
                          ms(r["latency_ms"]["p50"]), ms(r["latency_ms"]["p95"]), ms(r["latency_ms"]["p99"])]
                         for r in summary["revisions"]], align="lrrrrrr"))
    blocks.append(Para("Latency percentiles leave out WebSocket upgrades (status 101), whose latency is how long "
                       "the connection stayed open."))
    for service in summary["services"]:
        key = f"error-rate-{_file_slug(service)}"
        if key in chart_files:
            blocks.append(figures(chart_files[key], f"Error rate over time for {service}, by revision",
                                  f"{service}: ERROR+ entries as a share of entries per revision, deploys marked; "
                                  "below, each revision's share of the service's requests."))
    if "latency" in chart_files:
        blocks.append(figures(chart_files["latency"], "Latency percentiles by revision",
                              "Request latency p50, p95 and p99 per revision (log scale)."))
    return blocks


def _endpoints_section(summary: dict[str, Any], chart_files: dict[str, Path], figures: _FigureCounter) -> list[Block]:
    blocks: list[Block] = [Heading(2, "3. Endpoint status")]
    endpoints = summary["endpoints"]
    if not endpoints:
        blocks.append(Para("No HTTP requests in this window."))
    else:
        shown, hidden = shown_first(endpoints, MAX_ENDPOINTS, endpoint_rank)
        blocks.append(Table(["service", "method", "path", "status", "count", "share", "p95"],
                            [[service_label(e["service"]), e["method"] or "-", ("code", e["path"] or "-"), str(e["status"]),
                              _count(e["count"]), pct(e["share"]), ms(e["latency_p95_ms"])] for e in shown],
                            align="lllrrrr",
                            row_class=["bad" if e["status"] >= 500 else "warn" if e["status"] >= 400 else ""
                                       for e in shown]))
        if hidden:
            blocks.append(Para(f"{hidden} more (service, method, path, status) rows are in summary.json "
                               "(the busiest 2xx/3xx ones are left out first)."))
    for service in summary["services"]:
        key = f"status-codes-{_file_slug(service)}"
        if key in chart_files:
            blocks.append(figures(chart_files[key], f"HTTP status classes over time for {service}",
                                  f"{service}: requests per status class per time bucket; below, the 4xx and 5xx "
                                  "shares of requests."))
    return blocks


def _new_issues_section(summary: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "4. New issues vs pre-existing")]
    news = new_in_newest(summary)
    if not news:
        return [*blocks, Para("Only one revision per service in this window: nothing to compare.")]
    revs_by_service = _newest_by_service(summary)
    for i, n in enumerate(news, start=1):
        by_name = {r["revision"]: r for r in revs_by_service[n["service"]]}
        newest = by_name[n["revision"]]
        prev = by_name[n["baseline"]]
        older_names = [prev["revision"]]
        older_entries = prev["entries"]
        blocks.append(Heading(3, f"4.{i} {service_label(n['service'])}: {n['revision']} vs {prev['revision']}"))
        blocks += [Para(note) for note in news_notes(n)]
        items: list[Runs] = []
        for p in n["new_patterns"]:
            items.append([(_cat_badge(p["category"]), p["category"].upper()), " ", p["title"],
                          f": {p['by_revision'][n['revision']]:,} entries, first seen {short_time(p['first_seen'])}"])
        for u in n["new_templates"]:
            items.append([("warn", "UNCLASSIFIED"), " ", ("code", one_line(u["template"], 140)), f": {u['count']:,} entries"])
        blocks.append(Para([("b", f"Introduced in {n['revision']}: "),
                            f"{len(n['new_patterns'])} pattern(s), {len(n['new_templates'])} unclassified template(s)"]))
        blocks.append(Bullets(items) if items else
                      Para("No pattern or message template appears in the newest revision and not in its baseline."))
        pre = [p for p in summary["patterns"] if p["category"] in ("critical", "warning")
               and p["by_revision"].get(n["revision"]) and set(older_names) & set(p["by_revision"])]
        blocks.append(Para([("b", "Pre-existing issues: "),
                            f"{len(pre)} critical/warning pattern(s) seen in both; rates per 1,000 entries of each side"]))
        if pre:
            rows = []
            for p in pre:
                before = sum(p["by_revision"].get(r, 0) for r in older_names)
                after = p["by_revision"][n["revision"]]
                rate_b = 1000 * before / older_entries if older_entries else None
                rate_a = 1000 * after / newest["entries"] if newest["entries"] else None
                rows.append([(_cat_badge(p["category"]), p["category"].upper()), p["title"], _count(before),
                             _rate(rate_b), _count(after), _rate(rate_a)])
            blocks.append(Table(["category", "pattern", "baseline", "per 1k", "newest", "per 1k"], rows, align="llrrrr"))
        gone = [p for p in n["gone_patterns"] if p["category"] in ("critical", "warning")]
        blocks.append(Para([("b", f"No longer seen in {n['revision']}: "),
                            ", ".join(p["title"] for p in gone) if gone else "none"]))
        metric_rows = []
        for name, key, fmt in (("5xx rate", "request_error_rate", pct), ("ERROR+ entry rate", "error_rate", pct)):
            metric_rows.append([name, fmt(prev[key]), fmt(newest[key]), _change(prev[key], newest[key], pct=True)])
        for q in ("p50", "p95", "p99"):
            a, b = prev["latency_ms"][q], newest["latency_ms"][q]
            metric_rows.append([f"latency {q}", ms(a), ms(b), _change(a, b)])
        blocks.append(Para([("b", "Regression indicators: "), f"{newest['revision']} vs {prev['revision']}"]))
        blocks.append(Table(["metric", prev["revision"], newest["revision"], "change"], metric_rows, align="lrrr"))
    verdict = summary.get("verdict") or {}
    metrics = verdict.get("metrics")
    if isinstance(metrics, list) and metrics and all(isinstance(m, dict) for m in metrics):
        headers = list(dict.fromkeys(k for m in metrics for k in m))
        blocks.append(Para([("b", "Compare metrics: "), f"{verdict.get('canary')} vs {verdict.get('baseline')}"]))
        blocks.append(Table(headers, [[_cell(m.get(h)) for h in headers] for m in metrics]))
    return blocks


def _cat_badge(category: str) -> str:
    return {"critical": "bad", "warning": "warn", "positive": "ok"}.get(category, "na")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _change(a: float | None, b: float | None, pct: bool = False) -> str:
    if a is None or b is None:
        return "-"
    if pct:
        return f"{100 * (b - a):+.1f} pp"
    if a == 0:
        return "-"
    return f"{100 * (b - a) / a:+.0f}%"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _checklist_section(summary: dict[str, Any], checklist: list[dict[str, Any]]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "5. Readiness checklist")]
    blocks.append(Checklist([(c["ok"], c["text"]) for c in checklist]))
    applicable = [c for c in checklist if c["ok"] is not None]
    passed = sum(1 for c in applicable if c["ok"])
    verdict = summary.get("verdict") or {}
    status: list[Run] = [("b", "Current status: ")]
    if verdict.get("verdict"):
        status += [(VERDICT_CLASS.get(verdict["verdict"], "na"), verdict["verdict"]), " (compare verdict); "]
    status.append(f"{passed} of {len(applicable)} applicable checks pass.")
    blocks.append(Para(status))
    blocks.append(Para("Metric checks are the compare verdict's judgements, each with the rule that decided it: "
                       "Pass passes, High or Low fails, Inconclusive (below the gate's minimums) is not applicable."))
    return blocks


def _source_fields(audit: Audit, info: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """Where the entries came from: the local store and its ingests, or the BigQuery dataset
    and the bytes its queries processed."""
    if info is None:
        queries = audit.runner.queries
        scanned = [r.bytes_processed for r in queries if r.bytes_processed is not None]
        return [("Source", [("code", audit.source.ref), f": {audit.source.describe()}"]),
                ("Queries", f"{len(queries)} run in {audit.runner.name}"
                            + (f", {sum(scanned):,} bytes processed" if scanned else ""))]
    return [
        ("Store", [("code", str(audit.store.root)), f": {info['entries']:,} entries from {short_time(info['first'])} "
                   f"to {short_time(info['last'])}, {info['files']} files"]),
        ("Ingests and pulls", f"{len(info['ingests'])} recorded; {info['rejected_total']:,} input lines rejected in "
                              "total (kept in the store's rejects/ folder, not shown here)"),
    ]


def _provenance_section(audit: Audit, window: Window, summary: dict[str, Any], generated_at: str, bucket: str,
                        chart_files: dict[str, Path], number: int) -> list[Block]:
    catalog = audit.catalog
    info = audit.store.info() if audit.store is not None else None
    records = info["ingests"] if info is not None else []
    w = summary["window"]
    blocks: list[Block] = [Heading(2, f"{number}. Window and data provenance")]
    filters = ", ".join(f"{k}={v}" for k, v in summary.get("filters", {}).items() if v) or "none"
    blocks.append(Fields([
        ("Window start (inclusive)", w["since"] or "start of store"),
        ("Window end (exclusive)", w["until"] or f"open (report generated {generated_at})"),
        ("Filters", filters),
        ("Entries in the window", f"{summary['entries']:,}"),
        *_source_fields(audit, info),
        ("Pattern catalogs", f"{len(catalog)} patterns from {describe_catalogs(catalog.describe())} "
                             f"(fingerprint {catalog.fingerprint})"),
        ("Redaction", f"{'on' if audit.redactor.enabled else 'OFF'}, {len(audit.redactor.rules)} rules: "
                      "messages, examples and templates are redacted"),
        ("Timeline bucket", bucket),
        ("Charts", f"{len(chart_files)}, PNG at {charts.DPI} dpi, UTC time axes"),
        ("Generated at", generated_at),
        ("Generated by", f"logaudit {__version__}"),
    ]))
    if records:
        shown = records[-MAX_SOURCES:]
        rows = []
        for m in shown:
            sources = [s.get("source", "") for s in m.get("sources", [])]
            label = ", ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
            rows.append([m.get("kind", "-"), ("code", m.get("ingest_id", "-")), short_time(m.get("started")),
                         m.get("status", "-"), label or "-", _count(m.get("read")), _count(m.get("new_rows")),
                         _count(m.get("duplicates")), _count(m.get("rejected"))])
        blocks.append(Heading(3, f"{number}.1 Sources (ingests and pulls, oldest first)"))
        if len(records) > MAX_SOURCES:
            blocks.append(Para(f"The newest {MAX_SOURCES} of {len(records)} records."))
        blocks.append(Table(["kind", "id", "started", "status", "sources", "read", "new", "duplicates", "rejected"],
                            rows, align="lllllrrrr",
                            row_class=["warn" if m.get("rejected") or m.get("status") not in ("complete", "up-to-date")
                                       else "" for m in shown]))
    pulls = [m for m in records if m.get("kind") == "pull"]
    if pulls:
        blocks.append(Heading(3, f"{number}.2 Pull filters"))
        blocks.append(Bullets([[("b", f"{m.get('project', '-')}"), f" ({short_time(m.get('started'))}, {m.get('status', '-')}): ",
                                ("code", m.get("query_filter") or m.get("filter") or "")]
                               for m in pulls[-MAX_SOURCES:]]))
    return blocks


__all__ = ["FORMATS", "ReportResult", "build_report", "parse_formats", "readiness_checklist", "redact_document",
           "redact_tree", "status_timeline", "to_html", "to_markdown"]
