"""The guide's step 6 ("Verify production") on the target, inside one transaction that is
rolled back: a new user signs up (auth.users + public.users, bcrypt as GoTrue stores it) and
logs in, uploads a document that is chunked and embedded, then runs the app's filtered query
as that user (role `authenticated`, row-level security on) and must get the new document's
matching chunk first. Afterwards nothing of it may remain. "Test user authentication" also
checks a migrated user: a known rehearsal password against its migrated bcrypt hash."""

from __future__ import annotations

import uuid
from typing import Any

import bcrypt
import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.checks.search import shapes
from pgcutover.checks.search.shapes import AREA, SearchConfig, Shape
from pgcutover.config import Settings
from pgcutover.dataset.corpus import chunk
from pgcutover.dataset.embedder import Embedder
from pgcutover.dataset.seed import rehearsal_passphrase
from pgcutover.db import connect, connection

#: GoTrue's bcrypt cost.
BCRYPT_COST = 10
APP_ROLE = "authenticated"


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0])  # type: ignore[index]


def _search(
    conn: psycopg.Connection, shape: Shape, config: SearchConfig, vector: np.ndarray, user: str
) -> list[str]:
    """The shape's query returning each row's text, filtered by `user` when it is filtered."""
    where = sql.SQL("")
    if shape.filter_column:
        where = sql.SQL(" WHERE {} = %(f)s").format(sql.Identifier(shape.filter_column))
    query = sql.SQL("SELECT {text} FROM {t}{w} ORDER BY {c} {op} %(q)s::vector LIMIT %(k)s").format(
        text=sql.Identifier(config.drift.content_column),
        t=sql.Identifier(shape.schema, shape.table),
        w=where,
        c=sql.Identifier(shape.column),
        op=sql.SQL(shape.operator),
    )
    rows = conn.execute(query, {"q": vector, "f": user, "k": shape.k}).fetchall()
    return [row[0] for row in rows]


def _session(
    conn: psycopg.Connection, settings: Settings, config: SearchConfig, found: list[Shape]
) -> dict[str, Any]:
    """Everything the new user does, in the caller's open transaction."""
    user_id = uuid.uuid4()
    email = f"pgcutover-smoke-{user_id.hex[:12]}@example.invalid"
    password = uuid.uuid4().hex
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
    conn.execute(
        "INSERT INTO auth.users (id, email, encrypted_password, email_confirmed_at)"
        " VALUES (%s, %s, %s, now())",
        (user_id, email, hashed),
    )
    conn.execute(
        "INSERT INTO public.users (id, email, display_name) VALUES (%s, %s, %s)",
        (user_id, email, "pgcutover smoke test"),
    )
    stored = conn.execute(
        "SELECT encrypted_password FROM auth.users WHERE email = %s", (email,)
    ).fetchone()
    login = bool(stored) and bcrypt.checkpw(password.encode(), stored[0].encode())  # type: ignore[index]
    document_id = uuid.uuid4()
    text = config.smoke.document.strip()
    conn.execute(
        "INSERT INTO public.documents (id, user_id, title, source, content)"
        " VALUES (%s, %s, %s, %s, %s)",
        (document_id, user_id, "pgcutover smoke test", "pgcutover:smoke", text),
    )
    pieces = chunk(text)
    embedder = Embedder(settings.embedding_model, settings.cache_dir)
    try:
        vectors = embedder.embed([*pieces, config.smoke.question])
    finally:
        embedder.close()
    question = vectors[-1]
    expected = pieces[int(np.argmax(vectors[:-1] @ question))]
    register_vector(conn)
    filtered = next(shape for shape in found if shape.filter_column)
    insert = sql.SQL(
        "INSERT INTO {t} (id, document_id, {u}, {text}, {c}) VALUES (%s, %s, %s, %s, %s)"
    )
    insert = insert.format(
        t=sql.Identifier(filtered.schema, filtered.table),
        u=sql.Identifier(filtered.filter_column),  # type: ignore[arg-type]
        text=sql.Identifier(config.drift.content_column),
        c=sql.Identifier(filtered.column),
    )
    for n, (piece, vector) in enumerate(zip(pieces, vectors[:-1], strict=True)):
        conn.execute(insert, (f"{document_id}:{n}", document_id, user_id, piece, vector))
    unfiltered = next((shape for shape in found if not shape.filter_column), None)
    everyone = _search(conn, unfiltered, config, question, str(user_id)) if unfiltered else []
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(APP_ROLE)))
    conn.execute("SELECT set_config('request.jwt.claim.sub', %s, true)", (str(user_id),))
    as_user = _search(conn, filtered, config, question, str(user_id))
    conn.execute("RESET ROLE")
    return {
        "user_id": str(user_id),
        "email": email,
        "login": login,
        "chunks": len(pieces),
        "expected": expected,
        "as_user": as_user,
        "unfiltered_rank": everyone.index(expected) + 1 if expected in everyone else None,
        "shapes": {
            "filtered": filtered.name,
            "unfiltered": unfiltered.name if unfiltered else None,
        },
    }


def _leftovers(conn: psycopg.Connection, user_id: str, chunks: Shape) -> dict[str, int]:
    """Rows of the smoke user still present, per table (all must be 0 after the rollback)."""
    counts = {}
    for schema, table, column in (
        ("auth", "users", "id"),
        ("public", "users", "id"),
        ("public", "documents", "user_id"),
        (chunks.schema, chunks.table, chunks.filter_column),
    ):
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
            sql.Identifier(schema, table),
            sql.Identifier(column),  # type: ignore[arg-type]
        )
        counts[f"{schema}.{table}"] = int(conn.execute(query, (user_id,)).fetchone()[0])  # type: ignore[index]
    return counts


