"""The source keeps changing: an application-like writer inserts, updates and deletes rows
while pg_dump runs (chaos) or while logical replication copies and streams (the logical
rehearsal), and keeps a tally of what it changed, per table, for the drift check.

It writes only to a database on a server pgcutover created (a chaos scenario's copy of the
source, or the rehearsal's own seeded source): never to a user's server.
"""

from __future__ import annotations

import random
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from pgcutover.db import Endpoint, connect
from pgcutover.errors import ConfigError
from pgcutover.faults.history import History

CHUNKS = "public.vector_embeddings"
DOCUMENTS = "public.documents"
QUERY_LOG = "public.query_log"


@dataclass
class Tally:
    """Net effect of the writes on rows that existed before the writer started."""

    added: dict[str, int] = field(default_factory=dict)
    changed: dict[str, set[str]] = field(default_factory=dict)
    deleted: dict[str, set[str]] = field(default_factory=dict)

    def expected(self) -> dict[str, dict[str, int]]:
        """Per table: rows added, changed (and not deleted since), deleted."""
        tables = self.added.keys() | self.changed.keys() | self.deleted.keys()
        result = {}
        for table in sorted(tables):
            deleted = self.deleted.get(table, set())
            result[table] = {
                "added": self.added.get(table, 0),
                "changed": len(self.changed.get(table, set()) - deleted),
                "deleted": len(deleted),
            }
        return result

    @property
    def writes(self) -> int:
        return (
            sum(self.added.values())
            + sum(len(v) for v in self.changed.values())
            + sum(len(v) for v in self.deleted.values())
        )


@dataclass
class ConcurrentWriter:
    """Writes in a loop (each write its own transaction) from inject until heal."""

    source: Endpoint
    seed: int = 7
    pause_s: float = 0.002
    tally: Tally = field(default_factory=Tally, init=False)
    #: Marks the ids this writer inserts, so another writer on the same database (a rerun)
    #: never collides with them.
    _mark: str = field(default_factory=lambda: secrets.token_hex(3), init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _event: int | None = field(default=None, init=False)
    _error: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not self.source.ephemeral:
            raise ConfigError(
                f"refusing to write to {self.source.label}: pgcutover did not create it",
                "the concurrent writer runs only against a source the chaos suite created",
            )

    def inject(self, history: History) -> None:
        self._event = history.open("writer: inserts, updates, deletes on the source", "source")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def heal(self, history: History) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._event is not None:
            history.close(self._event)
            history.mark(f"writer stopped after {self.tally.writes} writes", "source")
            self._event = None
        if self._error:
            history.mark(f"writer error: {self._error}", "source")

    @property
    def error(self) -> str | None:
        """The error that stopped the writer early, if any."""
        return self._error

    def _run(self) -> None:
        rng = random.Random(self.seed)
        try:
            with connect(self.source, role="admin") as conn:
                chunks = [r[0] for r in conn.execute(f"SELECT id FROM {CHUNKS} ORDER BY id")]
                documents = [str(r[0]) for r in conn.execute(f"SELECT id FROM {DOCUMENTS}")]
                users = [r[0] for r in conn.execute("SELECT id FROM public.users")]
                rng.shuffle(chunks)
                step = 0
                while not self._stop.is_set() and len(chunks) > 2:
                    self._write(conn, step % 5, rng, chunks, documents, users, step)
                    step += 1
                    self._stop.wait(self.pause_s)
        except Exception as error:  # reported in the history and by the scenario
            self._error = f"{type(error).__name__}: {error}"

    def _write(
        self,
        conn: Any,
        kind: int,
        rng: random.Random,
        chunks: list[str],
        documents: list[str],
        users: list[Any],
        step: int,
    ) -> None:
        """One write; the tally is updated only after it committed."""
        if kind == 0:
            original = rng.choice(chunks)
            conn.execute(
                f"INSERT INTO {CHUNKS} (id, document_id, user_id, content, embedding, created_at)"
                " SELECT id || %s, document_id, user_id, content, embedding, now()"
                f" FROM {CHUNKS} WHERE id = %s",
                (f":writer-{self._mark}-{step}", original),
            )
            self.tally.added[CHUNKS] = self.tally.added.get(CHUNKS, 0) + 1
        elif kind == 1:
            victim = rng.choice(chunks)
            conn.execute(
                f"UPDATE {CHUNKS} SET content = content || ' (edited)' WHERE id = %s", (victim,)
            )
            self.tally.changed.setdefault(CHUNKS, set()).add(victim)
        elif kind == 2:
            victim = chunks.pop()
            conn.execute(f"DELETE FROM {CHUNKS} WHERE id = %s", (victim,))
            self.tally.deleted.setdefault(CHUNKS, set()).add(victim)
        elif kind == 3:
            conn.execute(
                f"INSERT INTO {QUERY_LOG} (user_id, query, result_count) VALUES (%s, %s, 0)",
                (rng.choice(users), f"question {step} asked during the dump"),
            )
            self.tally.added[QUERY_LOG] = self.tally.added.get(QUERY_LOG, 0) + 1
        else:
            document = rng.choice(documents)
            conn.execute(
                f"UPDATE {DOCUMENTS} SET title = title || ' (rev)' WHERE id = %s", (document,)
            )
            self.tally.changed.setdefault(DOCUMENTS, set()).add(document)
