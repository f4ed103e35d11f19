"""Platform parts: roles, publications, event triggers, Supabase Vault, Storage and Auth,
judged against the target; a finding blocks the GO until acknowledged in targets.toml."""


def test_platform_parts(pgcutover):
    pgcutover.verify("platform")
