"""Settings parity: ALTER DATABASE ... SET and ALTER ROLE ... SET, source against target.

A target whose database lowers `hnsw.ef_search`, or whose app role gets another
`statement_timeout`, answers the app differently with no schema difference. A difference in a
setting that changes results or plans (vector search settings, planner costs and `enable_*`,
`work_mem`, `search_path`, the app roles' timeouts) fails with the SQL that fixes it; any other
difference is reported without blocking. Roles pgcutover logs in as and those configured in
[inventory] ignore_roles are left out."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from pgcutover.checks.base import DIFFERS, CheckResult, Pair, finding, guarded, outcome
from pgcutover.config import Settings
from pgcutover.db import connection
from pgcutover.inventory import Setting, inventory_config, read_settings
from pgcutover.migrate.roles import set_clause

AREA = "settings"
#: Settings that change what a query returns or how it is planned and bounded.
SIGNIFICANT = frozenset(
    {
        "hnsw.ef_search",
        "hnsw.iterative_scan",
        "hnsw.max_scan_tuples",
        "hnsw.scan_mem_multiplier",
        "ivfflat.probes",
        "ivfflat.iterative_scan",
        "ivfflat.max_probes",
        "random_page_cost",
        "seq_page_cost",
        "effective_cache_size",
        "effective_io_concurrency",
        "work_mem",
        "hash_mem_multiplier",
        "search_path",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "transaction_timeout",
        "default_text_search_config",
        "row_security",
        "jit",
        "plan_cache_mode",
        "default_statistics_target",
        "from_collapse_limit",
        "join_collapse_limit",
    }
)
SIGNIFICANT_PREFIXES = ("enable_", "cpu_", "parallel_", "max_parallel_")


def significant(name: str) -> bool:
    """True for a setting that changes results, plans or how long a query may run."""
    return name in SIGNIFICANT or name.startswith(SIGNIFICANT_PREFIXES)


def _where(setting: Setting, database: str) -> sql.Composed:
    """The ALTER target a setting belongs to on the target database."""
    if setting.scope == "database":
        return sql.SQL("ALTER DATABASE {}").format(sql.Identifier(database))
    if setting.scope == "role":
        return sql.SQL("ALTER ROLE {}").format(sql.Identifier(setting.role or ""))
    return sql.SQL("ALTER ROLE {} IN DATABASE {}").format(
        sql.Identifier(setting.role or ""), sql.Identifier(database)
    )


def _fix(shown: Setting, source: Setting | None, database: str) -> str:
    """The statement that gives the target the source's value, or takes the target's away
    where the source has none."""
    where = _where(shown, database)
    if source is None:
        name = sql.SQL(".").join(sql.Identifier(p) for p in shown.name.split("."))
        statement = sql.SQL("{} RESET {}").format(where, name)
    else:
        statement = sql.SQL("{} {}").format(where, set_clause(f"{source.name}={source.value}"))
    return statement.as_string() + ";"


def _label(setting: Setting) -> str:
    if setting.scope == "database":
        return f"database setting {setting.name}"
    scope = "" if setting.scope == "role" else " in this database"
    return f"role {setting.role}'s setting {setting.name}{scope}"


def _keyed(settings: Iterable[Setting], ignored: set[str]) -> dict[str, Setting]:
    return {s.key: s for s in settings if s.role is None or s.role not in ignored}


def _compare(pair: Pair, settings: Settings) -> list[CheckResult]:
    inventory = pair.inventory
    config = inventory_config(settings)
    with connection(pair.target, role="target") as conn:
        login = str(conn.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]
        present = {
            row[0]
            for row in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(inventory.roles),)
            ).fetchall()
        }
        database = str(conn.info.dbname)
        target_settings = read_settings(conn, list(present))
    with connection(pair.source, role="source") as conn:
        source_login = str(conn.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]
    ignored = {login, source_login, *config.ignore_roles}
    source = {
        key: value
        for key, value in _keyed(inventory.settings, ignored).items()
        if value.role is None or value.role in present
    }
    target = _keyed(target_settings, ignored)
    results = []
    for key in sorted(source.keys() | target.keys()):
        src, dst = source.get(key), target.get(key)
        shown = source[key] if src is not None else target[key]
        check_id = f"settings.{shown.scope.replace(' ', '_')}.{shown.role or database}.{shown.name}"
        if src is not None and dst is not None and src.value == dst.value:
            results.append(
                outcome(
                    check_id,
                    AREA,
                    True,
                    f"{_label(shown)} = {src.value} on both sides",
                    expected=src.value,
                    actual=dst.value,
                )
            )
            continue
        blocking = significant(shown.name)
        message = (
            f"{_label(shown)} is {src.value if src else 'not set'} on the source and "
            f"{dst.value if dst else 'not set'} on the target"
        )
        if blocking:
            results.append(
                outcome(
                    check_id,
                    AREA,
                    False,
                    f"{message}: it changes the app's results, plans or timeouts",
                    expected=src.value if src else None,
                    actual=dst.value if dst else None,
                    remedy=_fix(shown, src, database),
                )
            )
        else:
            results.append(
                finding(
                    check_id,
                    AREA,
                    f"{message} (not a search, planner or timeout setting)",
                    kind=DIFFERS,
                    expected=src.value if src else None,
                    actual=dst.value if dst else None,
                    remedy=_fix(shown, src, database),
                )
            )
    if not results:
        results.append(
            outcome(
                "settings",
                AREA,
                True,
                "no database- or role-level settings on either side: both run on the servers' "
                "defaults",
            )
        )
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """One result per database- or role-level setting found on either side."""
    return guarded("settings", AREA, lambda: _compare(pair, settings), pair)
