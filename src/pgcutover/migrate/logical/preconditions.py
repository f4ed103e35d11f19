"""What logical replication needs, checked and explained before anything is written: the
source's wal_level, replication privilege, free slots and WAL senders, tables whose UPDATE and
DELETE could not replicate, what logical replication does not carry, the target's extensions
and workers, and the user's permission for the writes it makes on a named source."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from pgcutover.catalog import user_tables
from pgcutover.config import SOURCE_WRITES, Settings
from pgcutover.db import Endpoint
from pgcutover.errors import MigrationError
from pgcutover.migrate.tools import bounded

#: Per table: replica identity usable, unlogged, owned by the connecting role.
TABLES = """
SELECT format('%%I.%%I', n.nspname, c.relname),
       c.relkind = 'p' OR c.relreplident = 'f'
         OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid
                    AND ((c.relreplident = 'd' AND i.indisprimary)
                         OR (c.relreplident = 'i' AND i.indisreplident))),
       c.relpersistence = 'u',
       pg_has_role(c.relowner, 'USAGE')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY(%s::regclass[])
ORDER BY 1
"""

SOURCE_FACTS = """
SELECT current_setting('wal_level'),
       r.rolsuper, r.rolreplication,
       has_database_privilege(current_database(), 'CREATE'),
       current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
       current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication),
       (SELECT count(*) FROM pg_largeobject_metadata),
       ARRAY(SELECT extname FROM pg_extension ORDER BY 1)
FROM pg_roles r WHERE r.rolname = current_user
"""

TARGET_FACTS = """
SELECT r.rolsuper
         OR (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_create_subscription')
             AND pg_has_role(current_user, 'pg_create_subscription', 'MEMBER')),
       current_setting('max_sync_workers_per_subscription')::int,
       current_setting('max_logical_replication_workers')::int
         - (SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL),
       ARRAY(SELECT name FROM pg_available_extensions)
FROM pg_roles r WHERE r.rolname = current_user
"""


@dataclass(frozen=True)
class Problem:
    """One unmet precondition and what fixes it."""

    what: str
    fix: str


def _source_problems(conn: psycopg.Connection, sync_workers: int) -> list[Problem]:
    row = conn.execute(SOURCE_FACTS).fetchone()
    wal_level, superuser, replication, create, slots, senders, large_objects, _ = row  # type: ignore[misc]
    problems = []
    if wal_level != "logical":
        problems.append(
            Problem(
                f"the source has wal_level = {wal_level}, logical replication needs logical",
                "ALTER SYSTEM SET wal_level = logical and restart the source (managed PostgreSQL: "
                "the provider's logical replication parameter, e.g. rds.logical_replication = 1)",
            )
        )
    if not (superuser or replication):
        problems.append(
            Problem(
                "the source user has no REPLICATION privilege: the subscription cannot stream",
                "ALTER ROLE <user> REPLICATION on the source, or connect as a user that has it",
            )
        )
    if not (superuser or create):
        problems.append(
            Problem(
                "the source user may not create a publication (CREATE on the database)",
                "GRANT CREATE ON DATABASE <db> TO <user> on the source",
            )
        )
    needed = 1 + sync_workers
    for free, what, setting in (
        (slots, "replication slots", "max_replication_slots"),
        (senders, "WAL senders", "max_wal_senders"),
    ):
        if free < needed:
            problems.append(
                Problem(
                    f"the source has {free} free {what}, the copy needs {needed} (one to stream, "
                    f"{sync_workers} for the parallel initial copy)",
                    f"raise {setting} on the source (restart), or drop unused slots",
                )
            )
    if large_objects:
        problems.append(
            Problem(
                f"the source holds {large_objects} large objects, which logical replication "
                "does not carry",
                "migrate with a dump/restore strategy (--strategy=custom), or move the large "
                "objects into bytea columns first",
            )
        )
    return problems


def _table_problems(conn: psycopg.Connection, tables: list[str]) -> list[Problem]:
    rows = conn.execute(TABLES, (tables,)).fetchall()
    unidentified = [name for name, identified, _, _ in rows if not identified]
    unlogged = [name for name, _, is_unlogged, _ in rows if is_unlogged]
    foreign = [name for name, _, _, owned in rows if not owned]
    problems = []
    if unidentified:
        problems.append(
            Problem(
                f"tables without a primary key or replica identity: {', '.join(unidentified)}; "
                "once published, their UPDATE and DELETE fail on the source and cannot "
                "replicate",
                "add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL (a change to the "
                "source that is yours to make), then rerun",
            )
        )
    if unlogged:
        problems.append(
            Problem(
                f"unlogged tables cannot be published: {', '.join(unlogged)}",
                "ALTER TABLE ... SET LOGGED on the source, or use --strategy=custom",
            )
        )
    if foreign:
        problems.append(
            Problem(
                f"the source user does not own {', '.join(foreign)}: it cannot publish them",
                "connect as the tables' owner (or a superuser)",
            )
        )
    return problems


def _target_problems(conn: psycopg.Connection, extensions: list[str]) -> tuple[list[Problem], int]:
    """The target's problems, and how many tables it copies in parallel."""
    allowed, sync_workers, free_workers, available = conn.execute(TARGET_FACTS).fetchone()  # type: ignore[misc]
    problems = []
    if not allowed:
        problems.append(
            Problem(
                "the target user may not create a subscription",
                "GRANT pg_create_subscription TO <user> on the target (PostgreSQL 16+), or "
                "connect as a superuser",
            )
        )
    if free_workers < 1:
        problems.append(
            Problem(
                "the target has no free logical replication worker",
                "raise max_logical_replication_workers on the target (restart)",
            )
        )
    missing = sorted(set(extensions) - set(available))
    if missing:
        problems.append(
            Problem(
                f"extensions the source uses are not available on the target: {', '.join(missing)}",
                "install them on the target server before migrating",
            )
        )
    return problems, int(sync_workers)


def _permission(source: Endpoint, settings: Settings) -> list[Problem]:
    """A named source only gets a publication and a slot the user allowed by name."""
    missing = [write for write in SOURCE_WRITES if write not in settings.allow_source_writes]
    if source.ephemeral or not missing:
        return []
    return [
        Problem(
            f"pgcutover did not create the source {source.label}: creating a "
            f"{' and a '.join(missing)} there is not allowed",
            f"add --allow-source-writes={','.join(SOURCE_WRITES)} if that is intended",
        )
    ]


def check(source: Endpoint, target: Endpoint, settings: Settings) -> None:
    """Raise one MigrationError naming every unmet precondition; nothing has been written."""
    timeout = settings.phase_timeout
    with (
        bounded(source, "source", "preflight", timeout) as src,
        bounded(target, "target", "preflight", timeout) as dst,
    ):
        tables = [
            sql.Identifier(schema, table).as_string(src)
            for schema, table in user_tables(src, settings.ignored_schemas)
        ]
        extensions = list(src.execute(SOURCE_FACTS).fetchone()[-1])  # type: ignore[index]
        problems, sync_workers = _target_problems(dst, extensions)
        problems = [
            *_permission(source, settings),
            *_source_problems(src, min(sync_workers, len(tables))),
            *_table_problems(src, tables),
            *problems,
        ]
    if not tables:
        problems.append(Problem("the source has no table to replicate", "check --exclude-schemas"))
    if problems:
        raise MigrationError(
            "the source cannot be replicated logically as it is; nothing was written:\n"
            + "\n".join(f"  - {problem.what}" for problem in problems),
            "; ".join(problem.fix for problem in problems),
        )
