"""Compare a canary revision with its baseline from their logs, and say whether it is ready.

Canary judges (Kayenta, Argo Rollouts, Flagger, Cloud Run Release Manager) read metrics:
success rate, latency. None of them can say "this revision logs a critical error the previous
one never did". `compare` judges both, Kayenta-style, from what is in the store:

* **metrics**, each judged ``Pass`` / ``High`` / ``Low`` / ``Inconclusive`` with the numbers
  behind it: request error rate (5xx / requests, Fisher's exact test), entry error rate
  (effective severity >= ERROR per entry, Fisher), latency (Mann-Whitney U on the
  distribution; Mood's quantile test on p50 / p95 / p99), and the rate of every catalog
  pattern (per 1k requests, or per 1k entries where there are no requests; exact Poisson
  test). P-values are adjusted for testing many metrics at once (Holm by default);
* **new patterns** (seen in the canary, never in the baseline), **gone patterns** (fixed) and
  **new unclassified templates** (WARNING+ messages no pattern matches, grouped by template,
  in the canary only);
* a **verdict** -- ``READY`` / ``MARGINAL`` / ``NOT READY`` -- with a score (share of judged
  metrics that Pass) and the reasons, under thresholds from a YAML gate file (`load_gate`,
  docs/gate.example.yaml; every key has a default).

DuckDB aggregates per entry file (counts and a latency histogram per revision, pattern
counts, unclassified templates) and the aggregates are cached per file, so a comparison of 10M
entries reads kilobytes; no row reaches Python. The tests run on the aggregates
(`logaudit.stats`, numpy only). `observe` does the SQL, `judge` the statistics, so the judging
can be exercised on counts alone.

>>> from logaudit.query import Audit
>>> result = compare(Audit("logaudit-store"))          # doctest: +SKIP
>>> result.verdict, result.exit_code                    # doctest: +SKIP
('NOT READY', 2)

See docs/compare.md for the method, the gate keys and the verdict rules.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from logaudit.catalog import describe_catalogs
from logaudit.errors import ExitCode, UsageError
from logaudit.stats import (
    TestResult,
    bonferroni,
    fisher_exact,
    holm,
    mann_whitney_counts,
    new_event_test,
    poisson_rate_test,
    quantile_test,
)

__all__ = [
    "EXIT_CODES",
    "Comparison",
    "Gate",
    "GateError",
    "Metric",
    "MetricRule",
    "NewPatternRule",
    "NewTemplateRule",
    "Observations",
    "Side",
    "compare",
    "default_gate",
    "gate_from_dict",
    "judge",
    "load_gate",
    "observe",
    "render_markdown",
    "render_text",
    "summary_verdict",
]

VERDICTS = ("READY", "MARGINAL", "NOT READY")
#: Exit code of `logaudit compare` per verdict (errors have codes of their own: `errors.ExitCode`).
EXIT_CODES = {"READY": int(ExitCode.OK), "MARGINAL": int(ExitCode.MARGINAL), "NOT READY": int(ExitCode.NOT_READY)}
JUDGEMENTS = ("Pass", "High", "Low", "Inconclusive")
CORE_METRICS = ("request_error_rate", "entry_error_rate", "latency", "latency_p50", "latency_p95", "latency_p99")
PATTERN_CATEGORIES = ("critical", "warning", "positive", "info")
DIRECTIONS = ("increase", "decrease", "either")
#: Latency histogram resolution: bins of 1/LATENCY_BINS_PER_E in natural-log space (0.5 % wide).
LATENCY_BINS_PER_E = 200
_QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
_SEVERITY = {"DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400, "ERROR": 500,
             "CRITICAL": 600, "ALERT": 700, "EMERGENCY": 800}
_SEVERITY_NAME = {v: k for k, v in _SEVERITY.items()}


# ============================================================================================ gate
class GateError(UsageError):
    """A gate file that does not load or holds a bad value (message starts with file:line)."""


@dataclass(frozen=True)
class MetricRule:
    """How one metric is judged.

    A metric deviates when its adjusted p-value is below the gate's alpha AND the relative
    change exceeds `allowed_change` (a zero baseline counts as an infinite change) AND the
    absolute difference is at least `min_abs_change` AND |effect size| >= `min_effect_size`.
    A deviation in the `direction` that matters is High (increase) or Low (decrease); one
    the other way is reported as Pass with a note.
    """

    judge: bool = True
    critical: bool = False
    direction: str = "increase"
    allowed_change: float = 0.2
    min_abs_change: float = 0.0
    min_effect_size: float = 0.0


@dataclass(frozen=True)
class NewPatternRule:
    """What a pattern seen only in the canary does to the verdict, by category.

    "Only in the canary" counts when it is unlikely under equal rates: with the canary's share
    s of the exposure (requests, else entries), all k occurrences land in the canary with
    probability s**k, which must be <= `alpha` (a canary with 3 requests next to a busy
    baseline: any occurrence counts; a baseline that saw almost nothing: it does not). These
    tests are not adjusted for multiplicity (each catalog pattern is a hypothesis stated in
    advance), hence a stricter default than the metrics' alpha. New patterns that do not reach
    it are listed, and named in the reasons, without changing the verdict.
    """

    not_ready: tuple[str, ...] = ("critical",)
    marginal: tuple[str, ...] = ("warning",)
    alpha: float = 0.01
    min_count: int = 1


@dataclass(frozen=True)
class NewTemplateRule:
    """What an unclassified template seen only in the canary does (same test as new patterns)."""

    min_severity: str = "WARNING"
    verdict: str = "MARGINAL"  # MARGINAL | NOT READY | ignore
    alpha: float = 0.01
    min_count: int = 1


def _default_metric_rules() -> dict[str, MetricRule]:
    return {
        "request_error_rate": MetricRule(critical=True, allowed_change=0.2, min_abs_change=0.001),
        "entry_error_rate": MetricRule(critical=True, allowed_change=0.2, min_abs_change=0.002),
        "latency": MetricRule(allowed_change=0.1, min_effect_size=0.1),
        "latency_p50": MetricRule(allowed_change=0.2, min_abs_change=5.0),
        "latency_p95": MetricRule(allowed_change=0.2, min_abs_change=20.0),
        "latency_p99": MetricRule(allowed_change=0.2, min_abs_change=50.0),
    }


def _default_pattern_rules() -> dict[str, MetricRule]:
    return {
        "critical": MetricRule(critical=True, allowed_change=0.5),
        "warning": MetricRule(allowed_change=0.5),
        "positive": MetricRule(direction="decrease", allowed_change=0.5),
        "info": MetricRule(judge=False, allowed_change=0.5),
    }


@dataclass(frozen=True)
class Gate:
    """Thresholds of the verdict (see docs/compare.md and docs/gate.example.yaml)."""

    alpha: float = 0.05
    correction: str = "holm"  # holm | bonferroni | none
    min_requests: int = 100
    min_entries: int = 200
    marginal_below: float = 95.0
    not_ready_below: float = 75.0
    inconclusive: str = "MARGINAL"  # verdict floor when a critical metric is Inconclusive: MARGINAL | READY
    metrics: Mapping[str, MetricRule] = field(default_factory=_default_metric_rules)
    patterns: Mapping[str, MetricRule] = field(default_factory=_default_pattern_rules)
    pattern_ids: Mapping[str, MetricRule] = field(default_factory=dict)
    new_patterns: NewPatternRule = field(default_factory=NewPatternRule)
    new_templates: NewTemplateRule = field(default_factory=NewTemplateRule)
    source: str | None = None

    def pattern_rule(self, pattern_id: str, category: str) -> MetricRule:
        rule = self.pattern_ids.get(pattern_id)
        if rule is not None:
            return rule
        return self.patterns.get(category) or MetricRule(judge=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "alpha": self.alpha,
            "correction": self.correction,
            "min_requests": self.min_requests,
            "min_entries": self.min_entries,
            "score": {"marginal_below": self.marginal_below, "not_ready_below": self.not_ready_below},
            "inconclusive": self.inconclusive,
            "metrics": {k: asdict(v) for k, v in self.metrics.items()},
            "patterns": {**{k: asdict(v) for k, v in self.patterns.items()},
                         "by_id": {k: asdict(v) for k, v in self.pattern_ids.items()}},
            "new_patterns": {**asdict(self.new_patterns), "not_ready": list(self.new_patterns.not_ready),
                             "marginal": list(self.new_patterns.marginal)},
            "new_templates": asdict(self.new_templates),
        }


def default_gate() -> Gate:
    """The gate of $LOGAUDIT_GATE when set, else the built-in defaults."""
    env = os.environ.get("LOGAUDIT_GATE")
    return load_gate(env) if env else Gate()


class _Checker:
    """Validates one gate document; errors name file:line and the key path."""

    def __init__(self, source: str | None, lines: dict[tuple[str, ...], int] | None) -> None:
        self.source = source
        self.lines = lines or {}

    def fail(self, path: tuple[str, ...], message: str, hint: str | None = None) -> GateError:
        where = self.source or "gate"
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                where = f"{where}:{self.lines[path[:n]]}"
                break
        key = ".".join(path)
        return GateError(f"{where}: {key + ': ' if key else ''}{message}", hint=hint)

    def mapping(self, value: Any, path: tuple[str, ...], allowed: tuple[str, ...] | None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, not {type(value).__name__}")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(path, f"keys must be text, not {k!r}")
            if allowed is not None and k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"
                raise self.fail((*path, k), "unknown key", hint=hint)
        return value

    def number(self, value: Any, path: tuple[str, ...], lo: float | None = None, hi: float | None = None,
               *, integer: bool = False, open_lo: bool = False, open_hi: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            raise self.fail(path, f"expected {'an integer' if integer else 'a number'}, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(path, f"expected a finite number, not {value!r}")
        if lo is not None and (value < lo or (open_lo and value == lo)):
            raise self.fail(path, f"must be {'>' if open_lo else '>='} {lo:g}, not {value!r}")
        if hi is not None and (value > hi or (open_hi and value == hi)):
            raise self.fail(path, f"must be {'<' if open_hi else '<='} {hi:g}, not {value!r}")
        return value

    def boolean(self, value: Any, path: tuple[str, ...]) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, not {value!r}")
        return value

    def choice(self, value: Any, path: tuple[str, ...], choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            raise self.fail(path, f"expected one of {', '.join(choices)}, not {value!r}")
        return value

    def rule(self, value: Any, path: tuple[str, ...], base: MetricRule) -> MetricRule:
        data = self.mapping(value, path, tuple(f.name for f in fields(MetricRule)))
        changes: dict[str, Any] = {}
        for k, v in data.items():
            p = (*path, k)
            if k in ("judge", "critical"):
                changes[k] = self.boolean(v, p)
            elif k == "direction":
                changes[k] = self.choice(v, p, DIRECTIONS)
            else:
                changes[k] = float(self.number(v, p, 0.0))
        return replace(base, **changes)

    def categories(self, value: Any, path: tuple[str, ...]) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list of categories, not {value!r}")
        for v in value:
            self.choice(v, path, PATTERN_CATEGORIES)
        return tuple(value)


_TOP_KEYS = ("alpha", "correction", "min_requests", "min_entries", "score", "inconclusive", "metrics", "patterns",
             "new_patterns", "new_templates")


def gate_from_dict(data: Mapping[str, Any] | None, *, source: str | None = None,
                   lines: dict[tuple[str, ...], int] | None = None) -> Gate:
    """A `Gate` from a parsed gate document (keys as in docs/gate.example.yaml); defaults fill the rest."""
    c = _Checker(source, lines)
    top = c.mapping(data, (), _TOP_KEYS)
    base = Gate()
    kw: dict[str, Any] = {"source": source}
    if "alpha" in top:
        kw["alpha"] = float(c.number(top["alpha"], ("alpha",), 0.0, 1.0, open_lo=True, open_hi=True))
    if "correction" in top:
        kw["correction"] = c.choice(top["correction"], ("correction",), ("holm", "bonferroni", "none"))
    for key in ("min_requests", "min_entries"):
        if key in top:
            kw[key] = int(c.number(top[key], (key,), 0, integer=True))
    if "inconclusive" in top:
        kw["inconclusive"] = c.choice(top["inconclusive"], ("inconclusive",), ("MARGINAL", "READY"))
    score = c.mapping(top.get("score"), ("score",), ("marginal_below", "not_ready_below"))
    for key in ("marginal_below", "not_ready_below"):
        if key in score:
            kw[key] = float(c.number(score[key], ("score", key), 0.0, 100.0))
    if kw.get("not_ready_below", base.not_ready_below) > kw.get("marginal_below", base.marginal_below):
        raise c.fail(("score", "not_ready_below"), "must not be above score.marginal_below")
    metrics = dict(base.metrics)
    for name, value in c.mapping(top.get("metrics"), ("metrics",), CORE_METRICS).items():
        metrics[name] = c.rule(value, ("metrics", name), metrics[name])
    kw["metrics"] = metrics
    pats = c.mapping(top.get("patterns"), ("patterns",), (*PATTERN_CATEGORIES, "by_id"))
    prules = dict(base.patterns)
    by_id: dict[str, MetricRule] = {}
    for name, value in pats.items():
        if name == "by_id":
            for pid, rule in c.mapping(value, ("patterns", "by_id"), None).items():
                by_id[pid] = c.rule(rule, ("patterns", "by_id", pid), MetricRule())
        else:
            prules[name] = c.rule(value, ("patterns", name), prules[name])
    kw["patterns"], kw["pattern_ids"] = prules, by_id
    newp = c.mapping(top.get("new_patterns"), ("new_patterns",), tuple(f.name for f in fields(NewPatternRule)))
    np_kw: dict[str, Any] = {}
    for key in ("not_ready", "marginal"):
        if key in newp:
            np_kw[key] = c.categories(newp[key], ("new_patterns", key))
    if "alpha" in newp:
        np_kw["alpha"] = float(c.number(newp["alpha"], ("new_patterns", "alpha"), 0.0, 1.0, open_lo=True))
    if "min_count" in newp:
        np_kw["min_count"] = int(c.number(newp["min_count"], ("new_patterns", "min_count"), 1, integer=True))
    kw["new_patterns"] = replace(base.new_patterns, **np_kw)
    newt = c.mapping(top.get("new_templates"), ("new_templates",), tuple(f.name for f in fields(NewTemplateRule)))
    nt_kw: dict[str, Any] = {}
    if "min_severity" in newt:
        sev = newt["min_severity"]
        nt_kw["min_severity"] = c.choice(sev.upper() if isinstance(sev, str) else sev, ("new_templates", "min_severity"),
                                         tuple(_SEVERITY))
    if "verdict" in newt:
        nt_kw["verdict"] = c.choice(newt["verdict"], ("new_templates", "verdict"), ("MARGINAL", "NOT READY", "ignore"))
    if "alpha" in newt:
        nt_kw["alpha"] = float(c.number(newt["alpha"], ("new_templates", "alpha"), 0.0, 1.0, open_lo=True))
    if "min_count" in newt:
        nt_kw["min_count"] = int(c.number(newt["min_count"], ("new_templates", "min_count"), 1, integer=True))
    kw["new_templates"] = replace(base.new_templates, **nt_kw)
    return Gate(**kw)


def _key_lines(node: Any, path: tuple[str, ...] = (), out: dict[tuple[str, ...], int] | None = None
               ) -> dict[tuple[str, ...], int]:
    """{key path: 1-based line} for every mapping key of a composed YAML node tree."""
    import yaml

    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                p = (*path, str(k.value))
                out[p] = k.start_mark.line + 1
                _key_lines(v, p, out)
    return out


def load_gate(path: str | os.PathLike) -> Gate:
    """Read and validate a gate YAML file; `GateError` (a `UsageError`) names file:line on any problem."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GateError(f"{p}: no such gate file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GateError(f"{p}: cannot read gate file: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        problem = getattr(exc, "problem", None) or str(exc)
        raise GateError(f"{where}: not valid YAML: {problem}") from None
    if data is not None and not isinstance(data, dict):
        raise GateError(f"{p}:1: a gate file is a mapping of keys (alpha, metrics, ...), not {type(data).__name__}")
    return gate_from_dict(data, source=str(p), lines=_key_lines(node))


# ==================================================================================== observations
@dataclass
class Side:
    """What one revision's logs add up to in the window (aggregated in DuckDB)."""

    revision: str
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    deploy_time: datetime | None = None
    entries: int = 0
    errors: int = 0
    requests: int = 0
    status_5xx: int = 0
    latency_n: int = 0
    latency_mean: float | None = None
    latency_quantiles: dict[str, float | None] = field(default_factory=dict)
    #: latency histogram: {bin: count}, bin = round(ln(ms) * LATENCY_BINS_PER_E)
    latency_hist: dict[int, int] = field(default_factory=dict)


@dataclass
class PatternCounts:
    id: str
    category: str
    title: str
    baseline: int
    canary: int


@dataclass
class TemplateCounts:
    template: str
    baseline: int
    canary: int
    max_severity: int
    example: str | None = None


@dataclass
class Observations:
    """Everything `judge` needs: per-side aggregates, pattern counts, template counts."""

    service: str
    baseline: Side
    canary: Side
    patterns: list[PatternCounts] = field(default_factory=list)
    templates: list[TemplateCounts] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None


# ========================================================================================== result
@dataclass
class Metric:
    """One judged metric with the numbers behind the judgement."""

    name: str
    kind: str  # proportion | distribution | quantile | rate
    unit: str
    baseline: float | None
    canary: float | None
    change: float | None  # relative: canary / baseline - 1 (None when the baseline is 0 and the canary not)
    difference: float | None  # canary - baseline
    test: str | None
    p_value: float | None
    p_adjusted: float | None
    effect_size: float | None
    effect_measure: str | None
    judgement: str
    critical: bool
    direction: str
    counts: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    title: str | None = None

    @property
    def failed(self) -> bool:
        return self.judgement in ("High", "Low")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("baseline", "canary", "change", "difference", "p_value", "p_adjusted", "effect_size"):
            d[k] = _json_num(d[k])
        return d


@dataclass
class Comparison:
    """The result of `compare`: metrics, what is new or gone, and the verdict."""

    service: str
    baseline: str
    canary: str
    windows: dict[str, dict[str, Any]]
    metrics: list[Metric]
    new_patterns: list[dict[str, Any]]
    gone_patterns: list[dict[str, Any]]
    new_templates: list[dict[str, Any]]
    verdict: str
    score: float
    reasons: list[str]
    gate: Gate = field(default_factory=Gate)
    catalogs: list[dict[str, Any]] = field(default_factory=list)  # Catalog.describe() of the audit

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: service, baseline, canary, windows, metrics, new/gone patterns, new templates, verdict."""
        return {
            "service": self.service,
            "baseline": self.baseline,
            "canary": self.canary,
            "windows": self.windows,
            "verdict": self.verdict,
            "score": round(self.score, 2),
            "exit_code": self.exit_code,
            "reasons": list(self.reasons),
            "metrics": [m.to_dict() for m in self.metrics],
            "new_patterns": self.new_patterns,
            "gone_patterns": self.gone_patterns,
            "new_templates": self.new_templates,
            "gate": self.gate.to_dict(),
            "catalogs": self.catalogs,
        }

    def verdict_dict(self) -> dict[str, Any]:
        """The short form shown in `summarize` (JSON key `verdict`)."""
        judged = [m for m in self.metrics if m.judgement != "Inconclusive"]
        return {
            "verdict": self.verdict, "score": round(self.score, 2), "exit_code": self.exit_code,
            "service": self.service, "baseline": self.baseline, "canary": self.canary,
            "reasons": list(self.reasons),
            "metrics": {"judged": len(judged), "pass": sum(m.judgement == "Pass" for m in judged),
                        "high": sum(m.judgement == "High" for m in judged),
                        "low": sum(m.judgement == "Low" for m in judged),
                        "inconclusive": len(self.metrics) - len(judged)},
            "new_patterns": [p["id"] for p in self.new_patterns],
            "new_templates": len(self.new_templates),
        }


# ========================================================================================== SQL
#: Bump when what the per-file aggregates hold changes.
AGGREGATE_VERSION = "4"
_BASE_SCHEMA_COLS = ("filename", "kind", "bucket", "service", "revision", "first_ts", "last_ts", "n", "errors",
                     "requests", "status_4xx", "status_5xx", "latency_n", "latency_sum", "bin", "method", "path",
                     "status", "latencies")
_CAT_SCHEMA_COLS = ("filename", "kind", "bucket", "service", "revision", "key", "sev", "n", "first_ts", "example",
                    "example_ts", "example_file", "example_row")
#: Aggregates are kept per hour of each file (`bucket`: hours since the epoch), so that a window
#: cutting a file needs the file's rows again only for the hours it cuts.
BUCKET_NS = 3_600_000_000_000
_BUCKET_SQL = f"epoch_ns(timestamp) // {BUCKET_NS}"


def observe(audit: Any, *, service: str | None = None, baseline: str | None = None, canary: str | None = None,
            since: Any = None, until: Any = None, gate: Gate | None = None,
            aggregates: FileAggregates | None = None) -> Observations:
    """Pick the two revisions and aggregate what `judge` needs.

    Aggregates are computed per entry file in DuckDB (counts, latency histogram, pattern
    counts, unclassified templates) and cached next to the store's classification cache
    (``STORE/cache/compare-vN/``); entry files are immutable, so a later comparison only reads
    the small cached aggregates of the files inside its window and aggregates again the
    files a --since/--until boundary cuts. The result is the same as aggregating the
    window's rows directly (tested).
    """
    from logaudit.query import Window, resolve_window
    from logaudit.templates import merge_templates

    gate = gate or Gate()
    w0 = since if isinstance(since, Window) else resolve_window(since, until)
    window = Window(w0.since, w0.until)
    level = _SEVERITY[gate.new_templates.min_severity]
    own = aggregates is None or aggregates.window != window or aggregates.level != level
    # the connection brings the classification up to date and has the views for the window
    agg = FileAggregates(audit, audit.connection(window), window, level) if own else aggregates
    try:
        revisions = agg.revisions()
        service, base_side, can_side = _pick(revisions, service, baseline, canary)
        agg.fill(service, base_side, can_side)
        patterns = agg.patterns(service, base_side.revision, can_side.revision)
        trows = agg.templates(service, base_side.revision, can_side.revision, level)
    finally:
        if own:
            agg.close()
    mapping = merge_templates({t: nb + nc for t, nb, nc, _, _ in trows})
    merged: dict[str, TemplateCounts] = {}
    for t, nb, nc, sev, example in trows:
        key = mapping.get(t, t)
        cur = merged.get(key)
        if cur is None:
            merged[key] = TemplateCounts(key, nb, nc, sev, example)
        else:
            cur.baseline += nb
            cur.canary += nc
            cur.max_severity = max(cur.max_severity, sev)
            cur.example = cur.example or example
    # templates are made from redacted messages; their examples are redacted here (one pass)
    templates = sorted(merged.values(), key=lambda x: (-x.canary, -x.baseline, x.template))
    examples = audit.redactor.redact_all(tc.example for tc in templates)
    for tc, example in zip(templates, examples, strict=True):
        tc.example = example or None
    return Observations(service, base_side, can_side, patterns, templates, window.since, window.until)


class FileAggregates:
    """Per-entry-file aggregates for `observe` and `Audit.summary`, merged per window.

    Cached under STORE/cache/compare-vN/ (N: the format version). Per file: counts, a latency
    histogram and deploy times per revision, endpoint counts with their latencies, pattern
    counts with first/last match, and unclassified templates. They are loaded into temporary
    tables of the window's connection (`logaudit_cmp_base`, `logaudit_cmp_cat`).
    """

    def __init__(self, audit: Any, con: Any, window: Any, level: int) -> None:
        import pyarrow as pa

        from logaudit.templates import MASKS, MAX_TEMPLATE_CHARS

        self.con = con
        self.window = window
        self.level = level
        self._lat_tables: list[str] = []
        self.root = Path(audit.store.root)
        self.writable = audit.store.writable  # a read-only store: aggregates are computed, not cached
        self.files = audit.classified_files(window, con)
        self.cache = self.root / "cache" / f"compare-v{AGGREGATE_VERSION}"  # a new format never reads an old cache
        pats = con.execute("SELECT pattern_id, fingerprint FROM patterns ORDER BY ALL").fetchall()
        self.fingerprints = [fp for _, fp in pats]
        self.categories = {pid: (cat, title) for pid, cat, title in
                           con.execute("SELECT pattern_id, category, title FROM patterns").fetchall()}
        self.redactor = audit.redactor
        # templates are made from redacted messages: other rules, other templates
        ident = "\n".join([AGGREGATE_VERSION, str(level), str(MAX_TEMPLATE_CHARS), repr(MASKS),
                           *(f"{a}\t{b}" for a, b in pats), *("\t".join(r) for r in self.redactor.rules)])
        self.cat_tag = hashlib.sha256(ident.encode()).hexdigest()[:16]
        self._names: list[str] = []
        self.pa = pa
        base_parts, cat_parts = self._load()
        self._register("logaudit_cmp_base", base_parts, _BASE_SCHEMA_COLS)
        self._register("logaudit_cmp_cat", cat_parts, _CAT_SCHEMA_COLS)
        self._redact_paths()

    def _redact_paths(self) -> None:
        """Request paths can carry emails and tokens: redacted here, so endpoints merge after redaction."""
        if not self.redactor.enabled:
            return
        hit = "kind = 'endpoint' AND regexp_matches(path, $trigger)"
        params = {"trigger": self.redactor.trigger}
        if self.con.execute(f"SELECT count(*) FROM logaudit_cmp_base WHERE {hit}", params).fetchone()[0]:
            self.con.execute(f"UPDATE logaudit_cmp_base SET path = {self.redactor.sql('path')} WHERE {hit}", params)

    # -------------------------------------------------------------------------- cache plumbing
    def _key(self, path: Path) -> str:
        try:
            return path.relative_to(self.root / "entries").as_posix()
        except ValueError:
            return path.resolve().as_posix()

    def _folder(self, key: str) -> Path:
        return self.cache / (key[:-8] if key.endswith(".parquet") else key)

    def _load(self) -> tuple[list[Any], list[Any]]:
        """Cached aggregate files and freshly computed tables (files missing, or cut by the window)
        for the two views; each part is a list of parquet paths or Arrow tables."""
        sizes = {f: f.stat().st_size for f in self.files}
        base_paths = {f: self._folder(self._key(f)) / f"base-{sizes[f]}.parquet" for f in self.files}
        base_cached = [f for f in self.files if _intact(base_paths[f])]
        base_missing = [f for f in self.files if f not in set(base_cached)]
        fresh_base: dict[Path, Any] = {}
        if base_missing:
            fresh = self._compute_base(base_missing)
            for f in base_missing:
                part = _rows_of(fresh, str(f)).drop_columns(["filename"])
                self._write(base_paths[f].parent, base_paths[f].name, "base-", part)
                fresh_base[f] = part
        if self.window.since is None and self.window.until is None:
            whole = list(self.files)
            cut: list[Path] = []
            partial: list[Path] = []
            ranges = {}
        else:
            ranges = self._ranges(base_cached, base_paths, fresh_base)
            whole = [f for f in self.files if self._inside(ranges.get(f))]
            cut = [f for f in self.files if f not in set(whole) and self._overlaps(ranges.get(f))]
            partial = [f for f in cut if self._in_partial_hours(ranges[f])]
        # files a window boundary cuts: their whole hours inside the window from the cache, their
        # rows again only for the hours the boundary cuts
        base_parts: list[Any] = [[str(base_paths[f]) for f in whole if f not in fresh_base]]
        base_parts += [fresh_base[f] for f in whole if f in fresh_base]
        base_parts += self._hours_inside([base_paths[f] for f in cut if f not in fresh_base],
                                         [fresh_base[f] for f in cut if f in fresh_base])
        from logaudit.edges import EdgeSlices

        edge_base, edge_cat = EdgeSlices(self).aggregates(self._spans(), self.files, ranges, partial) \
            if partial else (None, None)
        if edge_base is not None:
            base_parts.append(edge_base)
        cat_paths = {f: self._folder(self._key(f)) / f"cat-{self.cat_tag}-{sizes[f]}.parquet" for f in whole + cut}
        cat_missing = [f for f in whole + cut if not _intact(cat_paths[f])]
        fresh_cat: dict[Path, Any] = {}
        if cat_missing:
            fresh = self._compute_cat(cat_missing)
            for f in cat_missing:
                fresh_cat[f] = _rows_of(fresh, str(f)).drop_columns(["filename"])
                self._write(cat_paths[f].parent, cat_paths[f].name, "cat-", fresh_cat[f])
            self._prune()
        cat_parts: list[Any] = [[str(cat_paths[f]) for f in whole if f not in fresh_cat]]
        cat_parts += [fresh_cat[f] for f in whole if f in fresh_cat]
        cat_parts += self._hours_inside([cat_paths[f] for f in cut if f not in fresh_cat],
                                        [fresh_cat[f] for f in cut if f in fresh_cat])
        if edge_cat is not None:
            cat_parts.append(edge_cat)
        return base_parts, cat_parts

    def _full_hours(self) -> tuple[int | None, int | None]:
        """The buckets wholly inside the window: lo <= bucket < hi (None: unbounded)."""
        w = self.window
        lo = None if w.since is None else -(-_epoch_ns(w.since) // BUCKET_NS)
        hi = None if w.until is None else _epoch_ns(w.until) // BUCKET_NS
        return lo, hi

    def _hours_inside(self, paths: list[Path], tables: list[Any]) -> list[Any]:
        """Parts of cached aggregates (files, or tables just computed) limited to the window's whole hours."""
        import pyarrow.compute as pc

        lo, hi = self._full_hours()
        conds = [c for c in (None if lo is None else f"bucket >= {lo}", None if hi is None else f"bucket < {hi}") if c]
        parts: list[Any] = []
        if paths:
            parts.append(("filtered", [str(p) for p in paths], " AND ".join(conds) or "TRUE"))
        for t in tables:
            keep = [m for m in (None if lo is None else pc.greater_equal(t["bucket"], lo),
                                None if hi is None else pc.less(t["bucket"], hi)) if m is not None]
            parts.append(t.filter(pc.and_(*keep) if len(keep) == 2 else keep[0]) if keep else t)
        return parts

    def _spans(self) -> list[tuple[int, int, int]]:
        """The (hour, start ns, end ns) pieces of the window in the hours it cuts."""
        from logaudit.edges import hour_spans

        w = self.window
        return hour_spans(None if w.since is None else _epoch_ns(w.since),
                          None if w.until is None else _epoch_ns(w.until), BUCKET_NS)

    def _in_partial_hours(self, rng: tuple[Any, Any]) -> bool:
        """Whether a file spanning `rng` has rows in an hour the window cuts (else the cache serves it all)."""
        lo_ts, hi_ts = (_epoch_ns(v) for v in rng)  # whole microseconds (cached) or nanoseconds: both fine
        return any(lo_ts < b and hi_ts >= a for _, a, b in self._spans())

    def _ranges(self, cached: list[Path], paths: dict[Path, Path], fresh: dict[Path, Any]
                ) -> dict[Path, tuple[Any, Any]]:
        """First and last timestamp of each entry file, from its aggregates."""
        out = {f: _time_range(t) for f, t in fresh.items()}
        if cached:
            by_cache = {str(paths[f]): f for f in cached}
            rows = self.con.execute("""
                SELECT filename, min(first_ts), max(last_ts) FROM read_parquet($paths, filename=true)
                WHERE kind = 'rev' GROUP BY filename
            """, {"paths": list(by_cache)}).fetchall()
            for name, lo, hi in rows:
                out[by_cache[name]] = (lo, hi)
        return out

    def _inside(self, rng: tuple[Any, Any] | None) -> bool:
        if rng is None or rng[0] is None:
            return False
        lo, hi = rng
        w = self.window
        return (w.since is None or lo >= w.since) and (w.until is None or hi < w.until)

    def _overlaps(self, rng: tuple[Any, Any] | None) -> bool:
        """Whether a file whose timestamps span `rng` has rows in the window (files are listed by day)."""
        if rng is None or rng[0] is None:
            return False
        lo, hi = rng
        w = self.window
        return (w.until is None or lo < w.until) and (w.since is None or hi >= w.since)

    def _write(self, folder: Path, name: str, prefix: str, table: Any) -> None:
        """Write atomically; other versions of the same kind in the folder go. Never fails the comparison."""
        import uuid

        import pyarrow.parquet as pq

        if not self.writable:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, folder / name)
            for old in folder.glob(f"{prefix}*.parquet"):
                if old.name != name:
                    old.unlink(missing_ok=True)
        except OSError:
            pass

    def _prune(self) -> None:
        """Drop cached aggregates of entry files that no longer exist (compacted away)."""
        import shutil

        if not self.writable:
            return
        try:
            for part in self.cache.glob("date=*"):
                for folder in part.iterdir():
                    if folder.is_dir() and not (self.root / "entries" / part.name / f"{folder.name}.parquet").exists():
                        shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass

    def _register(self, name: str, parts: list[Any], cols: tuple[str, ...]) -> None:
        """A temporary table of cached aggregate files (lists of paths; ("filtered", paths, where))
        and Arrow tables (read once, queried several times)."""
        paths = [p for part in parts if isinstance(part, list) for p in part]
        tables = [t for t in parts if not isinstance(t, list | tuple) and t.num_rows]
        selects = []
        if paths:
            selects.append(f"SELECT * FROM read_parquet({_sql_paths(paths)}, union_by_name=true)")
        for _, fpaths, where in [p for p in parts if isinstance(p, tuple) and p[1]]:
            selects.append(f"SELECT * FROM read_parquet({_sql_paths(fpaths)}, union_by_name=true) WHERE {where}")
        arrow = self.pa.concat_tables(tables, promote_options="permissive") if tables else _empty(self.pa, cols[1:])
        self.con.register(f"{name}_arrow", arrow)
        self._names.append(f"{name}_arrow")
        selects.append(f"SELECT * FROM {name}_arrow")
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS " + " UNION ALL BY NAME ".join(selects))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the connection may be closed already
            self.con.execute("DROP TABLE IF EXISTS logaudit_cmp_base; DROP TABLE IF EXISTS logaudit_cmp_cat")
            for name in self._lat_tables:
                self.con.execute(f"DROP TABLE IF EXISTS {name}")
        self._lat_tables.clear()
        for name in self._names:
            with contextlib.suppress(Exception):
                self.con.unregister(name)
        self._names.clear()

    # -------------------------------------------------------------------------- computing
    def _source(self, files: list[Path], *, rows: bool = False) -> str:
        from logaudit.classify import _sql_list

        extra = ", file_row_number=true" if rows else ""
        return f"read_parquet({_sql_list([str(f) for f in files])}, filename=true, hive_partitioning=false{extra})"

    def register_paths(self, name: str, src: str, where: str = "TRUE") -> None:
        """Register `name`: (raw, path) for the request paths of `src`, normalized so that ids do not
        split endpoints. Only the distinct raw paths go through Python."""
        from logaudit.query import normalize_path

        raw = [r[0] for r in self.con.execute(
            f"SELECT DISTINCT http_path FROM {src} WHERE {where} AND http_status IS NOT NULL").fetchall()]
        self.con.register(name, self.pa.table({
            "raw": self.pa.array(raw, self.pa.string()),
            "path": self.pa.array([normalize_path(p) for p in raw], self.pa.string())}))

    def _compute_base(self, files: list[Path]) -> Any:
        src = self._source(files)
        self.register_paths("logaudit_cmp_paths", src)
        try:
            return self._compute_base_sql(src)
        finally:
            self.con.unregister("logaudit_cmp_paths")

    def _compute_base_sql(self, src: str) -> Any:
        return _arrow(self.con, f"""
            WITH src AS (SELECT * FROM {src})
            SELECT filename, 'rev' AS kind, {_BUCKET_SQL} AS bucket, service, revision,
                   min(timestamp) AS first_ts, max(timestamp) AS last_ts,
                   count(*) AS n, count(*) FILTER (effective_severity_num >= 500) AS errors,
                   count(http_status) AS requests, count(*) FILTER (http_status BETWEEN 400 AND 499) AS status_4xx,
                   count(*) FILTER (http_status >= 500) AS status_5xx,
                   count(http_latency_ms) FILTER (http_status <> 101) AS latency_n,
                   sum(http_latency_ms) FILTER (http_status <> 101) AS latency_sum, NULL::INTEGER AS bin
            FROM src GROUP BY filename, bucket, service, revision
            UNION ALL BY NAME
            SELECT filename, 'deploy' AS kind, {_BUCKET_SQL} AS bucket, service, audit_revision AS revision,
                   min(timestamp) AS first_ts, min(timestamp) AS last_ts, count(*) AS n
            FROM src WHERE audit_revision IS NOT NULL GROUP BY filename, bucket, service, audit_revision
            UNION ALL BY NAME
            SELECT filename, 'hist' AS kind, {_BUCKET_SQL} AS bucket, service, revision,
                   CAST(round(ln(greatest(http_latency_ms, 0.001)) * {LATENCY_BINS_PER_E}) AS INTEGER) AS bin,
                   count(*) AS n
            FROM src WHERE http_status <> 101 AND http_latency_ms IS NOT NULL GROUP BY ALL
            UNION ALL BY NAME
            SELECT s.filename, 'endpoint' AS kind, epoch_ns(s.timestamp) // {BUCKET_NS} AS bucket,
                   s.service, s.revision, s.http_method AS method, p.path,
                   s.http_status AS status, count(*) AS n,
                   list(s.http_latency_ms) FILTER (s.http_status <> 101 AND s.http_latency_ms IS NOT NULL) AS latencies
            FROM src s LEFT JOIN logaudit_cmp_paths p ON p.raw = s.http_path
            WHERE s.http_status IS NOT NULL GROUP BY ALL
        """)

    def _compute_cat(self, files: list[Path]) -> Any:
        from logaudit.classify import _chunk_files, _sql_list
        from logaudit.templates import template_sql

        src = self._source(files, rows=True)
        keys = self.pa.table({"path": [str(f) for f in files], "entry_key": [self._key(f) for f in files]})
        name = "logaudit_cmp_keys"
        # these files' matches only (the `matches` view reads every file of the window)
        chunks = _chunk_files(self.root, files, None, set(self.fingerprints))
        matches = "(SELECT entry_file, entry_row, timestamp, service, revision, pattern_id FROM matches WHERE false)"
        if chunks:
            matches = f"""(SELECT c.entry_file, c.entry_row, c.timestamp, c.service, c.revision, p.pattern_id
                           FROM read_parquet({_sql_list(chunks)}, hive_partitioning=false) c
                           JOIN logaudit_patterns_table p ON c.fingerprint = p.fingerprint)"""
        self.con.register(name, keys)
        try:
            return _arrow(self.con, f"""
                WITH k AS (SELECT * FROM {name}),
                mx AS {matches},
                m AS (SELECT DISTINCT entry_file, entry_row FROM mx WHERE entry_file IN (SELECT entry_key FROM k)),
                e AS (
                    SELECT s.filename, s.file_row_number AS entry_row, s.service, s.revision, s.timestamp, s.message,
                           s.effective_severity_num AS sev, k.entry_key
                    FROM {src} s JOIN k ON k.path = s.filename
                    WHERE s.effective_severity_num >= $level AND s.message IS NOT NULL
                )
                SELECT k.path AS filename, 'pattern' AS kind, epoch_ns(mm.timestamp) // {BUCKET_NS} AS bucket,
                       mm.service, mm.revision, mm.pattern_id AS key,
                       NULL::SMALLINT AS sev, count(*) AS n, min(mm.timestamp) AS first_ts,
                       max(mm.timestamp) AS example_ts, any_value(mm.entry_file) AS example_file,
                       arg_max(mm.entry_row, (mm.timestamp, mm.entry_row))::BIGINT AS example_row
                FROM mx mm JOIN k ON mm.entry_file = k.entry_key
                GROUP BY ALL
                UNION ALL BY NAME
                SELECT u.filename, 'template' AS kind, u.bucket, u.service, u.revision, {template_sql(self.redactor.sql('u.message'))} AS key,
                       u.sev, sum(u.n)::BIGINT AS n, min(u.first_ts) AS first_ts,
                       arg_max(u.message, (u.example_ts, u.message)) AS example, max(u.example_ts) AS example_ts
                FROM (  -- identical messages are templated once
                    SELECT e.filename, epoch_ns(e.timestamp) // {BUCKET_NS} AS bucket, e.service, e.revision, e.sev,
                           e.message, count(*) AS n,
                           min(e.timestamp) AS first_ts, max(e.timestamp) AS example_ts
                    FROM e ANTI JOIN m ON m.entry_file = e.entry_key AND m.entry_row = e.entry_row
                    GROUP BY ALL
                ) u
                GROUP BY u.filename, u.bucket, u.service, u.revision, key, u.sev
            """, {"level": self.level})
        finally:
            self.con.unregister(name)

    # -------------------------------------------------------------------------- merged answers
    def revisions(self) -> list[tuple[str, str, Any, Any, Any]]:
        return self.con.execute("""
            WITH per AS (
                SELECT service, revision, min(first_ts) AS first_seen, max(last_ts) AS last_seen
                FROM logaudit_cmp_base WHERE kind = 'rev' AND revision IS NOT NULL AND service IS NOT NULL
                GROUP BY ALL
            ),
            deploys AS (
                SELECT service, revision, min(first_ts) AS deploy_time
                FROM logaudit_cmp_base WHERE kind = 'deploy' GROUP BY ALL
            )
            SELECT per.service, per.revision, per.first_seen, per.last_seen, d.deploy_time
            FROM per LEFT JOIN deploys d USING (service, revision)
        """).fetchall()

    def fill(self, service: str, *sides: Side) -> None:
        params = {"service": service, "b": sides[0].revision, "c": sides[1].revision}
        by_rev = {s.revision: s for s in sides}
        for rev, n, errors, requests, s5xx, lat_n, lat_sum in self.con.execute("""
            SELECT revision, sum(n), sum(errors), sum(requests), sum(status_5xx), sum(latency_n), sum(latency_sum)
            FROM logaudit_cmp_base
            WHERE kind = 'rev' AND service = $service AND revision IN ($b, $c)
            GROUP BY revision
        """, params).fetchall():
            side = by_rev[rev]
            side.entries, side.errors, side.requests = int(n or 0), int(errors or 0), int(requests or 0)
            side.status_5xx, side.latency_n = int(s5xx or 0), int(lat_n or 0)
            side.latency_mean = float(lat_sum) / side.latency_n if side.latency_n and lat_sum is not None else None
        for rev, bin_, n in self.con.execute("""
            SELECT revision, bin, sum(n) FROM logaudit_cmp_base
            WHERE kind = 'hist' AND service = $service AND revision IN ($b, $c)
            GROUP BY ALL
        """, params).fetchall():
            by_rev[rev].latency_hist[int(bin_)] = int(n)
        self._side_quantiles(service, sides)

    def _side_quantiles(self, service: str, sides: tuple[Side, ...]) -> None:
        """p50 / p95 / p99 latency of each side: quantile_cont over the latencies in the aggregates.
        When the summary already made its per-revision table (`_latencies`) the values come from it:
        the same multiset, the same function, so the summary's verdict and `compare` agree exactly."""
        params = {"service": service, "b": sides[0].revision, "c": sides[1].revision}
        query = """SELECT revision, quantile_cont(v, [0.5, 0.95, 0.99])
                   FROM (SELECT revision, unnest(latencies) AS v FROM logaudit_cmp_base
                         WHERE kind = 'endpoint' AND service = $service AND revision IN ($b, $c))
                   GROUP BY revision"""
        for where, fparams in (self._filters(None, None), self._filters(service, None)):
            name = self._latency_name(where, fparams)
            if name in self._lat_tables:
                query = f"SELECT revision, q FROM {name} WHERE per_revision AND service = $service AND revision IN ($b, $c)"
                break
        found = dict(self.con.execute(query, params).fetchall())
        for side in sides:
            q = found.get(side.revision)
            side.latency_quantiles = {key: (None if q is None else q[i]) for i, key in enumerate(("p50", "p95", "p99"))}

    def patterns(self, service: str, b: str, c: str) -> list[PatternCounts]:
        rows = self.con.execute("""
            SELECT key, sum(n) FILTER (revision = $b), sum(n) FILTER (revision = $c)
            FROM logaudit_cmp_cat
            WHERE kind = 'pattern' AND service = $service AND revision IN ($b, $c)
            GROUP BY key ORDER BY key
        """, {"service": service, "b": b, "c": c}).fetchall()
        out = []
        for pid, nb, nc in rows:
            cat, title = self.categories.get(pid, ("info", pid))
            out.append(PatternCounts(pid, cat, title, int(nb or 0), int(nc or 0)))
        return out

    def templates(self, service: str, b: str, c: str, level: int) -> list[tuple[str, int, int, int, str | None]]:
        rows = self.con.execute("""
            SELECT key, sum(n) FILTER (revision = $b), sum(n) FILTER (revision = $c), max(sev),
                   arg_max(example, (example_ts, example)) FILTER (revision = $c)
            FROM logaudit_cmp_cat
            WHERE kind = 'template' AND service = $service AND revision IN ($b, $c) AND sev >= $level
            GROUP BY key
        """, {"service": service, "b": b, "c": c, "level": level}).fetchall()
        return [(t, int(nb or 0), int(nc or 0), int(sev or 0), ex) for t, nb, nc, sev, ex in rows]


    # -------------------------------------------------------------------------- the summary's answers
    @staticmethod
    def _filters(service: str | None, revision: str | None) -> tuple[str, dict[str, Any]]:
        conds, params = ["TRUE"], {}
        if service is not None:
            conds.append("service = $service")
            params["service"] = service
        if revision is not None:
            conds.append("revision = $revision")
            params["revision"] = revision
        return " AND ".join(conds), params

    def totals(self, service: str | None = None, revision: str | None = None) -> tuple[int, list[str]]:
        """(entries, services) of the window."""
        where, params = self._filters(service, revision)
        n, services = self.con.execute(f"""
            SELECT coalesce(sum(n), 0)::BIGINT, list(DISTINCT service ORDER BY service) FILTER (service IS NOT NULL)
            FROM logaudit_cmp_base WHERE kind = 'rev' AND {where}
        """, params).fetchall()[0]
        return int(n), list(services or [])

    def revision_table(self, service: str | None = None, revision: str | None = None) -> Any:
        """What `Audit.revisions` returns, from the aggregates (same columns, same order)."""
        where, params = self._filters(service, revision)
        return self.con.execute(f"""
            WITH per AS (
                SELECT service, revision, min(first_ts) AS first_seen, max(last_ts) AS last_seen,
                       sum(n)::BIGINT AS entries, sum(errors)::BIGINT AS errors, sum(requests)::BIGINT AS requests,
                       sum(status_4xx)::BIGINT AS status_4xx, sum(status_5xx)::BIGINT AS status_5xx
                FROM logaudit_cmp_base WHERE kind = 'rev' AND revision IS NOT NULL AND {where}
                GROUP BY ALL
            ),
            lat AS (SELECT service, revision, q FROM {self._latencies(where, params)} WHERE per_revision),
            deploys AS (
                SELECT service, revision, min(first_ts) AS deploy_time
                FROM logaudit_cmp_base WHERE kind = 'deploy' GROUP BY ALL
            )
            SELECT per.service, per.revision, per.first_seen, per.last_seen, d.deploy_time,
                   per.entries, per.errors, per.errors / per.entries AS error_rate,
                   per.requests, per.status_4xx, per.status_5xx,
                   CASE WHEN per.requests > 0 THEN per.status_5xx / per.requests END AS request_error_rate,
                   lat.q[1] AS latency_p50_ms, lat.q[2] AS latency_p95_ms, lat.q[3] AS latency_p99_ms,
                   CASE WHEN sum(per.requests) OVER (PARTITION BY per.service) > 0
                        THEN per.requests / sum(per.requests) OVER (PARTITION BY per.service) END AS traffic_share
            FROM per LEFT JOIN deploys d USING (service, revision)
                     LEFT JOIN lat ON lat.service IS NOT DISTINCT FROM per.service AND lat.revision = per.revision
            ORDER BY per.service, per.first_seen, per.revision
        """, params).df()

    def endpoint_table(self, service: str | None = None, revision: str | None = None) -> Any:
        """What `Audit.endpoints` returns, from the aggregates."""
        where, params = self._filters(service, revision)
        lat = self._latencies(where, params)
        return self.con.execute(f"""
            WITH c AS (
                SELECT service, method, path, status, sum(n)::BIGINT AS count,
                       sum(n) / sum(sum(n)) OVER (PARTITION BY service) AS share
                FROM logaudit_cmp_base WHERE kind = 'endpoint' AND {where}
                GROUP BY 1, 2, 3, 4
            )
            SELECT c.service, c.method, c.path, c.status, c.count, c.share, l.q[2] AS latency_p95_ms
            FROM c LEFT JOIN (SELECT * FROM {lat} WHERE NOT per_revision) l
              ON l.service IS NOT DISTINCT FROM c.service AND l.method IS NOT DISTINCT FROM c.method
             AND l.path IS NOT DISTINCT FROM c.path AND l.status = c.status
            ORDER BY c.service, c.count DESC, c.path, c.method, c.status
        """, params).df()

    @staticmethod
    def _latency_name(where: str, params: dict[str, Any]) -> str:
        return "logaudit_cmp_lat_" + hashlib.sha256(repr((where, sorted(params.items()))).encode()).hexdigest()[:8]

    def _latencies(self, where: str, params: dict[str, Any]) -> str:
        """A temporary table of latency percentiles (p50, p95, p99) per revision and per endpoint,
        computed in one pass over the latencies (made once per filter)."""
        name = self._latency_name(where, params)
        if name not in self._lat_tables:
            self.con.execute(f"""
                CREATE OR REPLACE TEMP TABLE {name} AS
                SELECT service, revision, method, path, status, GROUPING(method) = 0 AS per_endpoint,
                       GROUPING(revision) = 0 AS per_revision, quantile_cont(v, [0.5, 0.95, 0.99]) AS q
                FROM (SELECT service, revision, method, path, status, unnest(latencies) AS v FROM logaudit_cmp_base
                      WHERE kind = 'endpoint' AND {where})
                GROUP BY GROUPING SETS ((service, revision), (service, method, path, status))
            """, params)
            self._lat_tables.append(name)
        return name

    def pattern_rows(self, service: str | None = None, revision: str | None = None
                     ) -> list[tuple[str, int, Any, Any, str, int, dict[str, int]]]:
        """Per matched pattern: (id, count, first_seen, last_seen, example entry file, row, {revision: count})."""
        where, params = self._filters(service, revision)
        by_rev: dict[str, dict[str, int]] = {}
        for pid, rev, n in self.con.execute(f"""
            SELECT key, revision, sum(n)::BIGINT FROM logaudit_cmp_cat WHERE kind = 'pattern' AND {where}
            GROUP BY ALL ORDER BY 1, 2
        """, params).fetchall():
            by_rev.setdefault(pid, {})[rev if rev is not None else "(none)"] = int(n)
        df = self.con.execute(f"""
            SELECT key, sum(n)::BIGINT AS n, min(first_ts) AS lo, max(example_ts) AS hi,
                   arg_max(example_file, (example_ts, example_file, example_row)) AS f,
                   arg_max(example_row, (example_ts, example_file, example_row)) AS r
            FROM logaudit_cmp_cat WHERE kind = 'pattern' AND {where} GROUP BY key
        """, params).df()  # pandas keeps the timestamps' nanoseconds
        return [(t.key, int(t.n), t.lo, t.hi, t.f, int(t.r), by_rev.get(t.key, {})) for t in df.itertuples()]

    def template_table(self, service: str | None = None, revision: str | None = None,
                       limit: int | None = 50) -> Any:
        """What `Audit.unclassified` returns (before redaction), from the aggregates."""
        where, params = self._filters(service, revision)
        return self.con.execute(f"""
            SELECT key AS template, sum(n)::BIGINT AS count, min(first_ts) AS first_seen, max(example_ts) AS last_seen,
                   list_sort(list_distinct(list(revision) FILTER (revision IS NOT NULL))) AS revisions,
                   max(sev) AS max_severity_num, arg_max(example, (example_ts, example)) AS example
            FROM logaudit_cmp_cat WHERE kind = 'template' AND sev >= $level AND {where}
            GROUP BY key
            ORDER BY count DESC, template
            {"LIMIT " + str(int(limit)) if limit else ""}
        """, params | {"level": self.level}).df()


