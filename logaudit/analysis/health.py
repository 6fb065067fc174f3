"""Absolute health: is a revision healthy on its own, whatever its baseline did?

A relative comparison cannot see that two revisions are both broken. `assess_health` judges one
revision's health facts (`aggregates.HealthStats`, from `Engine.health`) under the gate's
`health` section (`gate.HealthRule`): four checks, each `fail`, `ok` or `not-applicable`, with
the rule that decided it and its evidence (count, total, share, first and last time, an
example), and the revision's root causes (`aggregates.RootCause`, from `Engine.root_causes`):
the most frequent first error after an instance start, unmasked. `judge` makes a canary that
fails a check NOT READY and names its root cause first (docs/compare.md).

>>> health = assess_health("api-00002-xyz", stats, causes, Gate().health)   # doctest: +SKIP
>>> [c.name for c in health.failed]                                         # doctest: +SKIP
['crash_loop', 'no_successful_request', 'readiness']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from logaudit.analysis.aggregates import HealthEvidence, HealthStats, RootCause
from logaudit.analysis.gate import HEALTH_CHECKS, HealthRule
from logaudit.analysis.window import iso

STATUSES = ("fail", "ok", "not-applicable")
#: Root causes kept per revision (the most frequent first).
MAX_ROOT_CAUSES = 3


@dataclass(frozen=True)
class HealthCheck:
    """One check of a revision: its status, the rule that decided it, and the evidence."""

    name: str
    status: str  # fail | ok | not-applicable
    rule: str
    count: int | None = None
    total: int | None = None
    first: datetime | None = None
    last: datetime | None = None
    example: str | None = None

    @property
    def share(self) -> float | None:
        return self.count / self.total if self.count is not None and self.total else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "rule": self.rule, "count": self.count,
                "total": self.total, "share": self.share, "first": iso(self.first), "last": iso(self.last),
                "example": self.example}


@dataclass(frozen=True)
class Health:
    """The health of one revision: its checks (in `HEALTH_CHECKS` order) and root causes."""

    revision: str
    checks: list[HealthCheck] = field(default_factory=list)
    root_causes: list[RootCause] = field(default_factory=list)
    instance_starts: int = 0

    @property
    def failed(self) -> list[HealthCheck]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def status(self) -> str:
        """`fail` when a check fails, else `ok` (also when no check applied)."""
        return "fail" if self.failed else "ok"

    def check(self, name: str) -> HealthCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "status": self.status, "failed": [c.name for c in self.failed],
                "checks": [c.to_dict() for c in self.checks],
                "root_causes": [{"line": r.line, "starts": r.starts, "of_starts": self.instance_starts,
                                 "first": iso(r.first_seen), "last": iso(r.last_seen), "example": r.example}
                                for r in self.root_causes]}


def assess_health(revision: str, stats: HealthStats | None, causes: Sequence[RootCause], rule: HealthRule) -> Health:
    """The health of `revision` from its facts (None: nothing counted) under `rule` (pure)."""
    s = stats or HealthStats(None, revision, 0, 0, 0, 0, 0, 0)
    ev = s.evidence
    checks = {
        "crash_loop": _share_check("crash_loop", s.failed_starts, s.instance_starts, rule.crash_loop_share,
                                   rule.min_starts, "ended in a boot failure", ev.get("boot_failure")),
        "no_successful_request": _no_success(s, rule, ev.get("failed_request")),
        "startup_failure": _share_check("startup_failure", s.probe_failed_starts, s.instance_starts,
                                        rule.startup_failure_share, rule.min_starts,
                                        "had the startup probe fail", ev.get("startup_probe")),
        "readiness": _readiness(s, rule, ev.get("start")),
    }
    for name in rule.ignore:
        checks[name] = HealthCheck(name, "not-applicable", f"ignored by the gate (health.ignore lists {name})")
    mine = sorted((c for c in causes if c.revision == revision), key=lambda c: (-c.starts, c.line))
    return Health(revision, [checks[n] for n in HEALTH_CHECKS], mine[:MAX_ROOT_CAUSES], s.instance_starts)


def _evidence(check: str, status: str, rule: str, count: int, total: int, ev: HealthEvidence | None) -> HealthCheck:
    if ev is None:
        return HealthCheck(check, status, rule, count, total)
    return HealthCheck(check, status, rule, count, total, ev.first_seen, ev.last_seen, ev.example)


def _share_check(name: str, count: int, starts: int, share: float, min_starts: int, what: str,
                 ev: HealthEvidence | None) -> HealthCheck:
    if starts == 0:
        return HealthCheck(name, "not-applicable", "no instance start in the window", count, starts)
    if starts < min_starts:
        return _evidence(name, "not-applicable", f"{starts} instance starts, fewer than health.min_starts "
                         f"{min_starts}", count, starts, ev)
    failing = count / starts >= share
    rule = (f"{count} of {starts} instance starts {what}: "
            f"{'at least' if failing else 'below'} health.{name}_share {100 * share:g}%")
    return _evidence(name, "fail" if failing else "ok", rule, count, starts, ev)


def _no_success(s: HealthStats, rule: HealthRule, ev: HealthEvidence | None) -> HealthCheck:
    name = "no_successful_request"
    if s.requests < rule.min_requests or s.requests == 0:
        return HealthCheck(name, "not-applicable", f"{s.requests} requests, fewer than health.min_requests "
                           f"{rule.min_requests}", s.successful_requests, s.requests)
    if s.successful_requests == 0:
        return _evidence(name, "fail", f"none of {s.requests} requests succeeded (status 200-399)", 0, s.requests, ev)
    return HealthCheck(name, "ok", f"{s.successful_requests} of {s.requests} requests succeeded (status 200-399)",
                       s.successful_requests, s.requests)


def _readiness(s: HealthStats, rule: HealthRule, ev: HealthEvidence | None) -> HealthCheck:
    name = "readiness"
    if s.instance_starts == 0:
        return HealthCheck(name, "not-applicable", "no instance start in the window", s.ready_starts, 0)
    if s.instance_starts < rule.min_starts:
        return _evidence(name, "not-applicable", f"{s.instance_starts} instance starts, fewer than "
                         f"health.min_starts {rule.min_starts}", s.ready_starts, s.instance_starts, ev)
    if s.ready_starts == 0:  # the evidence: when the starts were (their text says nothing more)
        return HealthCheck(name, "fail", f"none of {s.instance_starts} instance starts became ready (application "
                           "startup complete or a successful request)", 0, s.instance_starts,
                           ev.first_seen if ev else None, ev.last_seen if ev else None)
    return HealthCheck(name, "ok", f"{s.ready_starts} of {s.instance_starts} instance starts became ready",
                       s.ready_starts, s.instance_starts)


# ======================================================================================== reasons
def root_cause_reason(health: Health) -> str | None:
    """`root cause: LINE (N of M instance starts, first .., last ..; e.g. "...")`, None without one."""
    if not health.root_causes:
        return None
    r = health.root_causes[0]
    example = f'; e.g. "{_clip(_first_line(r.example), 100)}"' if r.example else ""
    return (f"root cause: {_clip(r.line, 200)} ({r.starts} of {health.instance_starts} instance starts, first "
            f"{iso(r.first_seen)}, last {iso(r.last_seen)}{example})")


def check_reason(c: HealthCheck) -> str:
    """A failing check with its evidence, e.g. `crash_loop: 15 of 15 instance starts ... (first .., last ..)`."""
    when = f"; first {iso(c.first)}, last {iso(c.last)}" if c.first is not None else ""
    example = f'; e.g. "{_clip(_first_line(c.example), 100)}"' if c.example else ""
    return f"health {c.name}: {c.rule}{when}{example}"


def health_reasons(health: Health, side: str) -> list[str]:
    """The reasons a failing revision gives: its root cause first, then each failing check."""
    if not health.failed:
        return []
    cause = root_cause_reason(health)
    out = [cause] if cause else []
    out += [check_reason(c) for c in health.failed]
    if side == "baseline":
        names = ", ".join(c.name for c in health.failed)
        lead = f"the baseline {health.revision} is itself unhealthy ({names})"
        return [lead + (f"; its {cause}" if cause else "")]
    return out


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line
    return ""


def _clip(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "\u2026"


__all__ = ["MAX_ROOT_CAUSES", "STATUSES", "Health", "HealthCheck", "assess_health", "check_reason",
           "health_reasons", "root_cause_reason"]
