"""Check results: checks return them, suites assert on them, the report shows them."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pgcutover.db import Endpoint

Status = Literal["pass", "fail", "unknown", "skip"]
PASS: Status = "pass"
FAIL: Status = "fail"
UNKNOWN: Status = "unknown"
SKIP: Status = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One verdict on one thing, with the evidence a reviewer needs to trust it."""

    id: str
    area: str
    status: Status
    message: str
    expected: Any = None
    actual: Any = None
    threshold: Any = None
    remedy: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The signoff.json shape (DESIGN.md)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        """Inverse of to_json, for results written by other xdist workers."""
        return cls(**data)


@dataclass(frozen=True)
class Pair:
    """The two databases a check compares."""

    source: Endpoint
    target: Endpoint

    def redact(self, text: str) -> str:
        """Remove both passwords from a text."""
        return self.target.redact(self.source.redact(text))


def outcome(
    check_id: str,
    area: str,
    ok: bool,
    message: str,
    *,
    remedy: str = "",
    **evidence: Any,
) -> CheckResult:
    """A pass or fail; the remedy is kept only where it helps, on failure."""
    return CheckResult(
        id=check_id,
        area=area,
        status=PASS if ok else FAIL,
        message=message,
        remedy="" if ok else remedy,
        **evidence,
    )


def guarded(
    check_id: str, area: str, run: Callable[[], Iterable[CheckResult]], pair: Pair
) -> list[CheckResult]:
    """Run a check; a crash becomes one `unknown` result carrying the error, never a pass."""
    try:
        results = list(run())
    except Exception as error:  # a crashing check must report, not vanish
        text = pair.redact(f"{type(error).__name__}: {error}")
        return [
            CheckResult(
                id=check_id,
                area=area,
                status=UNKNOWN,
                message=f"the check could not run: {text}",
                remedy=getattr(error, "remedy", "") or "see details; rerun once it is fixed",
                details={"traceback": pair.redact(traceback.format_exc(limit=6))},
            )
        ]
    if not results:
        return [
            CheckResult(
                id=check_id,
                area=area,
                status=UNKNOWN,
                message="the check found nothing to judge",
                remedy="make sure the migrated schemas hold tables",
            )
        ]
    return results


def failures(results: Iterable[CheckResult]) -> list[CheckResult]:
    """Results that block a GO: failed or unknown."""
    return [result for result in results if result.status in (FAIL, UNKNOWN)]


def describe(results: Iterable[CheckResult]) -> str:
    """A readable list of blocking results, for assertion messages."""
    lines = []
    for result in failures(results):
        lines.append(f"[{result.status}] {result.id}: {result.message}")
        if result.remedy:
            lines.append(f"    fix: {result.remedy}")
    return "\n".join(lines)
