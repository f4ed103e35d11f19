"""The dump and the restore, in stages, so that a target without a superuser gets what it needs
first and is asked separately for what it may refuse:

1. schemas: the schemas the target lacks, with every schema's grants (a non-superuser can make
   a role own a table only once that role may create in the table's schema; pg_dump would
   grant that last);
2. extensions: each created in its schema (migrate/extensions.py); the dump's own CREATE
   EXTENSION and COMMENT ON EXTENSION are left out;
3. schema, data, index build: everything else, section by section, as before, except that
   row-level security is enabled and its policies created after every other post-data item:
   a parallel restore may otherwise enable FORCE ROW LEVEL SECURITY on a table before its
   foreign keys are validated, which a role without BYPASSRLS is refused;
4. platform objects: event triggers and publications, one at a time, each in one
   transaction: one the target refuses for lack of privilege (SQLSTATE 42501) is recorded as
   a refusal, which the platform check reports as the finding it is; any other error fails
   the migration.

custom and directory restore from the archive with pg_restore; plain sends SQL through
`psql -v ON_ERROR_STOP=1`: the data straight from pg_dump, the schema from a small
schema-only archive so that it can be taken in these stages. A scratch rehearsal (a server
pgcutover does not own) restores every stage without owners and grants."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pgcutover.catalog import user_schema_oids
from pgcutover.config import Settings
from pgcutover.db import Endpoint
from pgcutover.errors import MigrationError
from pgcutover.migrate import toc
from pgcutover.migrate.archive import dump_args, ownerless, restore_args, restore_env
from pgcutover.migrate.capabilities import Capabilities, capabilities
from pgcutover.migrate.extensions import (
    ExtensionStep,
    create_extensions,
    plan_extensions,
    refuse_blocking,
)
from pgcutover.migrate.tools import bounded, client_binary, run_pipeline
from pgcutover.platform.parts import event_triggers, publications

SECTIONS = (("pre-data", "schema"), ("data", "data"), ("post-data", "index build"))
PLATFORM_KINDS = {toc.EVENT_TRIGGER: "event trigger", toc.PUBLICATION: "publication"}
#: A publication's tables and schemas are restored with it.
PUBLICATION_MEMBERS = (toc.PUBLICATION_REL, toc.PUBLICATION_NAMESPACE)
_REFUSED = re.compile(r"ERROR:\s+42501:\s+(.*)")
_STATEMENT = re.compile(r"STATEMENT:\s+(.*)", re.DOTALL)

Phase = Callable[[str], AbstractContextManager[None]]


@dataclass(frozen=True)
class Refusal:
    """An object the target refused to create for lack of privilege."""

    kind: str
    name: str
    error: str
    statement: str

    def to_json(self) -> dict[str, Any]:
        """For signoff.json's migration block."""
        return asdict(self)


@dataclass(frozen=True)
class Stages:
    """What the stages need beyond the strategy: the source's schemas the target lacks (by
    OID), the extension plan, who stands for the provider, and the platform objects' names."""

    new_schemas: frozenset[int]
    extensions: tuple[ExtensionStep, ...]
    provider: Endpoint | None
    #: (catalog, oid) -> name, for event triggers and publications.
    platform_names: dict[tuple[int, int], str]
    role: Capabilities


def prepare(
    source: Endpoint,
    target: Endpoint,
    settings: Settings,
    provider: Endpoint | None,
    timeout: float,
) -> Stages:
    """Read both sides, writing nothing: the source's schemas the target lacks, what happens
    to each extension (refusing one the target cannot hold), the platform objects' names."""
    with (
        bounded(source, "source", "preflight", timeout) as src,
        bounded(target, "target", "preflight", timeout) as dst,
    ):
        schemas = user_schema_oids(src, settings.ignored_schemas)
        present = user_schema_oids(dst, ())
        role = capabilities(dst)
        steps = plan_extensions(src, dst, role, provider=provider is not None)
        names = {(toc.EVENT_TRIGGER, t.oid): t.name for t in event_triggers(src)}
        names |= {(toc.PUBLICATION, p.oid): p.name for p in publications(src)}
    refuse_blocking(steps, target.label)
    return Stages(
        new_schemas=frozenset(oid for name, oid in schemas.items() if name not in present),
        extensions=tuple(steps),
        provider=provider,
        platform_names=names,
        role=role,
    )


