"""Render a summary (the dict of `Audit.summary`) for a terminal or as Markdown.

The sections follow a deployment validation report: error patterns (critical findings,
warnings, positive indicators), per-revision health, endpoint status, what is new in the newest
revision, and unclassified messages. Messages were redacted when the summary was built.

Log text is never read as markup (rich `Text` objects, escaped Markdown), and no figure or id is
cut: tables too wide for the terminal are split (`logaudit.present.display.print_table`). Where a text
output shows fewer items than the JSON holds, it says how many more there are.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from logaudit.analysis.audit import CATEGORIES
from logaudit.catalog.catalog import describe_catalogs
from logaudit.present.display import (
    Col,
    make_console,
    md_code,
    md_text,
    more,
    ms,
    one_line,
    pct,
    print_table,
    revision_label,
    service_label,
    short_time,
)

CATEGORY_TITLES = {
    "critical": "Critical findings",
    "warning": "Warnings",
    "positive": "Positive indicators",
    "info": "Informational",
}
_STYLE = {"critical": "bold red", "warning": "yellow", "positive": "green", "info": "cyan"}
_VERDICT_STYLE = {"READY": "bold green", "MARGINAL": "bold yellow", "NOT READY": "bold red"}
#: Most verdict reasons, endpoints and unclassified templates the text output lists (the rest
#: are counted, and in the JSON); Markdown lists them all.
MAX_REASONS = 8
MAX_ENDPOINTS = 20
MAX_TEMPLATES = 10
#: Longest log text (templates, examples) shown on a line of the text output.
TEXT_WIDTH = 200


def _rev(revision: str, services: list[str]) -> str:
    """A revision without its service prefix (`netra-backend-staging-00317-696` -> `00317-696`)."""
    for service in services:
        if service and revision.startswith(service + "-"):
            return revision[len(service) + 1:]
    return revision


def _revs(by_revision: dict[str, int], services: list[str]) -> str:
    return ", ".join(f"{one_line(_rev(r, services))} ({n:,})" for r, n in by_revision.items())


def shown_first(items: list[dict[str, Any]], limit: int, rank: Any) -> tuple[list[dict[str, Any]], int]:
    """The `limit` most important of `items` (lowest `rank`, ties in list order), kept in list
    order, and how many were left out."""
    if len(items) <= limit:
        return items, 0
    keep = set(sorted(range(len(items)), key=lambda i: (rank(items[i]), i))[:limit])
    return [x for i, x in enumerate(items) if i in keep], len(items) - limit


def endpoint_rank(e: dict[str, Any]) -> tuple[int, int]:
    """Server errors first, then client errors, then the busiest."""
    status = e.get("status") or 0
    return (0 if status >= 500 else 1 if status >= 400 else 2, -(e.get("count") or 0))


def _by_service(rows: list[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["service"], []).append(r)
    return out


def new_in_newest(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per service with 2+ revisions: patterns and unclassified templates seen in its newest
    revision and not in its baseline (and gone ones), against that one baseline only.

    For the service of the summary's verdict, canary and baseline are the verdict's (chosen as
    `compare` chooses them, `baseline_choice`); for the others, the newest revision and the one
    deployed (else first seen) before it. `baseline_cut` says when the window cuts the baseline
    short (it was deployed before the window, so the window holds only part of what it logged).
    """
    out = []
    by_service: dict[str, list[dict[str, Any]]] = {}
    for r in summary["revisions"]:
        by_service.setdefault(r["service"], []).append(r)
    verdict = summary.get("verdict") or {}
    for service, revs in by_service.items():
        if len(revs) < 2:
            continue
        revs = sorted(revs, key=lambda r: (r["deploy_time"] or r["first_seen"] or "", r["revision"]))
        names = {r["revision"]: r for r in revs}
        if verdict.get("service") == service and verdict.get("canary") in names and verdict.get("baseline") in names:
            newest, baseline = verdict["canary"], verdict["baseline"]
            choice = dict(verdict.get("baseline_choice") or {})
        else:
            newest, baseline = revs[-1]["revision"], revs[-2]["revision"]
            choice = {"rule": "first-seen", "text": f"{baseline} is the revision deployed (else first seen) just "
                                                    f"before {newest}"}
        if "baseline_cut" not in choice:
            base = names[baseline]
            choice["baseline_cut"] = base["deploy_time"] is None
            choice["baseline_cut_text"] = (f"the window cuts the baseline short: {baseline} was deployed before it; "
                                           f"its first entry in the window is at {base['first_seen']}"
                                           if choice["baseline_cut"] else None)
        new_patterns = [p for p in summary["patterns"] if p["by_revision"].get(newest) and not p["by_revision"].get(baseline)]
        gone = [p for p in summary["patterns"] if p["by_revision"].get(baseline) and not p["by_revision"].get(newest)]
        new_templates = [u for u in summary["unclassified"] if newest in u["revisions"] and baseline not in u["revisions"]]
        out.append({"service": service, "revision": newest, "previous": baseline, "baseline": baseline,
                    "baseline_choice": choice, "new_patterns": new_patterns, "gone_patterns": gone,
                    "new_templates": new_templates})
    return out


