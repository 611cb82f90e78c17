"""The index on disk: versions of FAISS (or Milvus) vectors, the chunk store and the manifest
(`index_store`), the BM25 keyword index (`keyword`) and the Milvus engine (`milvus`)."""
