"""Qdrant collections behind an alias, stamped with the embedding model that filled them.

Readers and writers use the configured name (`QDRANT_COLLECTION`, the knowledge collection),
which is an alias of a concrete collection `<name>_<UTC timestamp>`. A rebuild fills a new
concrete collection and then moves the alias in one request, so every reader switches at
once and nobody sees a half-filled collection.

Each concrete collection records the embedding model and vector size in its metadata. A
process whose model differs is refused at start: vectors of two models side by side would
make every similarity meaningless. These functions are blocking (qdrant-client's local mode
works in the calling thread); the stores call them on their own thread.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from qdrant_client import QdrantClient, models

from tidings.common.logging import get_logger

log = get_logger(__name__)

MODEL_KEY = "embedding_model"
DIMENSION_KEY = "dimension"


class VectorSizeMismatchError(RuntimeError):
    """The collection holds vectors of another size than the embedding model produces."""


class EmbeddingModelMismatchError(RuntimeError):
    """The collection was filled by another embedding model than the one configured."""


@dataclass(frozen=True, slots=True)
class ModelStamp:
    """Which embedding model a collection's vectors come from."""

    model: str
    dimension: int

    def metadata(self) -> dict[str, object]:
        """The collection metadata that records this stamp."""
        return {MODEL_KEY: self.model, DIMENSION_KEY: self.dimension}


def new_collection_name(name: str, now: datetime | None = None) -> str:
    """A fresh concrete collection name for alias `name`: `<name>_<UTC time to the µs>`."""
    moment = now or datetime.now(UTC)
    return f"{name}_{moment:%Y%m%dT%H%M%S%f}"


def alias_target(client: QdrantClient, name: str) -> str | None:
    """The concrete collection behind `name`: the alias's target, `name` itself, or None."""
    for alias in client.get_aliases().aliases:
        if alias.alias_name == name:
            return alias.collection_name
    return name if client.collection_exists(name) else None


def create_collection(
    client: QdrantClient,
    concrete: str,
    stamp: ModelStamp,
    indexes: Mapping[str, models.PayloadSchemaType],
    *,
    local: bool,
    sparse: Mapping[str, models.SparseVectorParams] | None = None,
) -> None:
    """Create a cosine collection for `stamp`'s vectors, with its payload indexes (and the
    named sparse vectors `sparse`)."""
    client.create_collection(
        concrete,
        vectors_config=models.VectorParams(size=stamp.dimension, distance=models.Distance.COSINE),
        sparse_vectors_config=dict(sparse) if sparse else None,
        metadata=stamp.metadata(),
    )
    for field_name, schema in indexes.items():
        if not local:
            client.create_payload_index(concrete, field_name, schema)
            continue
        # Local mode keeps the index definition but scans instead of using it, and says so
        # with a UserWarning. The indexes are still created so the collection is the same
        # shape in both modes; only that one message is silenced.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Payload indexes have no effect in the local Qdrant"
            )
            client.create_payload_index(concrete, field_name, schema)


def sparse_vectors(client: QdrantClient, name: str) -> set[str]:
    """The named sparse vectors of the collection behind `name`."""
    info = client.get_collection(name)
    return set(info.config.params.sparse_vectors or {})


def point_alias(client: QdrantClient, name: str, concrete: str) -> str | None:
    """Make `name` an alias of `concrete` in one request; returns the previous target.

    A collection created before aliases were used (a concrete collection called `name`)
    is deleted first: its content must already be in `concrete` (that is what a rebuild
    does), and an alias cannot share a name with a collection.
    """
    previous = alias_target(client, name)
    operations: list[models.AliasOperations] = []
    if previous == name:
        client.delete_collection(name)
    elif previous is not None:
        operations.append(
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name))
        )
    operations.append(
        models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=concrete, alias_name=name)
        )
    )
    client.update_collection_aliases(change_aliases_operations=operations)
    log.info("collection alias moved", alias=name, collection=concrete, previous=previous)
    return previous


def check_stamp(client: QdrantClient, name: str, concrete: str, stamp: ModelStamp) -> None:
    """Refuse a collection filled by another model (or with vectors of another size)."""
    info = client.get_collection(concrete)
    vectors = info.config.params.vectors
    if not isinstance(vectors, models.VectorParams):
        raise VectorSizeMismatchError(
            f"Qdrant collection {name!r} uses named vectors; Tidings needs a collection with "
            "a single unnamed vector."
        )
    if vectors.size != stamp.dimension:
        raise VectorSizeMismatchError(
            f"Qdrant collection {name!r} stores {vectors.size}-dimensional vectors but the "
            f"embedding model {stamp.model!r} produces {stamp.dimension}. Run `tidings memory "
            "rebuild` (conversation memory) or `tidings ingest --recreate` (knowledge) to "
            "re-embed with the new model, or configure the model the collection was built with."
        )
    recorded = (info.config.metadata or {}).get(MODEL_KEY)
    if recorded is not None and recorded != stamp.model:
        raise EmbeddingModelMismatchError(
            f"Qdrant collection {name!r} was built with the embedding model {recorded!r} but "
            f"{stamp.model!r} is configured (MEMORY_EMBEDDING_MODEL). Mixing two models' vectors "
            "would make every search meaningless: run `tidings memory rebuild` (conversation "
            "memory) or `tidings ingest --recreate` (knowledge) to re-embed with the new model, "
            "or set the model back."
        )


def ensure_collection(
    client: QdrantClient,
    name: str,
    stamp: ModelStamp,
    indexes: Mapping[str, models.PayloadSchemaType],
    *,
    local: bool,
    sparse: Mapping[str, models.SparseVectorParams] | None = None,
) -> str:
    """Check the collection behind `name`, or create one with an alias; returns its name."""
    concrete = alias_target(client, name)
    if concrete is not None:
        check_stamp(client, name, concrete, stamp)
        return concrete
    concrete = new_collection_name(name)
    create_collection(client, concrete, stamp, indexes, local=local, sparse=sparse)
    point_alias(client, name, concrete)
    log.info("collection created", alias=name, collection=concrete, dim=stamp.dimension)
    return concrete
