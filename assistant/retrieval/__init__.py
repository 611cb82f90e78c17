"""Question -> ranked Hits: fusion of keyword and vector search, rerank, structure, diversity."""

from assistant.retrieval.fusion import FusionWeights
from assistant.retrieval.retriever import Retriever

__all__ = ["FusionWeights", "Retriever"]
