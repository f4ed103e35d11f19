-- Supabase's platform layout, laid over a copy of pgcutover's seeded RAG database (its
-- users, documents and real-embedding chunks are the app): extensions moved into their
-- own schema and found through the database's search_path, GoTrue's auth schema owned by
-- the platform roles with auth.uid() reading the caller's JWT, Storage metadata, Vault
-- secrets (a stand-in table: supabase_vault and pgsodium are not installable on the
-- embedded servers), a realtime publication, and PostgREST's schema-cache event trigger.
CREATE SCHEMA extensions;
ALTER EXTENSION vector SET SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET search_path = "$user", public, extensions',
                   current_database());
END
$$;

-- GoTrue: its schema belongs to the platform's superuser, its tables to its own role.
ALTER SCHEMA auth OWNER TO supabase_admin;
GRANT USAGE ON SCHEMA auth TO anon, authenticated;
GRANT ALL ON SCHEMA auth TO supabase_auth_admin;
ALTER TABLE auth.users OWNER TO supabase_auth_admin;
ALTER TABLE auth.users ADD COLUMN raw_user_meta_data jsonb NOT NULL DEFAULT '{}';
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
    )::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
    )
$$;
ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;
ALTER FUNCTION auth.role() OWNER TO supabase_auth_admin;

-- A new GoTrue user gets an app profile (the trigger on auth.users Supabase apps use).
CREATE TABLE public.profiles (
    id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    display_name text
);
INSERT INTO public.profiles (id, display_name) SELECT id, email FROM auth.users;
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY profiles_self ON public.profiles FOR ALL TO authenticated
    USING (id = auth.uid());
CREATE FUNCTION public.handle_new_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    INSERT INTO public.profiles (id, display_name)
    VALUES (NEW.id, coalesce(NEW.raw_user_meta_data ->> 'name', NEW.email));
    RETURN NEW;
END
$$;
CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users
    FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();

-- The app's RLS on the caller's JWT identity, and its RPC over the chunks.
ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_self ON public.users FOR ALL TO authenticated USING (id = auth.uid());
CREATE POLICY query_log_owner ON public.query_log FOR ALL TO authenticated
    USING (user_id = auth.uid());
ALTER TABLE public.query_log ENABLE ROW LEVEL SECURITY;
CREATE FUNCTION public.match_chunks(query extensions.vector, match_count integer)
RETURNS TABLE (id varchar, content text, distance double precision)
LANGUAGE sql STABLE AS $$
    SELECT c.id, c.content, c.embedding OPERATOR(extensions.<=>) query
    FROM public.vector_embeddings c
    WHERE c.user_id = auth.uid()
    ORDER BY c.embedding OPERATOR(extensions.<=>) query
    LIMIT match_count
$$;
GRANT EXECUTE ON FUNCTION public.match_chunks(extensions.vector, integer) TO authenticated;

-- Storage: the metadata lives here, the files in Storage's own backend.
CREATE SCHEMA storage AUTHORIZATION supabase_admin;
GRANT USAGE ON SCHEMA storage TO anon, authenticated, service_role;
GRANT ALL ON SCHEMA storage TO supabase_storage_admin;
CREATE TABLE storage.buckets (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    public boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE storage.objects (
    id uuid PRIMARY KEY,
    bucket_id text NOT NULL REFERENCES storage.buckets (id),
    name text NOT NULL,
    owner uuid,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket_id, name)
);
ALTER TABLE storage.buckets OWNER TO supabase_storage_admin;
ALTER TABLE storage.objects OWNER TO supabase_storage_admin;
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
CREATE POLICY objects_owner ON storage.objects FOR ALL TO authenticated
    USING (owner = auth.uid());
INSERT INTO storage.buckets (id, name, public) VALUES ('avatars', 'avatars', true),
    ('uploads', 'uploads', false);
INSERT INTO storage.objects (id, bucket_id, name, metadata)
SELECT md5('object' || n)::uuid, CASE WHEN n % 3 = 0 THEN 'avatars' ELSE 'uploads' END,
       'file-' || n || '.pdf', jsonb_build_object('size', 1000 * n, 'mimetype', 'application/pdf')
FROM generate_series(1, 12) AS n;

-- Vault (stand-in for supabase_vault): the names may be listed, the secrets never.
CREATE SCHEMA vault AUTHORIZATION supabase_admin;
CREATE TABLE vault.secrets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text UNIQUE,
    description text NOT NULL DEFAULT '',
    secret text NOT NULL,
    key_id uuid,
    nonce bytea,
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE vault.secrets OWNER TO supabase_admin;
INSERT INTO vault.secrets (name, description, secret) VALUES
    ('openai_api_key', 'embeddings fallback', 'vault-value-never-printed-1'),
    ('smtp_password', 'auth emails', 'vault-value-never-printed-2');

-- Realtime streams the changes of the tables in this publication.
CREATE PUBLICATION supabase_realtime;
ALTER PUBLICATION supabase_realtime ADD TABLE public.documents;

-- PostgREST reloads its schema cache when DDL runs (Supabase's pgrst_ddl_watch).
CREATE FUNCTION extensions.pgrst_ddl_watch() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
    NOTIFY pgrst, 'reload schema';
END
$$;
CREATE EVENT TRIGGER pgrst_ddl_watch ON ddl_command_end
    EXECUTE FUNCTION extensions.pgrst_ddl_watch();
