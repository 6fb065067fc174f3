"""A comparison (`Comparison.to_dict()`) for a terminal and as Markdown."""

from __future__ import annotations

from typing import Any

from logaudit.analysis.comparison import format_p
from logaudit.catalog.catalog import describe_catalogs
from logaudit.present.display import (
    Col,
    make_console,
    md_code,
    md_text,
    more,
    one_line,
    print_table,
    short_time,
)

# ======================================================================================= rendering
_STYLE = {"READY": "bold green", "MARGINAL": "bold yellow", "NOT READY": "bold red"}
_JSTYLE = {"Pass": "green", "High": "bold red", "Low": "bold red", "Inconclusive": "dim"}


def _value_text(m: dict[str, Any], key: str) -> str:
    v = m[key]
    if v is None:
        return "-"
    if m["kind"] == "proportion":
        return f"{100 * v:.2f}%"
    if m["kind"] == "rate":
        return f"{v:.2f}"
    return f"{v:,.1f}"


def _change_text(m: dict[str, Any]) -> str:
    if m["change"] is None:
        return "new" if (m["canary"] or 0) > 0 else "-"
    return f"{100 * m['change']:+.1f}%"


def baseline_lines(choice: dict[str, Any] | None) -> list[str]:
    """How the baseline was chosen (`Comparison.baseline_choice`), as lines of text: the rule and
    its facts, then whether the window cuts the baseline short.

    >>> baseline_lines({"rule": "given", "text": "b was named as the baseline (--baseline)", "baseline_cut": False})
    ['baseline chosen by rule given: b was named as the baseline (--baseline)']
    """
    if not choice or not choice.get("rule"):
        return []
    out = [f"baseline chosen by rule {choice['rule']}: {choice.get('text') or ''}".rstrip(": ")]
    if choice.get("baseline_cut") and choice.get("baseline_cut_text"):
        out.append(f"note: {choice['baseline_cut_text']}")
    return out


def render_text(result: dict[str, Any], console: Any = None, *, all_metrics: bool = False) -> None:
    """Print a comparison (`Comparison.to_dict()`) for a terminal (`logaudit.present.display.make_console`:
    log text never read as markup, every figure whole at any width)."""
    from rich.text import Text

    con = console or make_console()
    w = result["windows"]
    con.print(Text.assemble(("logaudit compare", "bold"), f"  service {one_line(result['service'])}"))
    for side in ("baseline", "canary"):
        s = w[side]
        con.print(Text(f"  {side:<8} {one_line(result[side])}  {short_time(s['since'])} .. {short_time(s['until'])}  "
                       f"{s['entries']:,} entries, {s['requests']:,} requests"))
    for line in baseline_lines(result.get("baseline_choice")):
        con.print(Text(f"  {one_line(line)}", style="dim"))
    con.print(Text.assemble("verdict: ", (result["verdict"], _STYLE.get(result["verdict"], "bold")),
                            f"  (score {result['score']:.0f}, exit code {result['exit_code']})"))
    for r in result["reasons"]:
        con.print(Text(f"  - {one_line(r)}"))
    if result.get("catalogs"):
        con.print(Text(f"catalogs: {describe_catalogs(result['catalogs'])}"))
    con.print()
    if result.get("health"):
        _health_text(con, result["health"])
    shown = [m for m in result["metrics"]
             if all_metrics or not m["name"].startswith("pattern:") or m["judgement"] != "Pass"]
    cols = [Col("metric (* critical)"), Col("baseline", right=True), Col("canary", right=True),
            Col("change", right=True), Col("adj. p", right=True), Col("judgement"), Col("unit", style="dim")]
    print_table(con, cols, [[one_line(m["name"]) + (" *" if m["critical"] else ""), _value_text(m, "baseline"),
                             _value_text(m, "canary"), _change_text(m), format_p(m["p_adjusted"]),
                             Text(m["judgement"], style=_JSTYLE.get(m["judgement"], "")),
                             "%" if m["kind"] == "proportion" else one_line(m["unit"])] for m in shown])
    con.print(Text("rules that decided them:", style="bold"))
    for m in shown:
        con.print(Text(f"  {one_line(m['name'])}: {one_line(m.get('rule') or '-')}", style="dim"))
    hidden = len(result["metrics"]) - len(shown)
    if hidden:
        con.print(Text(more(hidden, "pattern rates Pass", "see --all-metrics or --format json"), style="dim"))
    con.print()
    if result["new_patterns"]:
        con.print(Text("New patterns", style="bold") + Text(" (canary only)"))
        for p in result["new_patterns"]:
            con.print(Text.assemble(f"  {p['category']:<8} {one_line(p['id'])}: {one_line(p['title'])} "
                                    f"({p['canary']:,}, p={format_p(p['p_value'])})",
                                    ("" if p["significant"] else " (not significant)", "dim")))
    if result["gone_patterns"]:
        con.print(Text("Gone patterns", style="bold") + Text(" (baseline only)"))
        for p in result["gone_patterns"]:
            con.print(Text(f"  {p['category']:<8} {one_line(p['id'])}: {one_line(p['title'])} "
                           f"({p['baseline']:,} in the baseline)"))
    if result["new_templates"]:
        con.print(Text("New unclassified templates", style="bold") + Text(" (canary only)"))
        for t in result["new_templates"]:
            con.print(Text.assemble(f"  {t['severity']:<8} {one_line(t['template'], 200)} ({t['canary']:,})",
                                    ("" if t["significant"] else " (not significant)", "dim")))


