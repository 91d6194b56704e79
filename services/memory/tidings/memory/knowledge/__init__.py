"""The knowledge base: documents read from files or Confluence, chunked, embedded, searched."""