def _epoch_ns(value: datetime) -> int:
    """Nanoseconds since the epoch, exactly (no float)."""
    from datetime import UTC

    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def _arrow(con: Any, query: str, params: dict[str, Any] | None = None) -> Any:
    """A query's result as a pyarrow Table (DuckDB 2.x and 1.x)."""
    rel = con.sql(query, params=params)
    if hasattr(rel, "to_arrow_table"):
        return rel.to_arrow_table()
    return rel.arrow()  # pragma: no cover - DuckDB 1.x


def _intact(path: Path) -> bool:
    """A cached aggregate file that can be used: present and a whole Parquet file (a damaged
    one is computed again and replaced)."""
    from logaudit.store import parquet_framing_problem

    return parquet_framing_problem(path) is None


def _sql_paths(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _rows_of(table: Any, filename: str) -> Any:
    import pyarrow.compute as pc

    return table.filter(pc.equal(table["filename"], filename))


def _time_range(table: Any) -> tuple[Any, Any]:
    import pyarrow.compute as pc

    if table is None or table.num_rows == 0:
        return (None, None)
    rev = table.filter(pc.equal(table["kind"], "rev"))
    if rev.num_rows == 0:
        return (None, None)
    return (pc.min(rev["first_ts"]).as_py(), pc.max(rev["last_ts"]).as_py())


def _empty(pa: Any, cols: tuple[str, ...]) -> Any:
    types = {"filename": pa.string(), "kind": pa.string(), "bucket": pa.int64(), "service": pa.string(), "revision": pa.string(),
             "first_ts": pa.timestamp("ns", tz="UTC"), "last_ts": pa.timestamp("ns", tz="UTC"), "n": pa.int64(),
             "errors": pa.int64(), "requests": pa.int64(), "status_5xx": pa.int64(), "latency_n": pa.int64(),
             "latency_sum": pa.float64(), "bin": pa.int32(), "key": pa.string(), "sev": pa.int16(),
             "example": pa.string(), "example_ts": pa.timestamp("ns", tz="UTC"), "status_4xx": pa.int64(),
             "method": pa.string(), "path": pa.string(), "status": pa.int32(), "latencies": pa.list_(pa.float64()),
             "example_file": pa.string(), "example_row": pa.int64()}
    return pa.table({c: pa.array([], types[c]) for c in cols})


def _pick(rows: list[tuple[str, str, Any, Any, Any]], service: str | None, baseline: str | None,
          canary: str | None) -> tuple[str, Side, Side]:
    """Choose (service, baseline, canary): by default the service's newest revision and the one before it."""
    by_service: dict[str, list[Side]] = {}
    for svc, rev, first, last, deploy in rows:
        by_service.setdefault(svc, []).append(Side(rev, first, last, deploy))
    for revs in by_service.values():
        revs.sort(key=lambda s: (s.deploy_time or s.first_seen, s.revision))
    if not by_service:
        raise UsageError("no Cloud Run revisions in this window: nothing to compare",
                         hint="widen --since/--until, or ingest / pull logs first")
    if service is None:
        named = [r for r in (canary, baseline) if r]
        if named:
            owners = sorted({s for s, revs in by_service.items() if any(x.revision == named[0] for x in revs)})
            if not owners:
                raise UsageError(f"revision {named[0]!r} has no entries in this window", hint=_revision_hint(by_service))
            if len(owners) > 1:
                raise UsageError(f"revision {named[0]!r} belongs to several services: {', '.join(owners)}",
                                 hint="name one with --service")
            service = owners[0]
        else:
            multi = {s: revs for s, revs in by_service.items() if len(revs) >= 2}
            if not multi:
                raise UsageError("no service has two revisions in this window: nothing to compare",
                                 hint=_revision_hint(by_service))
            service = max(multi, key=lambda s: (_order_key(multi[s][-1]), s))
    revs = by_service.get(service)
    if not revs:
        raise UsageError(f"service {service!r} has no entries in this window",
                         hint=f"services here: {', '.join(sorted(by_service))}")
    names = [s.revision for s in revs]
    for label, rev in (("--canary", canary), ("--baseline", baseline)):
        if rev is not None and rev not in names:
            raise UsageError(f"{label} {rev!r}: no entries of service {service!r} in this window",
                             hint=f"revisions of {service}: {', '.join(names)}")
    if canary is None:
        canary = names[-1]
        if baseline == canary:
            raise UsageError(f"--baseline {baseline!r} is the newest revision; name a --canary too")
    if baseline is None:
        i = names.index(canary)
        if i == 0:
            raise UsageError(f"{canary!r} is the oldest revision of {service!r} in this window: no baseline before it",
                             hint=f"revisions of {service}: {', '.join(names)}; name one with --baseline")
        baseline = names[i - 1]
    if baseline == canary:
        raise UsageError(f"baseline and canary are the same revision {canary!r}")
    pick = {s.revision: s for s in revs}
    return service, pick[baseline], pick[canary]


def _order_key(side: Side) -> Any:
    return side.deploy_time or side.first_seen


def _revision_hint(by_service: dict[str, list[Side]]) -> str:
    return "; ".join(f"{s}: {', '.join(x.revision for x in revs)}" for s, revs in sorted(by_service.items()))


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
                                 "exposure": unit, "p_value": _json_num(t.p_value),
                                 "significant": p.canary >= gate.new_patterns.min_count
                                 and t.p_value <= gate.new_patterns.alpha})
        elif p.canary == 0 and p.baseline > 0:
            t = new_event_test(p.baseline, exp_c, exp_b)
            gone_patterns.append({"id": p.id, "category": p.category, "title": p.title, "baseline": p.baseline,
                                  "exposure": unit, "p_value": _json_num(t.p_value),
                                  "significant": t.p_value <= gate.new_patterns.alpha})
    order = {cat: i for i, cat in enumerate(PATTERN_CATEGORIES)}
    new_patterns.sort(key=lambda x: (order.get(x["category"], 9), -x["canary"], x["id"]))
    gone_patterns.sort(key=lambda x: (order.get(x["category"], 9), -x["baseline"], x["id"]))

    new_templates = []
    for tc in obs.templates:
        if tc.baseline == 0 and tc.canary > 0:
            t = new_event_test(tc.canary, exp_b, exp_c)
            new_templates.append({
                "template": tc.template, "canary": tc.canary, "severity": _SEVERITY_NAME.get(tc.max_severity,
                                                                                              str(tc.max_severity)),
                "example": tc.example, "exposure": unit, "p_value": _json_num(t.p_value),
                "significant": tc.canary >= gate.new_templates.min_count and t.p_value <= gate.new_templates.alpha,
            })

    verdict, score, reasons = _verdict(metrics, new_patterns, new_templates, gate)
    windows = {
        name: {"since": _iso(s.first_seen), "until": _iso(s.last_seen), "deploy_time": _iso(s.deploy_time),
               "entries": s.entries, "requests": s.requests}
        for name, s in (("baseline", b), ("canary", c))
    }
    windows["query"] = {"since": _iso(obs.since), "until": _iso(obs.until)}
    return Comparison(obs.service, b.revision, c.revision, windows, metrics, new_patterns, gone_patterns,
                      new_templates, verdict, score, reasons, gate)


