"""The guide's step 6 ("Verify production") on the target, inside one transaction that is
rolled back, on the app's own chunk table (the inventory's first app vector column whose
text column and model are known):

- where the database has GoTrue's `auth.users`, a new user signs up (bcrypt, as GoTrue
  stores it) and the stored hash verifies;
- a new document is chunked, embedded with the column's model and inserted as the app
  would (a copy of an existing row with a new key, text and vector, so foreign keys and
  NOT NULL columns hold), then found by the question about it: through exact search, through
  the app's filtered query for the row's owner (the filter value with the fewest rows, so
  the owner's own rows decide), and, where row-level security guards the table, as the
  policy's role with the owner's identity (Supabase's request.jwt claims);
- afterwards nothing of it remains.

On a target pgcutover did not create this writes only with --test-writes: even rolled back,
an insert takes locks, uses sequence values and leaves dead entries in the vector index.
"Test user authentication" also checks a migrated user's bcrypt hash against the source's.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import Any

import bcrypt
import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from pgcutover.checks.base import SKIP, CheckResult, Pair, guarded, outcome
from pgcutover.checks.search import shapes
from pgcutover.checks.search.drift import skipped
from pgcutover.checks.search.shapes import AREA
from pgcutover.config import Settings
from pgcutover.dataset.corpus import chunk
from pgcutover.dataset.embedder import Embedder
from pgcutover.dataset.seed import rehearsal_passphrase
from pgcutover.db import connect, connection
from pgcutover.inventory import EmbeddingColumn, Inventory, Shape

#: GoTrue's bcrypt cost.
BCRYPT_COST = 10
#: Supabase's convention for the caller's identity, read by auth.uid() and by policies.
CLAIMS = ("request.jwt.claim.sub", "request.jwt.claims")

COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '',
       a.attidentity = 'a', pg_get_expr(d.adbin, d.adrelid) IS NOT NULL
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
#: The roles a table's SELECT policies apply to (PUBLIC excluded).
POLICY_ROLES = """
SELECT DISTINCT r.rolname FROM pg_policy p
CROSS JOIN LATERAL unnest(p.polroles) AS pr(oid)
JOIN pg_roles r ON r.oid = pr.oid
WHERE p.polrelid = %s::regclass AND p.polcmd IN ('r', '*')
ORDER BY 1
"""


def writes_allowed(pair: Pair, settings: Settings) -> bool:
    """The smoke test and the load's write shapes write only where pgcutover created the
    target, or where the user asked for it (--test-writes)."""
    return pair.target.ephemeral or settings.test_writes


def _app_column(inventory: Inventory) -> tuple[EmbeddingColumn | None, str]:
    """The app's chunk column to smoke-test, or None and why not."""
    reasons = []
    for column in inventory.app_vectors:
        reason = skipped(column)
        if reason is None:
            return column, ""
        reasons.append(reason)
    if not reasons:
        return None, (
            "the inventory shows no app vector column: set VECTOR_DB_DIMENSIONS or [inventory] "
            "app_columns"
        )
    return None, "; ".join(reasons)


#: Key types a fresh value can be made for (see _new_key).
FRESH_TYPES = ("text", "character", "uuid", "bigint", "integer", "smallint")


@dataclass(frozen=True)
class Insert:
    """How to insert a copy of an existing row with a new key, text and vector; `key_type`
    is the type of the key column given a fresh value (None: the server's default makes the
    key new, or the table has no key)."""

    statement: sql.Composed
    key_type: str | None


def _renewed(rows: list[tuple[Any, ...]], key: tuple[str, ...]) -> tuple[str | None, bool]:
    """The key column that makes the copy a new row (preferring one the server fills, then
    one named id, then the last: a composite key often leads with a tenant or partition
    column), and whether the server fills it."""
    columns = {name: (type_name, has_default) for name, type_name, _, _, has_default in rows}
    candidates = [name for name in key if name in columns]
    filled = [name for name in candidates if columns[name][1]]
    if filled:
        return filled[0], True
    fresh = [name for name in candidates if columns[name][0].startswith(FRESH_TYPES)]
    if not fresh:
        return None, False
    return ("id" if "id" in fresh else fresh[-1]), False


