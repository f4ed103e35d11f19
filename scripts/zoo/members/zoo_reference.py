"""The reference user's database (DESIGN.md, issue 10) in plain SQL: two
`<collection>_vectors` chunk tables with ivfflat cosine indexes and user_id/document_id btree
indexes, a relational documents table with a second vector column of 1536 dimensions, pg_trgm
indexes, Supabase-style roles with grants and an RLS policy on the caller's identity, and an
audit log without a primary key."""

from __future__ import annotations

import uuid
from collections import defaultdict

import psycopg

from zoo_input import USERS, Chunk, chunks, vector_literal
from zoo_projection import mean, project

NAMESPACE = uuid.UUID("c3b1a2d4-8e0f-4c1a-9b7d-2f6e5a4c3b21")
COLLECTIONS = ("knowledge", "policies")

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE public.users (
    id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE,
    display_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.documents (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES public.users (id),
    collection text NOT NULL,
    title text NOT NULL,
    source text NOT NULL,
    summary_embedding vector(1536),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_user_id_idx ON public.documents (user_id);
CREATE INDEX documents_title_trgm_idx ON public.documents USING gin (title gin_trgm_ops);
CREATE INDEX users_display_name_trgm_idx ON public.users USING gist (display_name gist_trgm_ops);
CREATE TABLE public.audit_log (
    at timestamptz NOT NULL DEFAULT now(),
    user_id uuid,
    action text NOT NULL,
    detail jsonb
);
CREATE INDEX audit_log_at_idx ON public.audit_log (at);
ALTER TABLE public.documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY documents_owner ON public.documents FOR ALL TO authenticated
    USING (user_id = (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid);
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT SELECT ON public.users TO anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.documents TO authenticated;
GRANT INSERT ON public.audit_log TO authenticated;
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;
"""

COLLECTION_TABLE = """
CREATE TABLE public.{name}_vectors (
    id varchar PRIMARY KEY,
    document_id varchar NOT NULL,
    user_id varchar NOT NULL,
    content text NOT NULL,
    embedding vector(384) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON public.{name}_vectors TO authenticated;
GRANT ALL ON public.{name}_vectors TO service_role;
"""

COLLECTION_INDEXES = """
CREATE INDEX {name}_vectors_embedding_idx ON public.{name}_vectors
    USING ivfflat (embedding vector_cosine_ops) WITH (lists = 25);
CREATE INDEX {name}_vectors_user_id_idx ON public.{name}_vectors (user_id);
CREATE INDEX {name}_vectors_document_id_idx ON public.{name}_vectors (document_id);
"""


def key(kind: str, value: object) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{kind}:{value}")


def load(conn: psycopg.Connection, pieces: list[Chunk]) -> None:
    by_document: dict[int, list[Chunk]] = defaultdict(list)
    for piece in pieces:
        by_document[piece.document].append(piece)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO public.users VALUES (%s, %s, %s, '2026-01-05')",
            [
                (key("user", n), f"member{n}@zoo.example.org", f"Zoo Member {n}")
                for n in range(USERS)
            ],
        )
        for document, parts in by_document.items():
            first = parts[0]
            collection = COLLECTIONS[document % 2]
            cur.execute(
                "INSERT INTO public.documents VALUES (%s, %s, %s, %s, %s, %s, '2026-01-06')",
                (
                    key("document", document),
                    key("user", first.user),
                    collection,
                    first.title,
                    first.source,
                    vector_literal(project(mean([p.embedding for p in parts]))),
                ),
            )
            with cur.copy(
                f"COPY public.{collection}_vectors (id, document_id, user_id, content,"
                " embedding, created_at) FROM STDIN"
            ) as copy:
                for piece in parts:
                    copy.write_row(
                        (
                            f"{collection}-{piece.number}",
                            str(key("document", document)),
                            str(key("user", piece.user)),
                            piece.text,
                            vector_literal(piece.embedding),
                            "2026-01-07",
                        )
                    )
            cur.execute(
                "INSERT INTO public.audit_log (at, user_id, action, detail)"
                " VALUES ('2026-01-06', %s, 'document.indexed', %s)",
                (key("user", first.user), f'{{"chunks": {len(parts)}}}'),
            )


def main() -> None:
    with psycopg.connect() as conn:  # libpq's PG* variables name the database
        conn.execute(SCHEMA)
        for name in COLLECTIONS:
            conn.execute(COLLECTION_TABLE.format(name=name))
        load(conn, chunks())
        for name in COLLECTIONS:
            conn.execute(COLLECTION_INDEXES.format(name=name))


if __name__ == "__main__":
    main()
