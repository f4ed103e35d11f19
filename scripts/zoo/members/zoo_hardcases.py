"""The hard cases in plain SQL (PostgreSQL 18 + pgvector 0.8: halfvec): a chunk table
partitioned by tenant whose HNSW index is an expression index on embedding::halfvec(384), a
halfvec column with its own index, a vector column with no index in a table without any key,
generated columns, enums and domains."""

from __future__ import annotations

from collections import defaultdict

import psycopg

from zoo_input import Chunk, chunks, vector_literal
from zoo_projection import mean

TENANTS = ("acme", "globex", "initech")

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA kb;
CREATE TYPE kb.doc_kind AS ENUM ('reference', 'module');
CREATE DOMAIN kb.tenant AS varchar(32) CHECK (VALUE ~ '^[a-z0-9-]+$');
CREATE DOMAIN kb.passage AS text CHECK (length(VALUE) BETWEEN 1 AND 10000);
CREATE TABLE kb.documents (
    id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
    tenant kb.tenant NOT NULL,
    kind kb.doc_kind NOT NULL,
    title text NOT NULL,
    source text NOT NULL UNIQUE,
    slug text GENERATED ALWAYS AS (lower(regexp_replace(title, '[^A-Za-z0-9]+', '-', 'g'))) STORED
);
CREATE TABLE kb.chunks (
    tenant kb.tenant NOT NULL,
    id bigint NOT NULL,
    document_id bigint NOT NULL REFERENCES kb.documents (id),
    content kb.passage NOT NULL,
    content_chars integer GENERATED ALWAYS AS (length(content)) STORED,
    embedding vector(384) NOT NULL,
    PRIMARY KEY (tenant, id)
) PARTITION BY LIST (tenant);
CREATE TABLE kb.summaries (
    document_id bigint PRIMARY KEY REFERENCES kb.documents (id),
    summary_embedding halfvec(384) NOT NULL
);
CREATE TABLE kb.asked (
    asked_at timestamptz NOT NULL,
    tenant kb.tenant NOT NULL,
    question text NOT NULL,
    embedding vector(384)
);
"""

INDEXES = """
CREATE INDEX chunks_embedding_halfvec_idx ON kb.chunks
    USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops);
CREATE INDEX chunks_document_id_idx ON kb.chunks (document_id);
CREATE INDEX summaries_embedding_idx ON kb.summaries
    USING hnsw (summary_embedding halfvec_cosine_ops) WITH (m = 8, ef_construction = 32);
"""


def load(conn: psycopg.Connection, pieces: list[Chunk]) -> None:
    by_document: dict[int, list[Chunk]] = defaultdict(list)
    for piece in pieces:
        by_document[piece.document].append(piece)
    with conn.cursor() as cur:
        for tenant in TENANTS:
            cur.execute(
                f"CREATE TABLE kb.chunks_{tenant} PARTITION OF kb.chunks FOR VALUES IN ('{tenant}')"
            )
        for document, parts in by_document.items():
            first = parts[0]
            tenant = TENANTS[document % len(TENANTS)]
            kind = "reference" if first.source.startswith("pydoc:") else "module"
            row = cur.execute(
                "INSERT INTO kb.documents (tenant, kind, title, source) VALUES (%s, %s, %s, %s)"
                " RETURNING id",
                (tenant, kind, first.title, first.source),
            ).fetchone()
            cur.execute(
                "INSERT INTO kb.summaries VALUES (%s, %s)",
                (row[0], vector_literal(mean([p.embedding for p in parts]))),
            )
            with cur.copy(
                "COPY kb.chunks (tenant, id, document_id, content, embedding) FROM STDIN"
            ) as copy:
                for piece in parts:
                    copy.write_row(
                        (tenant, piece.number, row[0], piece.text, vector_literal(piece.embedding))
                    )
        with cur.copy("COPY kb.asked (asked_at, tenant, question, embedding) FROM STDIN") as copy:
            for piece in pieces[::8]:
                copy.write_row(
                    (
                        f"2026-01-08 00:00:{piece.number % 60:02d}",
                        TENANTS[piece.document % len(TENANTS)],
                        piece.text,
                        vector_literal(piece.embedding),
                    )
                )


def main() -> None:
    with psycopg.connect() as conn:  # libpq's PG* variables name the database
        conn.execute(SCHEMA)
        load(conn, chunks())
        conn.execute(INDEXES)


if __name__ == "__main__":
    main()