def news_notes(n: dict[str, Any]) -> list[str]:
    """How a `new_in_newest` item's baseline was chosen and whether the window cuts it short."""
    choice = n.get("baseline_choice") or {}
    out = [f"baseline chosen by rule {choice.get('rule')}: {choice.get('text')}"] if choice.get("rule") else []
    if choice.get("baseline_cut") and choice.get("baseline_cut_text"):
        out.append(f"note: {choice['baseline_cut_text']}")
    return out


def core_judgements(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    """The verdict's judgements of the core metrics (error rates, latency), in compare's order."""
    return [j for j in verdict.get("judgements") or [] if not j["name"].startswith("pattern:")]


def render_text(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print the summary for a terminal: every figure whole at any width (tables split to fit),
    colours only on a terminal without $NO_COLOR."""
    con = console or make_console()
    window = summary["window"]
    span = f"{short_time(window['since']) if window['since'] else 'start of store'} .. {short_time(window['until']) if window['until'] else 'now'}"
    con.print(Text.assemble(("logaudit summary", "bold"), f"  {span}  (UTC, since inclusive, until exclusive)"))
    if summary.get("catalogs"):
        con.print(Text(f"catalogs: {describe_catalogs(summary['catalogs'])}"))
    if summary["entries"] == 0:
        con.print(Text(empty_message(summary)))
        return
    filters = ", ".join(f"{k}={one_line(str(v))}" for k, v in summary.get("filters", {}).items() if v)
    services = [service_label(s) for s in summary["services"]]
    con.print(Text.assemble(f"{summary['entries']:,} entries from {len(services)} service(s): {', '.join(services)}",
                            (f"  ({filters})" if filters else "", "dim")))
    for r in summary["revisions"]:
        if r.get("deploy_time"):
            con.print(Text.assemble("deploy: ", (revision_label(r["revision"]), "bold"), f" at {short_time(r['deploy_time'])}"))
    _verdict_text(con, summary)
    _patterns_text(con, summary)
    _revisions_text(con, summary)
    _endpoints_text(con, summary)
    _news_text(con, summary)
    _unclassified_text(con, summary)


def _verdict_text(con: Console, summary: dict[str, Any]) -> None:
    verdict = summary.get("verdict")
    if not verdict:
        if summary.get("verdict_note"):
            con.print(Text.assemble(("no verdict:", "bold"), f" {one_line(summary['verdict_note'])}"))
        return
    con.print(Text.assemble("verdict: ", (verdict["verdict"], _VERDICT_STYLE.get(verdict["verdict"], "bold")),
                            f" for {revision_label(verdict['canary'])} vs {revision_label(verdict['baseline'])}"
                            f" (score {verdict['score']:.0f})"))
    # compare lists the reasons most important first: NOT READY ones, then MARGINAL, then notes
    reasons = verdict.get("reasons", [])
    for reason in reasons[:MAX_REASONS]:
        con.print(Text(f"  - {one_line(reason)}"))
    if len(reasons) > MAX_REASONS:
        con.print(Text(f"  {more(len(reasons) - MAX_REASONS, 'reasons')}", style="dim"))
    choice = verdict.get("baseline_choice") or {}
    if choice.get("rule"):
        con.print(Text(f"  baseline chosen by rule {choice['rule']}: {one_line(choice.get('text') or '')}", style="dim"))
    for j in core_judgements(verdict):
        con.print(Text(f"  {j['name']}: {j['judgement']} ({one_line(j['rule'] or '-')})", style="dim"))


def _rule(con: Console, title: str) -> None:
    con.print()
    con.rule(Text(title, style="bold"))


def _patterns_text(con: Console, summary: dict[str, Any]) -> None:
    _rule(con, "1. Error pattern analysis")
    services = summary["services"]
    wide = con.width >= 160  # examples only where there is room for them
    cols = [Col("pattern", wrap="text"), Col("count", right=True), Col("first seen"), Col("last seen"),
            Col("revisions", wrap="ids"), *([Col("example", wrap="text")] if wide else [])]
    for cat in CATEGORIES:
        pats = [p for p in summary["patterns"] if p["category"] == cat]
        if not pats:
            if cat in ("critical", "warning"):
                con.print(Text.assemble((f"{CATEGORY_TITLES[cat]}:", _STYLE[cat]), " none"))
            continue
        title = Text(f"{CATEGORY_TITLES[cat]} ({len(pats)} patterns, {sum(p['count'] for p in pats):,} entries)",
                     style=_STYLE[cat])
        rows = [[one_line(p["title"]), f"{p['count']:,}", short_time(p["first_seen"])[5:], short_time(p["last_seen"])[5:],
                 _revs(p["by_revision"], services), *([one_line(p["example"], 120)] if wide else [])] for p in pats]
        print_table(con, cols, rows, title=title)


def _revisions_text(con: Console, summary: dict[str, Any]) -> None:
    """Per service, its revisions: traffic, requests and errors, latency, when seen (deploys are listed above)."""
    _rule(con, "2. Revisions")
    cols = [Col("revision"), *(Col(h, right=True) for h in ("traffic", "requests", "4xx", "5xx", "5xx rate", "entries",
                                                               "errors", "error rate", "p50", "p95", "p99")),
            Col("first seen"), Col("last seen")]
    for service, revs in _by_service(summary["revisions"]).items():
        con.print(Text(f"service {service_label(service)}", style="bold"))
        rows = [[revision_label(r["revision"]), pct(r["traffic_share"]), f"{r['requests']:,}", f"{r['status_4xx']:,}",
                 f"{r['status_5xx']:,}", pct(r["request_error_rate"]), f"{r['entries']:,}", f"{r['errors']:,}",
                 pct(r["error_rate"]), ms(r["latency_ms"]["p50"]), ms(r["latency_ms"]["p95"]),
                 ms(r["latency_ms"]["p99"]), short_time(r["first_seen"]), short_time(r["last_seen"])] for r in revs]
        print_table(con, cols, rows)


def _endpoints_text(con: Console, summary: dict[str, Any]) -> None:
    _rule(con, "3. Endpoint status")
    endpoints, hidden = shown_first(summary["endpoints"], MAX_ENDPOINTS, endpoint_rank)
    if not endpoints:
        con.print(Text("no HTTP requests in this window"))
    cols = [Col("method"), Col("path"), *(Col(h, right=True) for h in ("status", "count", "share", "p95"))]
    for service, rows in _by_service(endpoints).items():
        con.print(Text(f"service {service_label(service)}", style="bold"))
        print_table(con, cols, [[one_line(e["method"]) or "-", one_line(e["path"]) or "-", str(e["status"]),
                                 f"{e['count']:,}", pct(e["share"]), ms(e["latency_p95_ms"])] for e in rows],
                    keys=2, row_styles=["red" if e["status"] >= 500 else "yellow" if e["status"] >= 400 else None
                                        for e in rows])
    if hidden:
        con.print(Text(more(hidden, "endpoints (busiest 2xx/3xx left out first)"), style="dim"))


def _news_text(con: Console, summary: dict[str, Any]) -> None:
    _rule(con, "4. New issues")
    news = new_in_newest(summary)
    if not news:
        con.print(Text("only one revision per service in this window: nothing to compare"))
    for n in news:
        con.print(Text.assemble((revision_label(n["revision"]), "bold"), f" vs {revision_label(n['previous'])}:"))
        for note in news_notes(n):
            con.print(Text(f"  {one_line(note)}", style="dim"))
        if not n["new_patterns"] and not n["new_templates"]:
            con.print(Text("  nothing new"))
        for p in n["new_patterns"]:
            con.print(Text.assemble("  ", (f"new {p['category']}", _STYLE.get(p["category"], "")),
                                    f": {one_line(p['title'])} ({p['by_revision'][n['revision']]:,})"))
        for u in n["new_templates"]:
            con.print(Text.assemble("  ", ("new unclassified", "yellow"),
                                    f": {one_line(u['template'], TEXT_WIDTH)} ({u['count']:,})"))
        for p in n["gone_patterns"]:
            if p["category"] in ("critical", "warning"):
                con.print(Text.assemble("  ", ("gone", "green"), f": {one_line(p['title'])}"))


def _unclassified_text(con: Console, summary: dict[str, Any]) -> None:
    _rule(con, "5. Unclassified messages (WARNING and above)")
    templates = summary["unclassified"]
    if not templates:
        con.print(Text("none: every WARNING+ message matched a pattern"))
        return
    services = summary["services"]
    shown = templates[:MAX_TEMPLATES]
    print_table(con, [Col("count", right=True), Col("template", wrap="text"), Col("revisions", wrap="ids")],
                [[f"{u['count']:,}", one_line(u["template"], TEXT_WIDTH),
                  ", ".join(one_line(_rev(r, services)) for r in u["revisions"])] for u in shown])
    if len(templates) > len(shown):
        con.print(Text(more(len(templates) - len(shown), "templates"), style="dim"))


def empty_message(summary: dict[str, Any]) -> str:
    store = summary.get("store") or {}
    held = ""
    if store.get("entries"):
        held = f" The store holds {store['entries']:,} entries from {short_time(store.get('first'))} to {short_time(store.get('last'))}."
    return (
        "No log entries in this window." + held
        + " Pull some with `logaudit pull --project PROJECT --service SERVICE --since 6h`,"
        " ingest exports with `logaudit ingest FILE`, or widen --since/--until."
    )


def render_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown document (GitHub tables); log text is escaped, every item listed."""
    w = summary["window"]
    services = ", ".join(md_text(service_label(s)) for s in summary["services"]) or "-"
    lines = ["# Deployment log summary", "",
             f"Window: {w['since'] or 'start of store'} to {w['until'] or 'now'} (UTC)  ",
             f"Entries: {summary['entries']:,}  ", f"Services: {services}", ""]
    if summary.get("catalogs"):
        lines += [f"Catalogs: {md_text(describe_catalogs(summary['catalogs']))}", ""]
    if summary["entries"] == 0:
        return "\n".join([*lines, empty_message(summary), ""])
    verdict = summary.get("verdict")
    if verdict:
        lines += [f"**Verdict: {verdict['verdict']}** ({md_text(verdict['canary'])} vs {md_text(verdict['baseline'])}, "
                  f"score {verdict['score']:.0f})", ""]
        lines += [f"- {md_text(r)}" for r in verdict.get("reasons", [])] + [""]
        choice = verdict.get("baseline_choice") or {}
        if choice.get("rule"):
            lines += [f"Baseline chosen by rule {md_text(choice['rule'])}: {md_text(choice.get('text') or '')}", ""]
        core = core_judgements(verdict)
        if core:
            lines += ["| metric | judgement | rule |", "|---|---|---|"]
            lines += [f"| {md_text(j['name'])} | {j['judgement']} | {md_text(j['rule'] or '-')} |" for j in core]
            lines.append("")
    elif summary.get("verdict_note"):
        lines += [f"**No verdict:** {md_text(summary['verdict_note'])}", ""]
    lines += ["## 1. Error pattern analysis", ""]
    for cat in CATEGORIES:
        pats = [p for p in summary["patterns"] if p["category"] == cat]
        lines += [f"### {CATEGORY_TITLES[cat]}", ""]
        if not pats:
            lines += ["None.", ""]
            continue
        lines += ["| pattern | count | first seen | last seen | revisions | example |", "|---|---:|---|---|---|---|"]
        for p in pats:
            revs = ", ".join(f"{md_text(r)} ({n:,})" for r, n in p["by_revision"].items())
            lines.append(f"| {md_text(p['title'])} | {p['count']:,} | {short_time(p['first_seen'])} | {short_time(p['last_seen'])} "
                         f"| {revs} | {md_code(one_line(p['example'], 120))} |")
        lines.append("")
    lines += ["## 2. Revisions", "", "| service | revision | deployed | traffic | requests | 4xx | 5xx | 5xx rate | entries "
              "| errors | error rate | p50 | p95 | p99 |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["revisions"]:
        lat = r["latency_ms"]
        lines.append(f"| {md_text(service_label(r['service']))} | {md_text(revision_label(r['revision']))} "
                     f"| {short_time(r['deploy_time']) if r['deploy_time'] else ''} "
                     f"| {pct(r['traffic_share'])} | {r['requests']:,} | {r['status_4xx']:,} | {r['status_5xx']:,} "
                     f"| {pct(r['request_error_rate'])} | {r['entries']:,} | {r['errors']:,} | {pct(r['error_rate'])} "
                     f"| {ms(lat['p50'])} | {ms(lat['p95'])} | {ms(lat['p99'])} |")
    lines += ["", "## 3. Endpoint status", "", "| service | method | path | status | count | share | p95 |",
              "|---|---|---|---:|---:|---:|---:|"]
    for e in summary["endpoints"]:
        lines.append(f"| {md_text(service_label(e['service']))} | {md_text(e['method']) or '-'} "
                     f"| {md_code(e['path']) or '-'} | {e['status']} | {e['count']:,} "
                     f"| {pct(e['share'])} | {ms(e['latency_p95_ms'])} |")
    lines += ["", "## 4. New issues", ""]
    news = new_in_newest(summary)
    if not news:
        lines.append("Only one revision per service in this window.")
    for n in news:
        lines.append(f"**{md_text(n['revision'])}** vs {md_text(n['previous'])}:")
        lines.append("")
        lines += [f"- {md_text(note)}" for note in news_notes(n)]
        items = [f"- new {p['category']}: {md_text(p['title'])} ({p['by_revision'][n['revision']]:,})" for p in n["new_patterns"]]
        items += [f"- new unclassified: {md_code(one_line(u['template'], 120), table=False)} ({u['count']:,})"
                  for u in n["new_templates"]]
        items += [f"- gone: {md_text(p['title'])}" for p in n["gone_patterns"] if p["category"] in ("critical", "warning")]
        lines += items or ["- nothing new"]
        lines.append("")
    lines += ["## 5. Unclassified messages (WARNING and above)", ""]
    if not summary["unclassified"]:
        lines.append("None.")
    else:
        lines += ["| count | template | revisions |", "|---:|---|---|"]
        lines += [f"| {u['count']:,} | {md_code(one_line(u['template'], 140))} | {', '.join(md_text(r) for r in u['revisions'])} |"
                  for u in summary["unclassified"]]
    return "\n".join(lines) + "\n"
