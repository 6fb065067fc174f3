"""The data of a comparison: what was observed of each revision and what was judged."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from logaudit.analysis.gate import Gate
from logaudit.core.errors import ExitCode

if TYPE_CHECKING:
    from logaudit.analysis.health import Health

VERDICTS = ("READY", "MARGINAL", "NOT READY")
#: Exit code of `logaudit compare` per verdict (errors have codes of their own: `errors.ExitCode`).
EXIT_CODES = {"READY": int(ExitCode.OK), "MARGINAL": int(ExitCode.MARGINAL), "NOT READY": int(ExitCode.NOT_READY)}


#: Latency histogram resolution: bins of 1/LATENCY_BINS_PER_E in natural-log space (0.5 % wide).
LATENCY_BINS_PER_E = 200


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
    #: how the baseline was chosen: {"rule": "deploy-audit-traffic" | "first-seen" | "given", "text",
    #: "baseline_cut": whether the window cuts the baseline short, "baseline_cut_text"}
    baseline_choice: dict[str, Any] = field(default_factory=dict)
    #: per side ("baseline", "canary"): its `aggregates.HealthStats` (absent: nothing counted)
    health_stats: dict[str, Any] = field(default_factory=dict)
    #: per side: its `aggregates.RootCause` rows, most frequent first
    root_causes: dict[str, list[Any]] = field(default_factory=dict)


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
    #: the rule that decided the judgement, in words with its numbers (docs/compare.md), e.g.
    #: "Fisher exact p_adj 1.5e-05 < alpha 0.05 and change +325.5% > allowed_change 20%: High"
    rule: str | None = None
    #: why a metric is Inconclusive: "traffic" (a side below min_requests / min_entries or a
    #: tail quantile's minimum) or "events" (a pattern with fewer than min_events matches)
    inconclusive: str | None = None

    @property
    def failed(self) -> bool:
        return self.judgement in ("High", "Low")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("baseline", "canary", "change", "difference", "p_value", "p_adjusted", "effect_size"):
            d[k] = json_num(d[k])
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
    baseline_choice: dict[str, Any] = field(default_factory=dict)  # Observations.baseline_choice
    #: per side ("baseline", "canary"): its absolute `health.Health`
    health: dict[str, Health] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: service, baseline, canary, windows, metrics, new/gone patterns, new templates, verdict,
        health of both sides."""
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
            "baseline_choice": dict(self.baseline_choice),
            "health": {side: h.to_dict() for side, h in self.health.items()},
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
            "baseline_choice": dict(self.baseline_choice),
            "judgements": self.judgements(),
            "health": {side: {"status": h.status, "failed": [c.name for c in h.failed],
                              "root_cause": h.root_causes[0].line if h.root_causes and h.failed else None}
                       for side, h in self.health.items()},
        }

    def judgements(self) -> list[dict[str, Any]]:
        """Every metric's judgement and the rule that decided it: what summaries, the report's
        checklist and exports show (`summarize` JSON `verdict.judgements`)."""
        return [{"name": m.name, "judgement": m.judgement, "critical": m.critical, "rule": m.rule,
                 "baseline": json_num(m.baseline), "canary": json_num(m.canary), "change": json_num(m.change),
                 "unit": m.unit, "kind": m.kind} for m in self.metrics]



#: Aggregates are kept per hour of each file (`bucket`: hours since the epoch), so that a window
#: cutting a file needs the file's rows again only for the hours it cuts.
BUCKET_NS = 3_600_000_000_000


def format_p(p: float | None) -> str:
    """A p-value as shown: two significant digits, `-` when there is none."""
    if p is None:
        return "-"
    return "0" if p == 0 else f"{p:.2g}"


def json_num(x: Any) -> float | None:
    """A finite float, or None (JSON has no NaN or infinity)."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None