def _app(pair: Pair, settings: Settings) -> list[CheckResult]:
    check_id = "search.smoke.app"
    config = shapes.load(settings)
    with connection(pair.source, role="source") as conn:
        found, problems = shapes.discover(conn, config, settings)
    if problems or not any(shape.filter_column for shape in found):
        return [CheckResult(check_id, AREA, "skip", "no filtered query shape to run as a user")]
    conn = connect(pair.target, role="target", autocommit=False)
    try:
        missing = [
            t for t in ("auth.users", "public.users", "public.documents") if not _exists(conn, t)
        ]
        if missing:
            return [
                outcome(
                    check_id,
                    AREA,
                    False,
                    f"the app's tables {', '.join(missing)} are missing on the target",
                    remedy="rerun the migration",
                )
            ]
        session = _session(conn, settings, config, found)
    finally:
        conn.rollback()
        conn.close()
    chunks = next(shape for shape in found if shape.filter_column)
    with connection(pair.target, role="target") as verify:
        left = _leftovers(verify, session["user_id"], chunks)
    first = session["as_user"][0] if session["as_user"] else None
    problems_found = []
    if not session["login"]:
        problems_found.append("the new user's bcrypt password did not verify")
    if first != session["expected"]:
        problems_found.append(
            f"as the user, the {session['shapes']['filtered']} query returned "
            f"{len(session['as_user'])} rows and not the new document's matching chunk first"
        )
    if session["shapes"]["unfiltered"] and session["unfiltered_rank"] is None:
        problems_found.append(
            f"the {session['shapes']['unfiltered']} query did not find the new chunk in its top "
            "rows (is the vector index taking new rows?)"
        )
    if any(left.values()):
        problems_found.append(f"rows were left behind after the rollback: {left}")
    message = (
        f"sign-up + login, upload of a {session['chunks']}-chunk document, the "
        f"{session['shapes']['filtered']} query as that user (role {APP_ROLE}, row-level "
        f"security): the new chunk came first"
        + (
            f", rank {session['unfiltered_rank']} in the unfiltered query"
            if session["unfiltered_rank"]
            else ""
        )
        + "; rolled back, nothing left behind"
    )
    details = {key: session[key] for key in ("chunks", "login", "unfiltered_rank", "shapes")}
    details["returned_as_user"] = len(session["as_user"])
    details["left_behind"] = left
    return [
        outcome(
            check_id,
            AREA,
            not problems_found,
            "; ".join(problems_found) if problems_found else message,
            details=details,
            remedy=(
                "the app's write and search path fails on the target: check the roles and "
                "grants (anon, authenticated, service_role), the row-level security policies, "
                "the vector index and the search.plan checks"
            ),
        )
    ]


def _auth(pair: Pair, settings: Settings) -> list[CheckResult]:
    """A migrated user's bcrypt hash: the same as on the source and, in a rehearsal, the known
    fixture password verifies against it (a wrong one must not)."""
    check_id = "search.smoke.auth"
    with connection(pair.target, role="target") as conn:
        if not _exists(conn, "auth.users"):
            return [CheckResult(check_id, AREA, "skip", "no auth.users table on the target")]
        row = conn.execute(
            "SELECT email, encrypted_password FROM auth.users ORDER BY email LIMIT 1"
        ).fetchone()
    if row is None:
        return [CheckResult(check_id, AREA, "skip", "auth.users is empty on the target")]
    email, hashed = row
    with connection(pair.source, role="source") as conn:
        source_row = conn.execute(
            "SELECT encrypted_password FROM auth.users WHERE email = %s", (email,)
        ).fetchone()
    same = source_row is not None and source_row[0] == hashed
    details: dict[str, Any] = {"email": email, "hash_matches_source": same}
    if settings.rehearsal:
        verified = bcrypt.checkpw(rehearsal_passphrase(email).encode(), hashed.encode())
        rejected = not bcrypt.checkpw(b"not-the-password", hashed.encode())
        details.update(known_password_verifies=verified, wrong_password_rejected=rejected)
        ok = same and verified and rejected
        message = (
            f"{email}: the rehearsal password {'verifies' if verified else 'does NOT verify'} "
            f"against the migrated bcrypt hash, a wrong one is "
            f"{'rejected' if rejected else 'ACCEPTED'}; hash "
            f"{'identical to' if same else 'DIFFERENT from'} the source's"
        )
    else:
        ok = same
        message = (
            f"{email}: the migrated bcrypt hash is {'identical to' if same else 'DIFFERENT from'} "
            "the source's (no known password outside a rehearsal: log in through the app)"
        )
    return [
        outcome(
            check_id,
            AREA,
            ok,
            message,
            details=details,
            remedy=(
                "auth.users.encrypted_password must be copied byte for byte (no re-encoding, "
                "no trimming): rerun the migration and compare the auth schema"
            ),
        )
    ]


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.smoke.app (sign-up, upload, search as the user, rolled back) and
    search.smoke.auth (a migrated user's password against its bcrypt hash)."""
    return [
        *guarded("search.smoke.app", AREA, lambda: _app(pair, settings), pair),
        *guarded("search.smoke.auth", AREA, lambda: _auth(pair, settings), pair),
    ]