def _insert(conn: psycopg.Connection, column: EmbeddingColumn, key: tuple[str, ...]) -> Insert:
    """INSERT ... SELECT copying the template row (ctid %(row)s) except one key column, the
    text and the vector; generated and identity-always columns are left to the server."""
    table = sql.Identifier(column.schema, column.table)
    rows = conn.execute(COLUMNS, (f'"{column.schema}"."{column.table}"',)).fetchall()
    renewed, by_server = _renewed(rows, key)
    names, values = [], []
    key_type = None
    for name, type_name, generated, always, _ in rows:
        if generated or always or (name == renewed and by_server):
            continue
        names.append(sql.Identifier(name))
        if name == renewed:
            key_type = type_name
            values.append(sql.SQL("%(key)s::{}").format(sql.SQL(type_name)))
        elif name == column.text_column:
            values.append(sql.SQL("%(text)s"))
        elif name == column.column:
            values.append(sql.SQL("%(vector)s::{}").format(sql.SQL(type_name)))
        else:
            values.append(sql.Identifier(name))
    statement = sql.SQL(
        "INSERT INTO {t} ({n}) SELECT {v} FROM {t} WHERE ctid = %(row)s::tid"
    ).format(t=table, n=sql.SQL(", ").join(names), v=sql.SQL(", ").join(values))
    return Insert(statement, key_type)


def _new_key(insert: Insert, piece: int) -> str | None:
    """A key no row has: a UUID as the key's type takes it (text keys get a readable one)."""
    if insert.key_type is None:
        return None
    fresh = uuid.uuid4()
    if insert.key_type.startswith(("character", "text")):
        return f"pgcutover-smoke-{fresh.hex[:12]}:{piece}"
    if insert.key_type in ("bigint", "integer", "smallint"):
        return str(-(fresh.int % 2_000_000_000) - 1)
    return str(fresh)


def _owner(conn: psycopg.Connection, shape: Shape | None, column: EmbeddingColumn) -> Any:
    """The template row (ctid) and its filter value: a row of the filter value with the
    fewest rows, so the owner's filtered query is decided by the owner's own rows."""
    table = sql.Identifier(column.schema, column.table)
    vector = sql.Identifier(column.column)
    if shape is None or shape.filter_column is None:
        query = sql.SQL("SELECT ctid::text, NULL FROM {t} WHERE {v} IS NOT NULL LIMIT 1")
        return conn.execute(query.format(t=table, v=vector)).fetchone()
    query = sql.SQL(
        "SELECT ctid::text, {f}::text FROM {t} WHERE {f} = (SELECT {f} FROM {t} WHERE {f} IS NOT "
        "NULL AND {v} IS NOT NULL GROUP BY {f} ORDER BY count(*), {f}::text LIMIT 1) "
        "AND {v} IS NOT NULL LIMIT 1"
    )
    return conn.execute(
        query.format(f=sql.Identifier(shape.filter_column), t=table, v=vector)
    ).fetchone()


def _texts(
    conn: psycopg.Connection, shape: Shape, text_column: str, question: np.ndarray, owner: Any
) -> list[str]:
    """The shape's query returning each row's text (filtered by `owner` when it filters)."""
    where = sql.SQL("")
    if shape.filter_column:
        where = sql.SQL(" WHERE {} = %(f)s").format(sql.Identifier(shape.filter_column))
    query = sql.SQL("SELECT {text} FROM {t}{w} ORDER BY {o} {op} %(q)s::{qt} LIMIT %(k)s").format(
        text=sql.Identifier(text_column),
        t=sql.Identifier(shape.schema, shape.table),
        w=where,
        o=shape.ordered(),
        op=sql.SQL(shape.operator),
        qt=shape.query_type(),
    )
    return [row[0] for row in conn.execute(query, {"q": question, "f": owner, "k": shape.k})]


def _rank(found: list[str], expected: str) -> int | None:
    return found.index(expected) + 1 if expected in found else None


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0])  # type: ignore[index]


def _sign_up(conn: psycopg.Connection) -> dict[str, Any] | None:
    """GoTrue's sign-up where its auth.users exists: the stored bcrypt hash must verify."""
    if not _exists(conn, "auth.users"):
        return None
    columns = conn.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'auth.users'::regclass"
        " AND attname IN ('id', 'email', 'encrypted_password') AND NOT attisdropped"
    ).fetchone()[0]  # type: ignore[index]
    if columns != 3:
        return None
    user_id = uuid.uuid4()
    email = f"pgcutover-smoke-{user_id.hex[:12]}@example.invalid"
    password = uuid.uuid4().hex
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
    conn.execute(
        "INSERT INTO auth.users (id, email, encrypted_password) VALUES (%s, %s, %s)",
        (user_id, email, hashed),
    )
    stored = conn.execute("SELECT encrypted_password FROM auth.users WHERE id = %s", (user_id,))
    row = stored.fetchone()
    return {"user_id": str(user_id), "login": bool(row) and _verifies(password, row[0])}  # type: ignore[index]


