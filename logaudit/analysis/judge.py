"""Judging: is a canary revision ready, compared with its baseline?

`compare` observes both revisions (`logaudit.analysis.observe`: DuckDB aggregates per entry file,
cached) and `judge` tests every metric on the aggregates (`logaudit.analysis.stats`): the error
rates, latency, each catalog pattern's rate, new and gone patterns, new unclassified templates,
under the thresholds of a gate file (`logaudit.analysis.gate`). The verdict, READY, MARGINAL or
NOT READY, comes with a score and the reasons. docs/compare.md has the method, the gate keys and
the verdict rules.

>>> from logaudit.analysis.audit import Audit
>>> result = compare(Audit("logaudit-store"))          # doctest: +SKIP
>>> result.verdict, result.exit_code                    # doctest: +SKIP
('NOT READY', 2)
"""

from __future__ import annotations

import math
import os
from typing import Any

from logaudit.analysis.comparison import (
    LATENCY_BINS_PER_E,
    Comparison,
    Metric,
    Observations,
    Side,
    format_p,
    json_num,
)
from logaudit.analysis.gate import Gate, GateError, MetricRule, default_gate, load_gate
from logaudit.analysis.health import Health, assess_health, health_reasons
from logaudit.analysis.observe import FileAggregates, observe
from logaudit.analysis.stats import (
    TestResult,
    bonferroni,
    fisher_exact,
    holm,
    mann_whitney_counts,
    new_event_test,
    poisson_rate_test,
    quantile_test,
)
from logaudit.analysis.window import iso
from logaudit.catalog.catalog import CATEGORIES
from logaudit.core.errors import UsageError
from logaudit.sources.severity import SEVERITY_NAME

_QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
_TEST_NAMES = {"fisher_exact": "Fisher exact", "poisson_exact": "exact Poisson", "mann_whitney_u": "Mann-Whitney U",
               "mood_quantile": "Mood quantile"}


# ======================================================================================== judging
def judge(obs: Observations, gate: Gate | None = None) -> Comparison:
    """Judge aggregated observations under `gate` (pure Python: no database)."""
    gate = gate or Gate()
    b, c = obs.baseline, obs.canary
    metrics = _core_metrics(b, c, gate) + _pattern_metrics(obs, gate)
    _adjust_and_judge(metrics, gate)

    unit, exp_b, exp_c = _exposure(b, c)
    new_patterns, gone_patterns = [], []
    for p in obs.patterns:
        if p.baseline == 0 and p.canary > 0:
            t = new_event_test(p.canary, exp_b, exp_c)
            new_patterns.append({"id": p.id, "category": p.category, "title": p.title, "canary": p.canary,
                                 "exposure": unit, "p_value": json_num(t.p_value),
                                 "significant": p.canary >= gate.new_patterns.min_count
                                 and t.p_value <= gate.new_patterns.alpha})
        elif p.canary == 0 and p.baseline > 0:
            t = new_event_test(p.baseline, exp_c, exp_b)
            gone_patterns.append({"id": p.id, "category": p.category, "title": p.title, "baseline": p.baseline,
                                  "exposure": unit, "p_value": json_num(t.p_value),
                                  "significant": t.p_value <= gate.new_patterns.alpha})
    order = {cat: i for i, cat in enumerate(CATEGORIES)}
    new_patterns.sort(key=lambda x: (order.get(x["category"], 9), -x["canary"], x["id"]))
    gone_patterns.sort(key=lambda x: (order.get(x["category"], 9), -x["baseline"], x["id"]))

    new_templates = []
    for tc in obs.templates:
        if tc.baseline == 0 and tc.canary > 0:
            t = new_event_test(tc.canary, exp_b, exp_c)
            new_templates.append({
                "template": tc.template, "canary": tc.canary, "severity": SEVERITY_NAME.get(tc.max_severity,
                                                                                              str(tc.max_severity)),
                "example": tc.example, "exposure": unit, "p_value": json_num(t.p_value),
                "significant": tc.canary >= gate.new_templates.min_count and t.p_value <= gate.new_templates.alpha,
            })

    verdict, score, reasons = _verdict(metrics, new_patterns, new_templates, gate)
    health = {side: assess_health(s.revision, obs.health_stats.get(side), obs.root_causes.get(side, ()), gate.health)
              for side, s in (("baseline", b), ("canary", c))}
    verdict, reasons = _health_verdict(verdict, reasons, health)
    windows = {
        name: {"since": iso(s.first_seen), "until": iso(s.last_seen), "deploy_time": iso(s.deploy_time),
               "entries": s.entries, "requests": s.requests}
        for name, s in (("baseline", b), ("canary", c))
    }
    windows["query"] = {"since": iso(obs.since), "until": iso(obs.until)}
    return Comparison(obs.service, b.revision, c.revision, windows, metrics, new_patterns, gone_patterns,
                      new_templates, verdict, score, reasons, gate, baseline_choice=dict(obs.baseline_choice),
                      health=health)


