-- Supabase's platform roles, as a self-hosted Supabase database has them (cluster-wide:
-- created once per server; pg_dump of the database does not carry them).
DO $$
DECLARE
    wanted text[][] := ARRAY[
        ['supabase_admin', 'LOGIN SUPERUSER CREATEROLE CREATEDB REPLICATION BYPASSRLS'],
        ['anon', 'NOLOGIN NOINHERIT'],
        ['authenticated', 'NOLOGIN NOINHERIT'],
        ['service_role', 'NOLOGIN NOINHERIT BYPASSRLS'],
        ['authenticator', 'LOGIN NOINHERIT'],
        ['supabase_auth_admin', 'LOGIN NOINHERIT CREATEROLE'],
        ['supabase_storage_admin', 'LOGIN NOINHERIT CREATEROLE'],
        ['supabase_replication_admin', 'LOGIN REPLICATION']
    ];
    role text[];
BEGIN
    FOREACH role SLICE 1 IN ARRAY wanted LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role[1]) THEN
            EXECUTE format('CREATE ROLE %I %s', role[1], role[2]);
        END IF;
    END LOOP;
END
$$;
GRANT anon, authenticated, service_role TO authenticator;
