"""Seed the rehearsal source: schema from fixtures/, real text, real embeddings, then indexes.

Writes only to a database on a server pgcutover started itself. Streams at any size: the
real corpus (a few thousand passages) is embedded once; the chunks beyond it are noisy
copies of its vectors, generated and written in batches with COPY, so memory stays flat
from 5,000 rows to millions. The HNSW build gets the memory and parallel workers
migrate/advice.py computes for the graph. Timestamps are spread over fixed windows after
EPOCH, whatever the row count, so none is ever in the future.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import LiteralString

import bcrypt
import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgcutover import progress
from pgcutover.config import FIXTURES_DIR
from pgcutover.dataset.corpus import chunk, documents
from pgcutover.dataset.embedder import Embedder
from pgcutover.db import Endpoint, connect
from pgcutover.errors import ConfigError
from pgcutover.migrate import watch
from pgcutover.migrate.advice import DEFAULT_M, build_settings, estimate

NAMESPACE = uuid.UUID("6f1c2b0e-8d57-4a8e-9a53-3c1f0e2d9b41")
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
#: Each table's created_at values are spread evenly over one day: users on the first day
#: after EPOCH, documents on the second, chunks on the third, the query log on the fourth.
SPREAD = timedelta(days=1)
CHUNKS_PER_USER = 100
#: GoTrue uses cost 10; bcrypt's minimum (about 1 ms a hash) keeps seeding 10,000 users
#: fast while the hash format stays the same.
BCRYPT_COST = 4
#: Chunks generated and written per batch: bounds the client's memory at any row count.
BATCH_ROWS = 10_000
#: Standard deviation of the noise added to each component of a real vector to make a
#: synthetic chunk's vector (then scaled back to unit length).
NOISE = 0.02
FIRST_NAMES = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Niklaus",
    "Katherine",
    "John",
    "Leslie",
]
LAST_NAMES = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Wirth",
    "Johnson",
    "Backus",
]


def fixture_sql(name: str) -> str:
    """The text of a SQL file under fixtures/."""
    return (FIXTURES_DIR / name).read_text()


def rehearsal_passphrase(email: str) -> str:
    """The known password of a rehearsal user (fixture data, never a real secret)."""
    return f"rehearsal-passphrase-for:{email}"


def _bcrypt_hash(secret: str, email: str) -> str:
    """A deterministic bcrypt hash (salt derived from the email) so seeds are reproducible."""
    alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    digest = hashlib.sha256(email.encode()).digest()
    salt_chars = "".join(alphabet[b % 64] for b in digest[:21]) + "e"
    salt = f"$2b${BCRYPT_COST:02d}${salt_chars}".encode()
    return bcrypt.hashpw(secret.encode(), salt).decode()


@dataclass(frozen=True)
class SeedSummary:
    """What was seeded and how long it took."""

    database: str
    users: int
    documents: int
    chunks: int
    synthetic_chunks: int
    seconds: float
    index_seconds: float = 0.0
    maintenance_work_mem: str = ""


@dataclass(frozen=True)
class _Chunk:
    id: str
    document_index: int
    text: str


@dataclass(frozen=True)
class _Corpus:
    """The real documents, their passages (at most `rows`) and the passages' embeddings."""

    documents: list[tuple[str, str, str]]
    chunks: list[_Chunk]
    vectors: np.ndarray


def moment(day: int, index: int, count: int) -> datetime:
    """The `index`-th of `count` timestamps spread evenly over day `day` after EPOCH."""
    return EPOCH + timedelta(days=day) + SPREAD * (index / max(count, 1))


def _corpus(rows: int) -> tuple[list[tuple[str, str, str]], list[_Chunk]]:
    """Documents (title, source, text) and up to `rows` chunks drawn from them in order."""
    docs: list[tuple[str, str, str]] = []
    chunks: list[_Chunk] = []
    for document in documents():
        passages = chunk(document.text)
        if not passages:
            continue
        index = len(docs)
        docs.append((document.title, document.source, document.text))
        for n, passage in enumerate(passages):
            chunks.append(_Chunk(f"{index:05d}:{n:04d}", index, passage))
            if len(chunks) == rows:
                return docs, chunks
    return docs, chunks


