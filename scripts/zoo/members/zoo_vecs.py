"""Supabase vecs as its users set it up: a collection (schema `vecs`, table `docs`: id,
vec vector(384), metadata jsonb) upserted with precomputed vectors and metadata the app
filters on (user_id, source; the text rides in the metadata as vecs has no text column),
then create_index for cosine distance (HNSW on pgvector 0.5+)."""

from __future__ import annotations

import vecs
from vecs import IndexMeasure, IndexMethod

from zoo_input import chunks, dsn


def main() -> None:
    client = vecs.create_client(dsn("psycopg2"))
    try:
        docs = client.get_or_create_collection(name="docs", dimension=384)
        docs.upsert(
            records=[
                (
                    f"chunk-{piece.number}",
                    piece.embedding,
                    {
                        "user_id": f"user-{piece.user}",
                        "source": piece.source,
                        "title": piece.title,
                        "text": piece.text,
                    },
                )
                for piece in chunks()
            ]
        )
        docs.create_index(method=IndexMethod.hnsw, measure=IndexMeasure.cosine_distance)
    finally:
        client.disconnect()


if __name__ == "__main__":
    main()
