"""Seed the rehearsal source: schema from fixtures/, real text, real embeddings, then indexes.

Writes only to a database on a server pgcutover started itself.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import bcrypt
import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgcutover.config import FIXTURES_DIR
from pgcutover.dataset.corpus import chunk, documents
from pgcutover.dataset.embedder import Embedder
from pgcutover.db import Endpoint, connect
from pgcutover.errors import ConfigError

NAMESPACE = uuid.UUID("6f1c2b0e-8d57-4a8e-9a53-3c1f0e2d9b41")
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CHUNKS_PER_USER = 100
#: GoTrue uses cost 10; 6 keeps seeding fast while the hash format stays the same.
BCRYPT_COST = 6
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


@dataclass(frozen=True)
class _Chunk:
    id: str
    document_index: int
    text: str


def _corpus(rows: int) -> tuple[list[tuple[str, str, str]], list[_Chunk]]:
    """Documents (title, source, text) and `rows` chunks drawn from them in order."""
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
    server: Endpoint, dbname: str, rows: int, embedder: Embedder, *, platform_roles: bool = True
) -> SeedSummary:
    """Create `dbname` on an ephemeral server and fill it with the rehearsal workload; with
    `platform_roles`, also Supabase's API roles, the grants to them and row-level security
    (fixtures/roles.sql, security.sql)."""
    if not server.ephemeral:
        raise ConfigError(
            f"refusing to seed {server.label}: pgcutover did not create that server",
            "seeding is for the rehearsal source only",
        )
    started = time.monotonic()
    docs, chunks = _corpus(rows)
    real_vectors = embedder.embed([c.text for c in chunks])
    synthetic = rows - len(chunks)
    vectors = real_vectors
    if synthetic > 0:
        rng = np.random.default_rng(0)
        base = real_vectors[np.arange(synthetic) % len(chunks)]
        noisy = base + rng.normal(0.0, 0.02, base.shape).astype(np.float32)
        vectors = np.vstack([real_vectors, noisy / np.linalg.norm(noisy, axis=1, keepdims=True)])
        chunks = chunks + [
            _Chunk(f"{c.id}:s{i // len(chunks)}", c.document_index, c.text)
            for i, c in ((i, chunks[i % len(chunks)]) for i in range(synthetic))
        ]
    n_users = max(5, rows // CHUNKS_PER_USER)

    with connect(server, role="admin") as admin:
        if platform_roles:
            admin.execute(fixture_sql("roles.sql"))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    with connect(server.with_dbname(dbname), role="admin", autocommit=False) as conn:
        conn.execute(fixture_sql("schema.sql"))
        if platform_roles:
            conn.execute(fixture_sql("security.sql"))
        register_vector(conn)
        user_ids = _load_users(conn, n_users)
        doc_ids = _load_documents(conn, docs, user_ids)
        _load_chunks(conn, chunks, vectors, doc_ids, user_ids)
        _load_query_log(conn, chunks, user_ids)
        conn.commit()
        conn.autocommit = True
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute(fixture_sql("indexes.sql"))
        conn.execute("ANALYZE")
    return SeedSummary(
        database=dbname,
        users=n_users,
        documents=len(docs),
        chunks=len(chunks),
        synthetic_chunks=max(synthetic, 0),
        seconds=round(time.monotonic() - started, 2),
    )


def _load_users(conn: psycopg.Connection, count: int) -> list[uuid.UUID]:
    ids = []
    with conn.cursor() as cur:
        for i in range(count):
            user_id = uuid.uuid5(NAMESPACE, f"user:{i}")
            first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[i % len(LAST_NAMES)]
            email = f"{first}.{last}.{i}@example.org".lower()
            created = EPOCH + timedelta(hours=i)
            cur.execute(
                "INSERT INTO auth.users (id, email, encrypted_password, email_confirmed_at,"
                " created_at) VALUES (%s, %s, %s, %s, %s)",
                (
                    user_id,
                    email,
                    _bcrypt_hash(rehearsal_passphrase(email), email),
                    created,
                    created,
                ),
            )
            cur.execute(
                "INSERT INTO public.users (id, email, display_name, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (user_id, email, f"{first} {last}", created),
            )
            ids.append(user_id)
    return ids


def _load_documents(
    conn: psycopg.Connection, docs: list[tuple[str, str, str]], user_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    ids = [uuid.uuid5(NAMESPACE, f"document:{source}") for _, source, _ in docs]
    with conn.cursor().copy(
        "COPY public.documents (id, user_id, title, source, content, created_at, updated_at)"
        " FROM STDIN"
    ) as copy:
        for i, (title, source, text) in enumerate(docs):
            created = EPOCH + timedelta(days=1, minutes=i)
            copy.write_row(
                (ids[i], user_ids[i % len(user_ids)], title, source, text, created, created)
            )
    return ids


def _load_chunks(
    conn: psycopg.Connection,
    chunks: list[_Chunk],
    vectors: np.ndarray,
    doc_ids: list[uuid.UUID],
    user_ids: list[uuid.UUID],
) -> None:
    with conn.cursor().copy(
        "COPY public.vector_embeddings (id, document_id, user_id, content, embedding, created_at)"
        " FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["varchar", "uuid", "uuid", "text", "vector", "timestamptz"])
        for i, (piece, vector) in enumerate(zip(chunks, vectors, strict=True)):
            copy.write_row(
                (
                    piece.id,
                    doc_ids[piece.document_index],
                    user_ids[piece.document_index % len(user_ids)],
                    piece.text,
                    vector,
                    EPOCH + timedelta(days=2, seconds=i),
                )
            )


def _load_query_log(
    conn: psycopg.Connection, chunks: list[_Chunk], user_ids: list[uuid.UUID]
) -> None:
    """Past questions: the first sentence of every 10th chunk, as a user once asked it."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO public.query_log (user_id, query, result_count, created_at)"
            " VALUES (%s, %s, %s, %s)",
            [
                (
                    user_ids[i % len(user_ids)],
                    piece.text.split(". ")[0][:200],
                    10,
                    EPOCH + timedelta(days=3, minutes=i),
                )
                for i, piece in enumerate(chunks[::10])
            ],
        )
