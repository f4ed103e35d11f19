"""What every zoo member reads (stdlib only: it runs in each framework's own venv too): the
database to build in and the chunks with the embeddings the product's embedder computed."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

#: How many distinct app users own the chunks (a filtered query sees about 1/USERS of them).
USERS = 20


@dataclass(frozen=True)
class Chunk:
    """One passage of real text and its all-MiniLM-L6-v2 embedding (384 floats, unit length)."""

    number: int
    document: int
    title: str
    source: str
    text: str
    embedding: list[float]

    @property
    def user(self) -> int:
        """The app user owning this chunk's document."""
        return self.document % USERS


def chunks() -> list[Chunk]:
    """The member's chunks: ZOO_CHUNKS names the file, ZOO_COUNT how many are the member's."""
    rows = json.loads(Path(os.environ["ZOO_CHUNKS"]).read_text())
    return [Chunk(**row) for row in rows[: int(os.environ["ZOO_COUNT"])]]


def dsn(driver: str = "") -> str:
    """The member's database as a URL; `driver` adds a SQLAlchemy driver (`psycopg`).
    The password comes from PGPASSWORD, never from a command line."""
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    user, password = os.environ["PGUSER"], os.environ["PGPASSWORD"]
    host, port, name = os.environ["PGHOST"], os.environ["PGPORT"], os.environ["PGDATABASE"]
    return f"{scheme}://{user}:{password}@{host}:{port}/{name}"


def vector_literal(values: list[float]) -> str:
    """pgvector's text form, for COPY into vector and halfvec columns."""
    return "[" + ",".join(repr(value) for value in values) + "]"
