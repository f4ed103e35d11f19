"""langchain-postgres, as its users set it up: a PGVector collection (langchain_pg_collection
and langchain_pg_embedding, no embedding_length, so an untyped `vector` column without an
index) and a PGVectorStore table made by PGEngine.init_vectorstore_table with metadata
columns and an HNSW index from apply_vector_index. Half of the chunks each, inserted with the
stores' own add_embeddings."""

from __future__ import annotations

import uuid

from langchain_core.embeddings import Embeddings
from langchain_postgres import Column, PGEngine, PGVector, PGVectorStore
from langchain_postgres.v2.indexes import HNSWIndex

from zoo_input import Chunk, chunks, dsn

NAMESPACE = uuid.UUID("0b7d3a52-53a8-4a43-9d0c-7c8c2b1f6a10")


class PrecomputedOnly(Embeddings):
    """The stores get vectors pgcutover's embedder computed: embedding here is a mistake."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("the zoo hands the stores precomputed embeddings")

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("the zoo hands the stores precomputed embeddings")


def metadata(piece: Chunk) -> dict[str, str]:
    return {"title": piece.title, "source": piece.source, "user_id": f"user-{piece.user}"}


def pgvector_collection(pieces: list[Chunk]) -> None:
    store = PGVector(PrecomputedOnly(), connection=dsn("psycopg"), collection_name="python_docs")
    store.add_embeddings(
        texts=[piece.text for piece in pieces],
        embeddings=[piece.embedding for piece in pieces],
        metadatas=[metadata(piece) for piece in pieces],
        ids=[f"chunk-{piece.number}" for piece in pieces],
    )


def pgvectorstore_table(pieces: list[Chunk]) -> None:
    engine = PGEngine.from_connection_string(url=dsn("psycopg"))
    engine.init_vectorstore_table(
        table_name="python_docs_chunks",
        vector_size=384,
        metadata_columns=[Column("user_id", "TEXT"), Column("source", "TEXT")],
    )
    store = PGVectorStore.create_sync(
        engine,
        PrecomputedOnly(),
        table_name="python_docs_chunks",
        metadata_columns=["user_id", "source"],
    )
    store.add_embeddings(
        texts=[piece.text for piece in pieces],
        embeddings=[piece.embedding for piece in pieces],
        metadatas=[metadata(piece) for piece in pieces],
        ids=[str(uuid.uuid5(NAMESPACE, str(piece.number))) for piece in pieces],
    )
    store.apply_vector_index(HNSWIndex())


def main() -> None:
    pieces = chunks()
    half = len(pieces) // 2
    pgvector_collection(pieces[:half])
    pgvectorstore_table(pieces[half:])


if __name__ == "__main__":
    main()