class _Restorer:
    """Restores lists of archive entries into the target, the strategy's way."""

    def __init__(self, target: Endpoint, settings: Settings, archive: Path, workdir: Path) -> None:
        self.target = target
        self.settings = settings
        self.archive = archive
        self.workdir = workdir
        self.env = restore_env(settings)
        self.plain = settings.strategy == "plain"
        self.lists = itertools.count()
        self.ownerless = ownerless(settings)

    def psql(self, *extra: str) -> list[str]:
        """psql stopping at the first error and echoing the statement that failed."""
        return [
            str(client_binary("psql")),
            f"--dbname={self.target.tool_dbname()}",
            "-X",
            "-q",
            "-b",
            "-v",
            "ON_ERROR_STOP=1",
            "--no-password",
            *extra,
        ]

    def restore(self, entries: Sequence[toc.Entry], name: str, *options: str) -> None:
        """Restore `entries` (with pg_restore options such as --section, --clean, -j)."""
        if not entries:
            return
        listing = toc.write_list(self.workdir / f"stage-{next(self.lists)}.list", entries)
        timeout = self.settings.phase_timeout
        options = (*self.ownerless, *options)
        if self.plain:
            script = [str(client_binary("pg_restore")), f"--use-list={listing}", "--file=-"]
            script += [option for option in options if not option.startswith("--jobs")]
            run_pipeline(
                [[*script, str(self.archive)], self.psql()],
                [self.target, self.target],
                phase=name,
                timeout=timeout,
                extra_env=[{}, self.env],
            )
            return
        command = [*restore_args(self.target), f"--use-list={listing}", *options, str(self.archive)]
        run_pipeline([command], [self.target], phase=name, timeout=timeout, extra_env=[self.env])

    def stream_data(self, source: Endpoint, snapshot: str) -> None:
        """plain: the data section straight from pg_dump into psql."""
        run_pipeline(
            [
                [*dump_args(source, snapshot, self.settings.exclude_schemas), "--section=data"],
                self.psql(),
            ],
            [source, self.target],
            phase="data",
            timeout=self.settings.phase_timeout,
            extra_env=[{}, self.env],
        )

    def attempt(self, entries: Sequence[toc.Entry], name: str) -> tuple[str, str] | None:
        """Restore `entries` in one transaction; (error, statement) when the target refuses
        them for lack of privilege, None when they were created."""
        listing = toc.write_list(self.workdir / f"stage-{next(self.lists)}.list", entries)
        script = [str(client_binary("pg_restore")), f"--use-list={listing}", "--file=-"]
        script += self.ownerless
        try:
            run_pipeline(
                [[*script, str(self.archive)], self.psql("-v", "VERBOSITY=verbose", "-1")],
                [self.target, self.target],
                phase=name,
                timeout=self.settings.phase_timeout,
                extra_env=[{}, self.env],
            )
        except MigrationError as error:
            refused = _REFUSED.search(error.problem)
            if refused is None:
                raise
            statement = _STATEMENT.search(error.problem)
            text = " ".join(statement.group(1).split()) if statement else ""
            return refused.group(1).strip(), text
        return None


def create_extensions_in_place(target: Endpoint, stages: Stages, timeout: float) -> list[str]:
    """For a strategy that restores the dump's schema in one go (logical): create now the
    extensions whose schema the target already has (the guide's step 1, where the source has
    them); the dump's own CREATE EXTENSION ... WITH SCHEMA creates the others with their
    schema. Returns notes for the report."""
    with bounded(target, "target", "extensions", timeout) as conn:
        present = user_schema_oids(conn, ())
    ready = [s for s in stages.extensions if s.schema in present or s.owns_schema]
    later = [s.name for s in stages.extensions if s not in ready and s.action != "present"]
    notes = create_extensions(target, ready, stages.provider, timeout)
    if later:
        notes.append(
            f"extension(s) {', '.join(later)}: created by the dump's CREATE EXTENSION once their "
            "schema is restored"
        )
    return notes


