"""The catalog self-test: every example and counter-example through the classification engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logaudit.catalog.catalog import Catalog
from logaudit.catalog.engine import REGEX_TIMEOUT, match_texts
from logaudit.core.errors import CatalogError


@dataclass(frozen=True)
class ExampleFailure:
    """An example that does not match (or extract what it says), or a counter-example that matches."""

    pattern_id: str
    file: str
    line: int
    kind: str  # "example" | "counter_example"
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.pattern_id}: {self.kind} {self.text!r}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"pattern_id": self.pattern_id, "file": self.file, "line": self.line, "kind": self.kind,
                "text": self.text, "reason": self.reason}


class CatalogTestError(CatalogError):
    """Examples that fail their pattern (raised by `check_self_test`)."""

    def __init__(self, failures: list[ExampleFailure]) -> None:
        self.failures = list(failures)
        body = "\n".join(str(f) for f in self.failures)
        super().__init__(f"{len(self.failures)} example(s) failed:\n{body}")


# ---------------------------------------------------------------------------------------- self-test
@dataclass
class SelfTestReport:
    """Result of running every example and counter-example."""

    patterns: int = 0
    examples: int = 0
    counter_examples: int = 0
    failures: list[ExampleFailure] = field(default_factory=list)
    without_examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "patterns": self.patterns, "examples": self.examples,
                "counter_examples": self.counter_examples, "failures": [f.to_dict() for f in self.failures],
                "without_examples": self.without_examples}


def run_self_test(catalog: Catalog) -> SelfTestReport:
    """Run every example and counter-example through the classification engine.

    Examples are matched against the pattern's regex on its field (``when`` conditions are
    not part of a text example). The engine's answer is also compared with a plain
    ``regex.search`` so a prefilter bug shows up as a failure, not as a silent miss. A pattern
    not proven linear is searched under the engine's time limit; an example it times out on fails.
    """
    report = SelfTestReport(patterns=len(catalog))
    for pat in catalog:
        if not pat.examples:
            report.without_examples.append(pat.id)
        cases = [(ex, "example") for ex in pat.examples] + [(ex, "counter_example") for ex in pat.counter_examples]
        failed = len(report.failures)
        report.examples += len(pat.examples)
        report.counter_examples += len(pat.counter_examples)
        refs = {}
        for ex, kind in cases:
            try:
                refs[id(ex)] = pat.compiled.search(ex.text, timeout=REGEX_TIMEOUT if pat.time_limited else None)
            except TimeoutError:
                report.failures.append(ExampleFailure(
                    pat.id, pat.file, ex.line, kind, ex.text,
                    f"the regex timed out on it (over {REGEX_TIMEOUT} s): {pat.time_limit_note}"))
        cases = [(ex, kind) for ex, kind in cases if id(ex) in refs]
        results = match_texts(pat, [ex.text for ex, _ in cases]) if cases else []
        for (ex, kind), got in zip(cases, results, strict=True):
            ref = refs[id(ex)]
            fail = None
            if (got is not None) != (ref is not None):
                fail = f"engine and regex disagree (engine {'matched' if got is not None else 'missed'})"
            elif kind == "example" and got is None:
                fail = "does not match"
            elif kind == "counter_example" and got is not None:
                fail = "matches but must not"
            elif kind == "example" and ex.fields is not None:
                wrong = {k: got.get(k) for k, v in ex.fields.items() if got.get(k) != v}
                if wrong:
                    fail = "extracted " + ", ".join(f"{k}={wrong[k]!r} (expected {ex.fields[k]!r})" for k in wrong)
            if fail:
                report.failures.append(ExampleFailure(pat.id, pat.file, ex.line, kind, ex.text, fail))
        report.failures[failed:] = sorted(report.failures[failed:], key=lambda f: f.line)
    return report


def check_self_test(catalog: Catalog) -> SelfTestReport:
    """`run_self_test`, raising `CatalogTestError` when anything fails."""
    report = run_self_test(catalog)
    if report.failures:
        raise CatalogTestError(report.failures)
    return report


__all__ = ["CatalogTestError", "ExampleFailure", "SelfTestReport", "check_self_test", "run_self_test"]
