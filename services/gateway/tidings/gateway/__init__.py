"""Tidings gateway: the HTTP API, publishing user messages and streaming answers over SSE."""
