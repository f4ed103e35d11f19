"""Check results: checks return them, suites assert on them, the report shows them."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pgcutover.db import Endpoint
from pgcutover.inventory import Inventory

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
    """The two databases a check compares, and what the source holds (discovered once)."""

    source: Endpoint
    target: Endpoint
    inventory: Inventory

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


#: What PostgreSQL says when row_security = off meets a policy that would filter rows.
RLS_HIDES_ROWS = "would be affected by row-level security policy"
RLS_REMEDY = (
    "verify with a role that sees every row: one with BYPASSRLS (ALTER ROLE <role> BYPASSRLS), "
    "or the tables' owner where the policies are not FORCEd; pg_read_all_data grants SELECT "
    "but does not bypass row-level security"
)

#: Kinds of finding: a result that is advice rather than a verdict on the migration.
#: READINESS: one of the guide's absolute demands (e.g. the app's vector column has an ANN
#: index), blocking only where configured; SHARED: the source lacks it too, so the copy is
#: faithful; DIFFERS: a difference that changes nothing the app sees.
READINESS = "readiness"
SHARED = "both sides"
DIFFERS = "differs"


def finding(
    check_id: str,
    area: str,
    message: str,
    *,
    kind: str,
    blocking: bool = False,
    remedy: str = "",
    details: dict[str, Any] | None = None,
    **evidence: Any,
) -> CheckResult:
    """A finding with its advice: passes unless `blocking`, and is labelled `kind` in
    details["finding"] so the report lists it apart from the verdicts."""
    return CheckResult(
        id=check_id,
        area=area,
        status=FAIL if blocking else PASS,
        message=message,
        remedy=remedy,
        details={**(details or {}), "finding": kind},
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
        message, remedy = f"the check could not run: {text}", getattr(error, "remedy", "")
        if RLS_HIDES_ROWS in str(error):
            message = (
                f"row-level security hides rows from the role pgcutover reads with: {text}; "
                "the rows cannot be judged"
            )
            remedy = RLS_REMEDY
        return [
            CheckResult(
                id=check_id,
                area=area,
                status=UNKNOWN,
                message=message,
                remedy=remedy or "see details; rerun once it is fixed",
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
