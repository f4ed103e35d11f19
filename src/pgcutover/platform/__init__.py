"""Platform parts of a database: what belongs to the service around it (Supabase's Auth,
Storage, Vault, Realtime, PostgREST) or to the server's superuser, rather than to the app's
schema: discovered from the catalog, judged against what the target gives."""
