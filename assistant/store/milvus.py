"""Chunk vectors in Milvus: the second engine behind the `VectorIndex` seam of store.py.

One collection per index version, its primary key the chunk's row number, so that search
gives back the same rows as the FAISS engine and the rest of the version (manifest,
chunks.sqlite, keyword index, sentence vectors) stays in the local version folder:

    collection  <base>_<owner>_<version>   row INT64 primary key, vector FLOAT_VECTOR (IP)
    alias       <base>                     follows the current version, for other readers

`<owner>` is a hash of the index folder's path: a build drops only its own collections that no
version folder names any more, never another index's sharing the same Milvus.

The manifest names its collection, and a reader opens that collection, never the alias: a
manifest and its vectors always belong together. A build fills, indexes and loads the new
collection completely before the `current` symlink moves; the alias moves after that, so
nothing points at a collection that could still change.

The URI picks the deployment: a local path ending in `.db` runs Milvus Lite in this process (the
PyPI package `milvus-lite`, nothing to start); `http://host:19530` talks to a Milvus server or
cluster through the same client.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ConfigError, IndexWriteError

logger = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'assistant[milvus]'"
ROW = "row"
VECTOR = "vector"
# Milvus answers at most 16,384 results per request (its default maxQueryResultWindow).
MAX_RESULTS = 16_384
INSERT_BATCH = 5_000
# Milvus' default graceful time (common.gracefulTime): a Bounded read may miss writes younger
# than this, so a build waits it out before publishing a collection to Bounded readers.
BOUNDED_STALENESS_S = 5.0
# HNSW parameters, the same as FaissIndex.build's, so that both engines trade recall alike.
HNSW_BUILD = {"M": 32, "efConstruction": 80}
HNSW_EF = 96
IVF_NLIST = 1024
IVF_NPROBE = 32
INDEX_TYPES = ("auto", "FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX")


@dataclass(frozen=True)
class MilvusConfig:
    """Where the Milvus engine is and how it shards, replicates and reads.

    `uri` None means: when writing, `<index_dir>/milvus.db` (Milvus Lite); when reading, the
    URI the manifest recorded at build time.
    """

    uri: str | None = None
    token: str = ""
    collection: str = "assistant"  # base name of the collections and name of the alias
    index: str = "auto"  # "auto": FLAT up to the approximate threshold, HNSW past it
    shards: int = 1
    replicas: int = 1
    consistency: str = "Bounded"  # "Strong" or "Bounded"

    def __post_init__(self) -> None:
        if self.index not in INDEX_TYPES:
            raise ValueError(f"milvus index must be one of {', '.join(INDEX_TYPES)}, not {self.index!r}")
        if self.consistency not in ("Strong", "Bounded"):
            raise ValueError(f"milvus consistency must be Strong or Bounded, not {self.consistency!r}")
        if (
            not self.collection
            or not (self.collection[0].isalpha() or self.collection[0] == "_")
            or not all(c.isalnum() or c == "_" for c in self.collection)
        ):
            raise ValueError(
                f"milvus collection name {self.collection!r} must start with a letter and hold "
                "only letters, digits and underscores"
            )

    def with_uri(self, uri: str | None) -> MilvusConfig:
        """Returns this configuration pointing at another URI."""
        return MilvusConfig(
            uri,
            self.token,
            self.collection,
            self.index,
            self.shards,
            self.replicas,
            self.consistency,
        )


def default_uri(index_dir: Path) -> str:
    """Returns the Milvus Lite database used when no URI is set: `<index_dir>/milvus.db`."""
    return str(index_dir.resolve() / "milvus.db")


def is_lite(uri: str) -> bool:
    """Tells whether a URI names a local Milvus Lite database rather than a server."""
    return "://" not in uri


def owner_tag(index_dir: Path) -> str:
    """Returns the short hash of an index folder's path that its collection names carry."""
    return hashlib.sha256(str(index_dir.resolve()).encode()).hexdigest()[:8]