def compare(audit: Any, *, service: str | None = None, baseline: str | None = None, canary: str | None = None,
            since: Any = None, until: Any = None, gate: Gate | str | os.PathLike | None = None) -> Comparison:
    """Compare `canary` with `baseline` (default: the service's newest revision, and the revision that
    served the traffic just before its deploy, else the one before it: `Comparison.baseline_choice`).

    Each revision is read over the window where it served traffic (its first to last entry),
    intersected with `since`/`until` when given. `gate` is a `Gate`, a gate file path, or None
    for $LOGAUDIT_GATE / the defaults. Raises `UsageError` when there is nothing to compare.
    """
    if gate is None:
        gate = default_gate()
    elif not isinstance(gate, Gate):
        gate = load_gate(gate)
    obs = observe(audit, service=service, baseline=baseline, canary=canary, since=since, until=until, gate=gate)
    result = judge(obs, gate)
    result.catalogs = audit.catalog.describe()
    return result


def summary_verdict(audit: Any, window: Any, gate: Gate | None = None, aggregates: FileAggregates | None = None,
                    engine: Any = None) -> tuple[dict[str, Any] | None, str | None]:
    """The `verdict` entry of `Audit.summary` and its `verdict_note`: the comparison for the
    window's service (or the service whose newest revision was deployed last) and revision (as
    canary) and None; or None and why there is none (e.g. only one revision per service).
    `aggregates` already loaded for the window are reused; `engine`: default `audit.engine`."""
    try:
        gate = gate or default_gate()
        obs = observe(audit, service=window.service, canary=window.revision, since=window.since,
                      until=window.until, gate=gate, aggregates=aggregates, engine=engine)
        result = judge(obs, gate)
    except GateError:
        raise
    except UsageError as err:
        # the hint's revision list explains it; advice on compare's options does not apply here
        return None, err.message + (f" ({err.hint})" if err.hint and "--" not in err.hint else "")
    return result.verdict_dict(), None


def _exposure(b: Side, c: Side) -> tuple[str, float, float]:
    """What pattern rates are counted per: requests when both sides have some, else entries."""
    if b.requests > 0 and c.requests > 0:
        return "requests", float(b.requests), float(c.requests)
    return "entries", float(b.entries), float(c.entries)


def _core_metrics(b: Side, c: Side, gate: Gate) -> list[Metric]:
    out: list[Metric] = []
    rules = gate.metrics
    # request error rate
    if b.requests > 0 or c.requests > 0:
        out.append(_proportion("request_error_rate", "5xx / requests", b.status_5xx, b.requests, c.status_5xx,
                               c.requests, gate.min_requests, "requests", rules["request_error_rate"]))
    out.append(_proportion("entry_error_rate", "entries >= ERROR / entries", b.errors, b.entries, c.errors, c.entries,
                           gate.min_entries, "entries", rules["entry_error_rate"]))
    if b.latency_n > 0 or c.latency_n > 0:
        out.extend(_latency_metrics(b, c, gate))
    return [m for m in out if m is not None]


