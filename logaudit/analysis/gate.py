"""Gate files: the thresholds `compare` judges a canary under (docs/gate.example.yaml).

Every key has a default (`default_gate`); `load_gate` reads a YAML file and reports unknown
keys and bad values with their line.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from logaudit.catalog.catalog import CATEGORIES
from logaudit.core.errors import UsageError
from logaudit.sources.severity import SEVERITY_NUM

JUDGEMENTS = ("Pass", "High", "Low", "Inconclusive")
CORE_METRICS = ("request_error_rate", "entry_error_rate", "latency", "latency_p50", "latency_p95", "latency_p99")
DIRECTIONS = ("increase", "decrease", "either")


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


#: The absolute health checks of a revision (`logaudit.analysis.health`), in report order.
HEALTH_CHECKS = ("crash_loop", "no_successful_request", "startup_failure", "readiness")


@dataclass(frozen=True)
class HealthRule:
    """The health floor a canary must clear on its own, whatever its baseline (docs/compare.md).

    `crash_loop`: at least `min_starts` instance starts and a share >= `crash_loop_share` of them
    ended in a boot failure. `no_successful_request`: at least `min_requests` requests and none
    succeeded (2xx/3xx). `startup_failure`: a share >= `startup_failure_share` of at least
    `min_starts` starts had the platform's startup probe fail. `readiness`: at least `min_starts`
    starts and none became ready (application startup complete, or a successful request).
    Checks named in `ignore` are reported as not applicable.
    """

    crash_loop_share: float = 0.5
    startup_failure_share: float = 0.5
    min_starts: int = 3
    min_requests: int = 1
    ignore: tuple[str, ...] = ()


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
    #: a latency quantile q is judged only with at least min_tail / (1 - q) requests on each side
    #: (and min_requests): p99 needs 500, p95 100 with the defaults
    min_tail: int = 5
    #: a pattern rate is judged only when the pattern matched at least this many entries in the
    #: two revisions together; fewer is Inconclusive (a new pattern is still judged as new)
    min_events: int = 5
    marginal_below: float = 95.0
    not_ready_below: float = 75.0
    inconclusive: str = "MARGINAL"  # verdict floor when a critical metric is Inconclusive: MARGINAL | READY
    metrics: Mapping[str, MetricRule] = field(default_factory=_default_metric_rules)
    patterns: Mapping[str, MetricRule] = field(default_factory=_default_pattern_rules)
    pattern_ids: Mapping[str, MetricRule] = field(default_factory=dict)
    new_patterns: NewPatternRule = field(default_factory=NewPatternRule)
    new_templates: NewTemplateRule = field(default_factory=NewTemplateRule)
    health: HealthRule = field(default_factory=HealthRule)
    source: str | None = None

    def quantile_minimum(self, q: float) -> int:
        """Requests each side needs before latency quantile `q` is judged.

        >>> Gate().quantile_minimum(0.99), Gate().quantile_minimum(0.95), Gate().quantile_minimum(0.5)
        (500, 100, 100)
        """
        return max(self.min_requests, math.ceil(round(self.min_tail / (1.0 - q), 9)))

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
            "min_tail": self.min_tail,
            "min_events": self.min_events,
            "score": {"marginal_below": self.marginal_below, "not_ready_below": self.not_ready_below},
            "inconclusive": self.inconclusive,
            "metrics": {k: asdict(v) for k, v in self.metrics.items()},
            "patterns": {**{k: asdict(v) for k, v in self.patterns.items()},
                         "by_id": {k: asdict(v) for k, v in self.pattern_ids.items()}},
            "new_patterns": {**asdict(self.new_patterns), "not_ready": list(self.new_patterns.not_ready),
                             "marginal": list(self.new_patterns.marginal)},
            "new_templates": asdict(self.new_templates),
            "health": {**asdict(self.health), "ignore": list(self.health.ignore)},
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
            self.choice(v, path, CATEGORIES)
        return tuple(value)


_TOP_KEYS = ("alpha", "correction", "min_requests", "min_entries", "min_tail", "min_events", "score", "inconclusive",
             "metrics", "patterns",
             "new_patterns", "new_templates", "health")


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
    for key in ("min_requests", "min_entries", "min_tail", "min_events"):
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
    pats = c.mapping(top.get("patterns"), ("patterns",), (*CATEGORIES, "by_id"))
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
                                         tuple(SEVERITY_NUM))
    if "verdict" in newt:
        nt_kw["verdict"] = c.choice(newt["verdict"], ("new_templates", "verdict"), ("MARGINAL", "NOT READY", "ignore"))
    if "alpha" in newt:
        nt_kw["alpha"] = float(c.number(newt["alpha"], ("new_templates", "alpha"), 0.0, 1.0, open_lo=True))
    if "min_count" in newt:
        nt_kw["min_count"] = int(c.number(newt["min_count"], ("new_templates", "min_count"), 1, integer=True))
    kw["new_templates"] = replace(base.new_templates, **nt_kw)
    kw["health"] = _health_rule(c, top.get("health"), base.health)
    return Gate(**kw)


def _health_rule(c: _Checker, value: Any, base: HealthRule) -> HealthRule:
    data = c.mapping(value, ("health",), tuple(f.name for f in fields(HealthRule)))
    kw: dict[str, Any] = {}
    for key in ("crash_loop_share", "startup_failure_share"):
        if key in data:
            kw[key] = float(c.number(data[key], ("health", key), 0.0, 1.0, open_lo=True))
    for key in ("min_starts", "min_requests"):
        if key in data:
            kw[key] = int(c.number(data[key], ("health", key), 1, integer=True))
    if "ignore" in data:
        names = data["ignore"]
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list):
            raise c.fail(("health", "ignore"), f"expected a list of checks, not {names!r}")
        kw["ignore"] = tuple(c.choice(n, ("health", "ignore"), HEALTH_CHECKS) for n in names)
    return replace(base, **kw)


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
