"""Render a summary (the dict of `Audit.summary`) for a terminal or as Markdown.

The sections follow a deployment validation report: error patterns (critical findings,
warnings, positive indicators), per-revision health, endpoint status, what is new in the newest
revision, and unclassified messages. Messages were redacted when the summary was built.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from logaudit.catalog import describe_catalogs
from logaudit.query import CATEGORIES

CATEGORY_TITLES = {
    "critical": "Critical findings",
    "warning": "Warnings",
    "positive": "Positive indicators",
    "info": "Informational",
}
_STYLE = {"critical": "bold red", "warning": "yellow", "positive": "green", "info": "cyan"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _short(ts: str | None) -> str:
    """2025-09-10T02:18:34.619410Z -> 2025-09-10 02:18:34Z (whole seconds; the JSON keeps the rest)."""
    return "-" if not ts else ts[:19].replace("T", " ") + "Z"


def _one_line(text: str | None, width: int = 90) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "\u2026"


def _rev(revision: str, services: list[str]) -> str:
    """A revision without its service prefix (`netra-backend-staging-00317-696` -> `00317-696`)."""
    for service in services:
        if revision.startswith(service + "-"):
            return revision[len(service) + 1:]
    return revision


def new_in_newest(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per service with 2+ revisions: patterns and unclassified templates seen in the newest revision only."""
    out = []
    by_service: dict[str, list[dict[str, Any]]] = {}
    for r in summary["revisions"]:
        by_service.setdefault(r["service"], []).append(r)
    for service, revs in by_service.items():
        if len(revs) < 2:
            continue
        revs = sorted(revs, key=lambda r: (r["deploy_time"] or r["first_seen"] or "", r["revision"]))
        newest, older = revs[-1]["revision"], {r["revision"] for r in revs[:-1]}
        new_patterns = [p for p in summary["patterns"] if p["by_revision"].get(newest) and not older & set(p["by_revision"])]
        gone = [p for p in summary["patterns"] if older & set(p["by_revision"]) and not p["by_revision"].get(newest)]
        new_templates = [u for u in summary["unclassified"] if u["revisions"] == [newest]]
        out.append({"service": service, "revision": newest, "previous": revs[-2]["revision"],
                    "new_patterns": new_patterns, "gone_patterns": gone, "new_templates": new_templates})
    return out