def _proportion(name: str, unit: str, xb: int, nb: int, xc: int, nc: int, minimum: int, what: str,
                rule: MetricRule) -> Metric | None:
    if not rule.judge:
        return None
    pb = xb / nb if nb else None
    pc = xc / nc if nc else None
    counts = {"baseline": [xb, nb], "canary": [xc, nc]}
    small = _too_small(nb, nc, minimum, what)
    if small:
        return Metric(name, "proportion", unit, pb, pc, _change(pb, pc), _diff(pb, pc), None, None, None, None,
                      None, "Inconclusive", rule.critical, rule.direction, counts, small,
                      rule=_minimum_rule(nb, nc, minimum, what, f"min_{what}"), inconclusive="traffic")
    t = fisher_exact(xb, nb, xc, nc)
    return _metric(name, "proportion", unit, pb, pc, t, rule, counts)


def _latency_metrics(b: Side, c: Side, gate: Gate) -> list[Metric]:
    out: list[Metric] = []
    bins = sorted(set(b.latency_hist) | set(c.latency_hist))
    cb = [b.latency_hist.get(k, 0) for k in bins]
    cc = [c.latency_hist.get(k, 0) for k in bins]
    what = "requests with a latency"
    small = _too_small(b.latency_n, c.latency_n, gate.min_requests, what)
    counts = {"baseline": b.latency_n, "canary": c.latency_n}
    rule = gate.metrics["latency"]
    if rule.judge:
        if small:
            out.append(Metric("latency", "distribution", "ms (mean)", b.latency_mean, c.latency_mean,
                              _change(b.latency_mean, c.latency_mean), _diff(b.latency_mean, c.latency_mean), None,
                              None, None, None, None, "Inconclusive", rule.critical, rule.direction, counts, small,
                              rule=_minimum_rule(b.latency_n, c.latency_n, gate.min_requests, what, "min_requests"),
                              inconclusive="traffic"))
        else:
            t = mann_whitney_counts(bins, cb, cc)
            out.append(_metric("latency", "distribution", "ms (mean)", b.latency_mean, c.latency_mean, t, rule,
                               counts))
    for name, q in _QUANTILES.items():
        rule = gate.metrics[name]
        if not rule.judge:
            continue
        key = name.rsplit("_", 1)[1]
        vb, vc = b.latency_quantiles.get(key), c.latency_quantiles.get(key)
        need = gate.quantile_minimum(q)
        tail = _too_small(b.latency_n, c.latency_n, need, what)
        if tail:
            source = "min_requests" if need == gate.min_requests else \
                f"needed for {key} (min_tail {gate.min_tail} / (1 - {q:g}))"
            out.append(Metric(name, "quantile", "ms", vb, vc, _change(vb, vc), _diff(vb, vc), None, None, None, None,
                              None, "Inconclusive", rule.critical, rule.direction, counts, tail,
                              rule=_minimum_rule(b.latency_n, c.latency_n, need, what, source),
                              inconclusive="traffic"))
            continue
        t = quantile_test(bins, cb, cc, q)
        m = _metric(name, "quantile", "ms", vb, vc, t, rule, counts)
        if t.statistic is not None:
            m.counts = counts | {"split_ms": round(math.exp(t.statistic / LATENCY_BINS_PER_E), 3)}
        out.append(m)
    return out


