"""llama-index's PGVectorStore as its hybrid-search users set it up: from_params with
hybrid_search (the generated text_search_tsv column and its GIN index), an HNSW index from
hnsw_kwargs, a btree index on the user_id metadata key (indexed_metadata_keys), nodes carrying
the embeddings pgcutover computed, inserted by the store's own add()."""

from __future__ import annotations

import os

from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.vector_stores.postgres import PGVectorStore

from zoo_input import chunks


def main() -> None:
    store = PGVectorStore.from_params(
        host=os.environ["PGHOST"],
        port=os.environ["PGPORT"],
        database=os.environ["PGDATABASE"],
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        table_name="python_docs",
        embed_dim=384,
        hybrid_search=True,
        text_search_config="english",
        hnsw_kwargs={
            "hnsw_m": 16,
            "hnsw_ef_construction": 64,
            "hnsw_ef_search": 40,
            "hnsw_dist_method": "vector_cosine_ops",
        },
        indexed_metadata_keys={("user_id", "text")},
    )
    nodes = [
        TextNode(
            id_=f"chunk-{piece.number}",
            text=piece.text,
            embedding=piece.embedding,
            metadata={
                "title": piece.title,
                "source": piece.source,
                "user_id": f"user-{piece.user}",
            },
            relationships={
                NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"document-{piece.document}")
            },
        )
        for piece in chunks()
    ]
    store.add(nodes)


if __name__ == "__main__":
    main()