def compare(audit: Any, *, service: str | None = None, baseline: str | None = None, canary: str | None = None,
            since: Any = None, until: Any = None, gate: Gate | str | os.PathLike | None = None) -> Comparison:
    """Compare `canary` with `baseline` (default: the service's newest revision and the one before it).

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


def summary_verdict(audit: Any, window: Any, gate: Gate | None = None,
                    aggregates: FileAggregates | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """The `verdict` entry of `Audit.summary` and its `verdict_note`: the comparison for the
    window's service (or the service whose newest revision was deployed last) and revision (as
    canary) and None; or None and why there is none (e.g. only one revision per service).
    `aggregates` already loaded for the window are reused."""
    try:
        gate = gate or default_gate()
        obs = observe(audit, service=window.service, canary=window.revision, since=window.since,
                      until=window.until, gate=gate, aggregates=aggregates)
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
                      None, "Inconclusive", rule.critical, rule.direction, counts, small)
    t = fisher_exact(xb, nb, xc, nc)
    return _metric(name, "proportion", unit, pb, pc, t, rule, counts)


def _latency_metrics(b: Side, c: Side, gate: Gate) -> list[Metric]:
    out: list[Metric] = []
    bins = sorted(set(b.latency_hist) | set(c.latency_hist))
    cb = [b.latency_hist.get(k, 0) for k in bins]
    cc = [c.latency_hist.get(k, 0) for k in bins]
    small = _too_small(b.latency_n, c.latency_n, gate.min_requests, "requests with a latency")
    counts = {"baseline": b.latency_n, "canary": c.latency_n}
    rule = gate.metrics["latency"]
    if rule.judge:
        if small:
            out.append(Metric("latency", "distribution", "ms (mean)", b.latency_mean, c.latency_mean,
                              _change(b.latency_mean, c.latency_mean), _diff(b.latency_mean, c.latency_mean), None,
                              None, None, None, None, "Inconclusive", rule.critical, rule.direction, counts, small))
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
        if small:
            out.append(Metric(name, "quantile", "ms", vb, vc, _change(vb, vc), _diff(vb, vc), None, None, None, None,
                              None, "Inconclusive", rule.critical, rule.direction, counts, small))
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
        if small:
            m = Metric(name, "rate", label, rb, rc, _change(rb, rc), _diff(rb, rc), None, None, None, None, None,
                       "Inconclusive", rule.critical, rule.direction, counts, small)
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
    pvals = [m.p_value if m.p_value is not None else 1.0 for m in tested]
    if gate.correction == "holm":
        adj = holm(pvals)
    elif gate.correction == "bonferroni":
        adj = bonferroni(pvals)
    else:
        adj = list(pvals)
    rules = {**gate.metrics}
    for m, pa in zip(tested, adj, strict=True):
        m.p_adjusted = pa
        if m.name.startswith("pattern:"):
            rule = gate.pattern_rule(m.name.split(":", 1)[1], m.counts.get("category", ""))
        else:
            rule = rules[m.name]
        m.judgement, m.note = _classify(m, rule, gate.alpha)


def _classify(m: Metric, rule: MetricRule, alpha: float) -> tuple[str, str | None]:
    if m.p_adjusted is None or m.p_adjusted >= alpha:
        return "Pass", None
    diff = m.difference or 0.0
    if diff == 0.0:
        return "Pass", None
    small = []
    if abs(diff) < rule.min_abs_change:
        small.append(f"|difference| {abs(diff):.4g} < min_abs_change {rule.min_abs_change:g}")
    if m.change is not None and abs(m.change) <= rule.allowed_change:
        small.append(f"|change| {100 * abs(m.change):.1f}% <= allowed_change {100 * rule.allowed_change:g}%")
    if rule.min_effect_size and (m.effect_size is None or abs(_effect_for_threshold(m)) < rule.min_effect_size):
        small.append(f"effect size below {rule.min_effect_size:g}")
    word = "higher" if diff > 0 else "lower"
    if small:
        return "Pass", f"significantly {word}, but within the gate ({'; '.join(small)})"
    if diff > 0 and rule.direction in ("increase", "either"):
        return "High", None
    if diff < 0 and rule.direction in ("decrease", "either"):
        return "Low", None
    return "Pass", f"significantly {word} (only a{'n increase' if rule.direction == 'increase' else ' decrease'} fails)"


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
                    f"none in the baseline (p={_p(p['p_value'])})")
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
                f"({t['canary']} in the canary, none in the baseline, p={_p(t['p_value'])})")
        (not_ready if ntr.verdict == "NOT READY" else marginal).append(text)
    inconclusive = [m for m in metrics if m.judgement == "Inconclusive"]
    critical_inconclusive = [m for m in inconclusive if m.critical]
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
        ready.append(f"{len(inconclusive)} non-critical metrics Inconclusive")
    return "READY", score, ready + notes


def _inconclusive_group(m: Metric) -> str:
    return "critical pattern rates" if m.name.startswith("pattern:") else m.name


def _metric_reason(m: Metric) -> str:
    label = m.name if not m.name.startswith("pattern:") else f"pattern {m.name[8:]} rate"
    change = "new" if m.change is None else f"{100 * m.change:+.1f}%"
    test = {"fisher_exact": "Fisher exact", "poisson_exact": "exact Poisson", "mann_whitney_u": "Mann-Whitney U",
            "mood_quantile": "Mood quantile"}.get(m.test or "", m.test or "")
    return (f"{label} {m.judgement} ({'critical' if m.critical else 'non-critical'}): "
            f"{_fmt(m, m.canary)} vs {_fmt(m, m.baseline)} in the baseline ({change}, {test} "
            f"adjusted p={_p(m.p_adjusted)})")


def _fmt(m: Metric, v: float | None) -> str:
    if v is None:
        return "-"
    if m.kind == "proportion":
        return f"{100 * v:.2f}%"
    if m.kind == "rate":
        return f"{v:.2f} {m.unit}"
    return f"{v:.1f} ms"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return "0" if p == 0 else f"{p:.2g}"


def _clip(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "\u2026"


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


def _json_num(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def _opt_float(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    from logaudit.query import _iso as iso

    return iso(value)


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


def render_text(result: dict[str, Any], console: Any = None, *, all_metrics: bool = False) -> None:
    """Print a comparison (`Comparison.to_dict()`) for a terminal (`logaudit.display.make_console`:
    log text never read as markup, every figure whole at any width)."""
    from rich.text import Text

    from logaudit.display import Col, make_console, more, one_line, print_table

    con = console or make_console()
    w = result["windows"]
    con.print(Text.assemble(("logaudit compare", "bold"), f"  service {one_line(result['service'])}"))
    for side in ("baseline", "canary"):
        s = w[side]
        con.print(Text(f"  {side:<8} {one_line(result[side])}  {_short(s['since'])} .. {_short(s['until'])}  "
                       f"{s['entries']:,} entries, {s['requests']:,} requests"))
    con.print(Text.assemble("verdict: ", (result["verdict"], _STYLE.get(result["verdict"], "bold")),
                            f"  (score {result['score']:.0f}, exit code {result['exit_code']})"))
    for r in result["reasons"]:
        con.print(Text(f"  - {one_line(r)}"))
    if result.get("catalogs"):
        con.print(Text(f"catalogs: {describe_catalogs(result['catalogs'])}"))
    con.print()
    shown = [m for m in result["metrics"]
             if all_metrics or not m["name"].startswith("pattern:") or m["judgement"] != "Pass"]
    cols = [Col("metric (* critical)"), Col("baseline", right=True), Col("canary", right=True),
            Col("change", right=True), Col("adj. p", right=True), Col("judgement"), Col("unit", style="dim")]
    print_table(con, cols, [[one_line(m["name"]) + (" *" if m["critical"] else ""), _value_text(m, "baseline"),
                             _value_text(m, "canary"), _change_text(m), _p(m["p_adjusted"]),
                             Text(m["judgement"], style=_JSTYLE.get(m["judgement"], "")),
                             "%" if m["kind"] == "proportion" else one_line(m["unit"])] for m in shown])
    hidden = len(result["metrics"]) - len(shown)
    if hidden:
        con.print(Text(more(hidden, "pattern rates Pass", "see --all-metrics or --format json"), style="dim"))
    con.print()
    if result["new_patterns"]:
        con.print(Text("New patterns", style="bold") + Text(" (canary only)"))
        for p in result["new_patterns"]:
            con.print(Text.assemble(f"  {p['category']:<8} {one_line(p['id'])}: {one_line(p['title'])} "
                                    f"({p['canary']:,}, p={_p(p['p_value'])})",
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


def render_markdown(result: dict[str, Any]) -> str:
    """A comparison (`Comparison.to_dict()`) as Markdown (for a pull request or a CI summary); log
    text is escaped (`logaudit.display.md_text`), every item listed."""
    from logaudit.display import md_code, md_text, one_line

    w = result["windows"]
    lines = [f"# Canary comparison: {result['verdict']}", "",
             f"Service {md_code(result['service'], table=False)}: canary {md_code(result['canary'], table=False)} "
             f"vs baseline {md_code(result['baseline'], table=False)}, "
             f"score {result['score']:.0f} (exit code {result['exit_code']}).", "",
             "| side | revision | from | to | entries | requests |", "|---|---|---|---|---:|---:|"]
    for side in ("baseline", "canary"):
        s = w[side]
        lines.append(f"| {side} | {md_code(result[side])} | {_short(s['since'])} | {_short(s['until'])} | "
                     f"{s['entries']:,} | {s['requests']:,} |")
    if result.get("catalogs"):
        lines += ["", f"Catalogs: {md_text(describe_catalogs(result['catalogs']))}"]
    lines += ["", "## Reasons", ""] + [f"- {md_text(r)}" for r in result["reasons"]]
    lines += ["", "## Metrics", "", "| metric | baseline | canary | change | test | adjusted p | effect | judgement |",
              "|---|---:|---:|---:|---|---:|---:|---|"]
    for m in result["metrics"]:
        eff = "-" if m["effect_size"] is None else f"{m['effect_size']:.2f}"
        crit = " (critical)" if m["critical"] else ""
        lines.append(f"| {md_text(m['name'])} | {_value_text(m, 'baseline')} | {_value_text(m, 'canary')} | "
                     f"{_change_text(m)} | {m['test'] or '-'} | {_p(m['p_adjusted'])} | {eff} | "
                     f"**{m['judgement']}**{crit} |")
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


def _short(ts: str | None) -> str:
    return "-" if not ts else ts[:19].replace("T", " ") + "Z"