def _pattern_metrics(obs: Observations, gate: Gate) -> list[Metric]:
    unit, exp_b, exp_c = _exposure(obs.baseline, obs.canary)
    minimum = gate.min_requests if unit == "requests" else gate.min_entries
    small = _too_small(int(exp_b), int(exp_c), minimum, unit)
    out = []
    for p in obs.patterns:
        rule = gate.pattern_rule(p.id, p.category)
        if not rule.judge:
            continue
        rb = 1000.0 * p.baseline / exp_b if exp_b else None
        rc = 1000.0 * p.canary / exp_c if exp_c else None
        counts = {"baseline": [p.baseline, int(exp_b)], "canary": [p.canary, int(exp_c)]}
        name = f"pattern:{p.id}"
        label = f"per 1k {unit}"
        events = p.baseline + p.canary
        if small:
            m = Metric(name, "rate", label, rb, rc, _change(rb, rc), _diff(rb, rc), None, None, None, None, None,
                       "Inconclusive", rule.critical, rule.direction, counts, small,
                       rule=_minimum_rule(int(exp_b), int(exp_c), minimum, unit, f"min_{unit}"),
                       inconclusive="traffic")
        elif events < gate.min_events:
            m = Metric(name, "rate", label, rb, rc, _change(rb, rc), _diff(rb, rc), None, None, None, None, None,
                       "Inconclusive", rule.critical, rule.direction, counts,
                       f"{events} matches in the two revisions, fewer than min_events {gate.min_events}",
                       rule=f"Inconclusive: {events} matches (baseline {p.baseline}, canary {p.canary}) "
                            f"< min_events {gate.min_events}", inconclusive="events")
        else:
            m = _metric(name, "rate", label, rb, rc, poisson_rate_test(p.baseline, exp_b, p.canary, exp_c), rule,
                        counts)
        m.title = p.title
        m.counts["category"] = p.category
        out.append(m)
    return out


def _metric(name: str, kind: str, unit: str, vb: float | None, vc: float | None, t: TestResult, rule: MetricRule,
            counts: dict[str, Any]) -> Metric:
    """A tested metric, judged later (after p-value adjustment) by `_adjust_and_judge`."""
    return Metric(name, kind, unit, vb, vc, _change(vb, vc), _diff(vb, vc), t.test, t.p_value, None,
                  _finite_or_none(t.effect_size), t.effect_measure, "Pass", rule.critical, rule.direction, counts)


def _adjust_and_judge(metrics: list[Metric], gate: Gate) -> None:
    tested = [m for m in metrics if m.judgement != "Inconclusive"]
    # patterns with too few matches stay in the family (as p = 1): calling them Inconclusive
    # must not loosen the correction of the other metrics
    sparse = sum(m.inconclusive == "events" for m in metrics)
    pvals = [m.p_value if m.p_value is not None else 1.0 for m in tested] + [1.0] * sparse
    if gate.correction == "holm":
        adj = holm(pvals)[: len(tested)]
    elif gate.correction == "bonferroni":
        adj = bonferroni(pvals)[: len(tested)]
    else:
        adj = pvals[: len(tested)]
    rules = {**gate.metrics}
    for m, pa in zip(tested, adj, strict=True):
        m.p_adjusted = pa
        if m.name.startswith("pattern:"):
            rule = gate.pattern_rule(m.name.split(":", 1)[1], m.counts.get("category", ""))
        else:
            rule = rules[m.name]
        m.judgement, m.note, m.rule = _classify(m, rule, gate.alpha)


def _classify(m: Metric, rule: MetricRule, alpha: float) -> tuple[str, str | None, str]:
    """(judgement, note, the rule that decided it in words)."""
    test = f"{_TEST_NAMES.get(m.test or '', m.test or 'test')} p_adj {format_p(m.p_adjusted)}"
    if m.p_adjusted is None or m.p_adjusted >= alpha:
        return "Pass", None, f"{test} >= alpha {alpha:g}: Pass"
    test += f" < alpha {alpha:g}"
    diff = m.difference or 0.0
    if diff == 0.0:
        return "Pass", None, f"{test} but no difference: Pass"
    small = []
    if abs(diff) < rule.min_abs_change:
        small.append(f"|difference| {abs(diff):.4g} < min_abs_change {rule.min_abs_change:g}")
    if m.change is not None and abs(m.change) <= rule.allowed_change:
        small.append(f"|change| {100 * abs(m.change):.1f}% <= allowed_change {100 * rule.allowed_change:g}%")
    if rule.min_effect_size and (m.effect_size is None or abs(_effect_for_threshold(m)) < rule.min_effect_size):
        size = "-" if m.effect_size is None else f"{abs(_effect_for_threshold(m)):.3g}"
        small.append(f"effect size {size} < min_effect_size {rule.min_effect_size:g}")
    word = "higher" if diff > 0 else "lower"
    if small:
        return "Pass", f"significantly {word}, but within the gate ({'; '.join(small)})", \
            f"{test} but {'; '.join(small)}: Pass"
    met = [f"change {'new' if m.change is None else f'{100 * m.change:+.1f}%'} > allowed_change "
           f"{100 * rule.allowed_change:g}%"]
    if rule.min_abs_change:
        met.append(f"|difference| {abs(diff):.4g} >= min_abs_change {rule.min_abs_change:g}")
    if rule.min_effect_size:
        met.append(f"effect size {abs(_effect_for_threshold(m)):.3g} >= min_effect_size {rule.min_effect_size:g}")
    passed = f"{test} and {' and '.join(met)}"
    if diff > 0 and rule.direction in ("increase", "either"):
        return "High", None, f"{passed}: High"
    if diff < 0 and rule.direction in ("decrease", "either"):
        return "Low", None, f"{passed}: Low"
    only = f"only a{'n increase' if rule.direction == 'increase' else ' decrease'} fails"
    return "Pass", f"significantly {word} ({only})", f"{passed}, but {only}: Pass"