def seed(
    server: Endpoint,
    dbname: str,
    rows: int,
    embedder: Embedder,
    *,
    platform_roles: bool = True,
    memory: str | None = None,
    workers: int | None = None,
) -> SeedSummary:
    """Create `dbname` on an ephemeral server and fill it with the rehearsal workload; with
    `platform_roles`, also Supabase's API roles, the grants to them and row-level security
    (fixtures/roles.sql, security.sql). `memory` and `workers` override the HNSW build's
    computed settings."""
    if not server.ephemeral:
        raise ConfigError(
            f"refusing to seed {server.label}: pgcutover did not create that server",
            "seeding is for the rehearsal source only",
        )
    started = time.monotonic()
    docs, real = _corpus(rows)
    corpus = _Corpus(docs, real, embedder.embed([c.text for c in real]))
    n_users = max(5, rows // CHUNKS_PER_USER)
    with connect(server, role="admin") as admin:
        if platform_roles:
            admin.execute(fixture_sql("roles.sql"))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    endpoint = server.with_dbname(dbname)
    with connect(endpoint, role="admin", autocommit=False) as conn:
        conn.execute(fixture_sql("schema.sql"))
        if platform_roles:
            conn.execute(fixture_sql("security.sql"))
        register_vector(conn)
        user_ids = _load_users(conn, n_users)
        doc_ids = _load_documents(conn, docs, user_ids)
        _load_chunks(conn, rows, corpus, doc_ids, user_ids)
        _load_query_log(conn, rows, real, user_ids)
        conn.commit()
    dimensions = int(corpus.vectors.shape[1])
    del corpus  # nothing of the data stays alive through the index build
    build = build_settings(
        [estimate(rows, dimensions, DEFAULT_M)], memory=memory, workers=workers, local=True
    )
    index_started = time.monotonic()
    with (
        connect(endpoint, role="admin", options=build.options()) as conn,
        progress.polled(
            "source index build", lambda: watch.index_builds(endpoint, "admin"), unit="blocks"
        ),
    ):
        conn.execute(fixture_sql("indexes.sql"))
        conn.execute("ANALYZE")
    return SeedSummary(
        database=dbname,
        users=n_users,
        documents=len(docs),
        chunks=rows,
        synthetic_chunks=max(rows - len(real), 0),
        seconds=round(time.monotonic() - started, 2),
        index_seconds=round(time.monotonic() - index_started, 2),
        maintenance_work_mem=build.maintenance_work_mem,
    )


def _load_users(conn: psycopg.Connection, count: int) -> list[uuid.UUID]:
    """auth.users (with each user's bcrypt hash, as GoTrue stores it) and public.users."""
    ids, auth_rows, app_rows = [], [], []
    for i in range(count):
        user_id = uuid.uuid5(NAMESPACE, f"user:{i}")
        first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[i % len(LAST_NAMES)]
        email = f"{first}.{last}.{i}@example.org".lower()
        created = moment(0, i, count)
        hashed = _bcrypt_hash(rehearsal_passphrase(email), email)
        auth_rows.append((user_id, email, hashed, created, created))
        app_rows.append((user_id, email, f"{first} {last}", created))
        ids.append(user_id)
    _copy(
        conn,
        "COPY auth.users (id, email, encrypted_password, email_confirmed_at, created_at)"
        " FROM STDIN",
        auth_rows,
    )
    _copy(conn, "COPY public.users (id, email, display_name, created_at) FROM STDIN", app_rows)
    return ids


def _copy(
    conn: psycopg.Connection, statement: LiteralString, rows: list[tuple[object, ...]]
) -> None:
    """Rows through one COPY ... FROM STDIN statement."""
    with conn.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _load_documents(
    conn: psycopg.Connection, docs: list[tuple[str, str, str]], user_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    ids = [uuid.uuid5(NAMESPACE, f"document:{source}") for _, source, _ in docs]
    rows = []
    for i, (title, source, text) in enumerate(docs):
        created = moment(1, i, len(docs))
        rows.append((ids[i], user_ids[i % len(user_ids)], title, source, text, created, created))
    _copy(
        conn,
        "COPY public.documents (id, user_id, title, source, content, created_at, updated_at)"
        " FROM STDIN",
        rows,
    )
    return ids


def _batches(rows: int, corpus: _Corpus) -> Iterator[tuple[range, np.ndarray]]:
    """(row numbers, their vectors) in batches of BATCH_ROWS: first the real passages' own
    embeddings, then noisy copies of them (deterministic: one generator, fixed seed)."""
    real = len(corpus.chunks)
    rng = np.random.default_rng(0)
    for start in range(0, rows, BATCH_ROWS):
        numbers = range(start, min(start + BATCH_ROWS, rows))
        base = corpus.vectors[np.arange(numbers.start, numbers.stop) % real]
        synthetic = np.arange(numbers.start, numbers.stop) >= real
        if synthetic.any():
            noise = rng.standard_normal((int(synthetic.sum()), base.shape[1]), dtype=np.float32)
            moved = base[synthetic] + noise * np.float32(NOISE)
            base[synthetic] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
        yield numbers, base


def _load_chunks(
    conn: psycopg.Connection,
    rows: int,
    corpus: _Corpus,
    doc_ids: list[uuid.UUID],
    user_ids: list[uuid.UUID],
) -> None:
    """`rows` chunks with COPY BINARY, batch by batch: the real passages, then synthetic
    chunks that repeat a real passage's text with a noisy copy of its vector."""
    real = len(corpus.chunks)
    with (
        progress.task("seeding public.vector_embeddings", total=rows) as task,
        conn.cursor().copy(
            "COPY public.vector_embeddings (id, document_id, user_id, content, embedding,"
            " created_at) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["varchar", "uuid", "uuid", "text", "vector", "timestamptz"])
        for numbers, vectors in _batches(rows, corpus):
            for i, vector in zip(numbers, vectors, strict=True):
                piece = corpus.chunks[i % real]
                key = piece.id if i < real else f"{piece.id}:s{(i - real) // real}"
                copy.write_row(
                    (
                        key,
                        doc_ids[piece.document_index],
                        user_ids[piece.document_index % len(user_ids)],
                        piece.text,
                        vector,
                        moment(2, i, rows),
                    )
                )
            task.advance(len(numbers))


def _load_query_log(
    conn: psycopg.Connection, rows: int, chunks: list[_Chunk], user_ids: list[uuid.UUID]
) -> None:
    """Past questions: the first sentence of every 10th chunk, as a user once asked it."""
    questions = range(0, rows, 10)
    with conn.cursor().copy(
        "COPY public.query_log (user_id, query, result_count, created_at) FROM STDIN"
    ) as copy:
        for n, i in enumerate(questions):
            piece = chunks[i % len(chunks)]
            copy.write_row(
                (
                    user_ids[n % len(user_ids)],
                    piece.text.split(". ")[0][:200],
                    10,
                    moment(3, n, len(questions)),
                )
            )