def render_text(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print the summary as compact terminal tables (colours only on a terminal)."""
    con = console or Console()
    window = summary["window"]
    span = f"{_short(window['since']) if window['since'] else 'start of store'} .. {_short(window['until']) if window['until'] else 'now'}"
    con.print(f"[bold]logaudit summary[/bold]  {span}  (UTC, since inclusive, until exclusive)")
    if summary.get("catalogs"):
        con.print(f"catalogs: {describe_catalogs(summary['catalogs'])}", markup=False, highlight=False, soft_wrap=True)
    if summary["entries"] == 0:
        con.print(empty_message(summary))
        return
    filters = ", ".join(f"{k}={v}" for k, v in summary.get("filters", {}).items() if v)
    con.print(f"{summary['entries']:,} entries from {len(summary['services'])} service(s): {', '.join(summary['services'])}"
              + (f"  [dim]({filters})[/dim]" if filters else ""))
    for r in summary["revisions"]:
        if r.get("deploy_time"):
            con.print(f"deploy: [bold]{r['revision']}[/bold] at {_short(r['deploy_time'])}")
    verdict = summary.get("verdict")
    if verdict:
        style = {"READY": "bold green", "MARGINAL": "bold yellow", "NOT READY": "bold red"}.get(verdict["verdict"], "bold")
        con.print(f"verdict: [{style}]{verdict['verdict']}[/{style}] for {verdict['canary']} vs {verdict['baseline']}"
                  f" (score {verdict['score']:.0f})")
        for reason in verdict.get("reasons", [])[:6]:
            con.print(f"  - {reason}")

    con.print()
    con.rule("[bold]1. Error pattern analysis[/bold]")
    for cat in CATEGORIES:
        pats = [p for p in summary["patterns"] if p["category"] == cat]
        if not pats:
            if cat in ("critical", "warning"):
                con.print(f"[{_STYLE[cat]}]{CATEGORY_TITLES[cat]}:[/{_STYLE[cat]}] none")
            continue
        wide = con.width >= 160  # examples only where they fit on one line
        table = Table(title=f"{CATEGORY_TITLES[cat]} ({sum(p['count'] for p in pats):,} entries)",
                      title_style=_STYLE[cat], title_justify="left", show_edge=False, pad_edge=False)
        for col, kw in (("pattern", {"ratio": 3}), ("count", {"justify": "right", "no_wrap": True}),
                        ("first seen", {"no_wrap": True}), ("last seen", {"no_wrap": True}),
                        ("revisions", {"ratio": 2}), *((("example", {"overflow": "fold", "ratio": 3}),) if wide else ())):
            table.add_column(col, **kw)
        for p in pats:
            revs = ", ".join(f"{_rev(r, summary['services'])} ({n})" for r, n in p["by_revision"].items())
            row = [p["title"], f"{p['count']:,}", _short(p["first_seen"])[5:], _short(p["last_seen"])[5:], revs]
            table.add_row(*row, *((_one_line(p["example"], 70),) if wide else ()))
        con.print(table)

    con.print()
    con.rule("[bold]2. Revisions[/bold]")
    table = Table(show_edge=False, pad_edge=False)
    for col in ("service", "revision", "deployed", "traffic", "requests", "4xx", "5xx", "5xx rate", "entries", "errors",
                "error rate", "p50", "p95", "p99", "first seen", "last seen"):
        table.add_column(col, justify="left" if col in ("service", "revision", "deployed", "first seen", "last seen") else "right",
                         no_wrap=col in ("revision", "service"))
    for r in summary["revisions"]:
        lat = r["latency_ms"]
        table.add_row(r["service"], r["revision"], _short(r["deploy_time"]) if r.get("deploy_time") else "",
                      _pct(r["traffic_share"]),
                      f"{r['requests']:,}", f"{r['status_4xx']:,}", f"{r['status_5xx']:,}", _pct(r["request_error_rate"]),
                      f"{r['entries']:,}", f"{r['errors']:,}", _pct(r["error_rate"]),
                      _ms(lat["p50"]), _ms(lat["p95"]), _ms(lat["p99"]), _short(r["first_seen"]), _short(r["last_seen"]))
    con.print(table)

    con.print()
    con.rule("[bold]3. Endpoint status[/bold]")
    table = Table(show_edge=False, pad_edge=False)
    for col in ("service", "method", "path", "status", "count", "share", "p95"):
        table.add_column(col, justify="right" if col in ("count", "share", "p95", "status") else "left")
    for e in summary["endpoints"][:20]:
        style = "red" if e["status"] >= 500 else "yellow" if e["status"] >= 400 else None
        table.add_row(e["service"], e["method"] or "-", e["path"] or "-", str(e["status"]), f"{e['count']:,}",
                      _pct(e["share"]), _ms(e["latency_p95_ms"]), style=style)
    con.print(table)
    if len(summary["endpoints"]) > 20:
        con.print(f"[dim]... {len(summary['endpoints']) - 20} more in --format json[/dim]")

    con.print()
    con.rule("[bold]4. New issues[/bold]")
    news = new_in_newest(summary)
    if not news:
        con.print("only one revision per service in this window: nothing to compare")
    for n in news:
        con.print(f"[bold]{n['revision']}[/bold] vs {n['previous']}:")
        if not n["new_patterns"] and not n["new_templates"]:
            con.print("  nothing new")
        for p in n["new_patterns"]:
            con.print(f"  [{_STYLE[p['category']]}]new {p['category']}[/]: {p['title']} ({p['by_revision'][n['revision']]:,})")
        for u in n["new_templates"]:
            con.print(f"  [yellow]new unclassified[/yellow]: {_one_line(u['template'], 100)} ({u['count']:,})")
        for p in n["gone_patterns"]:
            if p["category"] in ("critical", "warning"):
                con.print(f"  [green]gone[/green]: {p['title']}")

    con.print()
    con.rule("[bold]5. Unclassified messages (WARNING and above)[/bold]")
    if not summary["unclassified"]:
        con.print("none: every WARNING+ message matched a pattern")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("count", justify="right")
    table.add_column("template", overflow="fold")
    table.add_column("revisions")
    for u in summary["unclassified"][:10]:
        table.add_row(f"{u['count']:,}", _one_line(u["template"], 110), ", ".join(u["revisions"]))
    if summary["unclassified"]:
        con.print(table)


def empty_message(summary: dict[str, Any]) -> str:
    store = summary.get("store") or {}
    held = ""
    if store.get("entries"):
        held = f" The store holds {store['entries']:,} entries from {_short(store.get('first'))} to {_short(store.get('last'))}."
    return (
        "No log entries in this window." + held
        + " Pull some with `logaudit pull --project PROJECT --service SERVICE --since 6h`,"
        " ingest exports with `logaudit ingest FILE`, or widen --since/--until."
    )


def render_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown document (GitHub tables)."""
    w = summary["window"]
    lines = ["# Deployment log summary", "",
             f"Window: {w['since'] or 'start of store'} to {w['until'] or 'now'} (UTC)  ",
             f"Entries: {summary['entries']:,}  ", f"Services: {', '.join(summary['services']) or '-'}", ""]
    if summary.get("catalogs"):
        lines += [f"Catalogs: {_md(describe_catalogs(summary['catalogs']))}", ""]
    if summary["entries"] == 0:
        return "\n".join([*lines, empty_message(summary), ""])
    verdict = summary.get("verdict")
    if verdict:
        lines += [f"**Verdict: {verdict['verdict']}** ({verdict['canary']} vs {verdict['baseline']}, score {verdict['score']:.0f})", ""]
        lines += [f"- {r}" for r in verdict.get("reasons", [])] + [""]
    lines += ["## 1. Error pattern analysis", ""]
    for cat in CATEGORIES:
        pats = [p for p in summary["patterns"] if p["category"] == cat]
        lines += [f"### {CATEGORY_TITLES[cat]}", ""]
        if not pats:
            lines += ["None.", ""]
            continue
        lines += ["| pattern | count | first seen | last seen | revisions | example |", "|---|---:|---|---|---|---|"]
        for p in pats:
            revs = ", ".join(f"{r} ({n})" for r, n in p["by_revision"].items())
            lines.append(f"| {_md(p['title'])} | {p['count']:,} | {_short(p['first_seen'])} | {_short(p['last_seen'])} "
                         f"| {revs} | `{_md(_one_line(p['example'], 120))}` |")
        lines.append("")
    lines += ["## 2. Revisions", "", "| service | revision | deployed | traffic | requests | 4xx | 5xx | 5xx rate | entries "
              "| errors | error rate | p50 | p95 | p99 |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["revisions"]:
        lat = r["latency_ms"]
        lines.append(f"| {r['service']} | {r['revision']} | {_short(r['deploy_time']) if r['deploy_time'] else ''} "
                     f"| {_pct(r['traffic_share'])} | {r['requests']:,} | {r['status_4xx']:,} | {r['status_5xx']:,} "
                     f"| {_pct(r['request_error_rate'])} | {r['entries']:,} | {r['errors']:,} | {_pct(r['error_rate'])} "
                     f"| {_ms(lat['p50'])} | {_ms(lat['p95'])} | {_ms(lat['p99'])} |")
    lines += ["", "## 3. Endpoint status", "", "| service | method | path | status | count | share | p95 |",
              "|---|---|---|---:|---:|---:|---:|"]
    for e in summary["endpoints"]:
        lines.append(f"| {e['service']} | {e['method']} | `{_md(e['path'])}` | {e['status']} | {e['count']:,} "
                     f"| {_pct(e['share'])} | {_ms(e['latency_p95_ms'])} |")
    lines += ["", "## 4. New issues", ""]
    news = new_in_newest(summary)
    if not news:
        lines.append("Only one revision per service in this window.")
    for n in news:
        lines.append(f"**{n['revision']}** vs {n['previous']}:")
        lines.append("")
        items = [f"- new {p['category']}: {_md(p['title'])} ({p['by_revision'][n['revision']]:,})" for p in n["new_patterns"]]
        items += [f"- new unclassified: `{_md(_one_line(u['template'], 120))}` ({u['count']:,})" for u in n["new_templates"]]
        items += [f"- gone: {_md(p['title'])}" for p in n["gone_patterns"] if p["category"] in ("critical", "warning")]
        lines += items or ["- nothing new"]
        lines.append("")
    lines += ["## 5. Unclassified messages (WARNING and above)", ""]
    if not summary["unclassified"]:
        lines.append("None.")
    else:
        lines += ["| count | template | revisions |", "|---:|---|---|"]
        lines += [f"| {u['count']:,} | `{_md(_one_line(u['template'], 140))}` | {', '.join(u['revisions'])} |"
                  for u in summary["unclassified"]]
    return "\n".join(lines) + "\n"


def _md(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("`", "'")