def _as_policy_role(
    conn: psycopg.Connection,
    column: EmbeddingColumn,
    shape: Shape,
    question: np.ndarray,
    owner: Any,
    template: str,
) -> dict[str, Any] | None:
    """The owner's filtered query as the role the table's policies name, with the owner's
    identity in Supabase's claims. None where that convention does not fit this database (the
    owner cannot see even the template row that way, or the claim is not of the policy's
    type): then the policies follow another convention and this part is skipped. A refused
    privilege is the app's own failure and is returned as the error."""
    table = f'"{column.schema}"."{column.table}"'
    roles = [row[0] for row in conn.execute(POLICY_ROLES, (table,)).fetchall()]
    if not roles:
        return None
    role = "authenticated" if "authenticated" in roles else roles[0]
    claims = json.dumps({"sub": str(owner), "role": role})
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            conn.execute("SET LOCAL row_security = on")
            conn.execute("SELECT set_config(%s, %s, true)", (CLAIMS[0], str(owner)))
            conn.execute("SELECT set_config(%s, %s, true)", (CLAIMS[1], claims))
            sees_template = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE ctid = %s::tid").format(
                    sql.Identifier(column.schema, column.table)
                ),
                (template,),
            ).fetchone()[0]  # type: ignore[index]
            if not sees_template:
                return None
            found = _texts(conn, shape, str(column.text_column), question, owner)
    except psycopg.errors.InsufficientPrivilege as error:
        return {"role": role, "found": [], "error": str(error).strip().splitlines()[0]}
    except psycopg.DataError:
        return None
    return {"role": role, "found": found}


def _session(
    conn: psycopg.Connection, pair: Pair, settings: Settings, column: EmbeddingColumn
) -> dict[str, Any]:
    """Everything the new user does, in the caller's open transaction."""
    config = shapes.load(settings)
    inventory = pair.inventory
    conn.execute("SELECT 1")  # opens the transaction every later block nests in, rolled back
    table = inventory.table(f"{column.schema}.{column.table}")
    key = table.primary_key if table else ()
    mine = [
        s
        for s in inventory.shapes
        if (s.schema, s.table, s.column) == (column.schema, column.table, column.column)
    ]
    unfiltered = next((s for s in mine if s.filter_column is None), None)
    filtered = next((s for s in mine if s.filter_column is not None), None)
    policy_columns = {
        f.column
        for f in inventory.filters
        if (f.schema, f.table) == (column.schema, column.table)
        and "row-level security policy" in f.reasons
    }
    guarded_by_policy = next((s for s in mine if s.filter_column in policy_columns), None)
    filtered = guarded_by_policy or filtered
    signed_up = _sign_up(conn)
    template = _owner(conn, filtered, column)
    if template is None:
        return {"empty": True}
    row, owner = template
    text = config.smoke.document.strip()
    pieces = chunk(text)
    embedder = Embedder(str(column.model), settings.cache_dir)
    try:
        vectors = embedder.embed([*pieces, config.smoke.question])
    finally:
        embedder.close()
    question = vectors[-1]
    expected = pieces[int(np.argmax(vectors[:-1] @ question))]
    register_vector(conn)
    insert = _insert(conn, column, key)
    keys = []
    for n, (piece, vector) in enumerate(zip(pieces, vectors[:-1], strict=True)):
        new_key = _new_key(insert, n)
        conn.execute(
            insert.statement, {"key": new_key, "text": piece, "vector": vector, "row": row}
        )
        keys.append(new_key)
    exact_shape = unfiltered or filtered
    ranks: dict[str, Any] = {}
    errors: dict[str, str | None] = {}
    if exact_shape is not None:
        with conn.transaction(force_rollback=True):
            for setting in ("enable_indexscan", "enable_bitmapscan"):
                conn.execute(f"SET LOCAL {setting} = off")
            exact = dataclasses.replace(
                exact_shape,
                filter_column=None,
                expression=None,
                type_name=column.type_name,
                type_schema=column.type_schema,
            )
            ranks["exact"] = _rank(
                _texts(conn, exact, str(column.text_column), question, None), expected
            )
    if filtered is not None:
        ranks["owner_filtered"] = _rank(
            _texts(conn, filtered, str(column.text_column), question, owner), expected
        )
    if guarded_by_policy is not None:
        policy = _as_policy_role(conn, column, guarded_by_policy, question, owner, row)
        if policy is not None:
            ranks[f"as_{policy['role']}"] = _rank(policy["found"], expected)
            errors[f"as_{policy['role']}"] = policy.get("error")
    return {
        "sign_up": signed_up,
        "chunks": len(pieces),
        "pieces": pieces,
        "ranks": ranks,
        "errors": {path: error for path, error in errors.items() if error},
        "shapes": {
            "filtered": filtered.name if filtered else None,
            "exact": exact_shape.name if exact_shape else None,
        },
        "k": (filtered or exact_shape).k if (filtered or exact_shape) else None,
    }


