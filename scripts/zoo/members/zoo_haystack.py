"""Haystack's PgvectorDocumentStore as its users set it up: an HNSW search strategy for
cosine similarity and the keyword index (GIN over to_tsvector(content)) that its keyword
retriever uses; Documents carrying the embeddings pgcutover computed, written with
write_documents."""

from __future__ import annotations

import os

from haystack import Document
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import Secret
from haystack_integrations.document_stores.pgvector import PgvectorDocumentStore

from zoo_input import chunks, dsn


def main() -> None:
    os.environ["PG_CONN_STR"] = dsn()
    store = PgvectorDocumentStore(
        connection_string=Secret.from_env_var("PG_CONN_STR"),
        table_name="haystack_documents",
        embedding_dimension=384,
        vector_function="cosine_similarity",
        search_strategy="hnsw",
        keyword_index_name="haystack_keyword_index",
    )
    store.write_documents(
        [
            Document(
                id=f"chunk-{piece.number}",
                content=piece.text,
                embedding=piece.embedding,
                meta={
                    "title": piece.title,
                    "source": piece.source,
                    "user_id": f"user-{piece.user}",
                },
            )
            for piece in chunks()
        ],
        policy=DuplicatePolicy.OVERWRITE,
    )


if __name__ == "__main__":
    main()