def _dump(source: Endpoint, settings: Settings, snapshot: str, workdir: Path) -> Path:
    """The archive the stages restore from: the whole database (custom, directory), or its
    schema only (plain: the data streams later)."""
    dump = dump_args(source, snapshot, settings.exclude_schemas)
    if settings.strategy == "plain":
        archive, fmt = workdir / "schema.pgc", ["-Fc", "--schema-only"]
    elif settings.strategy == "custom":
        archive, fmt = workdir / "dump.pgc", ["-Fc", "--compress=none"]
    else:
        archive, fmt = workdir / "dump.dir", ["-Fd", "--compress=none", f"--jobs={settings.jobs}"]
    phase = "schemas" if settings.strategy == "plain" else "dump"
    run_pipeline(
        [[*dump, *fmt, f"--file={archive}"]],
        [source],
        phase=phase,
        timeout=settings.phase_timeout,
    )
    return archive


def _platform_groups(
    contents: toc.Toc, names: dict[tuple[int, int], str]
) -> list[tuple[str, str, list[toc.Entry]]]:
    """(kind, name, entries) for each event trigger and publication, members included."""
    groups = []
    for catalog, kind in PLATFORM_KINDS.items():
        for root in contents.objects(catalog):
            members = contents.dependents(root, PUBLICATION_MEMBERS)
            entries = contents.with_attached([root, *members])
            groups.append((kind, names.get((catalog, root.oid), str(root.oid)), entries))
    return groups


def _stage(phase: Phase, on_phase: Callable[[str], None] | None, name: str) -> Any:
    """Announce a stage to the fault hooks, then time it."""
    if on_phase:
        on_phase(name)
    return phase(name)


def run(
    source: Endpoint,
    target: Endpoint,
    settings: Settings,
    snapshot: str,
    workdir: Path,
    phase: Phase,
    on_phase: Callable[[str], None] | None,
    stages: Stages,
    *,
    clean: bool,
) -> tuple[list[Refusal], list[str]]:
    """Dump and restore in stages; returns what the target refused and notes for the report.

    With `clean` the schema stage drops what it is about to create (--clean --if-exists)."""
    notes: list[str] = []
    plain = settings.strategy == "plain"
    if not plain:
        with _stage(phase, on_phase, "dump"):
            archive = _dump(source, settings, snapshot, workdir)
    with _stage(phase, on_phase, "schemas"):
        if plain:
            archive = _dump(source, settings, snapshot, workdir)
        contents = toc.read(archive)
        namespaces = contents.objects(toc.NAMESPACE)
        created = contents.with_attached(contents.objects(toc.NAMESPACE, stages.new_schemas))
        schemas = contents.pick([created, contents.labelled("ACL - SCHEMA ")])
        restorer = _Restorer(target, settings, archive, workdir)
        restorer.restore(schemas, "schemas")
    extensions = contents.with_attached(contents.objects(toc.EXTENSION))
    groups = _platform_groups(contents, stages.platform_names)
    security = contents.with_attached(
        [*contents.labelled("ROW SECURITY "), *contents.objects(toc.POLICY)]
    )
    taken = [schemas, contents.with_attached(namespaces), extensions, *(g[2] for g in groups)]
    rest = contents.without(taken)
    rest_of_post_data = contents.without([*taken, security])
    with _stage(phase, on_phase, "extensions"):
        notes += create_extensions(
            target, stages.extensions, stages.provider, settings.phase_timeout
        )
    cleaning = ["--clean", "--if-exists"] if clean else []
    jobs = f"--jobs={settings.jobs}"
    for section, name in SECTIONS:
        with _stage(phase, on_phase, name):
            if section == "data" and plain:
                restorer.stream_data(source, snapshot)
            elif section == "post-data":
                restorer.restore(rest_of_post_data, name, "--section=post-data", jobs)
                restorer.restore(security, name, "--section=post-data")
            else:
                extra = cleaning if section == "pre-data" else [jobs]
                restorer.restore(rest, name, f"--section={section}", *extra)
    refusals = []
    if groups:
        with _stage(phase, on_phase, "platform objects"):
            for kind, name, entries in groups:
                refused = restorer.attempt(entries, "platform objects")
                if refused is not None:
                    refusals.append(Refusal(kind, name, *refused))
                    notes.append(
                        f"the target refused {kind} {name} ({refused[0]}): left out, see "
                        f"platform.{kind.replace(' ', '_')}.{name}"
                    )
    return refusals, notes