def _effect_for_threshold(m: Metric) -> float:
    """The effect size on a scale where 0 means no effect (rate ratios as log2)."""
    e = m.effect_size or 0.0
    if m.effect_measure == "rate_ratio":
        return math.log2(e) if e > 0 else 0.0
    return e


def _verdict(metrics: list[Metric], new_patterns: list[dict[str, Any]], new_templates: list[dict[str, Any]],
             gate: Gate) -> tuple[str, float, list[str]]:
    not_ready: list[str] = []
    marginal: list[str] = []
    notes: list[str] = []
    judged = [m for m in metrics if m.judgement != "Inconclusive"]
    passed = sum(m.judgement == "Pass" for m in judged)
    score = 100.0 * passed / len(judged) if judged else 0.0
    npr = gate.new_patterns
    for p in new_patterns:
        if p["category"] in npr.not_ready or p["category"] in npr.marginal:
            text = (f"new {p['category']} pattern {p['id']} ({p['title']}): {p['canary']} in the canary, "
                    f"none in the baseline (p={format_p(p['p_value'])})")
            if not p["significant"]:  # worth a look, but no evidence: it does not change the verdict
                notes.append(text[:-1] + f" > {npr.alpha:g}: too few to tell from chance at this traffic split)"
                             if p["canary"] >= npr.min_count else
                             text[:-1] + f"; fewer than min_count {npr.min_count})")
            elif p["category"] in npr.not_ready:
                not_ready.append(text)
            else:
                marginal.append(text)
    new_pattern_ids = {p["id"] for p in new_patterns if p["significant"] and
                       (p["category"] in npr.not_ready or p["category"] in npr.marginal)}
    for m in metrics:
        if not m.failed:
            continue
        if m.name.startswith("pattern:") and m.name.split(":", 1)[1] in new_pattern_ids and m.baseline == 0:
            continue  # already said: new pattern
        text = _metric_reason(m)
        (not_ready if m.critical else marginal).append(text)
    if judged and score < gate.not_ready_below:
        not_ready.append(f"score {score:.0f} is below score.not_ready_below {gate.not_ready_below:g}")
    elif judged and score < gate.marginal_below:
        marginal.append(f"score {score:.0f} is below score.marginal_below {gate.marginal_below:g}")
    ntr = gate.new_templates
    for t in new_templates:
        if not t["significant"] or ntr.verdict == "ignore":
            continue
        text = (f"new unclassified {t['severity']} template: \"{_clip(t['template'], 120)}\" "
                f"({t['canary']} in the canary, none in the baseline, p={format_p(t['p_value'])})")
        (not_ready if ntr.verdict == "NOT READY" else marginal).append(text)
    inconclusive = [m for m in metrics if m.judgement == "Inconclusive"]
    critical_inconclusive = [m for m in inconclusive if m.critical and m.inconclusive != "events"]
    if critical_inconclusive:
        groups: dict[str, str | None] = {}
        for m in critical_inconclusive:
            groups.setdefault(_inconclusive_group(m), m.note)
        text = "not enough traffic to judge " + ", ".join(f"{g} ({note})" for g, note in groups.items())
        (marginal if gate.inconclusive == "MARGINAL" else notes).append(text)
    if not judged and not critical_inconclusive:
        text = "no metric could be judged"
        (marginal if gate.inconclusive == "MARGINAL" else notes).append(text)
    if not_ready:
        return "NOT READY", score, not_ready + marginal + notes
    if marginal:
        return "MARGINAL", score, marginal + notes
    ready = [f"{passed} of {len(judged)} judged metrics Pass; no new critical pattern"]
    if inconclusive:
        sparse = sum(m.inconclusive == "events" for m in inconclusive)
        text = f"{len(inconclusive)} {'' if any(m.critical for m in inconclusive) else 'non-critical '}metrics Inconclusive"
        ready.append(text + (f" ({sparse} pattern rates with fewer than min_events {gate.min_events} matches)"
                             if sparse else ""))
    return "READY", score, ready + notes