def _leftovers(conn: psycopg.Connection, column: EmbeddingColumn, session: dict[str, Any]) -> int:
    """Rows of the smoke test still present after the rollback (must be 0): its chunks, found
    by their text, and its user."""
    query = sql.SQL("SELECT count(*) FROM {} WHERE {} = ANY(%s)").format(
        sql.Identifier(column.schema, column.table), sql.Identifier(str(column.text_column))
    )
    left = int(conn.execute(query, (session["pieces"],)).fetchone()[0])  # type: ignore[index]
    if session["sign_up"] is not None:
        left += int(
            conn.execute(
                "SELECT count(*) FROM auth.users WHERE id = %s", (session["sign_up"]["user_id"],)
            ).fetchone()[0]  # type: ignore[index]
        )
    return left


def _app(pair: Pair, settings: Settings) -> list[CheckResult]:
    check_id = "search.smoke.app"
    column, reason = _app_column(pair.inventory)
    if column is None:
        return [CheckResult(check_id, AREA, SKIP, f"no app chunk table to smoke-test: {reason}")]
    if not writes_allowed(pair, settings):
        return [
            CheckResult(
                check_id,
                AREA,
                SKIP,
                f"{pair.target.label} was not created by pgcutover: the smoke test's writes "
                "(rolled back) run there only with --test-writes",
            )
        ]
    conn = connect(pair.target, role="target", autocommit=False)
    try:
        session = _session(conn, pair, settings, column)
    finally:
        conn.rollback()
        conn.close()
    if session.get("empty"):
        return [CheckResult(check_id, AREA, SKIP, f"{column.qualified} is empty on the target")]
    with connection(pair.target, role="target") as verify:
        left = _leftovers(verify, column, session)
    problems = []
    signed_up = session["sign_up"]
    if signed_up is not None and not signed_up["login"]:
        problems.append("the new user's bcrypt password did not verify")
    for path, rank in session["ranks"].items():
        if path in session["errors"]:
            problems.append(f"the {path} search failed: {session['errors'][path]}")
        elif rank is None:
            problems.append(
                f"the new chunk was not in the top {session['k']} of the {path} search for the "
                "question about it"
            )
    if left:
        problems.append(f"{left} row(s) were left behind after the rollback")
    found = ", ".join(f"{path} rank {rank}" for path, rank in session["ranks"].items())
    message = (
        ("sign-up + login in auth.users, " if signed_up else "")
        + f"a {session['chunks']}-chunk document inserted into {column.schema}.{column.table} "
        f"and found by the question about it ({found}); rolled back, nothing left behind"
    )
    return [
        outcome(
            check_id,
            AREA,
            not problems,
            "; ".join(problems) if problems else message,
            details={**{k: session[k] for k in ("chunks", "ranks", "shapes")}, "left": left},
            remedy=(
                "the app's write and search path fails on the target: check the grants and "
                "row-level security policies (schema.grant / schema.rls checks), the triggers, "
                "the vector index (search.plan checks) and that ANALYZE ran"
            ),
        )
    ]


def _verifies(password: str, hashed: str) -> bool:
    """bcrypt's verdict on a password; a hash that is not bcrypt's verifies nothing."""
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


def _auth(pair: Pair, settings: Settings) -> list[CheckResult]:
    """A migrated user's bcrypt hash: the same as on the source and, where the source is
    pgcutover's own rehearsal database (its known password verifies there), that password
    verifies on the target too (a wrong one must not)."""
    check_id = "search.smoke.auth"
    if pair.inventory.table("auth.users") is None:
        return [CheckResult(check_id, AREA, SKIP, "the source has no auth.users table")]
    with connection(pair.target, role="target") as conn:
        row = conn.execute(
            "SELECT email, encrypted_password FROM auth.users"
            " WHERE encrypted_password IS NOT NULL ORDER BY email LIMIT 1"
        ).fetchone()
    if row is None:
        return [CheckResult(check_id, AREA, SKIP, "auth.users holds no password on the target")]
    email, hashed = row
    with connection(pair.source, role="source") as conn:
        source_row = conn.execute(
            "SELECT encrypted_password FROM auth.users WHERE email = %s", (email,)
        ).fetchone()
    same = source_row is not None and source_row[0] == hashed
    details: dict[str, Any] = {"email": email, "hash_matches_source": same}
    known = source_row is not None and _verifies(rehearsal_passphrase(email), source_row[0])
    if known:
        verified = _verifies(rehearsal_passphrase(email), hashed)
        rejected = not _verifies("not-the-password", hashed)
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
                "no trimming): compare the content.auth.users check and migrate the table again"
            ),
        )
    ]


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """search.smoke.app (sign-up, upload, search as the owner, rolled back) and
    search.smoke.auth (a migrated user's password against its bcrypt hash)."""
    return [
        *guarded("search.smoke.app", AREA, lambda: _app(pair, settings), pair),
        *guarded("search.smoke.auth", AREA, lambda: _auth(pair, settings), pair),
    ]
