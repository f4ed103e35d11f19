"""The Supabase platform's shape in plain SQL (no framework): `auth` and `storage` schemas
owned by their service roles, auth.uid()/auth.role()/auth.jwt() reading request.jwt.claims,
app tables whose RLS policies are written against the caller's identity, the API roles'
grants and default privileges, and document_sections with an HNSW inner-product index as
Supabase's RAG template ("chatgpt-your-files") builds it, queried through a SQL function."""

from __future__ import annotations

import uuid

import bcrypt
import psycopg

from zoo_input import USERS, Chunk, chunks, vector_literal

NAMESPACE = uuid.UUID("5a0f3f0e-4a53-4f55-b5c2-3d1f5f2b8c01")

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;
CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
CREATE SCHEMA storage AUTHORIZATION supabase_storage_admin;
GRANT USAGE ON SCHEMA auth, storage, extensions TO anon, authenticated, service_role;
SET search_path = public, extensions;

CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
$$;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT nullif(auth.jwt() ->> 'sub', '')::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT auth.jwt() ->> 'role'
$$;
ALTER FUNCTION auth.jwt() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.role() OWNER TO supabase_auth_admin;

CREATE TABLE auth.users (
    instance_id uuid,
    id uuid PRIMARY KEY,
    aud varchar(255),
    role varchar(255),
    email varchar(255) UNIQUE,
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    created_at timestamptz,
    updated_at timestamptz
);
ALTER TABLE auth.users OWNER TO supabase_auth_admin;

CREATE TABLE storage.buckets (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    owner uuid REFERENCES auth.users (id),
    public boolean NOT NULL DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE storage.objects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bucket_id text REFERENCES storage.buckets (id),
    name text NOT NULL,
    owner uuid,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    metadata jsonb,
    path_tokens text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
    UNIQUE (bucket_id, name)
);
ALTER TABLE storage.buckets OWNER TO supabase_storage_admin;
ALTER TABLE storage.objects OWNER TO supabase_storage_admin;
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Authenticated users can upload files" ON storage.objects
    FOR INSERT TO authenticated
    WITH CHECK (bucket_id = 'files' AND owner = auth.uid());
CREATE POLICY "Users can view their own files" ON storage.objects
    FOR SELECT TO authenticated
    USING (bucket_id = 'files' AND owner = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA storage
    TO authenticated, service_role;

CREATE TABLE public.profiles (
    id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    username text UNIQUE,
    full_name text,
    updated_at timestamptz
);
CREATE TABLE public.documents (
    id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
    name text NOT NULL,
    storage_object_id uuid NOT NULL REFERENCES storage.objects (id),
    created_by uuid NOT NULL DEFAULT auth.uid() REFERENCES auth.users (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.document_sections (
    id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
    document_id bigint NOT NULL REFERENCES public.documents (id) ON DELETE CASCADE,
    content text NOT NULL,
    embedding extensions.vector(384)
);
CREATE INDEX ON public.documents (created_by);
CREATE INDEX ON public.document_sections (document_id);

ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.document_sections ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Public profiles are viewable by everyone" ON public.profiles
    FOR SELECT USING (true);
CREATE POLICY "Users can update their own profile" ON public.profiles
    FOR UPDATE TO authenticated USING (auth.uid() = id);
CREATE POLICY "Users can insert documents" ON public.documents
    FOR INSERT TO authenticated WITH CHECK (auth.uid() = created_by);
CREATE POLICY "Users can query their own documents" ON public.documents
    FOR SELECT TO authenticated USING (auth.uid() = created_by);
CREATE POLICY "Users can insert document sections" ON public.document_sections
    FOR INSERT TO authenticated WITH CHECK (
        document_id IN (SELECT id FROM public.documents WHERE created_by = auth.uid())
    );
CREATE POLICY "Users can query their own document sections" ON public.document_sections
    FOR SELECT TO authenticated USING (
        document_id IN (SELECT id FROM public.documents WHERE created_by = auth.uid())
    );

CREATE FUNCTION public.match_document_sections(
    embedding extensions.vector(384), match_threshold float
) RETURNS SETOF public.document_sections LANGUAGE plpgsql AS $$
#variable_conflict use_variable
BEGIN
    RETURN QUERY
    SELECT * FROM public.document_sections
    WHERE document_sections.embedding <#> embedding < -match_threshold
    ORDER BY document_sections.embedding <#> embedding;
END;
$$;

GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT SELECT ON public.profiles TO anon;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO authenticated;
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO authenticated, service_role;
REVOKE EXECUTE ON FUNCTION public.match_document_sections FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.match_document_sections TO authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO authenticated;
"""

INDEXES = """
CREATE INDEX ON public.document_sections USING hnsw (embedding extensions.vector_ip_ops);
"""


def password_hash(email: str) -> str:
    """A bcrypt hash as GoTrue stores it (cost 4 here: generating stays fast)."""
    return bcrypt.hashpw(f"zoo-passphrase:{email}".encode(), bcrypt.gensalt(4)).decode()


def user_id(number: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"user:{number}")


def load(conn: psycopg.Connection, pieces: list[Chunk]) -> None:
    with conn.cursor() as cur:
        for number in range(USERS):
            email = f"member{number}@zoo.example.org"
            cur.execute(
                "INSERT INTO auth.users (id, aud, role, email, encrypted_password,"
                " email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at,"
                " updated_at) VALUES (%s, 'authenticated', 'authenticated', %s, %s,"
                " '2026-01-05', '{\"provider\": \"email\"}', '{}', '2026-01-05', '2026-01-05')",
                (user_id(number), email, password_hash(email)),
            )
            cur.execute(
                "INSERT INTO public.profiles VALUES (%s, %s, %s, '2026-01-05')",
                (user_id(number), f"member{number}", f"Zoo member {number}"),
            )
        cur.execute("INSERT INTO storage.buckets (id, name) VALUES ('files', 'files')")
        documents: dict[int, int] = {}
        for piece in pieces:
            if piece.document in documents:
                continue
            owner = user_id(piece.user)
            object_id = uuid.uuid5(NAMESPACE, f"object:{piece.source}")
            cur.execute(
                "INSERT INTO storage.objects (id, bucket_id, name, owner, created_at, updated_at,"
                " metadata) VALUES (%s, 'files', %s, %s, '2026-01-06', '2026-01-06',"
                ' \'{"mimetype": "text/plain"}\')',
                (object_id, f"{owner}/{piece.source}.txt", owner),
            )
            row = cur.execute(
                "INSERT INTO public.documents (name, storage_object_id, created_by, created_at)"
                " VALUES (%s, %s, %s, '2026-01-06') RETURNING id",
                (piece.title, object_id, owner),
            ).fetchone()
            documents[piece.document] = row[0]
        with cur.copy(
            "COPY public.document_sections (document_id, content, embedding) FROM STDIN"
        ) as copy:
            for piece in pieces:
                copy.write_row(
                    (documents[piece.document], piece.text, vector_literal(piece.embedding))
                )


def main() -> None:
    with psycopg.connect() as conn:  # libpq's PG* variables name the database
        conn.execute("CREATE SCHEMA extensions")
        conn.execute(SCHEMA)
        load(conn, chunks())
        conn.execute(INDEXES)


if __name__ == "__main__":
    main()