def _health_verdict(verdict: str, reasons: list[str], health: dict[str, Health]) -> tuple[str, list[str]]:
    """The health floor: a canary failing a health check is NOT READY whatever its baseline and
    score, its root cause and failing checks first; an unhealthy baseline is said (a note)."""
    canary = health_reasons(health["canary"], "canary")
    baseline = health_reasons(health["baseline"], "baseline")
    if canary:
        relative = reasons if verdict != "READY" else []  # a READY's reasons say all passed: not so
        return "NOT READY", canary + baseline + relative
    return verdict, reasons + baseline


def _inconclusive_group(m: Metric) -> str:
    return "critical pattern rates" if m.name.startswith("pattern:") else m.name


def _metric_reason(m: Metric) -> str:
    label = m.name if not m.name.startswith("pattern:") else f"pattern {m.name[8:]} rate"
    change = "new" if m.change is None else f"{100 * m.change:+.1f}%"
    test = _TEST_NAMES.get(m.test or "", m.test or "")
    return (f"{label} {m.judgement} ({'critical' if m.critical else 'non-critical'}): "
            f"{_fmt(m, m.canary)} vs {_fmt(m, m.baseline)} in the baseline ({change}, {test} "
            f"adjusted p={format_p(m.p_adjusted)})")


def _fmt(m: Metric, v: float | None) -> str:
    if v is None:
        return "-"
    if m.kind == "proportion":
        return f"{100 * v:.2f}%"
    if m.kind == "rate":
        return f"{v:.2f} {m.unit}"
    return f"{v:.1f} ms"



def _clip(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "\u2026"


def _minimum_rule(nb: int, nc: int, minimum: int, what: str, source: str) -> str:
    """The rule text of a metric Inconclusive for want of traffic.

    >>> _minimum_rule(5000, 449, 500, "requests with a latency", "min_requests")
    'Inconclusive: canary 449 requests with a latency < min_requests 500'
    """
    low = [f"{side} {n:,}" for side, n in (("baseline", nb), ("canary", nc)) if n < max(minimum, 1)]
    need = f"{source} {max(minimum, 1):,}" if source.startswith("min_") else f"{max(minimum, 1):,} {source}"
    return f"Inconclusive: {' and '.join(low)} {what} < {need}"


def _too_small(nb: int, nc: int, minimum: int, what: str) -> str | None:
    if nb >= minimum and nc >= minimum and nb > 0 and nc > 0:
        return None
    return f"baseline {nb:,} / canary {nc:,} {what}, fewer than {max(minimum, 1):,} on a side"


def _change(vb: float | None, vc: float | None) -> float | None:
    if vb is None or vc is None:
        return None
    if vb == 0:
        return 0.0 if vc == 0 else None
    return vc / vb - 1.0


def _diff(vb: float | None, vc: float | None) -> float | None:
    return None if vb is None or vc is None else vc - vb


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x

