"""Both sides reachable, their versions, and pgvector installed (the guide's step 1)."""

from __future__ import annotations

from pgcutover.catalog import available_extension, extension_version, server_version
from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.config import Settings
from pgcutover.db import DataRole, Endpoint, connection

AREA = "connectivity"


def _side(endpoint: Endpoint, role: DataRole) -> list[CheckResult]:
    with connection(endpoint, role=role) as conn:
        version = server_version(conn)
        installed = extension_version(conn, "vector")
        available = available_extension(conn, "vector")
    reach = outcome(
        f"connectivity.{role}",
        AREA,
        True,
        f"{endpoint.label} answers: PostgreSQL {version}",
        actual=version,
    )
    if installed:
        message = f"pgvector {installed} installed on {endpoint.label}"
    elif available:
        message = f"pgvector is available on {endpoint.label} but not installed in the database"
    else:
        message = f"pgvector extension not available on {endpoint.label}"
    vector = outcome(
        f"extension.vector.{role}",
        AREA,
        installed is not None,
        message,
        expected="vector installed",
        actual=installed or ("available " + available if available else "not available"),
        remedy=(
            "CREATE EXTENSION vector; in the database (the guide's step 1)"
            if available
            else "install pgvector on the server: SELECT * FROM pg_available_extensions WHERE "
            "name = 'vector' must list it; on managed PostgreSQL choose a version that "
            "supports pgvector, self-hosted install it from a package or source"
        ),
    )
    return [reach, vector]


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """Reachability, server version and the vector extension, on each side."""
    return [
        *guarded("connectivity.source", AREA, lambda: _side(pair.source, "source"), pair),
        *guarded("connectivity.target", AREA, lambda: _side(pair.target, "target"), pair),
    ]
