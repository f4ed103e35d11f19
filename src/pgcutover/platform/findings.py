"""Platform findings: what does not move with the database, or moves but stops working, each
with its consequence and what the owner must do. A blocking finding holds the GO until the
owner acknowledges it in targets.toml (`[platform] acknowledge = ["platform.vault", ...]`);
the plan lists the same findings before the move."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pgcutover.platform.parts import Auth, Bucket, EventTrigger, Publication, RlsTable

ACKNOWLEDGE_HINT = "then acknowledge it in targets.toml: [platform] acknowledge = [{id!r}]"


@dataclass(frozen=True)
class Finding:
    """One platform part the owner must know about; `blocking` ones hold the GO until
    acknowledged."""

    id: str
    message: str
    remedy: str = ""
    blocking: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """For the plan and the check's details."""
        return asdict(self)


def acknowledgement(finding_id: str, patterns: Iterable[str]) -> str | None:
    """The first acknowledge pattern (shell-style, e.g. `platform.role.*`) matching the id."""
    return next((p for p in patterns if fnmatch.fnmatchcase(finding_id, p)), None)


def _listed(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _size(count: int) -> str:
    step = 1024.0
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < step or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= step
    return f"{count} bytes"


def row_security_consequence(role: str, tables: Sequence[RlsTable]) -> str:
    """What row-level security does to `role` once it bypasses it no more."""
    bound = [table for table in tables if table.binds(role)]
    if not bound:
        return "no table with row-level security binds it"
    named = [t for t in bound if role in t.policy_roles or "PUBLIC" in t.policy_roles]
    unseen = [t.name for t in bound if t not in named]
    filtered = [t.name for t in bound if t.name not in unseen]
    parts = []
    if unseen:
        parts.append(f"it sees no rows of {_listed(unseen)} (no policy names it)")
    if filtered:
        parts.append(f"policies now decide which rows of {_listed(filtered)} it sees")
    return "row-level security applies to it: " + "; ".join(parts)


def role_finding(role: str, lost: Sequence[str], tables: Sequence[RlsTable]) -> Finding:
    """A role that has SUPERUSER, BYPASSRLS or REPLICATION on the source and not on the
    target, with what that changes."""
    finding_id = f"platform.role.{role}"
    consequences = []
    if "superuser" in lost:
        consequences.append(
            "it is no longer a superuser: what only a superuser may do (event triggers, "
            "untrusted extensions, server files, other roles' objects) fails for it"
        )
    if "superuser" in lost or "bypassrls" in lost:
        consequences.append(row_security_consequence(role, tables))
    if "replication" in lost:
        consequences.append(
            "it can no longer open replication connections or slots: WAL streaming, logical "
            "replication and decoding as this role stop"
        )
    attributes = ", ".join(attribute.upper() for attribute in lost)
    return Finding(
        id=finding_id,
        message=f"role {role} has {attributes} on the source, not on the target: "
        + "; ".join(consequences),
        remedy="where the app or a service relies on it, grant it on the target if the "
        "provider allows (Supabase gives service_role BYPASSRLS), or give the role the policies "
        f"it needs; {ACKNOWLEDGE_HINT.format(id=finding_id)}",
        details={"lost": list(lost)},
    )


def publication_consequence(publication: Publication) -> str:
    """What stops when the publication is missing."""
    return (
        f"nothing is published from the target for {publication.describe()}: Supabase "
        "Realtime and other logical-replication subscribers of it receive no changes"
    )


def publication_missing(publication: Publication, why: str | None) -> Finding:
    """A source publication that is not (or, in a plan, will not be) on the target; `why`
    says so in a few words."""
    finding_id = f"platform.publication.{publication.name}"
    return Finding(
        id=finding_id,
        message=f"publication {publication.name} is not on the target"
        + (f" ({why})" if why else "")
        + ": "
        + publication_consequence(publication),
        remedy="create it as a role the target allows (FOR ALL TABLES and TABLES IN SCHEMA "
        "need a superuser: ask the provider, or list the tables), or move Realtime to the "
        f"target project's own; {ACKNOWLEDGE_HINT.format(id=finding_id)}",
        details={"publication": asdict(publication), "why": why},
    )


def wal_level_finding(publication: Publication, wal_level: str) -> Finding:
    """A publication that moved to a server that decodes nothing."""
    finding_id = f"platform.publication.{publication.name}"
    return Finding(
        id=finding_id,
        message=f"publication {publication.name} moved, but the target's wal_level is "
        f"{wal_level}: logical decoding needs wal_level=logical, so "
        + publication_consequence(publication),
        remedy="set wal_level = logical on the target (RDS: rds.logical_replication = 1; Cloud "
        "SQL: cloudsql.logical_decoding = on; Azure: wal_level in server parameters; Supabase "
        f"has it on), restart; {ACKNOWLEDGE_HINT.format(id=finding_id)}",
        details={"publication": asdict(publication), "wal_level": wal_level},
    )


def event_trigger_missing(trigger: EventTrigger, why: str | None) -> Finding:
    """A source event trigger that is not (or, in a plan, will not be) on the target; `why`
    says so in a few words."""
    finding_id = f"platform.event_trigger.{trigger.name}"
    return Finding(
        id=finding_id,
        message=f"event trigger {trigger.name} is not on the target"
        + (f" ({why})" if why else "")
        + f": DDL on the target no longer runs {trigger.function} ({trigger.event}"
        + (f" for {', '.join(trigger.tags)}" if trigger.tags else "")
        + "), so whatever it does on schema changes (PostgREST's schema-cache reload, audit, "
        "grants) stops",
        remedy="PostgreSQL lets only superusers create event triggers: ask the provider (Supabase "
        "allows its postgres role), or do its work another way (e.g. reload PostgREST's schema "
        f"cache after migrations: NOTIFY pgrst, 'reload schema'); "
        f"{ACKNOWLEDGE_HINT.format(id=finding_id)}",
        details={"event_trigger": asdict(trigger), "why": why},
    )


def vault_finding(secrets: Sequence[str], keys: Sequence[str] | None) -> Finding:
    """Supabase Vault's secrets (and pgsodium's keys): their names, never their values."""
    keys_text = (
        f"; pgsodium holds {len(keys)} key(s) ({_listed(keys)}), whose root key lives on the "
        "source server, not in the database"
        if keys
        else ""
    )
    return Finding(
        id="platform.vault",
        message=f"Supabase Vault holds {len(secrets)} secret(s) ({_listed(secrets)}): the "
        "production stack reads secrets from environment variables (SECRETS_PROVIDER=env), "
        f"and the encrypted copies cannot be read without the source's key{keys_text}",
        remedy="set each secret as an environment variable of the app on the target side, "
        f"{ACKNOWLEDGE_HINT.format(id='platform.vault')}",
        details={"secret_names": list(secrets), "pgsodium_keys": list(keys or [])},
    )


def storage_finding(buckets: Sequence[Bucket]) -> Finding:
    """Storage objects the owner must copy: the database holds their metadata only."""
    stored = [bucket for bucket in buckets if bucket.objects]
    listed = [
        f"{b.name}: {b.objects} object(s), {_size(b.bytes)}"
        + (f" (+{b.unsized} of unknown size)" if b.unsized else "")
        for b in stored
    ]
    total = sum(bucket.bytes for bucket in stored)
    unsized = sum(bucket.unsized for bucket in stored)
    sizes = f"{_size(total)}" + (
        f" and {unsized} object(s) whose metadata gives no size" if unsized else ""
    )
    return Finding(
        id="platform.storage",
        message=f"Supabase Storage: the metadata of {sum(b.objects for b in stored)} "
        f"object(s) moved with the database, their files did not: {sizes} to copy "
        f"({'; '.join(listed)})",
        remedy="copy each bucket's files from the source's Storage backend (its file system "
        "or S3 bucket) to the production store (Cloudflare R2 or the target project's Storage), "
        f"keeping the object names; {ACKNOWLEDGE_HINT.format(id='platform.storage')}",
        details={"buckets": [asdict(bucket) for bucket in buckets], "bytes": total},
    )


def auth_note(auth: Auth) -> Finding:
    """GoTrue's tables move; what in them depends on the platform (never blocking)."""
    readers = _listed(auth.claim_readers) or "none"
    return Finding(
        id="platform.auth",
        message=f"GoTrue's {len(auth.tables)} table(s) in schema auth moved with the database "
        f"({_listed(auth.tables)}), owned by {', '.join(auth.owners)}. Platform dependencies: "
        f"functions reading the JWT claims the API sets per request ({readers}) and "
        f"{len(auth.policies)} policy(ies) using them ({_listed(auth.policies, 5) or 'none'}) "
        "see the caller only when Supabase Auth and PostgREST (or the app itself) set "
        "request.jwt.claims on the target; the roles they name (anon, authenticated, "
        "service_role) are the API's",
        blocking=False,
        details=asdict(auth),
    )
