"""Build the zoo's fixtures (fixtures/zoo/<member>.dump): for each member, a fresh embedded
server of the member's PostgreSQL version, the member's database built by its framework's own
code (in its own venv, scripts/zoo/generate makes them), then pg_dump -Fc of that database.

The product side runs here, in pgcutover's venv: the corpus and the all-MiniLM-L6-v2
embeddings (pgcutover's Embedder and its cache) go to the members through a JSON file, so the
framework venvs need neither torch nor a model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from psycopg import sql

from pgcutover.config import DEFAULT_MODEL, FIXTURES_DIR
from pgcutover.dataset.corpus import chunk, documents
from pgcutover.dataset.embedder import Embedder
from pgcutover.db import Endpoint, connect
from pgcutover.migrate.tools import run_pipeline
from pgcutover.providers.embedded import EmbeddedServer, start_embedded

ZOO = FIXTURES_DIR / "zoo"
HERE = Path(__file__).resolve().parent
VENVS = HERE.parents[1] / ".zoo-venvs"
DATABASE = "zoo"
CACHE = Path.home() / ".cache" / "pgcutover"


def manifest() -> dict[str, dict[str, Any]]:
    """fixtures/zoo/zoo.toml: every member's server version, size, roles and settings."""
    return tomllib.loads((ZOO / "zoo.toml").read_text())["members"]  # type: ignore[no-any-return]


def export_chunks(count: int, path: Path) -> None:
    """The first `count` passages of pgcutover's corpus with their embeddings, as JSON."""
    rows: list[dict[str, Any]] = []
    for index, document in enumerate(documents()):
        for text in chunk(document.text):
            rows.append(
                {
                    "number": len(rows),
                    "document": index,
                    "title": document.title,
                    "source": document.source,
                    "text": text,
                }
            )
        if len(rows) >= count:
            break
    rows = rows[:count]
    embedder = Embedder(DEFAULT_MODEL, CACHE)
    try:
        vectors = embedder.embed([row["text"] for row in rows])
    finally:
        embedder.close()
    for row, vector in zip(rows, vectors, strict=True):
        row["embedding"] = [float(value) for value in vector]
    path.write_text(json.dumps(rows))


def interpreter(member: str) -> str:
    """The member's own venv when it has framework requirements, else this one (plain SQL)."""
    if (HERE / "requirements" / f"{member}.txt").is_file():
        return str(VENVS / member / "bin" / "python")
    return sys.executable


def build(member: str, spec: dict[str, Any], chunks: Path, workdir: Path) -> Path:
    """Start the member's server, let the member build its database, dump it, stop."""
    server = start_embedded(spec["server"], workdir / member, f"zoo {member}")
    try:
        with connect(server.endpoint, role="admin") as admin:
            if "roles" in spec:
                admin.execute((ZOO / spec["roles"]).read_text())
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        endpoint = server.endpoint.with_dbname(DATABASE)
        subprocess.run(
            [interpreter(member), str(HERE / "members" / f"zoo_{member}.py")],
            env={
                **endpoint.libpq_env(),
                "ZOO_CHUNKS": str(chunks),
                "ZOO_COUNT": str(spec["chunks"]),
            },
            check=True,
        )
        return dump(server, endpoint, ZOO / f"{member}.dump")
    finally:
        server.stop()


def dump(server: EmbeddedServer, endpoint: Endpoint, path: Path) -> Path:
    """pg_dump -Fc of the server's own version (as the member's users would dump it; a
    PostgreSQL 16 server cannot take what pg_restore 18 sends), gzip level 9."""
    command = [str(server.bin_dir / "pg_dump"), "-Fc", "-Z", "9", "--no-password", f"--file={path}"]
    run_pipeline([command], [endpoint], phase="zoo dump", timeout=600)
    return path


def main() -> None:
    members = manifest()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="*", help=f"default: all of {', '.join(members)}")
    chosen = parser.parse_args().members or list(members)
    unknown = sorted(set(chosen) - set(members))
    if unknown:
        parser.error(f"unknown member(s) {', '.join(unknown)}: fixtures/zoo/zoo.toml names them")
    with tempfile.TemporaryDirectory(prefix="pgcutover-zoo-") as folder:
        workdir = Path(folder)
        workdir.chmod(0o711)
        chunks = workdir / "chunks.json"
        export_chunks(max(members[name]["chunks"] for name in chosen), chunks)
        chunks.chmod(0o644)
        for member in chosen:
            path = build(member, members[member], chunks, workdir)
            print(f"{member}: {path.relative_to(HERE.parents[1])} {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