def collection_name(base: str, index_dir: Path, version: str) -> str:
    """Returns the collection of one index version: `<base>_<owner>_<version>`."""
    return f"{base}_{owner_tag(index_dir)}_{version.replace('-', '_')}"


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def connect(uri: str, token: str = "") -> Any:
    """Returns this process's client for a URI (one per URI, shared by threads)."""
    try:
        from pymilvus import MilvusClient, MilvusException
    except ImportError as exc:
        raise ImportError(f"the Milvus store needs pymilvus: {EXTRA_HINT}") from exc
    if is_lite(uri):
        if not uri.endswith(".db"):
            raise ConfigError(
                f"ASSISTANT_MILVUS_URI {uri!r} is neither a Milvus Lite file ending in .db nor "
                "an http:// address of a Milvus server"
            )
        if importlib.util.find_spec("milvus_lite") is None:
            raise ImportError(f"a Milvus Lite file URI needs the milvus-lite package: {EXTRA_HINT}")
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    key = (uri, token)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = MilvusClient(uri=uri, token=token, timeout=60)
            except MilvusException as exc:
                raise ConfigError(f"cannot reach Milvus at {uri}: {exc.message}") from exc
            _clients[key] = client
    return client


def _milvus_error() -> type[Exception]:
    from pymilvus import MilvusException

    error: type[Exception] = MilvusException
    return error


