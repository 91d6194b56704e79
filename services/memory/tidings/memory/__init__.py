"""The memory worker: embeds finished conversation turns into Qdrant."""
