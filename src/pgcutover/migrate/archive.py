"""pg_dump and pg_restore as every strategy runs them: a snapshot held on the source for
pg_dump, the dump's command line, the restore sessions' settings, and the custom-format
archive the guide's backup is."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from pgcutover.config import Settings
from pgcutover.db import Endpoint, connection
from pgcutover.migrate.tools import SESSION_OPTIONS, client_binary, run_pipeline
from pgcutover.providers.embedded import NEWEST_FLAVOR


@contextmanager
def exported_snapshot(source: Endpoint) -> Iterator[str]:
    """A read-only repeatable-read transaction on the source, its snapshot exported for
    pg_dump --snapshot and held until the block ends (other sessions can import it)."""
    with connection(source, role="source", options=SESSION_OPTIONS) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        # Closing the connection ends the transaction: no ROLLBACK, which would wait forever
        # for a stalled link to answer.
        yield str(row[0])  # type: ignore[index]


def restore_env(settings: Settings) -> dict[str, str]:
    """Session settings for the restore: enough memory for the HNSW graph and the parallel
    workers (migrate() resolves them, see migrate/advice.py; the server's own where unset),
    and no statement_timeout (a target-wide one must not cancel an index build)."""
    chosen = {
        "maintenance_work_mem": settings.maintenance_work_mem,
        "max_parallel_maintenance_workers": settings.max_parallel_maintenance_workers,
    }
    options = [f"-c {name}={value}" for name, value in chosen.items() if value is not None]
    return {"PGOPTIONS": " ".join([*options, SESSION_OPTIONS])}


def ownerless(settings: Settings) -> list[str]:
    """A scratch rehearsal restores without owners and grants (the server is not ours)."""
    return ["--no-owner", "--no-privileges"] if settings.scratch else []


def dump_args(
    source: Endpoint, snapshot: str, excluded: tuple[str, ...], flavor: str = NEWEST_FLAVOR
) -> list[str]:
    """pg_dump reading the source at `snapshot`, without the excluded schemas."""
    args = [
        str(client_binary("pg_dump", flavor)),
        f"--dbname={source.tool_dbname()}",
        f"--snapshot={snapshot}",
        "--no-password",
    ]
    args += [f"--exclude-schema={schema}" for schema in excluded]
    return args


def restore_args(target: Endpoint, flavor: str = NEWEST_FLAVOR) -> list[str]:
    """pg_restore into the target database, stopping at the first error."""
    return [
        str(client_binary("pg_restore", flavor)),
        "--exit-on-error",
        "--no-password",
        f"--dbname={target.tool_dbname()}",
    ]


def dump_custom(
    source: Endpoint,
    snapshot: str,
    settings: Settings,
    archive: Path,
    phase: str,
    options: Sequence[str] = (),
    flavor: str = NEWEST_FLAVOR,
) -> None:
    """`pg_dump -Fc` of the source as of `snapshot` (the guide's backup; `options` may
    narrow it), uncompressed: the bundled pg_dump has gzip only, which would dominate."""
    command = [
        *dump_args(source, snapshot, settings.exclude_schemas, flavor),
        "-Fc",
        "--compress=none",
    ]
    run_pipeline(
        [[*command, *options, f"--file={archive}"]],
        [source],
        phase=phase,
        timeout=settings.phase_timeout,
    )


def restore(
    target: Endpoint,
    archive: Path,
    settings: Settings,
    phase: str,
    options: Sequence[str] = (),
    flavor: str = NEWEST_FLAVOR,
) -> None:
    """pg_restore `archive` (or the part `options` select) into the target."""
    run_pipeline(
        [[*restore_args(target, flavor), *options, str(archive)]],
        [target],
        phase=phase,
        timeout=settings.phase_timeout,
        extra_env=[restore_env(settings)],
    )


def split_post_data(
    archive: Path, folder: Path, groups: Mapping[str, Sequence[str]]
) -> dict[str, Path | None]:
    """The archive's post-data entries as `pg_restore -L` lists: one per group (entries whose
    kind starts with one of the group's, e.g. "INDEX " for INDEX and INDEX ATTACH), and
    "rest" for all others; None for an empty list."""
    listing = subprocess.run(
        [str(client_binary("pg_restore")), "--list", "--section=post-data", str(archive)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entries: dict[str, list[str]] = {name: [] for name in [*groups, "rest"]}
    for line in listing.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        # "<id>; <table oid> <oid> <KIND> <schema> <name> <owner>", KIND may hold spaces
        kind = line.split(" ", 3)[3]
        matches = [name for name, kinds in groups.items() if kind.startswith(tuple(kinds))]
        group = matches[0] if matches else "rest"
        entries[group].append(line)
    lists: dict[str, Path | None] = {}
    for name, lines in entries.items():
        path = folder / f"{name}.list"
        path.write_text("\n".join(lines) + "\n")
        lists[name] = path if lines else None
    return lists
