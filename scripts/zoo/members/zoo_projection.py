"""A deterministic 384 -> 1536 projection of real embeddings, for columns shaped like an
OpenAI-size model's output (the zoo has no 1536-d model; the geometry stays that of real
MiniLM embeddings)."""

from __future__ import annotations

import numpy as np

SEED = 1536


def project(embedding: list[float], dimensions: int = 1536) -> list[float]:
    """The embedding through a fixed Gaussian matrix, scaled back to unit length."""
    matrix = np.random.default_rng(SEED).standard_normal((len(embedding), dimensions))
    projected = np.asarray(embedding) @ matrix
    return [float(value) for value in (projected / np.linalg.norm(projected)).astype(np.float32)]


def mean(embeddings: list[list[float]]) -> list[float]:
    """The unit-length mean of some embeddings (a document's from its chunks')."""
    average = np.mean(np.asarray(embeddings), axis=0)
    return [float(value) for value in (average / np.linalg.norm(average)).astype(np.float32)]
