"""An archive's table of contents (`pg_restore -l -v`): its entries, what each depends on,
and list files (`pg_restore -L`) that restore a chosen part of it, in the archive's order.

Entries are picked by the catalog and OID of the source object they recreate (exact, whatever
the names look like); comments, ACLs and security labels go with the entry they depend on."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pgcutover.errors import MigrationError
from pgcutover.migrate.tools import client_binary

#: System catalog OIDs, fixed in every PostgreSQL version.
NAMESPACE = 2615
EXTENSION = 3079
EVENT_TRIGGER = 3466
PUBLICATION = 6104
PUBLICATION_REL = 6106
PUBLICATION_NAMESPACE = 6237
POLICY = 3256

_ENTRY = re.compile(r"^(\d+); (\d+) (\d+) (.*)$")
_DEPENDS = re.compile(r"^;\s+depends on:(.*)$")
_ATTACHED = ("COMMENT ", "ACL ", "SECURITY LABEL ")


@dataclass(frozen=True)
class Entry:
    """One archive item: its dump id, the source object it recreates, what it depends on."""

    dump_id: int
    catalog: int
    oid: int
    label: str
    depends: tuple[int, ...] = ()

    @property
    def line(self) -> str:
        """The line `pg_restore -L` reads back."""
        return f"{self.dump_id}; {self.catalog} {self.oid} {self.label}"

    @property
    def attached(self) -> bool:
        """A comment, ACL or security label on another entry's object."""
        return self.catalog == 0 and self.label.startswith(_ATTACHED)


@dataclass(frozen=True)
class Toc:
    """Every entry of an archive, in restore order."""

    entries: tuple[Entry, ...]

    def objects(self, catalog: int, oids: Iterable[int] | None = None) -> list[Entry]:
        """Entries recreating objects of `catalog` (only those `oids`, when given)."""
        wanted = None if oids is None else set(oids)
        return [
            entry
            for entry in self.entries
            if entry.catalog == catalog and (wanted is None or entry.oid in wanted)
        ]

    def with_attached(self, roots: Iterable[Entry]) -> list[Entry]:
        """`roots` plus the comments, ACLs and labels that depend on them, in archive order."""
        ids = {entry.dump_id for entry in roots}
        return [
            entry
            for entry in self.entries
            if entry.dump_id in ids or (entry.attached and ids.intersection(entry.depends))
        ]

    def dependents(self, root: Entry, catalogs: Iterable[int]) -> list[Entry]:
        """Entries of `catalogs` that depend on `root` (a publication's tables)."""
        kinds = set(catalogs)
        return [e for e in self.entries if e.catalog in kinds and root.dump_id in e.depends]

    def pick(self, parts: Iterable[Iterable[Entry]]) -> list[Entry]:
        """Every entry that is in one of `parts`, once, in archive order."""
        taken = {entry.dump_id for part in parts for entry in part}
        return [entry for entry in self.entries if entry.dump_id in taken]

    def without(self, parts: Iterable[Iterable[Entry]]) -> list[Entry]:
        """Every entry that is in none of `parts`, in archive order."""
        taken = {entry.dump_id for part in parts for entry in part}
        return [entry for entry in self.entries if entry.dump_id not in taken]

    def labelled(self, prefix: str) -> list[Entry]:
        """Entries whose label starts with `prefix` (e.g. `ACL - SCHEMA `)."""
        return [entry for entry in self.entries if entry.label.startswith(prefix)]


def parse(text: str) -> Toc:
    """Entries and their dependencies from `pg_restore -l -v` output."""
    entries: list[Entry] = []
    for line in text.splitlines():
        found = _ENTRY.match(line)
        if found:
            dump_id, catalog, oid, label = found.groups()
            entries.append(Entry(int(dump_id), int(catalog), int(oid), label.rstrip()))
            continue
        depends = _DEPENDS.match(line)
        if depends and entries:
            last = entries[-1]
            ids = tuple(int(part) for part in depends.group(1).split())
            entries[-1] = Entry(last.dump_id, last.catalog, last.oid, last.label, ids)
    return Toc(tuple(entries))


def read(archive: Path) -> Toc:
    """The table of contents of a custom or directory archive."""
    done = subprocess.run(
        [str(client_binary("pg_restore")), "-l", "-v", str(archive)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise MigrationError(
            f"pg_restore could not list the archive {archive}: {done.stderr.strip()}",
            "the dump is unreadable: rerun the migration (the dump is taken again)",
            phase="dump",
        )
    return parse(done.stdout)


def write_list(path: Path, entries: Iterable[Entry]) -> Path:
    """A `pg_restore -L` file restoring exactly `entries`."""
    path.write_text("".join(entry.line + "\n" for entry in entries))
    return path