_HSTYLE = {"fail": "bold red", "ok": "green", "not-applicable": "dim"}
_HEALTH_SIDES = ("baseline", "canary")


def _health_cell(check: dict[str, Any] | None) -> str:
    """`fail 15/15`, `ok 1/4`, `n/a`: a check's status and its count of its total."""
    if check is None:
        return "-"
    status = "n/a" if check["status"] == "not-applicable" else check["status"]
    if check["count"] is None or not check["total"]:
        return status
    return f"{status} {check['count']:,}/{check['total']:,}"


def _health_rows(health: dict[str, Any]) -> list[tuple[str, list[dict[str, Any] | None]]]:
    names: list[str] = []
    for side in _HEALTH_SIDES:
        names += [c["name"] for c in health.get(side, {}).get("checks", []) if c["name"] not in names]
    by = {side: {c["name"]: c for c in health.get(side, {}).get("checks", [])} for side in _HEALTH_SIDES}
    return [(n, [by[side].get(n) for side in _HEALTH_SIDES]) for n in names]


def _root_causes(health: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The root cause of each failing side (its most frequent first error after a start)."""
    return [(side, health[side]["root_causes"][0]) for side in _HEALTH_SIDES
            if health.get(side, {}).get("failed") and health[side].get("root_causes")]


def _health_text(con: Any, health: dict[str, Any]) -> None:
    from rich.text import Text

    con.print(Text("Health", style="bold") + Text(" (each revision on its own; count of total)"))
    rows = [[name] + [Text(_health_cell(c), style=_HSTYLE.get(c["status"], "") if c else "") for c in cells]
            for name, cells in _health_rows(health)]
    print_table(con, [Col("check"), Col("baseline"), Col("canary")], rows)
    for side, r in _root_causes(health):
        con.print(Text(f"  root cause ({side}): {one_line(r['line'])} ({r['starts']:,} of {r['of_starts']:,} "
                       f"instance starts)"))
    con.print()


def render_markdown(result: dict[str, Any]) -> str:
    """A comparison (`Comparison.to_dict()`) as Markdown (for a pull request or a CI summary); log
    text is escaped (`logaudit.present.display.md_text`), every item listed."""
    w = result["windows"]
    lines = [f"# Canary comparison: {result['verdict']}", "",
             f"Service {md_code(result['service'], table=False)}: canary {md_code(result['canary'], table=False)} "
             f"vs baseline {md_code(result['baseline'], table=False)}, "
             f"score {result['score']:.0f} (exit code {result['exit_code']}).", "",
             "| side | revision | from | to | entries | requests |", "|---|---|---|---|---:|---:|"]
    for side in ("baseline", "canary"):
        s = w[side]
        lines.append(f"| {side} | {md_code(result[side])} | {short_time(s['since'])} | {short_time(s['until'])} | "
                     f"{s['entries']:,} | {s['requests']:,} |")
    choice = baseline_lines(result.get("baseline_choice"))
    if choice:
        lines += [""] + [md_text(line) + "  " for line in choice]
    if result.get("catalogs"):
        lines += ["", f"Catalogs: {md_text(describe_catalogs(result['catalogs']))}"]
    lines += ["", "## Reasons", ""] + [f"- {md_text(r)}" for r in result["reasons"]]
    if result.get("health"):
        lines += ["", "## Health", "", "| check | baseline | canary |", "|---|---|---|"]
        lines += [f"| {md_text(name)} | {' | '.join(_health_cell(c) for c in cells)} |"
                  for name, cells in _health_rows(result["health"])]
        lines += [""] + [f"Root cause ({side}): {md_code(r['line'], table=False)} ({r['starts']:,} of "
                         f"{r['of_starts']:,} instance starts)" for side, r in _root_causes(result["health"])]
    lines += ["", "## Metrics", "", "| metric | baseline | canary | change | test | adjusted p | effect | judgement "
              "| rule |", "|---|---:|---:|---:|---|---:|---:|---|---|"]
    for m in result["metrics"]:
        eff = "-" if m["effect_size"] is None else f"{m['effect_size']:.2f}"
        crit = " (critical)" if m["critical"] else ""
        lines.append(f"| {md_text(m['name'])} | {_value_text(m, 'baseline')} | {_value_text(m, 'canary')} | "
                     f"{_change_text(m)} | {m['test'] or '-'} | {format_p(m['p_adjusted'])} | {eff} | "
                     f"**{m['judgement']}**{crit} | {md_text(m.get('rule') or '-')} |")
    for title, key, count in (("New patterns (canary only)", "new_patterns", "canary"),
                              ("Gone patterns (baseline only)", "gone_patterns", "baseline")):
        lines += ["", f"## {title}", ""]
        items = result[key]
        lines += [f"- {p['category']}: {md_code(p['id'], table=False)} {md_text(p['title'])} ({p[count]:,})"
                  for p in items] or ["None."]
    lines += ["", "## New unclassified templates (canary only)", ""]
    lines += [f"- {t['severity']}: {md_code(one_line(t['template'], 140), table=False)} ({t['canary']:,})"
              + ("" if t["significant"] else " (not significant)") for t in result["new_templates"]] or ["None."]
    return "\n".join(lines) + "\n"