class MilvusIndex:
    """A `VectorIndex` over one Milvus collection whose primary key is the chunk row."""

    def __init__(
        self,
        client: Any,
        collection: str,
        kind: str,
        size: int,
        dimension: int,
        consistency: str = "Bounded",
    ) -> None:
        self.client = client
        self.collection = collection
        self.kind = kind
        self.size = size
        self.dimension = dimension
        self.consistency = consistency

    @classmethod
    def open(cls, config: MilvusConfig, uri: str, collection: str, kind: str, size: int, dimension: int) -> MilvusIndex:
        """Opens a version's collection, loading it if the engine released it; checks its size.

        Raises ValueError when the collection is missing or holds another number of rows.
        """
        client = connect(uri, config.token)
        error = _milvus_error()
        try:
            if not client.has_collection(collection):
                raise ValueError(f"the Milvus collection {collection} at {uri} does not exist")
            # Milvus Lite releases collections when its process ends; a server keeps them loaded.
            state = client.get_load_state(collection).get("state")
            if getattr(state, "name", str(state)) != "Loaded":
                client.load_collection(collection, replica_number=config.replicas)
            rows = _count(client, collection, "Strong")
        except error as exc:
            raise ValueError(f"Milvus at {uri}: {getattr(exc, 'message', exc)}") from exc
        if rows != size:
            raise ValueError(f"the Milvus collection {collection} holds {rows} rows, the manifest says {size}")
        return cls(client, collection, kind, size, dimension, config.consistency)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (scores, rows) of the k nearest rows to each query; missing rows are -1."""
        k = min(k, self.size, MAX_RESULTS)
        scores = np.full((len(queries), max(k, 0)), np.finfo(np.float32).min, dtype=np.float32)
        rows = np.full((len(queries), max(k, 0)), -1, dtype=np.int64)
        if k <= 0 or len(queries) == 0:
            return scores, rows
        found = self.client.search(
            self.collection,
            data=np.ascontiguousarray(queries, dtype=np.float32).tolist(),
            limit=k,
            anns_field=VECTOR,
            search_params=_search_params(self.kind),
            output_fields=[ROW],
            consistency_level=self.consistency,
        )
        for i, hits in enumerate(found):
            for j, hit in enumerate(hits[:k]):
                rows[i, j] = int(hit[ROW] if ROW in hit else hit["id"])
                scores[i, j] = float(hit["distance"])
        return scores, rows

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Returns the float32 vectors of the given rows, in that order."""
        wanted = [int(r) for r in np.asarray(rows, dtype=np.int64).ravel()]
        unique = list(dict.fromkeys(wanted))
        found: dict[int, list[float]] = {}
        for start in range(0, len(unique), MAX_RESULTS // 2):
            batch = unique[start : start + MAX_RESULTS // 2]
            for item in self.client.get(
                self.collection,
                ids=batch,
                output_fields=[VECTOR],
                consistency_level=self.consistency,
            ):
                found[int(item[ROW])] = item[VECTOR]
        missing = [r for r in unique if r not in found]
        if missing:
            raise KeyError(f"rows {missing[:5]} are not in the Milvus collection {self.collection}")
        if not wanted:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray([found[r] for r in wanted], dtype=np.float32)


def _count(client: Any, collection: str, consistency: str) -> int:
    result = client.query(collection, filter="", output_fields=["count(*)"], consistency_level=consistency)
    return int(result[0]["count(*)"])


def _is_lite_engine(client: Any) -> bool:
    # Milvus Lite (embedded, or its gRPC server) is one process: every write is visible at once.
    try:
        return str(client.get_server_version()).startswith("milvus_lite")
    except _milvus_error():
        return False


def _index_type(config: MilvusConfig, rows: int, approximate_threshold: int) -> str:
    if config.index == "auto":
        return "HNSW" if rows > approximate_threshold else "FLAT"
    return config.index


def _search_params(kind: str) -> dict[str, Any]:
    params: dict[str, Any] = {"metric_type": "IP"}
    if kind == "hnsw":
        params["params"] = {"ef": HNSW_EF}
    elif kind == "ivf_flat":
        params["params"] = {"nprobe": IVF_NPROBE}
    return params


def build_collection(
    config: MilvusConfig,
    uri: str,
    name: str,
    vectors: np.ndarray,
    approximate_threshold: int = 200_000,
) -> str:
    """Writes vectors (row i = chunk i) into a new collection, indexed and loaded; returns its kind.

    The collection is complete and every row readable at the configured consistency when this
    returns. On failure the half-written collection is dropped and IndexWriteError raised.
    """
    from pymilvus import DataType, MilvusClient

    client = connect(uri, config.token)
    error = _milvus_error()
    index_type = _index_type(config, len(vectors), approximate_threshold)
    try:
        if client.has_collection(name):  # a crashed build under the same version name
            _drop(client, name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ROW, DataType.INT64, is_primary=True)
        schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=int(vectors.shape[1]))
        client.create_collection(name, schema=schema, consistency_level=config.consistency, num_shards=config.shards)
        # The index before the data: Milvus then indexes each segment as it seals.
        index_params = client.prepare_index_params()
        params = {"HNSW": HNSW_BUILD, "IVF_FLAT": {"nlist": IVF_NLIST}}.get(index_type, {})
        index_params.add_index(field_name=VECTOR, index_type=index_type, metric_type="IP", params=params)
        # No wait: the collection is empty, so there is nothing to build yet (and Milvus Lite
        # lacks the timestamp call the wait makes, which logs a traceback).
        client.create_index(name, index_params, sync=False)
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        for start in range(0, len(matrix), INSERT_BATCH):
            part = matrix[start : start + INSERT_BATCH].tolist()
            client.insert(name, [{ROW: start + i, VECTOR: v} for i, v in enumerate(part)])
        client.flush(name)
        client.load_collection(name, replica_number=config.replicas)
        count = _count(client, name, "Strong")
        if config.consistency != "Strong" and not _is_lite_engine(client):
            time.sleep(BOUNDED_STALENESS_S)
    except (error, OSError) as exc:
        _drop_quietly(client, name)
        raise _write_error(uri, getattr(exc, "message", None) or str(exc)) from exc
    if count != len(matrix):
        _drop_quietly(client, name)
        raise _write_error(uri, f"it holds {count} of the {len(matrix)} vectors written to {name}")
    return index_type.lower()


def _write_error(uri: str, reason: str) -> IndexWriteError:
    return IndexWriteError(
        f"could not write the vectors to Milvus at {uri} ({reason}); the previous index is still in use"
    )


def publish(config: MilvusConfig, uri: str, name: str) -> None:
    """Points the alias `<base>` at a collection (after the local switch; failures only warn)."""
    client = connect(uri, config.token)
    try:
        aliases = client.list_aliases().get("aliases", [])
        if config.collection in aliases:
            client.alter_alias(name, config.collection)
        else:
            client.create_alias(name, config.collection)
    except _milvus_error() as exc:
        # Readers follow the manifest, not the alias: a stale alias misleads other tools only.
        logger.warning("could not point the Milvus alias %s at %s: %s", config.collection, name, exc)


def drop_unused(config: MilvusConfig, uri: str, index_dir: Path, keep: set[str]) -> list[str]:
    """Drops this index folder's collections that no version folder names; returns their names."""
    client = connect(uri, config.token)
    prefix = f"{config.collection}_{owner_tag(index_dir)}_"
    dropped = []
    try:
        names = client.list_collections()
    except _milvus_error() as exc:
        logger.warning("could not list the Milvus collections at %s: %s", uri, exc)
        return []
    for name in names:
        if name.startswith(prefix) and name not in keep and _drop_quietly(client, name):
            dropped.append(name)
    return dropped


def _drop(client: Any, name: str) -> None:
    # A server refuses to drop a collection that an alias still points at.
    for alias in client.list_aliases(name).get("aliases", []):
        client.drop_alias(alias)
    client.drop_collection(name)


def _drop_quietly(client: Any, name: str) -> bool:
    try:
        _drop(client, name)
    except _milvus_error() as exc:
        logger.warning("could not drop the Milvus collection %s: %s", name, exc)
        return False
    return True
