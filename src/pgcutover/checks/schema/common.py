"""What every schema-parity family shares: one catalog snapshot per side, pairing objects by
name, and results that carry the source value, the target value and a remedy."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import IsolationLevel

from pgcutover.checks.base import CheckResult, outcome
from pgcutover.db import DataRole, Endpoint, connect

AREA = "schema"
#: Both sides render catalog text (types, expressions, definitions) under the same search
#: path holding only pg_catalog: every other name comes out schema-qualified, so the output
#: compares across servers and the remedies built from it run under any search_path.
SEARCH_PATH = "pg_catalog"

V = TypeVar("V")
#: An object as a family reads it: field -> value.
Spec = Mapping[str, Any]


@dataclass(frozen=True)
class Side:
    """One database read inside a single read-only repeatable-read transaction, limited to
    the source's schemas (`schemas`), so every family sees one consistent catalog."""

    conn: psycopg.Connection
    schemas: tuple[str, ...]
    version: int
    #: Roles left out of role and grant comparisons: those pgcutover logs in as on either
    #: side and those configured in [inventory] ignore_roles.
    ignored_roles: frozenset[str] = frozenset()

    def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run a catalog query; `%(schemas)s` is always bound to the compared schemas."""
        params = {"schemas": list(self.schemas), **params}
        return self.conn.execute(query, params).fetchall()  # type: ignore[arg-type]


@contextmanager
def snapshot(
    endpoint: Endpoint,
    role: DataRole,
    schemas: Sequence[str],
    ignored_roles: frozenset[str] = frozenset(),
) -> Iterator[Side]:
    """Open a side: read-only, repeatable read, fixed search_path; always closed."""
    conn = connect(endpoint, role=role, autocommit=False)
    try:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        conn.execute("SELECT set_config('search_path', %s, true)", (SEARCH_PATH,))
        version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
        yield Side(conn, tuple(schemas), version, ignored_roles)
    finally:
        conn.rollback()
        conn.close()


def not_extension_member(catalog: str, oid: str) -> str:
    """SQL condition: the object `oid` of `catalog` does not belong to an extension (its
    objects come from CREATE EXTENSION, not from the dump, and change with its version)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = '{catalog}'::regclass"
        f" AND dep.objid = {oid} AND dep.deptype = 'e')"
    )


def normalise(text: str | None) -> str | None:
    """Definition text with runs of white space folded to one space."""
    return None if text is None else " ".join(text.split())


def paired(
    source: Mapping[str, V], target: Mapping[str, V]
) -> Iterator[tuple[str, V | None, V | None]]:
    """Every key of either side, sorted, with the value on each side (None where absent)."""
    for key in sorted(source.keys() | target.keys()):
        yield key, source.get(key), target.get(key)


def differences(source: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Fields whose values differ: field -> [source value, target value]."""
    return {
        key: [source.get(key), target.get(key)]
        for key in source.keys() | target.keys()
        if source.get(key) != target.get(key)
    }


def explain(diffs: Mapping[str, Sequence[Any]]) -> str:
    """`type: vector(384) on the source, vector(768) on the target; ...`"""
    return "; ".join(
        f"{field}: {_show(values[0])} on the source, {_show(values[1])} on the target"
        for field, values in sorted(diffs.items())
    )


def _show(value: Any) -> str:
    if value is None or value == "":
        return "none"
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(str(item) for item in value) + "]" if value else "none"
    return str(value)


def result(
    check_id: str,
    ok: bool,
    message: str,
    *,
    source: Any = None,
    target: Any = None,
    remedy: str = "",
    details: dict[str, Any] | None = None,
) -> CheckResult:
    """A schema result: `expected` is the source's value, `actual` the target's."""
    return outcome(
        check_id,
        AREA,
        ok,
        message,
        remedy=remedy,
        expected=source,
        actual=target,
        details=details or {},
    )


def visible(spec: Spec | None) -> dict[str, Any] | None:
    """The compared fields of an object; keys starting with `_` (SQL names and raw text kept
    for remedies) are left out."""
    return None if spec is None else {k: v for k, v in spec.items() if not k.startswith("_")}


def compared(
    check_id: str,
    name: str,
    source: Spec | None,
    target: Spec | None,
    *,
    what: str,
    remedy: str,
    passed: str,
) -> CheckResult:
    """The usual verdict for one object described by a dict of fields: missing on the
    target, only on the target, different (listing each field), or the same."""
    source, target = visible(source), visible(target)
    if target is None:
        return result(
            check_id, False, f"{what} {name} is missing on the target", source=source, remedy=remedy
        )
    if source is None:
        return result(
            check_id,
            False,
            f"{what} {name} exists only on the target (the source has no such {what})",
            target=target,
            remedy=remedy,
        )
    diffs = differences(source, target)
    if diffs:
        return result(
            check_id,
            False,
            f"{what} {name} differs: {explain(diffs)}",
            source=source,
            target=target,
            remedy=remedy,
            details={"differences": diffs},
        )
    return result(check_id, True, f"{what} {name}: {passed}", source=source, target=target)


def compare_each(
    prefix: str,
    what: str,
    source: Mapping[str, Spec],
    target: Mapping[str, Spec],
    remedy: Callable[[Spec | None, Spec | None], str],
    passed: Callable[[Spec], str],
) -> list[CheckResult]:
    """`compared` for every object of either side, ids `<prefix>.<name>`; `remedy(source,
    target)` and `passed(target)` word the fix and the evidence."""
    return [
        compared(
            f"{prefix}.{name}",
            name,
            src,
            dst,
            what=what,
            remedy=remedy(src, dst),
            passed=passed(dst) if dst is not None else "",
        )
        for name, src, dst in paired(source, target)
    ]


def failures_or(
    results: list[CheckResult], summary: Callable[[], CheckResult]
) -> list[CheckResult]:
    """The failed results of a group (e.g. one table's columns), or, when all pass, the one
    summary result that stands for them (keeps the report short)."""
    failed = [item for item in results if item.status != "pass"]
    return failed or [summary()]
